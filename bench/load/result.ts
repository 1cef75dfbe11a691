/** What one load run measured (one variant, one workload, one round). */
import type { CpuDelta } from '../cpu.js';

export interface LoadResult {
  /** completed requests (responses read in full) */
  requests: number;
  /** response bytes read, headers included */
  bytes: number;
  /** wall time of the load, microseconds */
  durationUs: number;
  /** latency of one request (wrk) or one whole download (curl), microseconds */
  p50Us: number;
  p99Us: number;
  /** socket errors, timeouts, non-2xx responses, short downloads */
  errors: number;
  errorDetail: Record<string, number>;
  /** whole-machine CPU over the run */
  cpu: CpuDelta;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}
