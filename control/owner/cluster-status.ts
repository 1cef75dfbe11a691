/**
 * What `baton status` and GET /v1/cluster show about the cluster (issue 12,
 * operations): this LB (id, address), the live peers (address, TTL left,
 * how long ago they refreshed, their connections installed here, packets
 * sent to them in the owner header), connections owned here vs forwarded
 * to peers, the directory's lag (changes not yet in the store, last
 * publish, last propagation and its p50/p99 over recent ones), and the
 * drain. Alone (no --store) it says so. buildClusterStatus is pure; the
 * daemon gathers its inputs (clusterStatusSource).
 */
import type { DrainView } from '../service/drain.js';
import type { LivePeer } from '../store/store.js';
import type { LbCluster } from './lb-cluster.js';
import type { PeerInfo } from './peer-info.js';

export interface ClusterPeerJson {
  id: string;
  address: string;
  ownerPort: number;
  version: string;
  /** until its registration expires unless it refreshes; null when the store could not be asked */
  ttlLeftMs: number | null;
  /** since its last refresh (its TTL minus what is left); null when unknown */
  lastSeenMsAgo: number | null;
  /** its connections installed here as owner entries */
  connections: number;
  forwardedPackets: number;
  forwardedBytes: number;
}

export interface ClusterStatusJson {
  mode: 'alone' | 'cluster';
  detail: string;
  self: { id: string; address: string; ownerPort: number } | null;
  store: { kind: 'memory' | 'redis'; reachable: boolean; error?: string } | null;
  peers: ClusterPeerJson[];
  connections: {
    /** held by this LB (spliced here) */
    owned: number;
    /** of those, in the store's directory */
    published: number;
    /** peers' connections installed here as owner entries (forwarded to their owner) */
    forwarded: number;
    /** peers' connections in the directory (forwarded, or waiting for their owner to be a live peer) */
    known: number;
  };
  directory: {
    /** changes of this LB not yet in the store */
    pending: number;
    lastPublishAt: string | null;
    lastInstallAt: string | null;
    lastPropagationMs: number | null;
    propagationP50Ms: number | null;
    propagationP99Ms: number | null;
    /** recent propagations the percentiles are over */
    samples: number;
  } | null;
  drain: DrainView;
}

/** Recent directory timings (DirectoryTimes keeps them). */
export interface DirectoryTimesView {
  lastPublishAtMs: number | undefined;
  lastInstallAtMs: number | undefined;
  /** most recent last */
  propagationsMs: readonly number[];
}

export interface ClusterStatusInput {
  self: { id: string; address: string; ownerPort: number };
  storeKind: 'memory' | 'redis';
  /** the peers the datapath uses (the cluster's view) */
  peers: ReadonlyMap<string, PeerInfo>;
  /** the store's live peers now, or why it could not be asked */
  live: { peers: readonly LivePeer[] } | { error: string };
  /** peers' entries installed here, by owner id */
  entriesByOwner: ReadonlyMap<string, number>;
  /** sent in the owner header, by peer address */
  traffic: ReadonlyMap<string, { packets: bigint; bytes: bigint }>;
  owned: number;
  published: number;
  forwarded: number;
  known: number;
  pending: number;
  times: DirectoryTimesView;
  drain: DrainView;
}

/** The p-th percentile (0..100) of `xs`, nearest rank; null when empty. Pure. */
export function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
const round3 = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);

export function buildClusterStatus(i: ClusterStatusInput): ClusterStatusJson {
  const live = 'peers' in i.live ? new Map(i.live.peers.map((p) => [p.id, p])) : undefined;
  const peers = [...i.peers]
    .map(([id, info]): ClusterPeerJson => {
      const lp = live?.get(id);
      const t = i.traffic.get(info.address);
      const ttlLeft = lp ? Math.max(0, Math.round(lp.expiresInMs)) : null;
      return {
        id,
        address: info.address,
        ownerPort: info.ownerPort,
        version: info.version,
        ttlLeftMs: ttlLeft,
        lastSeenMsAgo: ttlLeft !== null && info.ttlMs !== undefined ? Math.max(0, info.ttlMs - ttlLeft) : null,
        connections: i.entriesByOwner.get(id) ?? 0,
        forwardedPackets: Number(t?.packets ?? 0n),
        forwardedBytes: Number(t?.bytes ?? 0n),
      };
    })
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const ps = i.times.propagationsMs;
  return {
    mode: 'cluster',
    detail: `member ${i.self.id} of a cluster of ${peers.length + 1} LB${peers.length ? 's' : ''} (${peers.length} live peer${peers.length === 1 ? '' : 's'})`,
    self: i.self,
    store: { kind: i.storeKind, reachable: 'peers' in i.live, ...('error' in i.live ? { error: i.live.error } : {}) },
    peers,
    connections: { owned: i.owned, published: i.published, forwarded: i.forwarded, known: i.known },
    directory: {
      pending: i.pending,
      lastPublishAt: iso(i.times.lastPublishAtMs),
      lastInstallAt: iso(i.times.lastInstallAtMs),
      lastPropagationMs: round3(ps.length ? (ps[ps.length - 1] as number) : null),
      propagationP50Ms: round3(percentile(ps, 50)),
      propagationP99Ms: round3(percentile(ps, 99)),
      samples: ps.length,
    },
    drain: i.drain,
  };
}

/** An LB without --store. */
export function aloneStatus(owned: number, drain: DrainView): ClusterStatusJson {
  return {
    mode: 'alone',
    detail:
      'this LB runs alone (no --store): no peers, nothing forwarded in the owner header; start every LB with --store redis://... to form a cluster',
    self: null,
    store: null,
    peers: [],
    connections: { owned, published: 0, forwarded: 0, known: 0 },
    directory: null,
    drain,
  };
}

/** How many recent propagations the percentiles cover. */
export const PROPAGATION_SAMPLES = 256;

/** Directory timings as they happen (an observer of the directory feeds it). */
export class DirectoryTimes implements DirectoryTimesView {
  lastPublishAtMs: number | undefined;
  lastInstallAtMs: number | undefined;
  private readonly ring: number[] = [];
  constructor(private readonly now: () => number = Date.now) {}

  get propagationsMs(): readonly number[] {
    return this.ring;
  }
  published(): void {
    this.lastPublishAtMs = this.now();
  }
  propagation(seconds: number): void {
    this.lastInstallAtMs = this.now();
    this.ring.push(seconds * 1000);
    if (this.ring.length > PROPAGATION_SAMPLES) this.ring.shift();
  }
}

/** What the daemon has of a clustered LB, for its status. */
export interface LbClusterStatusDeps {
  self: { id: string; address: string; ownerPort: number };
  lb: Pick<LbCluster, 'store' | 'cluster' | 'directory' | 'times'>;
  /** owner entries installed in the datapath */
  forwarded: () => number;
  traffic: () => ReadonlyMap<string, { packets: bigint; bytes: bigint }>;
  owned: () => number;
  drain: () => DrainView;
  /** how long to wait for the store's peer list before answering without TTLs (default 1 s) */
  storeTimeoutMs?: number;
}

/** The status of a clustered LB now: the store is asked for TTLs (bounded wait), the rest is local. */
export function lbClusterStatus(d: LbClusterStatusDeps): () => Promise<ClusterStatusJson> {
  return async () => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${d.storeTimeoutMs ?? 1000} ms`)),
        d.storeTimeoutMs ?? 1000,
      );
    });
    let live: ClusterStatusInput['live'];
    try {
      live = { peers: (await Promise.race([d.lb.store.listPeers(), timeout])).peers };
    } catch (e) {
      live = { error: (e as Error).message };
    } finally {
      clearTimeout(timer);
    }
    const entriesByOwner = new Map<string, number>();
    for (const e of d.lb.directory.peerEntries().values())
      entriesByOwner.set(e.owner, (entriesByOwner.get(e.owner) ?? 0) + 1);
    return buildClusterStatus({
      self: d.self,
      storeKind: d.lb.store.kind,
      peers: d.lb.cluster.peers(),
      live,
      entriesByOwner,
      traffic: d.traffic(),
      owned: d.owned(),
      published: d.lb.directory.ownedCount,
      forwarded: d.forwarded(),
      known: d.lb.directory.peerEntries().size,
      pending: d.lb.directory.pendingCount,
      times: d.lb.times,
      drain: d.drain(),
    });
  };
}
