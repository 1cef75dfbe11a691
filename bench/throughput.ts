/**
 * The load matrix: every workload against every variant, in rounds. Each
 * round runs every (workload, variant) pair once, the variants in an order
 * rotated per round, so slow drift of a shared machine (another tenant's
 * burst, thermal state) spreads over all variants instead of landing on one.
 */
import type { Testbed } from '../lab/testbed/index.js';
import { runDownloads } from './load/curl.js';
import type { LoadResult } from './load/result.js';
import { runWrk } from './load/wrk.js';
import { BODIES, type Profile, WORKLOADS, type Workload, type WorkloadId } from './profile.js';
import type { Variant, VariantId } from './variants/variant.js';

export interface ThroughputSummary {
  requestsPerS: number;
  /** 10^6 bytes per second of response (headers included) */
  mbPerS: number;
  /** median over rounds of each round's percentile, microseconds */
  p50Us: number;
  p99Us: number;
  /** whole-machine busy CPU per completed request / per 10^6 bytes, microseconds */
  cpuUsPerRequest: number;
  cpuUsPerMB: number;
  /** busy share of all cores during the runs, 0..1 */
  utilisation: number;
  requests: number;
  errors: number;
}

export interface ThroughputCell {
  workload: WorkloadId;
  variant: VariantId;
  rounds: LoadResult[];
  summary: ThroughputSummary;
}

export async function runThroughput(
  tb: Testbed,
  variants: Variant[],
  profile: Profile,
  log: (line: string) => void,
  workloads: readonly Workload[] = WORKLOADS,
): Promise<ThroughputCell[]> {
  const runs = new Map<string, LoadResult[]>();
  const cellKey = (w: WorkloadId, v: VariantId) => `${w}/${v}`;
  for (let round = 0; round < profile.rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
    for (const w of workloads) {
      for (const v of order) {
        const r = await runOne(tb, v, w, profile);
        await v.afterRun?.();
        const k = cellKey(w.id, v.id);
        runs.set(k, [...(runs.get(k) ?? []), r]);
        log(
          `  round ${round + 1}/${profile.rounds}  ${w.id.padEnd(13)} ${v.id.padEnd(13)} ${fmt(r.requests / (r.durationUs / 1e6), 0).padStart(8)} req/s ` +
            `${fmt(r.bytes / r.durationUs, 1).padStart(7)} MB/s  p50 ${fmt(r.p50Us / 1000, 2)} ms  p99 ${fmt(r.p99Us / 1000, 2)} ms  ` +
            `cpu ${fmt(r.cpu.utilisation * 100, 0)}%${r.errors ? `  errors ${JSON.stringify(r.errorDetail)}` : ''}`,
        );
      }
    }
  }
  const cells: ThroughputCell[] = [];
  for (const w of workloads) {
    for (const v of variants) {
      const rounds = runs.get(cellKey(w.id, v.id)) ?? [];
      cells.push({ workload: w.id, variant: v.id, rounds, summary: summarize(rounds) });
    }
  }
  return cells;
}

function runOne(tb: Testbed, v: Variant, w: Workload, profile: Profile): Promise<LoadResult> {
  const url = v.url(w.path);
  if (w.tool === 'curl')
    return runDownloads(tb, url, { count: profile.downloadsPerRound, expectBytes: BODIES[w.path] });
  return runWrk(tb, url, {
    seconds: profile.wrkSeconds,
    connections: profile.wrkConnections,
    newConnectionPerRequest: w.tool === 'wrk-close',
  });
}

export function summarize(rounds: readonly LoadResult[]): ThroughputSummary {
  const sum = (f: (r: LoadResult) => number) => rounds.reduce((a, r) => a + f(r), 0);
  const requests = sum((r) => r.requests);
  const bytes = sum((r) => r.bytes);
  const seconds = sum((r) => r.durationUs) / 1e6;
  const busyUs = sum((r) => r.cpu.busyUs);
  return {
    requestsPerS: requests / seconds,
    mbPerS: bytes / 1e6 / seconds,
    p50Us: median(rounds.map((r) => r.p50Us)),
    p99Us: median(rounds.map((r) => r.p99Us)),
    cpuUsPerRequest: busyUs / requests,
    cpuUsPerMB: busyUs / (bytes / 1e6),
    utilisation: rounds.length ? sum((r) => r.cpu.utilisation) / rounds.length : Number.NaN,
    requests,
    errors: sum((r) => r.errors),
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}
