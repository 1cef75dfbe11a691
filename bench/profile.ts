/**
 * How long and how hard the suite runs: the one place its durations, counts
 * and sizes are set. `full` is what `make bench` runs (at most 15 minutes on
 * 2 cores); `quick` is `make bench-quick` (at most 3 minutes), for checking
 * that everything works, not for figures.
 */

export type Mode = 'full' | 'quick';

export interface Profile {
  mode: Mode;
  /** The whole suite stops (cleaning up) if it runs longer than this. */
  budgetSeconds: number;
  /** Each (workload, variant) pair runs this many times, variants interleaved, rotating the order per round. */
  rounds: number;
  /** Seconds of load per wrk run (one variant, one workload, one round). */
  wrkSeconds: number;
  /** Concurrent connections of every wrk run (one wrk thread). */
  wrkConnections: number;
  /** 64 MiB downloads per variant per round (curl, one connection each). */
  downloadsPerRound: number;
  /** Seconds of idle sampling before the loads, to show the machine's background CPU. */
  idleSeconds: number;
  /** Connection-table sizes for the datapath microbenchmark. */
  datapathSizes: number[];
  /** BPF_PROG_TEST_RUN repetitions per (size, path). */
  datapathRepeat: number;
  /** Seconds per control-plane run (sequential, then each concurrency). */
  handoffSeconds: number;
  /** Concurrent splices for the control-plane runs (1 = sequential). */
  handoffConcurrency: number[];
  /** Sustained splicing (bench/handoff.ts, runSustainedRss): the daemon's RSS is read as the splice count passes each mark. */
  rssMarks: number[];
  /** Its bound in seconds, whether or not the last mark was reached. */
  rssBudgetSeconds: number;
  /** The handoff API microbenchmark (bench/handoff-api.ts): connection pairs spliced per phase. */
  handoffApiPairs: number;
  /** Calls in flight in its concurrent single-splice phase. */
  handoffApiInFlight: number;
  /** Items per POST /v1/splices:batch call, one phase each. */
  handoffApiBatchSizes: number[];
  /** Spliced connections per phase that get a second request through the datapath. */
  handoffApiVerifySample: number;
  /** Client TCP profiles of the profile-share run (bench/profile-share.ts): all 72, or the reduced set of 4. */
  profileShareMatrix: 'full' | 'reduced';
  /** Download per connection of the profile-share run (bytes). */
  profileShareDownloadBytes: number;
  /** The cluster run (bench/cluster.ts): BPF_PROG_TEST_RUN runs per owner-header row. */
  clusterPacketSamples: number;
  /** Its detour download (MiB) and rounds (direct then detour, on one connection). */
  clusterDownloadMiB: number;
  clusterRounds: number;
  /** New connections whose owner entries the propagation figure is taken from. */
  clusterConnections: number;
  /** The migrate run (bench/migrate.ts): rounds and wrk seconds of its rows, 64 MiB downloads per variant per round. */
  migrateRounds: number;
  migrateWrkSeconds: number;
  migrateDownloads: number;
  /** New connections per latency run, and the connections at once of each run (1 = sequential). */
  migrateLatencyConnections: number;
  migrateConcurrency: number[];
}

export const PROFILES: Record<Mode, Profile> = {
  full: {
    mode: 'full',
    budgetSeconds: 900,
    rounds: 3,
    wrkSeconds: 4,
    wrkConnections: 8,
    downloadsPerRound: 2,
    idleSeconds: 3,
    datapathSizes: [1_000, 100_000, 1_000_000],
    datapathRepeat: 1_000_000,
    handoffSeconds: 5,
    handoffConcurrency: [1, 8, 32],
    rssMarks: [10_000, 100_000],
    rssBudgetSeconds: 150,
    handoffApiPairs: 2000,
    handoffApiInFlight: 8,
    handoffApiBatchSizes: [32, 128],
    handoffApiVerifySample: 200,
    profileShareMatrix: 'full',
    profileShareDownloadBytes: 64 * 1024,
    clusterPacketSamples: 20_000,
    clusterDownloadMiB: 64,
    clusterRounds: 3,
    clusterConnections: 200,
    migrateRounds: 2,
    migrateWrkSeconds: 3,
    migrateDownloads: 2,
    migrateLatencyConnections: 1000,
    migrateConcurrency: [1, 8, 32],
  },
  quick: {
    mode: 'quick',
    budgetSeconds: 180,
    rounds: 1,
    wrkSeconds: 1,
    wrkConnections: 8,
    downloadsPerRound: 1,
    idleSeconds: 1,
    datapathSizes: [1_000, 100_000],
    datapathRepeat: 100_000,
    handoffSeconds: 1,
    handoffConcurrency: [1, 8],
    rssMarks: [3_000, 12_000],
    rssBudgetSeconds: 20,
    handoffApiPairs: 200,
    handoffApiInFlight: 8,
    handoffApiBatchSizes: [32, 128],
    handoffApiVerifySample: 50,
    profileShareMatrix: 'reduced',
    profileShareDownloadBytes: 64 * 1024,
    clusterPacketSamples: 2000,
    clusterDownloadMiB: 16,
    clusterRounds: 1,
    clusterConnections: 30,
    migrateRounds: 1,
    migrateWrkSeconds: 1,
    migrateDownloads: 1,
    migrateLatencyConnections: 100,
    migrateConcurrency: [1, 8],
  },
};

/** Response bodies the back end serves (random bytes), by path. */
export const BODIES = {
  '/k1.bin': 1024,
  '/k64.bin': 64 * 1024,
  '/m1.bin': 1024 * 1024,
  '/m64.bin': 64 * 1024 * 1024,
} as const;
export type BodyPath = keyof typeof BODIES;

export type WorkloadId = 'keepalive-1k' | 'close-1k' | 'close-64k' | 'close-1m' | 'download-64m';

export interface Workload {
  id: WorkloadId;
  title: string;
  /** axis label in charts */
  short: string;
  path: BodyPath;
  /** wrk with keep-alive, wrk with `Connection: close` (a new connection per request), or curl downloads. */
  tool: 'wrk-keepalive' | 'wrk-close' | 'curl';
}

export const WORKLOADS: Workload[] = [
  {
    id: 'keepalive-1k',
    title: 'keep-alive, 1 KiB responses',
    short: 'keep-alive 1 KiB',
    path: '/k1.bin',
    tool: 'wrk-keepalive',
  },
  {
    id: 'close-1k',
    title: 'new connection per request, 1 KiB',
    short: 'new conn. 1 KiB',
    path: '/k1.bin',
    tool: 'wrk-close',
  },
  {
    id: 'close-64k',
    title: 'new connection per request, 64 KiB',
    short: 'new conn. 64 KiB',
    path: '/k64.bin',
    tool: 'wrk-close',
  },
  {
    id: 'close-1m',
    title: 'new connection per request, 1 MiB',
    short: 'new conn. 1 MiB',
    path: '/m1.bin',
    tool: 'wrk-close',
  },
  {
    id: 'download-64m',
    title: 'single-connection 64 MiB download',
    short: '64 MiB download',
    path: '/m64.bin',
    tool: 'curl',
  },
];

/** Port of the back-end nginx; each variant's listener is on the VIP (see variants.ts). */
export const BACKEND_PORT = 8080;

/** Connection-table entries for the baton variant: two per spliced connection; emptied after every run. */
export const BATON_FLOWS_CAPACITY = 131_072;

export function profileFromArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Profile {
  const quick = argv.includes('--quick') || env.BENCH === 'quick';
  return PROFILES[quick ? 'quick' : 'full'];
}
