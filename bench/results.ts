/** The shape of results.json: everything the report, the charts and the README block are rendered from. */
import type { ClusterBenchResults } from './cluster-results.js';
import type { DatapathResults } from './datapath.js';
import type { HandoffRun, SustainedRss } from './handoff.js';
import type { HandoffApiResults } from './handoff-api-results.js';
import type { MachineInfo } from './machine.js';
import type { MigrateBenchResults } from './migrate-results.js';
import type { Mode, Profile, WorkloadId } from './profile.js';
import type { ProfileShareResults } from './profile-share-results.js';
import type { ThroughputCell } from './throughput.js';
import type { VariantId } from './variants/variant.js';

export const RESULTS_SCHEMA = 1;

export interface Results {
  schema: typeof RESULTS_SCHEMA;
  mode: Mode;
  /** YYYY-MM-DD (UTC) of the run */
  date: string;
  startedAt: string;
  durationS: number;
  profile: Profile;
  machine: MachineInfo;
  /** busy share of all cores while the suite sat idle before the loads: other tenants' load */
  idleUtilisation: number;
  testbed: string;
  /** the baton variant's front end: daemon + dispatcher, or the e2e front end with an in-process Splicer */
  batonFrontEnd: 'dispatcher' | 'e2e';
  variants: Array<{ id: VariantId; title: string; describe: string }>;
  workloads: Array<{ id: WorkloadId; title: string; short: string }>;
  throughput: ThroughputCell[];
  /** counters of the baton variant at the end (splices made, refused, fell back to relaying) */
  batonStats: Record<string, number>;
  /** why splices were refused (the front end relayed those connections itself), message -> count */
  batonRefusals: Record<string, number>;
  handoff: HandoffRun[];
  /** the daemon's RSS under sustained splicing; absent in results from before it was measured */
  handoffRss?: SustainedRss;
  /** the API alone on pre-made pairs, single vs batched (bench/handoff-api.ts); absent in results from before it existed */
  handoffApi?: HandoffApiResults;
  datapath: DatapathResults;
  /** share of connections spliced per client TCP profile, with and without profile legs; absent in results from before it existed */
  profileShare?: ProfileShareResults;
  /** several LBs (owner forwarding): cost per forwarded packet, detour vs direct, directory propagation; absent in results from before it existed */
  cluster?: ClusterBenchResults;
  /** migrate mode on its own routed bed: rows beside plain routing and HAProxy, migration latency and rate; absent in results from before it existed */
  migrate?: MigrateBenchResults;
}

/** Today's date as the results directory name. */
export function isoDate(d = new Date()): string {
  return d.toISOString().slice(0, 10);
}

/** A variant's summary for a workload, if it ran. */
export function cell(r: Results, w: WorkloadId, v: VariantId): ThroughputCell | undefined {
  return r.throughput.find((c) => c.workload === w && c.variant === v);
}

/** requests/s of `v` over requests/s of `ref` for a workload; NaN when either is missing. */
export function ratio(r: Results, w: WorkloadId, v: VariantId, ref: VariantId): number {
  const a = cell(r, w, v)?.summary.requestsPerS;
  const b = cell(r, w, ref)?.summary.requestsPerS;
  return a !== undefined && b !== undefined && b > 0 ? a / b : Number.NaN;
}
