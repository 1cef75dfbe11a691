/**
 * Control-plane microbenchmark: how long one splice (handoff) takes and how
 * many the control plane completes per second, sequentially (one client
 * connection at a time) and with N client connections opening at once.
 * The load is wrk with `Connection: close` on a 1 KiB response, so every
 * request is a new connection and so a new splice; the durations are the
 * control plane's own (block -> quiesce -> capture -> forward -> release)
 * and, when the front end reports it, the front end's (API call included).
 */
import type { Testbed } from '../lab/testbed/index.js';
import { cpuSince, sampleCpu } from './cpu.js';
import { percentile } from './load/result.js';
import { runWrk } from './load/wrk.js';
import type { Profile } from './profile.js';
import type { BatonVariant } from './variants/baton.js';

/** Upper edges of the histogram buckets, milliseconds (the last bucket is everything above). */
export const HANDOFF_BUCKETS_MS = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512] as const;

export interface HandoffRun {
  concurrency: number;
  /** the front end's path to the daemon (absent: the only one, in results from before the channel) */
  path?: HandoffPath;
  handoffs: number;
  refused: number;
  seconds: number;
  handoffsPerS: number;
  /** splice duration percentiles, milliseconds */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** median time spent waiting for both sockets to be quiet (part of the total; NaN when the control plane does not report it) */
  quiesceP50Ms: number;
  /** as the front end saw it, API round trip included (NaN when the front end does not report it) */
  frontEndP50Ms: number;
  frontEndP99Ms: number;
  /** count per bucket: le = upper edge in ms, null for the overflow bucket */
  histogram: Array<{ le: number | null; count: number }>;
  /**
   * CPU per splice over the row, microseconds: all busy time on the
   * machine (client, LB, back end, kernel), and the daemon's and the front
   * end's own processes (user + system) when they are processes of their own.
   */
  cpuPerSpliceUs?: { machine: number; daemon?: number; frontEnd?: number };
}

/** How the baton front end asked for its splices: the daemon's local handoff channel or REST (control/dispatcher/baton-path.ts). */
export type HandoffPath = 'channel' | 'rest';

/** One front end of the same daemon, by the path its splices take. */
export interface HandoffFrontEnd {
  path: HandoffPath;
  variant: BatonVariant;
}

export async function runHandoffBench(
  tb: Testbed,
  baton: BatonVariant,
  profile: Profile,
  log: (line: string) => void,
): Promise<HandoffRun[]> {
  const out: HandoffRun[] = [];
  for (const concurrency of profile.handoffConcurrency) out.push(await runOne(tb, baton, concurrency, profile, log));
  return out;
}

/**
 * The same runs for several front ends of one daemon (the channel and REST
 * paths), interleaved per concurrency so that both see the same machine.
 */
export async function runHandoffPaths(
  tb: Testbed,
  frontEnds: readonly HandoffFrontEnd[],
  profile: Profile,
  log: (line: string) => void,
): Promise<HandoffRun[]> {
  const out: HandoffRun[] = [];
  for (const concurrency of profile.handoffConcurrency)
    for (const fe of frontEnds) out.push(await runOne(tb, fe.variant, concurrency, profile, log, fe.path));
  return out;
}

async function runOne(
  tb: Testbed,
  baton: BatonVariant,
  concurrency: number,
  profile: Profile,
  log: (line: string) => void,
  path?: HandoffPath,
): Promise<HandoffRun> {
  const first = baton.handoffs().length;
  const refusedBefore = baton.refusedCount();
  const cpuBefore = { machine: sampleCpu(), ...baton.cpuUs?.() };
  const r = await runWrk(tb, baton.url('/k1.bin'), {
    seconds: profile.handoffSeconds,
    connections: concurrency,
    newConnectionPerRequest: true,
  });
  const machine = cpuSince(cpuBefore.machine);
  const procs = baton.cpuUs?.() ?? {};
  await baton.afterRun?.();
  const recs = baton.handoffs().slice(first);
  const per = (after?: number, before?: number) =>
    after === undefined || before === undefined || recs.length === 0 ? undefined : (after - before) / recs.length;
  const daemonUs = per(procs.daemon, cpuBefore.daemon);
  const frontEndUs = per(procs.frontEnd, cpuBefore.frontEnd);
  const sorted = (xs: Array<number | undefined>) =>
    xs.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  const total = sorted(recs.map((s) => s.totalMs));
  const quiesce = sorted(recs.map((s) => s.quiesceMs));
  const frontEnd = sorted(recs.map((s) => s.frontEndMs));
  const seconds = r.durationUs / 1e6;
  const run: HandoffRun = {
    concurrency,
    ...(path ? { path } : {}),
    handoffs: recs.length,
    refused: baton.refusedCount() - refusedBefore,
    seconds,
    handoffsPerS: recs.length / seconds,
    p50Ms: percentile(total, 50),
    p90Ms: percentile(total, 90),
    p99Ms: percentile(total, 99),
    maxMs: total.at(-1) ?? Number.NaN,
    quiesceP50Ms: percentile(quiesce, 50),
    frontEndP50Ms: percentile(frontEnd, 50),
    frontEndP99Ms: percentile(frontEnd, 99),
    histogram: histogram(total),
    ...(recs.length
      ? {
          cpuPerSpliceUs: {
            machine: machine.busyUs / recs.length,
            ...(daemonUs === undefined ? {} : { daemon: daemonUs }),
            ...(frontEndUs === undefined ? {} : { frontEnd: frontEndUs }),
          },
        }
      : {}),
  };
  log(
    `  ${concurrency === 1 ? 'sequential' : `${concurrency} concurrent`}${path ? ` ${path}` : ''}`.padEnd(24) +
      `${run.handoffs} handoffs in ${seconds.toFixed(1)} s = ${run.handoffsPerS.toFixed(0)}/s  p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms  ` +
      `max ${run.maxMs.toFixed(2)} ms` +
      (Number.isFinite(run.quiesceP50Ms) ? `  quiesce p50 ${run.quiesceP50Ms.toFixed(2)} ms` : '') +
      (Number.isFinite(run.frontEndP50Ms)
        ? `  front end p50 ${run.frontEndP50Ms.toFixed(2)} ms p99 ${run.frontEndP99Ms.toFixed(2)} ms`
        : '') +
      (run.refused ? `  refused ${run.refused}` : ''),
  );
  const c = run.cpuPerSpliceUs;
  if (c)
    log(
      `    CPU per splice: machine ${c.machine.toFixed(0)} µs (${(machine.utilisation * 100).toFixed(0)}% of all cores busy)` +
        (c.daemon === undefined ? '' : `, daemon ${c.daemon.toFixed(0)} µs`) +
        (c.frontEnd === undefined ? '' : `, front end ${c.frontEnd.toFixed(0)} µs`),
    );
  return run;
}

/** The daemon's memory under sustained splicing (issue 14: RSS after 100,000 splices within 10% of after 10,000). */
export interface SustainedRss {
  /** client connections at once (wrk, a new connection per request) */
  concurrency: number;
  /** connections completed through the front end: one splice each, but for those it relayed (refused) */
  connections: number;
  refused: number;
  seconds: number;
  /** the daemon's RSS and open sockets after each load chunk, in order */
  samples: Array<{ connections: number; rssBytes: number; sockets?: number }>;
  /** the RSS and sockets at the first sample at or past each mark (profile.rssMarks); absent for a mark not reached */
  marks: Array<{ connections: number; rssBytes?: number; sockets?: number }>;
}

const RSS_CHUNK_S = 2;
const RSS_CONCURRENCY = 32;

/**
 * Splices without pause, in chunks of RSS_CHUNK_S seconds of wrk, reading
 * the daemon's RSS after each chunk, until the last mark or the budget.
 * Records live their natural life (the sweeper reclaims closed
 * connections); only at the end are the rest released.
 */
export async function runSustainedRss(
  tb: Testbed,
  baton: BatonVariant,
  profile: Profile,
  log: (line: string) => void,
): Promise<SustainedRss | undefined> {
  if (!baton.rssBytes || profile.rssMarks.length === 0) return undefined;
  const last = Math.max(...profile.rssMarks);
  const refusedBefore = baton.refusedCount();
  const samples: SustainedRss['samples'] = [];
  let connections = 0;
  const t0 = performance.now();
  while (connections < last && performance.now() - t0 < profile.rssBudgetSeconds * 1000) {
    const r = await runWrk(tb, baton.url('/k1.bin'), {
      seconds: RSS_CHUNK_S,
      connections: RSS_CONCURRENCY,
      newConnectionPerRequest: true,
    });
    connections += r.requests;
    const rssBytes = baton.rssBytes();
    if (rssBytes === undefined) throw new Error('the daemon is gone: no RSS to read');
    const sockets = baton.socketCount?.();
    samples.push({ connections, rssBytes, ...(sockets === undefined ? {} : { sockets }) });
  }
  const seconds = (performance.now() - t0) / 1000;
  await baton.afterRun?.();
  const marks: SustainedRss['marks'] = profile.rssMarks.map((m) => {
    const s = samples.find((x) => x.connections >= m);
    return s
      ? { connections: m, rssBytes: s.rssBytes, ...(s.sockets === undefined ? {} : { sockets: s.sockets }) }
      : { connections: m };
  });
  const run: SustainedRss = {
    concurrency: RSS_CONCURRENCY,
    connections,
    refused: baton.refusedCount() - refusedBefore,
    seconds,
    samples,
    marks,
  };
  const mib = (b?: number) => (b === undefined ? 'not reached' : `${(b / 2 ** 20).toFixed(1)} MiB`);
  log(
    `  sustained: ${connections} connections (${run.refused} refused) in ${seconds.toFixed(0)} s; daemon RSS ` +
      marks
        .map(
          (m) => `${mib(m.rssBytes)}${m.sockets === undefined ? '' : ` and ${m.sockets} sockets`} at ${m.connections}`,
        )
        .join(', '),
  );
  return run;
}

function histogram(sortedMs: readonly number[]): HandoffRun['histogram'] {
  const counts = new Array<number>(HANDOFF_BUCKETS_MS.length + 1).fill(0);
  for (const ms of sortedMs) {
    const i = HANDOFF_BUCKETS_MS.findIndex((le) => ms <= le);
    counts[i < 0 ? HANDOFF_BUCKETS_MS.length : i]! += 1;
  }
  return counts.map((count, i) => ({ le: HANDOFF_BUCKETS_MS[i] ?? null, count }));
}
