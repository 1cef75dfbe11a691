/**
 * The store on Redis (`baton lb --store redis://...`): what several LB hosts
 * share. Client: @redis/client (node-redis, maintained by Redis), RESP2,
 * Buffers in and out (values are opaque bytes).
 *
 * Data layout, every key under a prefix (default "baton:", ?prefix= in the
 * URL) so one Redis can serve several clusters and an ACL can confine baton's
 * user to ~<prefix>*:
 *
 *   <p>epoch          string  random id set on first write: a cursor from before a
 *                             Redis restart without persistence is detected (the seqs restart)
 *   <p>dir            hash    ref -> owner "\n" value    the owner directory
 *   <p>dir:seq        string  last change's seq (INCR)
 *   <p>dir:log        stream  one entry per change, id "<seq>-0", fields
 *                             op, owner, then ref/value pairs (withdraw: ref/"" pairs);
 *                             trimmed exactly to `history` entries
 *   <p>peers          zset    peer id -> expiry (ms, Redis server clock: hosts' clocks may differ)
 *   <p>peers:info     hash    peer id -> info
 *   <p>peers:seq      string  last peer change's seq
 *   <p>peers:log      stream  id "<seq>-0", fields type join|leave, id, info | reason
 *   <p>rec:<key>      hash    v (value), o (owner, absent when none), n (version)
 *
 * Feeds follow the two streams (why Streams and not pub/sub, and how
 * expired peers leave: redis-feed.ts); the connection, its errors and
 * reconnecting: redis-connection.ts; the Lua scripts: redis-scripts.ts.
 */
import { BatonError } from '../errors.js';
import { RedisConnection, readCaFile } from './redis-connection.js';
import { RedisFeeds } from './redis-feed.js';
import {
  arr,
  buf,
  decodeDirSnapshot,
  decodePeerSnapshot,
  dirChange,
  int,
  peerChange,
  type Reply,
  str,
} from './redis-replies.js';
import { parseStoreUrl, type RedisTarget } from './redis-url.js';
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
  STORE_DEFAULTS,
  STORE_LIMITS,
  type Store,
  type StoredRecord,
  type Subscription,
} from './store.js';

// ---------------------------------------------------------------------------

export interface RedisStoreOptions {
  /** changes kept in each stream (default STORE_DEFAULTS.history) */
  history?: number;
  reapIntervalMs?: number;
  batchLimit?: number;
  /** how long connect() tries before giving up (default 5 s) */
  connectTimeoutMs?: number;
  /** how long a follower's XREAD blocks before it checks the epoch (default 2 s) */
  blockMs?: number;
}

/** The keys of the layout above under one prefix (records' keys are per record: recKey). */
function redisKeys(p: string) {
  return {
    epoch: `${p}epoch`,
    dir: `${p}dir`,
    dirSeq: `${p}dir:seq`,
    dirLog: `${p}dir:log`,
    peers: `${p}peers`,
    peerInfo: `${p}peers:info`,
    peerSeq: `${p}peers:seq`,
    peerLog: `${p}peers:log`,
  };
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly target: RedisTarget;
  private readonly k: ReturnType<typeof redisKeys>;
  private readonly history: number;
  private readonly epoch = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  private readonly feeds: RedisFeeds;

  private constructor(
    private readonly conn: RedisConnection,
    options: RedisStoreOptions,
  ) {
    this.target = conn.target;
    this.k = redisKeys(conn.target.prefix);
    this.history = checkVersion('history', options.history ?? STORE_DEFAULTS.history) || 1;
    this.feeds = new RedisFeeds(conn, this.k.epoch, {
      batchLimit: options.batchLimit ?? STORE_DEFAULTS.batchLimit,
      blockMs: options.blockMs ?? 2000,
      reapIntervalMs: options.reapIntervalMs ?? STORE_DEFAULTS.reapIntervalMs,
    });
  }

  /** Connects (trying with backoff for connectTimeoutMs) and checks the server answers; throws STORE_UNAVAILABLE saying why not. */
  static async connect(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const target = parseStoreUrl(url);
    const conn = new RedisConnection(target, readCaFile(target), options.connectTimeoutMs ?? 5000);
    const store = new RedisStore(conn, options);
    await conn.connect();
    return store;
  }

  /** the last connection trouble seen (for messages; the client reconnects by itself) */
  get lastError(): BatonError | undefined {
    return this.conn.lastError;
  }

  /** whether the connection to Redis is up right now (when not, calls fail at once and it reconnects by itself) */
  get ready(): boolean {
    return this.conn.ready;
  }

  private open(): void {
    if (this.conn.closed) throw closedError('redis');
  }

  private dirKeys(): string[] {
    return [this.k.dir, this.k.dirSeq, this.k.dirLog, this.k.epoch];
  }
  private peerKeys(): string[] {
    const k = this.k;
    return [k.peers, k.peerInfo, k.peerSeq, k.peerLog, k.epoch];
  }

  async publish(owner: string, entries: readonly { ref: string; value: Buffer }[]): Promise<number> {
    this.open();
    checkKey('owner', owner);
    checkBatch('entries', entries, (e) => e?.ref);
    const args: (string | Buffer)[] = [owner, String(this.history), this.epoch];
    for (const e of entries) args.push(e.ref, checkValue(`entry ${e.ref} value`, e.value, STORE_LIMITS.entryBytes));
    return int(await this.conn.run('publish', this.dirKeys(), args), 'publish');
  }

  async withdraw(owner: string, refs: readonly string[]): Promise<number> {
    this.open();
    checkKey('owner', owner);
    checkBatch('refs', refs, (r) => r);
    return int(
      await this.conn.run('withdraw', this.dirKeys(), [owner, String(this.history), this.epoch, ...refs]),
      'withdraw',
    );
  }

  private async dirSnapshot(): Promise<{ seq: number; epoch: string; entries: DirectoryEntry[] }> {
    const keys = [this.k.dir, this.k.dirSeq, this.k.epoch];
    return decodeDirSnapshot(await this.conn.run('dirSnapshot', keys, []));
  }

  async readDirectory(): Promise<{ seq: number; entries: DirectoryEntry[] }> {
    const s = await this.dirSnapshot();
    return { seq: s.seq, entries: s.entries };
  }

  followDirectory(handler: FeedHandler<DirectoryEntry[], DirectoryChange>, options?: FeedOptions): Subscription {
    this.open();
    const stream = {
      log: this.k.dirLog,
      seqKey: this.k.dirSeq,
      snapshot: async () => {
        const s = await this.dirSnapshot();
        return { seq: s.seq, epoch: s.epoch, state: s.entries };
      },
      parse: dirChange,
    };
    return this.feeds.follow<DirectoryEntry[], DirectoryChange>(stream, handler, options);
  }

  async heartbeatPeer(peer: Peer, ttlMs: number): Promise<{ joined: boolean }> {
    this.open();
    const id = checkKey('peer id', peer?.id);
    const info = checkValue(`peer ${id} info`, peer.info, STORE_LIMITS.peerInfoBytes);
    checkTtl(ttlMs);
    const args = [id, info, String(ttlMs), String(this.history), this.epoch];
    const r = await this.conn.run('heartbeat', this.peerKeys(), args);
    return { joined: int(r, 'heartbeat') === 1 };
  }

  async removePeer(id: string): Promise<boolean> {
    this.open();
    checkKey('peer id', id);
    return int(await this.conn.run('removePeer', this.peerKeys(), [id, String(this.history)]), 'removePeer') === 1;
  }

  private async peerSnapshot(): Promise<{ seq: number; epoch: string; peers: LivePeer[] }> {
    return decodePeerSnapshot(await this.conn.run('peerSnapshot', this.peerKeys(), [String(this.history)]));
  }

  async listPeers(): Promise<{ seq: number; peers: LivePeer[] }> {
    const s = await this.peerSnapshot();
    return { seq: s.seq, peers: s.peers };
  }

  followPeers(handler: FeedHandler<LivePeer[], PeerChange>, options?: FeedOptions): Subscription {
    this.open();
    this.feeds.ensureReaper(() => this.conn.run('reap', this.peerKeys(), [String(this.history)]));
    const stream = {
      log: this.k.peerLog,
      seqKey: this.k.peerSeq,
      snapshot: async () => {
        const s = await this.peerSnapshot();
        return { seq: s.seq, epoch: s.epoch, state: s.peers };
      },
      parse: peerChange,
    };
    return this.feeds.follow<LivePeer[], PeerChange>(stream, handler, options);
  }

  private record(key: string, v: Reply | undefined, o: Reply | undefined, n: Reply | undefined): StoredRecord {
    const owner = o === undefined || o === null ? '' : str(o, 'owner');
    return {
      key,
      value: Buffer.from(v === undefined || v === null ? Buffer.alloc(0) : buf(v, 'value')),
      owner: owner === '' ? null : owner,
      version: int(n, 'version'),
    };
  }

  private recKey(key: string): string {
    return `${this.target.prefix}rec:${checkKey('record key', key)}`;
  }

  async get(key: string): Promise<StoredRecord | undefined> {
    this.open();
    const r = arr(await this.conn.cmd(['HMGET', this.recKey(key), 'v', 'o', 'n']), 'HMGET');
    if (r[2] === null || r[2] === undefined) return undefined;
    return this.record(key, r[0], r[1], r[2]);
  }

  async put(key: string, value: Buffer, options: { ifVersion?: number } = {}): Promise<PutResult> {
    this.open();
    const rk = this.recKey(key);
    const v = checkValue(`record ${key} value`, value, STORE_LIMITS.recordBytes);
    const ifv = options.ifVersion === undefined ? '' : String(checkVersion('ifVersion', options.ifVersion));
    const r = arr(await this.conn.run('put', [rk], [v, ifv]), 'put');
    if (int(r[0], 'put') === 1) return { ok: true, version: int(r[1], 'version') };
    return { ok: false, current: r.length > 1 ? this.record(key, r[1], r[2], r[3]) : undefined };
  }

  async claim(key: string, owner: string, options: { from?: string | null } = {}): Promise<ClaimResult> {
    this.open();
    const rk = this.recKey(key);
    checkKey('owner', owner);
    const from = options.from ?? null;
    if (from !== null) checkKey('from', from);
    const r = arr(await this.conn.run('claim', [rk], [owner, from ?? '']), 'claim');
    const won = int(r[0], 'claim');
    if (won === -1) throw new BatonError('STORE_REFUSED', `record ${key} does not exist; nobody holds it`, 'no_record');
    return { won: won === 1, record: this.record(key, r[1], r[2], r[3]) };
  }

  async delete(key: string, options: { owner?: string; ifVersion?: number } = {}): Promise<boolean> {
    this.open();
    const rk = this.recKey(key);
    if (options.owner !== undefined) checkKey('owner', options.owner);
    const ifv = options.ifVersion === undefined ? '' : String(checkVersion('ifVersion', options.ifVersion));
    return int(await this.conn.run('del', [rk], [options.owner ?? '', ifv]), 'delete') === 1;
  }

  /** Stops feeds and the reaper, then closes the connection gracefully (pending replies are awaited). */
  async close(): Promise<void> {
    await this.conn.close(() => this.feeds.close());
  }
}
