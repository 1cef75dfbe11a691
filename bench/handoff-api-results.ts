/**
 * What the handoff API microbenchmark (bench/handoff-api.ts) records, and
 * the arithmetic from its calls to a phase's figures. Pure: no sockets, no
 * daemon, so the report and the unit tests use it without privileges.
 */
import { percentile } from './load/result.js';

/** Targets from issue 4, reported (never asserted). */
export const HANDOFF_API_TARGETS = { p50Us: 200, handoffsPerS: 10_000 } as const;

export type ApiPhaseKind = 'single' | 'concurrent' | 'batch';

export interface ApiPhase {
  kind: ApiPhaseKind;
  /** for tables: "single", "8 in flight", "batch of 32" */
  title: string;
  /** splice requests per API call */
  itemsPerCall: number;
  /** API calls in flight at once */
  inFlight: number;
  calls: number;
  /** pairs offered (splice requests made) */
  requested: number;
  handoffs: number;
  refused: number;
  /** "CODE (reason)" -> count */
  refusals: Record<string, number>;
  /** wall time from the first call's start to the last call's end */
  seconds: number;
  /** successful splices per second of wall time */
  handoffsPerS: number;
  /** one API call as this process saw it (HTTP over the unix socket included), µs */
  callP50Us: number;
  callP99Us: number;
  /** per splice request: the call's time divided by its items (equal to the call's for single calls), µs */
  itemP50Us: number;
  itemP99Us: number;
  /** the daemon's `durationUs` of each successful splice: block entries to sockets released, µs */
  daemonP50Us: number;
  daemonP99Us: number;
  /** spliced connections whose first request (the prefix) was answered 200 */
  firstAnswered: { ok: number; of: number };
  /** sampled spliced connections whose second request (datapath only) was answered 200 */
  secondAnswered: { ok: number; of: number };
  /** a few of the failed checks, described */
  checkFailures: string[];
}

export interface HandoffApiResults {
  /** pairs per phase */
  pairs: number;
  targets: typeof HANDOFF_API_TARGETS;
  /** items of one batch the daemon runs at once (control/service BATCH_CONCURRENCY) */
  batchConcurrency: number;
  /** GET /healthz one at a time over the same client: the HTTP round trip alone, µs */
  floor: { p50Us: number; p99Us: number };
  phases: ApiPhase[];
}

/** One API call: its time as the caller saw it, and how many splice requests it carried. */
export interface CallTiming {
  us: number;
  items: number;
}

/** The figures of one phase from what its calls returned (pure: tested in test/unit). */
export function summarizePhase(
  spec: Pick<ApiPhase, 'kind' | 'title' | 'itemsPerCall' | 'inFlight'>,
  calls: readonly CallTiming[],
  outcomes: ReadonlyArray<{ ok: true; durationUs: number | null } | { ok: false; why: string }>,
  seconds: number,
): Omit<ApiPhase, 'firstAnswered' | 'secondAnswered' | 'checkFailures'> {
  const asc = (xs: number[]) => xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const callUs = asc(calls.map((c) => c.us));
  const itemUs = asc(calls.flatMap((c) => new Array<number>(c.items).fill(c.us / c.items)));
  const daemonUs = asc(outcomes.flatMap((o) => (o.ok && o.durationUs !== null ? [o.durationUs] : [])));
  const refusals: Record<string, number> = {};
  for (const o of outcomes) if (!o.ok) refusals[o.why] = (refusals[o.why] ?? 0) + 1;
  const handoffs = outcomes.filter((o) => o.ok).length;
  return {
    ...spec,
    calls: calls.length,
    requested: outcomes.length,
    handoffs,
    refused: outcomes.length - handoffs,
    refusals,
    seconds,
    handoffsPerS: seconds > 0 ? handoffs / seconds : Number.NaN,
    callP50Us: percentile(callUs, 50),
    callP99Us: percentile(callUs, 99),
    itemP50Us: percentile(itemUs, 50),
    itemP99Us: percentile(itemUs, 99),
    daemonP50Us: percentile(daemonUs, 50),
    daemonP99Us: percentile(daemonUs, 99),
  };
}

export interface TargetVerdict {
  what: string;
  goal: string;
  measured: number;
  unit: 'µs' | '/s';
  met: boolean;
}

/**
 * The figures the targets are judged on: the daemon's own time for
 * one splice asked alone (request in hand to sockets released), the best
 * per-splice time a caller saw, and the best rate.
 */
export function targetVerdicts(a: HandoffApiResults): TargetVerdict[] {
  const t = a.targets;
  const single = a.phases.find((p) => p.kind === 'single');
  const daemonP50 = single?.daemonP50Us ?? Number.NaN;
  const best = a.phases.reduce((b, p) => (p.itemP50Us < b.itemP50Us ? p : b));
  const fastest = a.phases.reduce((b, p) => (p.handoffsPerS > b.handoffsPerS ? p : b));
  return [
    {
      what: 'handoff p50, one POST at a time, in the daemon (block to release)',
      goal: `≤ ${t.p50Us} µs`,
      measured: daemonP50,
      unit: 'µs',
      met: daemonP50 <= t.p50Us,
    },
    {
      what: `handoff p50 per splice as the caller sees it, best phase (${best.title})`,
      goal: `≤ ${t.p50Us} µs`,
      measured: best.itemP50Us,
      unit: 'µs',
      met: best.itemP50Us <= t.p50Us,
    },
    {
      what: `handoffs per second, best phase (${fastest.title})`,
      goal: `≥ ${t.handoffsPerS.toLocaleString('en-US')}`,
      measured: fastest.handoffsPerS,
      unit: '/s',
      met: fastest.handoffsPerS >= t.handoffsPerS,
    },
  ];
}
