/**
 * The embedded store: everything in this process. It serves an LB that runs
 * alone (no --store: nothing else to start) and the tests. It behaves like
 * RedisStore in everything the conformance suite checks (sequence numbers,
 * gaps, TTLs, atomic claims, limits), so code written against one runs on
 * the other; what it cannot do is share anything with another process.
 */
import { BatonError } from '../errors.js';
import {
  type ClaimResult,
  checkBatch,
  checkKey,
  checkTtl,
  checkValue,
  checkVersion,
  closedError,
  type DirectoryChange,
  type DirectoryEntry,
  type FeedHandler,
  type FeedOptions,
  type LivePeer,
  type Peer,
  type PeerChange,
  type PutResult,
  runFeed,
  STORE_DEFAULTS,
  STORE_LIMITS,
  type Store,
  type StoredRecord,
  type Subscription,
} from './store.js';

export interface MemoryStoreOptions {
  /** changes kept per feed for followers that fall behind (default STORE_DEFAULTS.history) */
  history?: number;
  reapIntervalMs?: number;
  batchLimit?: number;
  /** the clock TTLs are measured on (tests may pass their own) */
  now?: () => number;
}

/** A change log with contiguous seqs, a bounded history and waiters for the next append. */
class Log<C extends { seq: number }> {
  seq = 0;
  private held: C[] = [];
  private waiters = new Set<() => void>();
  constructor(private readonly history: number) {}

  append(make: (seq: number) => C): number {
    const c = make(++this.seq);
    this.held.push(c);
    if (this.held.length > this.history) this.held.splice(0, this.held.length - this.history);
    for (const w of this.waiters) w();
    this.waiters.clear();
    return this.seq;
  }

  async read(after: number, limit: number, signal: AbortSignal): Promise<C[] | 'gap'> {
    for (;;) {
      if (after > this.seq) return 'gap'; // a cursor from another store's history
      const first = this.held[0]?.seq ?? this.seq + 1;
      if (after + 1 < first) return 'gap';
      if (after < this.seq) {
        const start = after + 1 - first;
        return this.held.slice(start, start + limit);
      }
      if (signal.aborted) return [];
      // Nothing new: wait for an append. Resolving on the next macrotask lets
      // publishers that append in a burst land in one delivered batch.
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener('abort', wake);
          this.waiters.delete(wake);
          setImmediate(resolve);
        };
        this.waiters.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  wakeAll(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }
}

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  private readonly history: number;
  private readonly reapIntervalMs: number;
  private readonly batchLimit: number;
  private readonly now: () => number;
  private readonly dir = new Map<string, { owner: string; value: Buffer }>();
  private readonly dirLog: Log<DirectoryChange>;
  private readonly peers = new Map<string, { info: Buffer; expiresAt: number }>();
  private readonly peerLog: Log<PeerChange>;
  private readonly records = new Map<string, StoredRecord>();
  private readonly subs = new Set<Subscription>();
  private reaper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.history = options.history ?? STORE_DEFAULTS.history;
    this.reapIntervalMs = options.reapIntervalMs ?? STORE_DEFAULTS.reapIntervalMs;
    this.batchLimit = options.batchLimit ?? STORE_DEFAULTS.batchLimit;
    this.now = options.now ?? Date.now;
    checkVersion('history', this.history);
    this.dirLog = new Log(Math.max(1, this.history));
    this.peerLog = new Log(Math.max(1, this.history));
  }

  private open(): void {
    if (this.closed) throw closedError('memory');
  }

  async publish(owner: string, entries: readonly { ref: string; value: Buffer }[]): Promise<number> {
    this.open();
    checkKey('owner', owner);
    checkBatch('entries', entries, (e) => e?.ref);
    const stored = entries.map((e) => ({
      ref: e.ref,
      value: Buffer.from(checkValue(`entry ${e.ref} value`, e.value, STORE_LIMITS.entryBytes)),
    }));
    for (const e of stored) this.dir.set(e.ref, { owner, value: e.value });
    return this.dirLog.append((seq) => ({ seq, op: 'publish', owner, entries: stored }));
  }

  async withdraw(owner: string, refs: readonly string[]): Promise<number> {
    this.open();
    checkKey('owner', owner);
    checkBatch('refs', refs, (r) => r);
    const removed: { ref: string; value: Buffer }[] = [];
    for (const ref of refs) {
      if (this.dir.get(ref)?.owner !== owner) continue;
      this.dir.delete(ref);
      removed.push({ ref, value: Buffer.alloc(0) });
    }
    if (removed.length === 0) return this.dirLog.seq;
    return this.dirLog.append((seq) => ({ seq, op: 'withdraw', owner, entries: removed }));
  }

  async readDirectory(): Promise<{ seq: number; entries: DirectoryEntry[] }> {
    this.open();
    return {
      seq: this.dirLog.seq,
      entries: [...this.dir].map(([ref, e]) => ({ ref, owner: e.owner, value: e.value })),
    };
  }

  followDirectory(handler: FeedHandler<DirectoryEntry[], DirectoryChange>, options?: FeedOptions): Subscription {
    this.open();
    return this.track(
      runFeed(
        {
          snapshot: async () => {
            const d = await this.readDirectory();
            return { seq: d.seq, state: d.entries };
          },
          read: (after, limit, signal) => this.dirLog.read(after, limit, signal),
        },
        handler,
        { ...options, batchLimit: this.batchLimit },
      ),
    );
  }

  async heartbeatPeer(peer: Peer, ttlMs: number): Promise<{ joined: boolean }> {
    this.open();
    const id = checkKey('peer id', peer?.id);
    const info = Buffer.from(checkValue(`peer ${id} info`, peer.info, STORE_LIMITS.peerInfoBytes));
    checkTtl(ttlMs);
    const now = this.now();
    const old = this.peers.get(id);
    const joined = !old || old.expiresAt <= now || !old.info.equals(info);
    this.peers.set(id, { info, expiresAt: now + ttlMs });
    if (joined) this.peerLog.append((seq) => ({ seq, type: 'join', peer: { id, info } }));
    this.ensureReaper();
    return { joined };
  }

  async removePeer(id: string): Promise<boolean> {
    this.open();
    checkKey('peer id', id);
    if (!this.peers.delete(id)) return false;
    this.peerLog.append((seq) => ({ seq, type: 'leave', id, reason: 'removed' }));
    return true;
  }

  async listPeers(): Promise<{ seq: number; peers: LivePeer[] }> {
    this.open();
    this.reap();
    const now = this.now();
    return {
      seq: this.peerLog.seq,
      peers: [...this.peers].map(([id, p]) => ({ id, info: p.info, expiresInMs: p.expiresAt - now })),
    };
  }

  followPeers(handler: FeedHandler<LivePeer[], PeerChange>, options?: FeedOptions): Subscription {
    this.open();
    this.ensureReaper();
    return this.track(
      runFeed(
        {
          snapshot: async () => {
            const l = await this.listPeers();
            return { seq: l.seq, state: l.peers };
          },
          read: (after, limit, signal) => this.peerLog.read(after, limit, signal),
        },
        handler,
        { ...options, batchLimit: this.batchLimit },
      ),
    );
  }

  /** Expired peers leave, each as one change (what RedisStore's reap script does). */
  private reap(): void {
    const now = this.now();
    for (const [id, p] of this.peers) {
      if (p.expiresAt > now) continue;
      this.peers.delete(id);
      this.peerLog.append((seq) => ({ seq, type: 'leave', id, reason: 'expired' }));
    }
  }

  private ensureReaper(): void {
    if (this.reaper || this.closed) return;
    this.reaper = setInterval(() => this.reap(), this.reapIntervalMs);
    this.reaper.unref(); // a store alone must not keep the process alive
  }

  async get(key: string): Promise<StoredRecord | undefined> {
    this.open();
    checkKey('record key', key);
    const r = this.records.get(key);
    return r && { ...r };
  }

  async put(key: string, value: Buffer, options: { ifVersion?: number } = {}): Promise<PutResult> {
    this.open();
    checkKey('record key', key);
    const v = Buffer.from(checkValue(`record ${key} value`, value, STORE_LIMITS.recordBytes));
    if (options.ifVersion !== undefined) checkVersion('ifVersion', options.ifVersion);
    const cur = this.records.get(key);
    if (options.ifVersion !== undefined && options.ifVersion !== (cur?.version ?? 0)) {
      return { ok: false, current: cur && { ...cur } };
    }
    const next = { key, value: v, owner: cur?.owner ?? null, version: (cur?.version ?? 0) + 1 };
    this.records.set(key, next);
    return { ok: true, version: next.version };
  }

  async claim(key: string, owner: string, options: { from?: string | null } = {}): Promise<ClaimResult> {
    this.open();
    checkKey('record key', key);
    checkKey('owner', owner);
    const from = options.from ?? null;
    if (from !== null) checkKey('from', from);
    const cur = this.records.get(key);
    const holder = cur?.owner ?? null;
    if (holder === owner) return { won: true, record: { ...(cur as StoredRecord) } };
    if (holder !== from) {
      if (!cur) throw new BatonError('STORE_REFUSED', `record ${key} does not exist; nobody holds it`, 'no_record');
      return { won: false, record: { ...cur } };
    }
    const next = { key, value: cur?.value ?? Buffer.alloc(0), owner, version: (cur?.version ?? 0) + 1 };
    this.records.set(key, next);
    return { won: true, record: { ...next } };
  }

  async delete(key: string, options: { owner?: string; ifVersion?: number } = {}): Promise<boolean> {
    this.open();
    checkKey('record key', key);
    if (options.owner !== undefined) checkKey('owner', options.owner);
    if (options.ifVersion !== undefined) checkVersion('ifVersion', options.ifVersion);
    const cur = this.records.get(key);
    if (!cur) return false;
    if (options.owner !== undefined && cur.owner !== options.owner) return false;
    if (options.ifVersion !== undefined && cur.version !== options.ifVersion) return false;
    return this.records.delete(key);
  }

  private track(sub: Subscription): Subscription {
    this.subs.add(sub);
    return {
      get seq() {
        return sub.seq;
      },
      close: async () => {
        this.subs.delete(sub);
        await sub.close();
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reaper) clearInterval(this.reaper);
    this.dirLog.wakeAll();
    this.peerLog.wakeAll();
    await Promise.all([...this.subs].map((s) => s.close()));
    this.subs.clear();
  }
}
