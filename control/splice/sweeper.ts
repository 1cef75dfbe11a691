/**
 * Reclaims the entries of connections that are over, from what the datapath
 * saw (design.md §3: live handoffs are never evicted silently, so something
 * must delete finished ones):
 *   - both FINs acknowledged, plus a grace period for the last ACK's
 *     retransmissions (the peers' own TIME_WAIT handles the rest);
 *   - a RST seen in either direction (already forwarded to the other end);
 *   - no packet for `idleMs` (a peer vanished without a FIN or RST).
 * Reclaiming deletes the entries and releases the sockets baton holds; it
 * runs on the connection's queue, so it never cuts into a handoff.
 */
import type { Splicer } from './splicer.js';

export interface SweeperOptions {
  /** A connection with no packet for this long is reclaimed (ms); 0: never. */
  idleMs: number;
  /** Time between both FINs acknowledged and the reclaim (ms). */
  graceMs: number;
  /** Time between sweeps (ms). */
  intervalMs: number;
  /** CLOCK_MONOTONIC in ns, the clock of the datapath's bpf_ktime_get_coarse_ns() (tests substitute). */
  now?: () => bigint;
}

export const SWEEPER_DEFAULTS: Readonly<SweeperOptions> = { idleMs: 3_600_000, graceMs: 10_000, intervalMs: 5_000 };

export type ReclaimReason = 'closed' | 'reset' | 'idle';

export interface SweepResult {
  reclaimed: Array<{ id: bigint; reason: ReclaimReason }>;
}

export interface Sweeper {
  sweepOnce(): Promise<SweepResult>;
  stop(): void;
  /** Called for every reclaimed connection (metrics). */
  onReclaim?: (id: bigint, reason: ReclaimReason) => void;
}

export function startSweeper(splicer: Splicer, options: Partial<SweeperOptions> = {}): Sweeper {
  const opts = { ...SWEEPER_DEFAULTS, ...options };
  const now = opts.now ?? (() => process.hrtime.bigint());
  const ms = (n: number): bigint => BigInt(Math.round(n * 1e6));
  /** When each connection was first seen closed. */
  const closedSince = new Map<bigint, bigint>();
  const sweeper: Sweeper = {
    async sweepOnce() {
      const t = now();
      const reclaimed: SweepResult['reclaimed'] = [];
      const decided: SweepResult['reclaimed'] = [];
      for (const [id, rec] of splicer.records) {
        const st = splicer.status(id);
        if (!st) continue;
        let reason: ReclaimReason | undefined;
        if (st.toBackend.rst || st.toClient.rst) reason = 'reset';
        else if (st.state === 'closed') {
          const since = closedSince.get(id) ?? t;
          closedSince.set(id, since);
          if (t - since >= ms(opts.graceMs)) reason = 'closed';
        } else {
          // The later of the two directions (bigints: Math.max takes numbers only).
          let last = st.toBackend.lastSeenNs;
          if (st.toClient.lastSeenNs > last) last = st.toClient.lastSeenNs;
          // Never seen a packet: count from the splice itself.
          const since = last > 0n ? last : t - ms(Date.now() - rec.createdAt);
          if (opts.idleMs > 0 && t - since >= ms(opts.idleMs)) reason = 'idle';
        }
        if (!reason) continue;
        decided.push({ id, reason });
      }
      // Decided on one snapshot, reclaimed after whatever operation each connection is running.
      await Promise.all(
        decided.map(async ({ id, reason }) => {
          if (!(await splicer.reclaim(id))) return;
          closedSince.delete(id);
          reclaimed.push({ id, reason });
          sweeper.onReclaim?.(id, reason);
        }),
      );
      for (const id of closedSince.keys()) if (!splicer.records.has(id)) closedSince.delete(id);
      return { reclaimed };
    },
    stop() {
      clearInterval(timer);
    },
  };
  // The splicer reclaims a finished connection itself when a new one needs
  // its tuple (a reused client port): counted like the sweeper's own.
  splicer.onReclaim = (id, reason) => sweeper.onReclaim?.(id, reason);
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return; // a reclaim still waits on a long operation
    sweeping = true;
    sweeper
      .sweepOnce()
      .catch(() => {
        /* a map error now is retried at the next sweep */
      })
      .finally(() => {
        sweeping = false;
      });
  }, opts.intervalMs);
  timer.unref();
  return sweeper;
}
