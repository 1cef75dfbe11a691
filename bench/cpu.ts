/**
 * Whole-machine CPU time from /proc/stat. Every variant's cost lands in a
 * different place (a proxy's user time, softirq for forwarding and XDP, the
 * back end, the load generator), so the suite charges each run with all
 * busy time on the machine between two samples: client, LB and back end
 * together, like a bill for the whole path. On a shared machine that bill
 * includes the neighbours; the idle baseline in the results says how much.
 */
import { readFileSync } from 'node:fs';

/** Linux reports /proc/stat in USER_HZ ticks, 100 per second on every architecture it exports to userspace. */
const USER_HZ = 100;

export interface CpuSample {
  /** jiffies spent in user, nice, system, irq, softirq, steal */
  busy: number;
  /** jiffies spent idle or waiting for I/O */
  idle: number;
  atMs: number;
}

export function sampleCpu(): CpuSample {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq + steal, idle: idle + iowait, atMs: performance.now() };
}

export interface CpuDelta {
  /** busy CPU time over all cores, microseconds */
  busyUs: number;
  /** wall time between the samples, microseconds */
  wallUs: number;
  /** busy share of all cores, 0..1 */
  utilisation: number;
}

export function cpuSince(before: CpuSample, after: CpuSample = sampleCpu()): CpuDelta {
  const busy = after.busy - before.busy;
  const total = busy + (after.idle - before.idle);
  return {
    busyUs: (busy * 1e6) / USER_HZ,
    wallUs: (after.atMs - before.atMs) * 1000,
    utilisation: total > 0 ? busy / total : 0,
  };
}
