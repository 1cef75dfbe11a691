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
 * Why Streams and not pub/sub for changes: pub/sub drops whatever is sent
 * while a subscriber is disconnected and says nothing; a stream keeps a
 * window of changes addressed by seq, so a follower reconnecting resumes at
 * its cursor (XREAD from "<seq>-0") and one that fell out of the window sees
 * the gap and reads a snapshot. The change itself (state + seq + log entry)
 * is one Lua script: atomic, so a snapshot's seq is exact.
 *
 * Peers expire by the zset score; every store that lists or follows peers
 * runs the reap script, which removes expired peers and logs their leave in
 * one atomic step, so each leave is logged once however many hosts reap.
 *
 * Errors: the connection's trouble becomes STORE_UNAVAILABLE with a reason
 * (connection_refused, auth_failed, permission_denied, tls, timeout,
 * disconnected, closed) and a message naming the store (password redacted)
 * and what to check. While disconnected, commands fail at once (no offline
 * queue: the caller decides what to retry) and the client reconnects with
 * backoff; feeds resume from their cursor.
 */ import { readFileSync } from 'node:fs';
import { createClient, RESP_TYPES } from '@redis/client';
import { BatonError } from '../errors.js';
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
  streamEntry,
} from './redis-replies.js';
import { SCRIPTS, type ScriptName } from './redis-scripts.js';
import { parseStoreUrl, type RedisTarget, storeError, where } from './redis-url.js';
import {
  backoffMs,
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
  type FeedSource,
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

/** The client as created below: RESP2, no modules or scripts of node-redis's own. */
function newClient(options: Parameters<typeof createClient>[0]) {
  return createClient({ ...options, RESP: 2 });
}
type Client = ReturnType<typeof newClient>;
const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer } as const;

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  private readonly k: Record<string, string>;
  private readonly history: number;
  private readonly reapIntervalMs: number;
  private readonly batchLimit: number;
  private readonly blockMs: number;
  private readonly epoch = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  private readonly shas = new Map<ScriptName, string>();
  private readonly subs = new Set<{ close(): Promise<void> }>();
  private readers = new Set<Client>();
  private reaper: NodeJS.Timeout | undefined;
  private closed = false;
  /** set once the first connection succeeded */
  private connected = false;
  /** the last connection trouble seen (for messages; the client reconnects by itself) */
  lastError: BatonError | undefined;

  private constructor(
    readonly target: RedisTarget,
    private readonly client: Client,
    options: RedisStoreOptions,
  ) {
    const p = target.prefix;
    this.k = {
      epoch: `${p}epoch`,
      dir: `${p}dir`,
      dirSeq: `${p}dir:seq`,
      dirLog: `${p}dir:log`,
      peers: `${p}peers`,
      peerInfo: `${p}peers:info`,
      peerSeq: `${p}peers:seq`,
      peerLog: `${p}peers:log`,
    };
    this.history = checkVersion('history', options.history ?? STORE_DEFAULTS.history) || 1;
    this.reapIntervalMs = options.reapIntervalMs ?? STORE_DEFAULTS.reapIntervalMs;
    this.batchLimit = options.batchLimit ?? STORE_DEFAULTS.batchLimit;
    this.blockMs = options.blockMs ?? 2000;
  }

  /** Connects (trying with backoff for connectTimeoutMs) and checks the server answers; throws STORE_UNAVAILABLE saying why not. */
  static async connect(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const target = parseStoreUrl(url);
    let ca: Buffer | undefined;
    if (target.caFile) {
      try {
        ca = readFileSync(target.caFile);
      } catch (err) {
        throw new BatonError(
          'CONFIG_INVALID',
          `--store ${target.redacted}: cannot read the CA file ${target.caFile} (${(err as Error).message})`,
          'store_ca_unreadable',
          { cause: err },
        );
      }
    }
    let store: RedisStore | undefined;
    const client = RedisStore.makeClient(target, ca, options.connectTimeoutMs ?? 5000, () => store);
    store = new RedisStore(target, client, options);
    await store.connectOrThrow(client, options.connectTimeoutMs ?? 5000, 'connecting');
    store.connected = true;
    try {
      await store.cmd(['PING']);
    } catch (err) {
      await store.close();
      throw storeError(target, err, 'checking the connection');
    }
    return store;
  }

  private static makeClient(
    t: RedisTarget,
    ca: Buffer | undefined,
    connectTimeoutMs: number,
    owner: () => RedisStore | undefined,
  ): Client {
    const reconnectStrategy = (retries: number, cause: Error): number | false => {
      const s = owner();
      if (!s || s.closed) return false;
      const e = storeError(t, cause, s.connected ? 'reconnecting' : 'connecting');
      s.lastError = e;
      const lasting = e.reason === 'auth_failed' || e.reason === 'permission_denied' || e.reason === 'tls';
      // At start, credentials or TLS that are wrong now will not be right in a
      // moment: fail at once (a refused connection is retried: the server may
      // be starting). Later an operator may fix the server: keep trying, slowly.
      if (lasting) return s.connected ? 2000 : false;
      return backoffMs(retries);
    };
    const socket = t.path
      ? { path: t.path, tls: false as const, connectTimeout: connectTimeoutMs, reconnectStrategy }
      : t.tls
        ? {
            host: t.host as string,
            port: t.port as number,
            tls: true as const,
            ...(ca && { ca }),
            ...(t.servername && { servername: t.servername }),
            connectTimeout: connectTimeoutMs,
            reconnectStrategy,
          }
        : { host: t.host as string, port: t.port as number, connectTimeout: connectTimeoutMs, reconnectStrategy };
    const client = newClient({
      socket,
      database: t.database,
      disableOfflineQueue: true,
      ...(t.username !== undefined && { username: t.username }),
      ...(t.password !== undefined && { password: t.password }),
    });
    // Without a listener an 'error' event would crash the process; the
    // reconnect strategy has already recorded it.
    client.on('error', () => {});
    return client;
  }

  /** connect() with a deadline: the client retries by itself, which on a wrong address would be forever. */
  private async connectOrThrow(client: Client, timeoutMs: number, doing: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            this.lastError ??
              new BatonError(
                'STORE_UNAVAILABLE',
                `${doing}: ${where(this.target)} did not answer within ${timeoutMs} ms; check the address and whether it speaks TLS (rediss://)`,
                'timeout',
              ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([client.connect(), deadline]);
    } catch (err) {
      client.destroy();
      // The strategy gave up on a lasting error: that error, not node-redis's wrapper, says what to fix.
      throw err instanceof BatonError ? err : (this.lastError ?? storeError(this.target, err, doing));
    } finally {
      clearTimeout(timer);
    }
  }

  private open(): void {
    if (this.closed) throw closedError('redis');
  }

  private async cmd(args: (string | Buffer)[], client: Client = this.client): Promise<Reply> {
    try {
      return (await client.sendCommand(args, { typeMapping: BUFFERS })) as Reply;
    } catch (err) {
      if (this.closed) throw closedError('redis');
      throw storeError(this.target, err, `${args[0]}`);
    }
  }

  /** EVALSHA, loading the script on NOSCRIPT (a restarted or flushed server). */
  private async run(name: ScriptName, keys: string[], args: (string | Buffer)[]): Promise<Reply> {
    this.open();
    const sha = this.shas.get(name);
    if (sha) {
      try {
        return await this.cmd(['EVALSHA', sha, String(keys.length), ...keys, ...args]);
      } catch (err) {
        if (!(err instanceof BatonError) || !/NOSCRIPT/.test(err.message)) throw err;
      }
    }
    const loaded = str(await this.cmd(['SCRIPT', 'LOAD', SCRIPTS[name]]), 'SCRIPT LOAD');
    this.shas.set(name, loaded);
    return this.cmd(['EVALSHA', loaded, String(keys.length), ...keys, ...args]);
  }

  private dirKeys(): string[] {
    return [this.k.dir as string, this.k.dirSeq as string, this.k.dirLog as string, this.k.epoch as string];
  }
  private peerKeys(): string[] {
    const k = this.k;
    return [k.peers, k.peerInfo, k.peerSeq, k.peerLog, k.epoch] as string[];
  }

  async publish(owner: string, entries: readonly { ref: string; value: Buffer }[]): Promise<number> {
    this.open();
    checkKey('owner', owner);
    checkBatch('entries', entries, (e) => e?.ref);
    const args: (string | Buffer)[] = [owner, String(this.history), this.epoch];
    for (const e of entries) args.push(e.ref, checkValue(`entry ${e.ref} value`, e.value, STORE_LIMITS.entryBytes));
    return int(await this.run('publish', this.dirKeys(), args), 'publish');
  }

  async withdraw(owner: string, refs: readonly string[]): Promise<number> {
    this.open();
    checkKey('owner', owner);
    checkBatch('refs', refs, (r) => r);
    return int(
      await this.run('withdraw', this.dirKeys(), [owner, String(this.history), this.epoch, ...refs]),
      'withdraw',
    );
  }

  private async dirSnapshot(): Promise<{ seq: number; epoch: string; entries: DirectoryEntry[] }> {
    const keys = [this.k.dir as string, this.k.dirSeq as string, this.k.epoch as string];
    return decodeDirSnapshot(await this.run('dirSnapshot', keys, []));
  }

  async readDirectory(): Promise<{ seq: number; entries: DirectoryEntry[] }> {
    const s = await this.dirSnapshot();
    return { seq: s.seq, entries: s.entries };
  }

  followDirectory(handler: FeedHandler<DirectoryEntry[], DirectoryChange>, options?: FeedOptions): Subscription {
    this.open();
    return this.follow<DirectoryEntry[], DirectoryChange>(
      this.k.dirLog as string,
      this.k.dirSeq as string,
      async () => {
        const s = await this.dirSnapshot();
        return { seq: s.seq, epoch: s.epoch, state: s.entries };
      },
      dirChange,
      handler,
      options,
    );
  }

  async heartbeatPeer(peer: Peer, ttlMs: number): Promise<{ joined: boolean }> {
    this.open();
    const id = checkKey('peer id', peer?.id);
    const info = checkValue(`peer ${id} info`, peer.info, STORE_LIMITS.peerInfoBytes);
    checkTtl(ttlMs);
    const r = await this.run('heartbeat', this.peerKeys(), [id, info, String(ttlMs), String(this.history), this.epoch]);
    return { joined: int(r, 'heartbeat') === 1 };
  }

  async removePeer(id: string): Promise<boolean> {
    this.open();
    checkKey('peer id', id);
    return int(await this.run('removePeer', this.peerKeys(), [id, String(this.history)]), 'removePeer') === 1;
  }

  private async peerSnapshot(): Promise<{ seq: number; epoch: string; peers: LivePeer[] }> {
    return decodePeerSnapshot(await this.run('peerSnapshot', this.peerKeys(), [String(this.history)]));
  }

  async listPeers(): Promise<{ seq: number; peers: LivePeer[] }> {
    const s = await this.peerSnapshot();
    return { seq: s.seq, peers: s.peers };
  }

  followPeers(handler: FeedHandler<LivePeer[], PeerChange>, options?: FeedOptions): Subscription {
    this.open();
    this.ensureReaper();
    return this.follow<LivePeer[], PeerChange>(
      this.k.peerLog as string,
      this.k.peerSeq as string,
      async () => {
        const s = await this.peerSnapshot();
        return { seq: s.seq, epoch: s.epoch, state: s.peers };
      },
      peerChange,
      handler,
      options,
    );
  }

  private ensureReaper(): void {
    if (this.reaper || this.closed) return;
    this.reaper = setInterval(() => {
      this.run('reap', this.peerKeys(), [String(this.history)]).catch((err: unknown) => {
        if (!this.closed) this.lastError = storeError(this.target, err, 'reaping expired peers');
      });
    }, this.reapIntervalMs);
    this.reaper.unref();
  }

  /**
   * A feed over a stream: each follower has its own connection, since XREAD
   * BLOCK holds it. The epoch is checked after every empty or failed read: a
   * Redis that lost its data (restart without persistence) restarts seqs.
   */
  private follow<S, C extends { seq: number }>(
    log: string,
    seqKey: string,
    snapshot: () => Promise<{ seq: number; epoch: string; state: S }>,
    parse: (seq: number, fields: Buffer[]) => C,
    handler: FeedHandler<S, C>,
    options: FeedOptions = {},
  ): Subscription {
    let reader: Client | undefined;
    let epoch: string | undefined;
    let checkEpoch = false;
    const getReader = async (): Promise<Client> => {
      if (reader?.isReady) return reader;
      if (!reader) {
        const r = this.client.duplicate();
        r.on('error', () => {});
        this.readers.add(r);
        reader = r;
        await this.connectOrThrow(r, 5000, 'following the store');
      }
      return reader;
    };
    const source: FeedSource<S, C> = {
      snapshot: async () => {
        const s = await snapshot();
        epoch = s.epoch;
        return { seq: s.seq, state: s.state };
      },
      read: async (after, limit, signal) => {
        if (checkEpoch || epoch === undefined) {
          const r = arr(await this.cmd(['MGET', this.k.epoch as string, seqKey]), 'MGET');
          const now = r[0] === null ? '' : str(r[0], 'epoch');
          const seq = r[1] === null ? 0 : int(r[1], 'seq');
          // An epoch of '' was read before anything was written: the first write sets it.
          if ((epoch !== undefined && epoch !== '' && now !== epoch) || seq < after) return 'gap';
          epoch = now;
          checkEpoch = false;
        }
        const rd = await getReader();
        if (signal.aborted) return [];
        let got: Reply;
        try {
          got = await this.cmd(
            ['XREAD', 'COUNT', String(limit), 'BLOCK', String(this.blockMs), 'STREAMS', log, `${after}-0`],
            rd,
          );
        } catch (err) {
          checkEpoch = true;
          throw err;
        }
        if (got === null) {
          checkEpoch = true;
          return [];
        }
        const streams = arr(got, 'XREAD');
        const entries = arr(arr(streams[0], 'XREAD stream')[1], 'XREAD entries').map(streamEntry);
        return entries.map((e) => parse(e.seq, e.fields));
      },
    };
    const sub = runFeed(source, handler, { ...options, batchLimit: this.batchLimit });
    const tracked = {
      get seq() {
        return sub.seq;
      },
      close: async () => {
        this.subs.delete(tracked);
        // Destroy first: a pending XREAD BLOCK would hold a graceful close.
        if (reader) {
          this.readers.delete(reader);
          reader.destroy();
        }
        await sub.close();
      },
    };
    this.subs.add(tracked);
    return tracked;
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
    const r = arr(await this.cmd(['HMGET', this.recKey(key), 'v', 'o', 'n']), 'HMGET');
    if (r[2] === null || r[2] === undefined) return undefined;
    return this.record(key, r[0], r[1], r[2]);
  }

  async put(key: string, value: Buffer, options: { ifVersion?: number } = {}): Promise<PutResult> {
    this.open();
    const rk = this.recKey(key);
    const v = checkValue(`record ${key} value`, value, STORE_LIMITS.recordBytes);
    const ifv = options.ifVersion === undefined ? '' : String(checkVersion('ifVersion', options.ifVersion));
    const r = arr(await this.run('put', [rk], [v, ifv]), 'put');
    if (int(r[0], 'put') === 1) return { ok: true, version: int(r[1], 'version') };
    return { ok: false, current: r.length > 1 ? this.record(key, r[1], r[2], r[3]) : undefined };
  }

  async claim(key: string, owner: string, options: { from?: string | null } = {}): Promise<ClaimResult> {
    this.open();
    const rk = this.recKey(key);
    checkKey('owner', owner);
    const from = options.from ?? null;
    if (from !== null) checkKey('from', from);
    const r = arr(await this.run('claim', [rk], [owner, from ?? '']), 'claim');
    const won = int(r[0], 'claim');
    if (won === -1) throw new BatonError('STORE_REFUSED', `record ${key} does not exist; nobody holds it`, 'no_record');
    return { won: won === 1, record: this.record(key, r[1], r[2], r[3]) };
  }

  async delete(key: string, options: { owner?: string; ifVersion?: number } = {}): Promise<boolean> {
    this.open();
    const rk = this.recKey(key);
    if (options.owner !== undefined) checkKey('owner', options.owner);
    const ifv = options.ifVersion === undefined ? '' : String(checkVersion('ifVersion', options.ifVersion));
    return int(await this.run('del', [rk], [options.owner ?? '', ifv]), 'delete') === 1;
  }

  /** Stops feeds and the reaper, then closes the connection gracefully (pending replies are awaited). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reaper) clearInterval(this.reaper);
    await Promise.all([...this.subs].map((s) => s.close()));
    for (const r of this.readers) r.destroy();
    this.readers.clear();
    if (this.client.isOpen) {
      try {
        await this.client.close();
      } catch {
        this.client.destroy();
      }
    } else {
      this.client.destroy();
    }
  }
}
