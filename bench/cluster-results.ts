/** The cluster benchmark's results (bench/cluster.ts) and how the report shows them, against issue 12's goals. */
import type { OwnerBenchRow } from './owner-datapath.js';

export interface DetourRound {
  /** direct: the router sends the client's packets to the connection's owner; detour: to the other LB, which forwards them in the owner header */
  path: 'direct' | 'detour';
  mbPerS: number;
  /** client segments the other LB sent in the owner header during the download */
  forwarded: number;
}

export interface ClusterBenchResults {
  ownerDatapath: OwnerBenchRow[];
  detour: { sizeMiB: number; rounds: DetourRound[]; directMBps: number; detourMBps: number; ratio: number };
  /** publish on the owner -> owner entry installed on the peer (the peers' histograms, bucket-interpolated) */
  propagation: { connections: number; installed: number; p50Ms: number; p99Ms: number };
}

/** Issue 12's goals. */
export const CLUSTER_GOALS = { detourRatio: 0.9, propagationP99Ms: 5 } as const;

export function clusterTargetRows(c: ClusterBenchResults | undefined, check: (ok: boolean) => string): string[] {
  if (!c) return [];
  return [
    `| detour throughput vs direct (${c.detour.sizeMiB} MiB, one connection) | ≥ ${CLUSTER_GOALS.detourRatio}x | ${c.detour.ratio.toFixed(2)}x | ${check(c.detour.ratio >= CLUSTER_GOALS.detourRatio)} |`,
    `| owner-directory propagation p99 (splice on one LB → owner entry on the other) | ≤ ${CLUSTER_GOALS.propagationP99Ms} ms | ${c.propagation.p99Ms} ms | ${check(c.propagation.p99Ms <= CLUSTER_GOALS.propagationP99Ms)} |`,
  ];
}

export function clusterLines(c: ClusterBenchResults): string[] {
  const d = c.detour;
  return [
    'Two `baton lb --store redis://...` daemons behind an ECMP router (L4 hash), a dispatcher each, one nginx back end (bench/cluster.ts).',
    '',
    '| owner header (BPF_PROG_TEST_RUN) | verdict | p50 ns | p90 ns |',
    '|---|---|---:|---:|',
    ...c.ownerDatapath.map((r) => `| ${r.path} | ${r.verdict} | ${r.p50Ns} | ${r.p90Ns} |`),
    '',
    `Detour: one keep-alive connection, ${d.sizeMiB} MiB per download, rounds alternating direct and detour (its LB out of the ECMP set, so every client segment is forwarded by the other LB): direct ${d.directMBps} MB/s, detour ${d.detourMBps} MB/s (median), **${d.ratio.toFixed(2)}x**; per round: ${d.rounds.map((r) => `${r.path} ${r.mbPerS} MB/s (${r.forwarded} forwarded)`).join(', ')}.`,
    '',
    `Propagation: ${c.propagation.connections} new connections, ${c.propagation.installed} owner entries installed on the peers; publish → installed p50 ${c.propagation.p50Ms} ms, p99 ${c.propagation.p99Ms} ms (baton_owner_directory_propagation_seconds, interpolated within its buckets).`,
  ];
}
