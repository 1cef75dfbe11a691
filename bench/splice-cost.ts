/**
 * The cost of one splice in the splicer itself, without the REST round trip:
 * where its time goes (the phases of control/splice/first-splice.ts), how
 * many libc calls it makes through the FFI (capture apart), and what the
 * process holds afterwards (descriptors, RSS) for N spliced connections.
 *
 * On a starTopology testbed (client <-> lb <-> backend1, nginx on the back
 * end, baton's datapath on the LB's interfaces), the pairs helpers of the
 * handoff-API benchmark (bench/load/pairs.ts in the LB node,
 * bench/load/pair-clients.ts in the client node) hold N (client, back-end)
 * pairs; this process takes their descriptors (pidfd_getfd) and splices them
 * one at a time with an in-process Splicer, as the daemon would. Then every
 * spliced connection must get the answer to its request, the pairs are
 * closed and the splices reclaimed.
 *
 * With --leg-ports, the back-end connections bind ports Splicer.legPort
 * chose (baton's leg range, reserved in the LB's namespace): spliced legs
 * then hold no socket. Without it the kernel chooses, and every spliced
 * connection keeps a socket for its tuple.
 *
 * Run: node --expose-gc --import tsx bench/splice-cost.ts [--pairs N] [--leg-ports]
 * (N default 500, at most 4000)
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { applyHostSettingsUnrecorded } from '../control/daemon/host-settings.js';
import { Datapath } from '../control/datapath/datapath.js';
import { withNetns } from '../control/net/netns.js';
import { DEFAULT_LEG_PORTS, reserveLegPorts } from '../control/splice/leg-ports.js';
import type { SplicePhases } from '../control/splice/records.js';
import { Splicer } from '../control/splice/splicer.js';
import { libc } from '../control/sys/libc.js';
import { takeSocket } from '../control/tcp/pidfd.js';
import { createSocketOps } from '../control/tcp/socket-ops.js';
import { sharedSocketProbe } from '../control/tcp/socket-probe.js';
import { type NginxBackend, startNginx } from '../lab/launch/nginx.js';
import { createTestbed, starTopology, VIP4 } from '../lab/testbed/index.js';
import { type LineProgram, makePairs, type Pair, spawnProgram } from './handoff-api.js';
import { percentile } from './load/result.js';
import { BACKEND_PORT, BODIES } from './profile.js';

const PAIRS_PORT = 80;
const PATH = '/k1.bin';
const WARMUP_PAIRS = 32;
/** Below the default leg range's 4536 ports, warm-up included. */
const MAX_PAIRS = 4000;
const CHECK_TIMEOUT_MS = 3000;
const BUDGET_S = 300;

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

/** libc calls by name (count, time in ms), split into those made inside capture() and the rest. */
type CallStats = Map<string, { n: number; ms: number }>;
const calls: { capture: CallStats; other: CallStats } = { capture: new Map(), other: new Map() };
let inCapture = false;
let counting = false;
function countLibcCalls(): void {
  const table = libc as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of Object.keys(table)) {
    const f = table[name] as (...a: unknown[]) => unknown;
    table[name] = (...a: unknown[]) => {
      if (!counting) return f(...a);
      const m = inCapture ? calls.capture : calls.other;
      const t = performance.now();
      try {
        return f(...a);
      } finally {
        const c = m.get(name) ?? { n: 0, ms: 0 };
        c.n++;
        c.ms += performance.now() - t;
        m.set(name, c);
      }
    };
  }
}

function descriptors(): { total: number; sockets: number } {
  const fds = readdirSync('/proc/self/fd');
  let sockets = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) sockets++;
    } catch {
      /* the directory's own fd, gone by now */
    }
  }
  return { total: fds.length, sockets };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** TCP sockets in use in the calling thread's namespace (/proc/net/sockstat "TCP: inuse"). */
function tcpInUse(): number {
  const m = /^TCP: inuse (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** RSS and the JS heap in use, after a full collection when node runs with --expose-gc. */
function memory(): { rss: number; heap: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed + m.external };
}
const us = (ms: number) => (ms * 1000).toFixed(0);

async function main(): Promise<void> {
  const n = Math.min(MAX_PAIRS, arg('pairs', 500));
  setTimeout(() => {
    process.stderr.write(`splice-cost: over its ${BUDGET_S} s budget, stopping\n`);
    process.exit(1);
  }, BUDGET_S * 1000).unref();
  countLibcCalls();
  const tb = await createTestbed(starTopology({ backends: 1, vip: true, name: 'scost' }), {
    passXdp: (node) => node !== 'lb',
  });
  let nginx: NginxBackend | undefined;
  let dp: Datapath | undefined;
  const programs: LineProgram[] = [];
  try {
    nginx = await startNginx(
      tb,
      'backend1',
      BACKEND_PORT,
      { [PATH.slice(1)]: BODIES[PATH] },
      { workerConnections: 2 * n + 256 },
    );
    dp = await Datapath.load({ flowsCapacity: Math.max(1024, 4 * n) });
    const d = dp;
    const lb = tb.node('lb');
    const useLegPorts = process.argv.includes('--leg-ports');
    withNetns(lb.ns, () => {
      for (const i of lb.ifaces) d.attach(i.ifindex);
      applyHostSettingsUnrecorded(lb.ifaces.map((i) => i.name));
      if (useLegPorts) reserveLegPorts(DEFAULT_LEG_PORTS);
    });
    const ops = createSocketOps();
    const capture = ops.capture;
    ops.capture = async (fds, endpoints) => {
      inCapture = true;
      try {
        return await capture(fds, endpoints);
      } finally {
        inCapture = false;
      }
    };
    const splicer = new Splicer(d, ops, useLegPorts ? { legPorts: DEFAULT_LEG_PORTS } : {});
    const frontEnd = spawnProgram(tb, 'lb', 'bench/load/pairs.ts', [
      `${VIP4}:${PAIRS_PORT}`,
      `${tb.node('backend1').v4}:${BACKEND_PORT}`,
    ]);
    programs.push(frontEnd);
    await frontEnd.event('listening');
    const clients = spawnProgram(tb, 'client', 'bench/load/pair-clients.ts', [VIP4, String(PAIRS_PORT), PATH]);
    programs.push(clients);
    await clients.event('ready');
    const h = { clients, frontEnd };
    const backend = { ip: tb.node('backend1').v4, port: BACKEND_PORT };
    const localIp = lb.ifaces.find((i) => i.peer.node === 'backend1')?.v4;
    /** Leg ports for the next `k` back-end connections, when --leg-ports. */
    const givePorts = async (k: number) => {
      if (!useLegPorts || localIp === undefined) return;
      const ports = Array.from({ length: k }, () => splicer.legPort(localIp, backend));
      frontEnd.send(`PORTS ${localIp} ${ports.join(',')}`);
      await frontEnd.event('ports');
    };

    const spliceAll = async (pairs: Pair[]) => {
      const out: { wallMs: number; phases: SplicePhases; totalMs: number }[] = [];
      const t0 = performance.now();
      for (const p of pairs) {
        const c = takeSocket(p.pid, p.client);
        const b = takeSocket(p.pid, p.backend);
        const start = performance.now();
        const rec = await splicer.splice(c, b, { prefix: Buffer.from(p.prefix, 'base64') });
        out.push({
          wallMs: performance.now() - start,
          totalMs: rec.timings.totalMs,
          phases: rec.timings.phases as SplicePhases,
        });
      }
      return { out, seconds: (performance.now() - t0) / 1000 };
    };

    // The socket probe's share of capture: one BPF_PROG_TEST_RUN per namespace (and a setns pair when the sockets live in another).
    const probe = await sharedSocketProbe();
    const read = probe.read.bind(probe);
    const probeMs: number[] = [];
    probe.read = (tuples, o) => {
      const t = performance.now();
      try {
        return read(tuples, o);
      } finally {
        if (counting) probeMs.push(performance.now() - t);
      }
    };
    // Warm-up: the JIT settles on these.
    await givePorts(WARMUP_PAIRS);
    const warm = await makePairs(h, WARMUP_PAIRS);
    await spliceAll(warm);
    await splicer.settled();
    const before = { fds: descriptors(), ...memory(), tcp: withNetns(lb.ns, tcpInUse) };

    await givePorts(n);
    const pairs = await makePairs(h, n);
    counting = true;
    const run = await spliceAll(pairs);
    counting = false;
    // The background steps (pending request bytes acknowledged, then the tuple held) finish here.
    await splicer.settled();
    const after = { fds: descriptors(), ...memory(), tcp: withNetns(lb.ns, tcpInUse) };

    const dist = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return `p50 ${us(percentile(s, 50)).padStart(5)} µs  p99 ${us(percentile(s, 99)).padStart(5)} µs`;
    };
    console.log(
      `splice cost (in-process Splicer, one at a time), ${n} splices on testbed ${tb.prefix}; back-end legs ${useLegPorts ? `from the leg range ${DEFAULT_LEG_PORTS.lo}-${DEFAULT_LEG_PORTS.hi} (no socket held)` : 'on kernel-chosen ports (a socket held each)'}`,
    );
    console.log(`  splice() as the caller sees it  ${dist(run.out.map((o) => o.wallMs))}`);
    console.log(`  block -> release (durationUs)   ${dist(run.out.map((o) => o.totalMs))}`);
    for (const k of Object.keys(run.out[0]?.phases ?? {}) as (keyof SplicePhases)[]) {
      console.log(`    ${k.padEnd(28)} ${dist(run.out.map((o) => o.phases[k]))}`);
    }
    console.log(`      of which the socket probe ${dist(probeMs)}`);
    console.log(`  rate: ${(n / run.seconds).toFixed(0)} splices/s (one at a time, descriptor taking included)`);
    // Per splice: how many calls of each, and the mean time of one (FFI + system call).
    const perSplice = (m: CallStats) =>
      [...m.entries()]
        .sort((a, b) => b[1].ms - a[1].ms)
        .map(([k, v]) => `${k} ${(v.n / n).toFixed(1)}x${((v.ms * 1000) / v.n).toFixed(1)}µs`)
        .join(', ');
    const sum = (m: CallStats, f: 'n' | 'ms') => [...m.values()].reduce((a, b) => a + b[f], 0) / n;
    for (const [where, m] of [
      ['in capture', calls.capture],
      ['elsewhere', calls.other],
    ] as const) {
      console.log(
        `  libc calls per splice ${where}: ${sum(m, 'n').toFixed(1)}, ${us(sum(m, 'ms'))} µs (${perSplice(m)})`,
      );
    }
    console.log(
      `  after ${n} splices: descriptors ${before.fds.total} -> ${after.fds.total} (sockets ${before.fds.sockets} -> ${after.fds.sockets}), RSS ${mib(before.rss)} -> ${mib(after.rss)} MiB, JS heap + external ${mib(before.heap)} -> ${mib(after.heap)} MiB${'gc' in globalThis ? ' (after a full GC)' : ' (run node with --expose-gc for after-GC figures)'}; TCP sockets in the LB namespace ${before.tcp} -> ${after.tcp}`,
    );

    // Every spliced connection answers its request through the datapath.
    const spliced = [...warm, ...pairs];
    frontEnd.send(`CLOSE ${spliced.map((p) => p.client).join(',')}`);
    await frontEnd.event('closed');
    clients.send(`CHECK ${CHECK_TIMEOUT_MS} 0 ${spliced.map((p) => p.clientPort).join(',')}`);
    const checked = await clients.event<{ event: 'checked'; first: { ok: number; of: number }; failures: string[] }>(
      'checked',
      2 * CHECK_TIMEOUT_MS + 15_000,
    );
    console.log(
      `  first answers ${checked.first.ok}/${checked.first.of}${checked.failures.length ? `; failures: ${checked.failures.slice(0, 3).join('; ')}` : ''}`,
    );
    clients.send(`CLOSE ${spliced.map((p) => p.clientPort).join(',')}`);
    await clients.event('closed');
    for (const id of [...splicer.records.keys()]) await splicer.reclaim(id);
    await splicer.settled();
    const emptied = descriptors();
    console.log(`  after reclaiming all: descriptors ${emptied.total} (sockets ${emptied.sockets})`);
    if (checked.first.ok !== checked.first.of) process.exitCode = 1;
  } finally {
    for (const p of programs) p.stop();
    await nginx?.stop().catch(() => {});
    dp?.close();
    await tb.destroy();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    process.stderr.write(`splice-cost failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
