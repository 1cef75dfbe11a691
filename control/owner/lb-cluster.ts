/**
 * `baton lb --store ...`: the LB as a member of a cluster. It opens the
 * store, registers itself (cluster.ts), publishes every connection it holds
 * (the splicer's records, as they come and go) in the owner directory and
 * installs the peers' connections through an OwnerEntries port (the
 * datapath's owner entries). Without --store an LB runs alone, as before.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import type { BatonError } from '../errors.js';
import type { ConnectionRecords, SpliceRecord } from '../splice/records.js';
import { openStore } from '../store/open.js';
import { STORE_LIMITS, type Store } from '../store/store.js';
import { type Cluster, joinCluster } from './cluster.js';
import { DirectoryTimes } from './cluster-status.js';
import { OwnerDirectory, type OwnerEntries } from './directory.js';
import { ownerMetrics } from './metrics.js';
import type { OwnedConnection } from './owned-connection.js';
import type { PeerInfo } from './peer-info.js';

export interface LbClusterOptions {
  storeUrl: string;
  self: string;
  info: PeerInfo;
  peerTtlMs: number;
  records: ConnectionRecords;
  entries: OwnerEntries;
  /** peers' connections actually forwarded (in the datapath); default: those in the directory */
  forwardedCount?: () => number;
  /** the datapath's set of peers it accepts owner headers from */
  onPeers?: (peers: ReadonlyMap<string, PeerInfo>) => void;
  registry: Registry;
  log: FastifyBaseLogger;
}

export interface LbCluster {
  readonly store: Store;
  readonly cluster: Cluster;
  readonly directory: OwnerDirectory;
  /** last publish, last install and recent propagations (status) */
  readonly times: DirectoryTimes;
  /**
   * Stops publishing and following and closes the store. leave (default
   * false) also withdraws this LB's connections and deregisters it at once;
   * without it (a restart: the datapath keeps forwarding) the registration
   * simply expires after the TTL unless the next daemon refreshes it, and
   * the directory keeps this LB's connections, which the next daemon
   * publishes again.
   */
  close(options?: { leave?: boolean }): Promise<void>;
}

export const ownedConnectionOf = (rec: SpliceRecord): OwnedConnection => ({
  family: rec.family,
  client: rec.client,
  vip: rec.vip,
});

/** Withdraws `refs` on behalf of `owner`, in batches the store accepts. */
async function withdrawFor(store: Store, owner: string, refs: string[]): Promise<void> {
  for (let i = 0; i < refs.length; i += STORE_LIMITS.batchEntries) {
    await store.withdraw(owner, refs.slice(i, i + STORE_LIMITS.batchEntries));
  }
}

export async function startLbCluster(o: LbClusterOptions): Promise<LbCluster> {
  const store = await openStore(o.storeUrl);
  // Store trouble while running is logged, not fatal: forwarding keeps the
  // entries it has, and the feeds catch up (snapshot) when the store is back.
  const onError = (err: BatonError) => o.log.warn({ err, code: err.code, reason: err.reason }, err.message);
  let cluster: Cluster | undefined;
  let directory: OwnerDirectory | undefined;
  let unlisten: (() => void) | undefined;
  const times = new DirectoryTimes();
  try {
    cluster = await joinCluster({
      store,
      self: o.self,
      info: o.info,
      ttlMs: o.peerTtlMs,
      onError,
      // An LB that expired cannot withdraw its connections any more: its peers do it, so
      // the directory does not keep a dead LB's entries for ever (idempotent: every peer may).
      onLeave: (id, reason) => {
        if (reason !== 'expired' || !directory) return;
        const refs = [...directory.peerEntries()].filter(([, e]) => e.owner === id).map(([ref]) => ref);
        withdrawFor(store, id, refs).catch(onError);
      },
      ...(o.onPeers ? { onPeers: o.onPeers } : {}),
    });
    const joined = cluster;
    let dir: OwnerDirectory | undefined;
    const observer = ownerMetrics(o.registry, {
      peers: () => joined.peers().size,
      owned: () => dir?.ownedCount ?? 0,
      forwarded: () => o.forwardedCount?.() ?? dir?.peerEntries().size ?? 0,
      pending: () => dir?.pendingCount ?? 0,
    });
    const t = times;
    dir = new OwnerDirectory({
      store,
      self: o.self,
      entries: o.entries,
      // The metrics and the status's timings see every change.
      observer: {
        ...observer,
        published: (n) => {
          t.published();
          observer.published(n);
        },
        propagation: (s) => {
          t.propagation(s);
          observer.propagation(s);
        },
      },
      onError,
    });
    directory = dir;
    const d = dir;
    for (const rec of o.records.values()) d.own(ownedConnectionOf(rec)); // adopted at start
    unlisten = o.records.listen({
      added: (rec) => d.own(ownedConnectionOf(rec)),
      removed: (rec) => d.release(ownedConnectionOf(rec)),
    });
    d.start();
  } catch (e) {
    unlisten?.();
    await directory?.close({ withdraw: false }).catch(() => {});
    await cluster?.leave().catch(() => {});
    await store.close().catch(() => {});
    throw e;
  }
  const joined = cluster;
  const dir = directory;
  return {
    store,
    cluster: joined,
    directory: dir,
    times,
    async close(options = {}) {
      unlisten?.();
      const leave = options.leave === true;
      await dir.close({ withdraw: leave }).catch(onError);
      await joined.leave({ deregister: leave }).catch(onError);
      await store.close();
    },
  };
}
