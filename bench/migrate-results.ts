/**
 * The migrate benchmark's results (bench/migrate.ts), the arithmetic from
 * its per-connection samples to a run's figures, and how the report shows
 * them against issue 11's targets. Pure: no sockets, so the report and the
 * unit tests use it without privileges.
 */

import type { HandoffPath } from '../control/dispatcher/config.js';
import { percentile } from './load/result.js';
import type { WorkloadId } from './profile.js';
import type { ThroughputCell } from './throughput.js';
import type { VariantId } from './variants/variant.js';

/** Issue 11's targets, reported (never asserted). */
export const MIGRATE_TARGETS = { p50Us: 100, close64kVsHaproxy: 1.0, downloadVsPlain: 1.0 } as const;

/** The daemon's phases of one migration, in order (POST /v1/migrations phasesUs). */
export const MIGRATE_PHASES = ['take', 'block', 'capture', 'blob', 'reserve', 'agent', 'release'] as const;

/** One migrated connection as the benchmark saw it, µs. */
export interface MigrationSample {
  /** client's request written -> the app's 'connection' (the SDK hands it the restored socket) */
  heldUs: number;
  /** client's request written -> first response byte at the client */
  firstByteUs: number;
  /** the dispatcher's own view: request head read -> migrate() answered (its `migrated` event's ms) */
  frontEndUs: number;
  /** the daemon's phases (take .. release) */
  phasesUs: Record<string, number>;
}

export interface LatencyRun {
  /** "sequential", "8 at once" */
  title: string;
  /** how the front end asked: the local handoff channel or REST (absent in results from before the channel took migrations: REST) */
  via?: HandoffPath;
  concurrency: number;
  /** connections the client opened */
  connections: number;
  migrated: number;
  /** answered by the dispatcher relaying (the migration was refused) */
  relayed: number;
  /** not answered 200 at the client */
  failed: number;
  seconds: number;
  /** migrated connections per second of the client's wall time (one tiny request each, answered and closed) */
  migrationsPerS: number;
  heldP50Us: number;
  heldP99Us: number;
  firstByteP50Us: number;
  firstByteP99Us: number;
  frontEndP50Us: number;
  frontEndP99Us: number;
  /** sum of the daemon's phases */
  daemonP50Us: number;
  daemonP99Us: number;
  /** p50 of each phase on its own */
  phasesP50Us: Record<string, number>;
}

export interface MigrateBenchResults {
  testbed: string;
  variants: Array<{ id: VariantId; title: string; describe: string }>;
  workloads: WorkloadId[];
  throughput: ThroughputCell[];
  /** the dispatcher's outcomes for the migrate variant's load connections (relayed ones were not migrated) */
  loadOutcomes: {
    migrated: number;
    relayed: number;
    rejected: number;
    /** client segments the LB's datapath dropped in BLOCK (entry waiting for the agent's held) during the loads; NaN when unreadable */
    lbBlockedDrops: number;
    /** client segments the agent's datapath dropped in HOLD (mapping waiting for its socket) during the loads; NaN when unreadable */
    agentHeldDrops: number;
  };
  /** the same client's sequential connections to the app's own address (no LB, no migration) */
  plainFirstByte: { connections: number; p50Us: number; p99Us: number };
  latency: LatencyRun[];
  /** the agent's baton_agent_restore_duration_seconds over the sequential run: blob received -> socket handed to the app (mean exact: sum/count) */
  agentRestore: { count: number; meanUs: number };
  targets: typeof MIGRATE_TARGETS;
}

const asc = (xs: number[]): number[] => xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
const p = (xs: number[], q: number): number => Math.round(percentile(asc(xs), q));

/** A latency run's figures from its samples (pure: tested in test/unit). */
export function summarizeLatency(
  spec: {
    title: string;
    via?: HandoffPath;
    concurrency: number;
    connections: number;
    relayed: number;
    failed: number;
    seconds: number;
  },
  samples: readonly MigrationSample[],
): LatencyRun {
  const daemon = samples.map((s) => MIGRATE_PHASES.reduce((a, k) => a + (s.phasesUs[k] ?? 0), 0));
  return {
    ...spec,
    migrated: samples.length,
    migrationsPerS: spec.seconds > 0 ? samples.length / spec.seconds : Number.NaN,
    heldP50Us: p(
      samples.map((s) => s.heldUs),
      50,
    ),
    heldP99Us: p(
      samples.map((s) => s.heldUs),
      99,
    ),
    firstByteP50Us: p(
      samples.map((s) => s.firstByteUs),
      50,
    ),
    firstByteP99Us: p(
      samples.map((s) => s.firstByteUs),
      99,
    ),
    frontEndP50Us: p(
      samples.map((s) => s.frontEndUs),
      50,
    ),
    frontEndP99Us: p(
      samples.map((s) => s.frontEndUs),
      99,
    ),
    daemonP50Us: p(daemon, 50),
    daemonP99Us: p(daemon, 99),
    phasesP50Us: Object.fromEntries(
      MIGRATE_PHASES.map((k) => [
        k,
        p(
          samples.map((s) => s.phasesUs[k] ?? Number.NaN),
          50,
        ),
      ]),
    ),
  };
}

const num = (x: number, digits = 0): string =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–';
const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
const xr = (r: number): string => (Number.isFinite(r) ? `${r.toFixed(2)}x` : '–');

function cellOf(m: MigrateBenchResults, w: WorkloadId, v: VariantId): ThroughputCell | undefined {
  return m.throughput.find((c) => c.workload === w && c.variant === v);
}

/** requests/s of `v` over `ref` on the migrate bed; NaN when either is missing. */
export function migrateRatio(m: MigrateBenchResults, w: WorkloadId, v: VariantId, ref: VariantId): number {
  const a = cellOf(m, w, v)?.summary.requestsPerS;
  const b = cellOf(m, w, ref)?.summary.requestsPerS;
  return a !== undefined && b !== undefined && b > 0 ? a / b : Number.NaN;
}

const viaOf = (l: LatencyRun): HandoffPath => l.via ?? 'rest';
/** The sequential run of the front end's default path (the channel), else the first sequential one. */
const sequential = (m: MigrateBenchResults): LatencyRun | undefined =>
  m.latency.find((l) => l.concurrency === 1 && viaOf(l) === 'channel') ?? m.latency.find((l) => l.concurrency === 1);

export function migrateTargetRows(m: MigrateBenchResults | undefined, check: (ok: boolean) => string): string[] {
  if (!m) return [];
  const t = m.targets;
  const s = sequential(m);
  const held = s?.heldP50Us ?? Number.NaN;
  const ch = migrateRatio(m, 'close-64k', 'baton-migrate', 'haproxy-http');
  const dl = migrateRatio(m, 'download-64m', 'baton-migrate', 'plain');
  return [
    row([
      "migration p50 (client's request written → the app holds the socket), one at a time",
      `≤ ${t.p50Us} µs`,
      `${num(held)} µs`,
      check(held <= t.p50Us),
    ]),
    row([
      'new connection per request, 64 KiB, baton migrate vs HAProxy (migrate bed)',
      `≥ ${t.close64kVsHaproxy.toFixed(1)}x`,
      xr(ch),
      check(ch >= t.close64kVsHaproxy),
    ]),
    row([
      '64 MiB download, baton migrate vs plain routing (migrate bed)',
      `≥ ${t.downloadVsPlain.toFixed(1)}x`,
      xr(dl),
      check(dl >= t.downloadVsPlain),
    ]),
  ];
}

export function migrateThroughputTable(m: MigrateBenchResults): string[] {
  const lines = [
    row(['workload', 'variant', 'req/s', 'MB/s', 'p50 ms', 'p99 ms', 'vs plain', 'vs HAProxy', 'errors']),
    row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
  ];
  for (const w of m.workloads) {
    for (const v of m.variants) {
      const s = cellOf(m, w, v.id)?.summary;
      if (!s) continue;
      lines.push(
        row([
          w,
          v.title,
          num(s.requestsPerS),
          num(s.mbPerS, 1),
          num(s.p50Us / 1000, 2),
          num(s.p99Us / 1000, 2),
          v.id === 'plain' ? '' : xr(migrateRatio(m, w, v.id, 'plain')),
          v.id === 'haproxy-http' ? '' : xr(migrateRatio(m, w, v.id, 'haproxy-http')),
          num(s.errors),
        ]),
      );
    }
  }
  return lines;
}

export function migrateLatencyTable(m: MigrateBenchResults): string[] {
  const lines = [
    row([
      'front end asks over',
      'connections at once',
      'migrated',
      'relayed',
      'failed',
      'migrations/s',
      'held p50 µs',
      'held p99 µs',
      'first byte p50 µs',
      'first byte p99 µs',
      'front end p50 µs',
      'front end p99 µs',
      'daemon p50 µs',
      'daemon p99 µs',
    ]),
    row(['---', '---', ...new Array<string>(12).fill('---:')]),
  ];
  for (const l of m.latency)
    lines.push(
      row([
        viaOf(l) === 'channel' ? 'handoff channel' : 'REST',
        l.title,
        `${num(l.migrated)}/${num(l.connections)}`,
        num(l.relayed),
        num(l.failed),
        num(l.migrationsPerS),
        num(l.heldP50Us),
        num(l.heldP99Us),
        num(l.firstByteP50Us),
        num(l.firstByteP99Us),
        num(l.frontEndP50Us),
        num(l.frontEndP99Us),
        num(l.daemonP50Us),
        num(l.daemonP99Us),
      ]),
    );
  return lines;
}

/** Where a sequential migration's time went, p50 of each part. */
export function migrateBreakdown(m: MigrateBenchResults): string {
  const s = sequential(m);
  if (!s) return '';
  const ph = s.phasesP50Us;
  const parts = MIGRATE_PHASES.map((k) => `${k} ${num(ph[k] ?? Number.NaN)}`).join(', ');
  return (
    `Where a sequential migration's time goes (p50, µs, the front end asking over ${viaOf(s) === 'channel' ? 'the local handoff channel' : 'REST'}): client's request written → app holds the socket ${num(s.heldP50Us)}; ` +
    `the dispatcher's call (request head read → migrate() answered) ${num(s.frontEndP50Us)}, of which the daemon's phases ${num(s.daemonP50Us)} (${parts}) ` +
    `and the rest (≈ ${num(s.frontEndP50Us - s.daemonP50Us)}) is the call to the daemon (${viaOf(s) === 'channel' ? 'a binary frame with the socket passed over a unix socket' : 'HTTP and JSON over the unix socket'}) and the dispatcher's own work; ` +
    `"agent" is blob sent → confirmation back: the agent's restore and hand-off alone (blob received → descriptor sent to the app) averaged ${num(m.agentRestore.meanUs)} µs over ${num(m.agentRestore.count)} migrations. ` +
    '"held" starts earlier (the client → dispatcher hop, accept, reading the head) but ends at the hand-off, before the release and the POST answer that "front end" includes; ' +
    `the same client's first byte straight from the app (no LB): p50 ${num(m.plainFirstByte.p50Us)} µs, so migration adds ≈ ${num(s.firstByteP50Us - m.plainFirstByte.p50Us)} µs to a new connection's first byte.`
  );
}

export function migrateLines(m: MigrateBenchResults): string[] {
  const o = m.loadOutcomes;
  return [
    m.testbed,
    '',
    ...m.variants.map((v) => `- ${v.title}: ${v.describe}`),
    '',
    ...migrateThroughputTable(m),
    '',
    `The migrate variant's load connections: ${num(o.migrated)} migrated, ${num(o.relayed)} relayed (a refused migration), ${num(o.rejected)} rejected. ` +
      `Client segments dropped while a migration was under way: by the LB (entry in BLOCK, capture until the agent's held) ${num(o.lbBlockedDrops)}, ` +
      `by the agent (mapping in HOLD until its socket is restored) ${num(o.agentHeldDrops ?? Number.NaN)}. ` +
      "Neither may be an ACK of the app's first flight (the entry forwards before the state leaves the LB, the mapping restores before the app gets the socket): " +
      "a dropped one would stall a response longer than the initial window until the back end's retransmission timer fires.",
    '',
    'Migration latency: new connections of one tiny request each (`Connection: close`), timed on CLOCK_MONOTONIC in the client and in the app (one clock across processes). ' +
      '"held": the client wrote its request → the app\'s `connection` event (the SDK hands it the restored socket); "first byte": → the first response byte at the client; ' +
      '"front end": the dispatcher\'s `migrated` event (`ms`: request head read → migrate() answered, the call to the daemon included); "daemon": the sum of the answer\'s `phasesUs`. ' +
      'Each way a front end asks is run with its own dispatcher: the local handoff channel (the default: the client socket passed with SCM_RIGHTS, a binary MIGRATE frame) and REST (POST /v1/migrations, pidfd_getfd). ' +
      "migrations/s: migrated connections over the client's wall time (each also answered and closed).",
    '',
    ...migrateLatencyTable(m),
    '',
    migrateBreakdown(m),
  ];
}
