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
 */
import { readFileSync } from 'node:fs';
import { createClient, RESP_TYPES } from '@redis/client';
import { BatonError } from '../errors.js';
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
// The URL: pure.

export interface RedisTarget {
  tls: boolean;
  /** TCP host and port, or a unix socket path */
  host?: string;
  port?: number;
  path?: string;
  username?: string;
  password?: string;
  database: number;
  /** rediss: a CA file (PEM) to trust instead of the system's, e.g. for a self-signed server */
  caFile?: string;
  /** rediss: the name the certificate must carry when it is not the host */
  servername?: string;
  prefix: string;
  /** the URL with the password replaced by "***": what messages and logs show */
  redacted: string;
}

const URL_FORMS =
  'redis://[user:password@]host[:port][/db], rediss://... (TLS; ?ca=/path/ca.pem&servername=name), or unix:///path/redis.sock[?db=N]; any of them ?prefix=name:';

function badUrl(url: string, why: string): BatonError {
  return new BatonError(
    'CONFIG_INVALID',
    `--store ${redactUrl(url)}: ${why}; expected ${URL_FORMS}`,
    'store_url_invalid',
  );
}

/** The URL with any password replaced, for messages (also for URLs that do not parse). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z+]+:\/\/[^:/@]*:)[^@/]*@/i, '$1***@');
}

export function parseStoreUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badUrl(url, 'not a URL');
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme !== 'redis' && scheme !== 'rediss' && scheme !== 'unix') throw badUrl(url, `unknown scheme ${scheme}`);
  const known = new Set(['prefix', 'db', 'ca', 'servername']);
  for (const k of u.searchParams.keys()) if (!known.has(k)) throw badUrl(url, `unknown parameter ${k}`);
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw badUrl(url, 'bad percent-encoding in the user or password');
    }
  };
  const username = u.username ? decode(u.username) : undefined;
  const password = u.password ? decode(u.password) : undefined;
  const prefix = u.searchParams.get('prefix') ?? 'baton:';
  if (!/^[\x21-\x7e]{1,64}$/.test(prefix)) throw badUrl(url, 'prefix must be 1-64 printable ASCII characters');
  const dbText = scheme === 'unix' ? (u.searchParams.get('db') ?? '0') : u.pathname.replace(/^\//, '') || '0';
  if (scheme !== 'unix' && u.searchParams.has('db')) throw badUrl(url, 'give the database as the path (/N), not ?db=');
  if (!/^\d{1,2}$/.test(dbText)) throw badUrl(url, `database ${JSON.stringify(dbText)} is not a number 0-99`);
  const tls = scheme === 'rediss';
  if (!tls && (u.searchParams.has('ca') || u.searchParams.has('servername'))) {
    throw badUrl(url, 'ca and servername apply to rediss:// only');
  }
  const target: RedisTarget = {
    tls,
    database: Number(dbText),
    prefix,
    redacted: redactUrl(url),
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
  };
  if (scheme === 'unix') {
    if (!u.pathname.startsWith('/') || u.pathname === '/') throw badUrl(url, 'a unix socket needs an absolute path');
    target.path = decode(u.pathname);
  } else {
    if (!u.hostname) throw badUrl(url, 'no host');
    target.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = u.port ? Number(u.port) : 6379;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw badUrl(url, `port ${u.port} is out of range`);
    target.port = port;
  }
  const ca = u.searchParams.get('ca');
  if (ca !== null) {
    if (!ca.startsWith('/')) throw badUrl(url, 'ca must be an absolute path to a PEM file');
    target.caFile = ca;
  }
  const sn = u.searchParams.get('servername');
  if (sn !== null) target.servername = sn;
  return target;
}

// ---------------------------------------------------------------------------
// Errors: pure classification of what the client or server said.

function where(t: RedisTarget): string {
  return `the store ${t.redacted}`;
}

/** Turns a client or server error into a catalogue error saying what to do. */
export function storeError(t: RedisTarget, err: unknown, doing: string): BatonError {
  if (err instanceof BatonError) return err;
  const e = err as { code?: string; message?: string; name?: string };
  const msg = String(e?.message ?? err);
  const code = e?.code ?? '';
  const at = where(t);
  const mk = (reason: string, text: string) =>
    new BatonError('STORE_UNAVAILABLE', `${doing}: ${at} ${text}`, reason, { cause: err });
  if (/^(WRONGPASS|NOAUTH)/.test(msg) || /invalid username-password/i.test(msg)) {
    return mk(
      'auth_failed',
      `refused the credentials (${msg.split('\n')[0]}); check the user and password in --store against the server's ACL (ACL LIST), or add user:password@ if it requires one`,
    );
  }
  if (/^NOPERM/.test(msg)) {
    return mk(
      'permission_denied',
      `refused a command or key for this ACL user (${msg.split('\n')[0]}); grant it at least "~${t.prefix}* +@read +@write +@stream +@sortedset +@hash +@scripting +@connection +time" (ACL SETUSER)`,
    );
  }
  if (code === 'ECONNREFUSED') {
    return mk('connection_refused', 'refused the connection; is redis-server running and listening there?');
  }
  if (code === 'ENOENT' && t.path)
    return mk('connection_refused', `has no socket at ${t.path}; is redis-server running?`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return mk('connection_refused', 'names a host that does not resolve');
  if (code.startsWith('ERR_TLS') || /certificate|self[- ]signed|SSL|TLS/i.test(`${code} ${msg}`)) {
    return mk(
      'tls',
      `failed the TLS handshake (${code || msg}); trust the server's CA with ?ca=/path/ca.pem, set ?servername= when the certificate names another host, or use redis:// if the server has no TLS`,
    );
  }
  if (e?.name === 'ConnectionTimeoutError' || e?.name === 'TimeoutError' || /timeout/i.test(msg)) {
    return mk('timeout', 'did not answer in time; check the address, a firewall, or rediss:// vs redis://');
  }
  if (
    e?.name === 'ClientOfflineError' ||
    /client is offline|socket closed unexpectedly/i.test(msg) ||
    e?.name === 'SocketClosedUnexpectedlyError' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE'
  ) {
    return mk(
      'disconnected',
      'is not connected (baton reconnects with backoff); if it keeps failing, check redis-server, or whether it speaks TLS (rediss://)',
    );
  }
  if (e?.name === 'ClientClosedError') return closedError('redis');
  return mk('failed', `answered an error: ${msg}`);
}

// ---------------------------------------------------------------------------
// Lua scripts. KEYS are declared so ACL key patterns and (one day) cluster
// slots apply. Numbers come back as integers, values as bulk strings.

const SCRIPTS = {
  // KEYS dir, dir:seq, dir:log, epoch. ARGV owner, history, epoch candidate, ref1, value1, ...
  publish: `
redis.call('SET', KEYS[4], ARGV[3], 'NX')
local seq = redis.call('INCR', KEYS[2])
local x = {'XADD', KEYS[3], 'MAXLEN', '=', ARGV[2], seq .. '-0', 'op', 'publish', 'owner', ARGV[1]}
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1] .. '\\n' .. ARGV[i + 1])
  x[#x + 1] = ARGV[i]
  x[#x + 1] = ARGV[i + 1]
end
redis.call(unpack(x))
return seq`,
  // KEYS dir, dir:seq, dir:log, epoch. ARGV owner, history, epoch candidate, ref1, ...
  withdraw: `
local x = {}
local mine = ARGV[1] .. '\\n'
for i = 4, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and string.sub(v, 1, #mine) == mine then
    redis.call('HDEL', KEYS[1], ARGV[i])
    x[#x + 1] = ARGV[i]
    x[#x + 1] = ''
  end
end
if #x == 0 then return tonumber(redis.call('GET', KEYS[2]) or '0') end
redis.call('SET', KEYS[4], ARGV[3], 'NX')
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '=', ARGV[2], seq .. '-0', 'op', 'withdraw', 'owner', ARGV[1], unpack(x))
return seq`,
  // KEYS dir, dir:seq, epoch. -> {seq, epoch, {ref, owner\\nvalue, ...}}
  dirSnapshot: `
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('GET', KEYS[3]) or '', redis.call('HGETALL', KEYS[1])}`,
  // KEYS peers, peers:info, peers:seq, peers:log, epoch. ARGV history -> number reaped
  reap: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[1], seq .. '-0', 'type', 'leave', 'id', id, 'reason', 'expired')
end
return #gone`,
  // KEYS as reap. ARGV id, info, ttl, history, epoch candidate -> 1 joined, 0 refreshed
  heartbeat: `
redis.call('SET', KEYS[5], ARGV[5], 'NX')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local info = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if old and tonumber(old) > now and info == ARGV[2] then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[4], seq .. '-0', 'type', 'join', 'id', ARGV[1], 'info', ARGV[2])
return 1`,
  // KEYS as reap. ARGV id, history -> 1 removed, 0 not there
  removePeer: `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[2], seq .. '-0', 'type', 'leave', 'id', ARGV[1], 'reason', 'removed')
return 1`,
  // KEYS as reap. ARGV history -> {seq, epoch, now, {id, expiry, ...}, {info, ...}}; reaps first
  peerSnapshot: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[1], seq .. '-0', 'type', 'leave', 'id', id, 'reason', 'expired')
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local infos = {}
for i = 1, #live, 2 do infos[#infos + 1] = redis.call('HGET', KEYS[2], live[i]) or '' end
return {tonumber(redis.call('GET', KEYS[3]) or '0'), redis.call('GET', KEYS[5]) or '', now, live, infos}`,
  // KEYS rec. ARGV value, ifVersion ('' none) -> {1, version} | {0, v, o, n} | {0}
  put: `
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= n then
  if n == 0 then return {0} end
  return {0, redis.call('HGET', KEYS[1], 'v'), redis.call('HGET', KEYS[1], 'o') or '', n}
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', n + 1)
return {1, n + 1}`,
  // KEYS rec. ARGV owner, from ('' nobody) -> {won, v, o, n} | {-1} (absent, from given)
  claim: `
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local holder = redis.call('HGET', KEYS[1], 'o') or ''
if holder == ARGV[1] then return {1, redis.call('HGET', KEYS[1], 'v'), holder, n} end
if holder ~= ARGV[2] then
  if n == 0 then return {-1} end
  return {0, redis.call('HGET', KEYS[1], 'v'), holder, n}
end
local v = redis.call('HGET', KEYS[1], 'v') or ''
redis.call('HSET', KEYS[1], 'v', v, 'o', ARGV[1], 'n', n + 1)
return {1, v, ARGV[1], n + 1}`,
  // KEYS rec. ARGV owner ('' any), ifVersion ('' any) -> 1 | 0
  del: `
local n = redis.call('HGET', KEYS[1], 'n')
if not n then return 0 end
if ARGV[1] ~= '' and (redis.call('HGET', KEYS[1], 'o') or '') ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= tonumber(n) then return 0 end
return redis.call('DEL', KEYS[1])`,
} as const;
type ScriptName = keyof typeof SCRIPTS;

// ---------------------------------------------------------------------------
// Reply shapes (RESP2 with bulk strings as Buffers): checked, not assumed.

type Reply = Buffer | number | null | Reply[];

function bad(what: string, got: unknown): BatonError {
  return new BatonError(
    'STORE_UNAVAILABLE',
    `the store answered ${what} with an unexpected shape (${JSON.stringify(got)?.slice(0, 120)}); is it Redis 7 or later?`,
    'bad_reply',
  );
}
function arr(x: unknown, what: string): Reply[] {
  if (!Array.isArray(x)) throw bad(what, x);
  return x as Reply[];
}
function buf(x: unknown, what: string): Buffer {
  if (Buffer.isBuffer(x)) return x;
  throw bad(what, x);
}
function int(x: unknown, what: string): number {
  if (typeof x === 'number') return x;
  if (Buffer.isBuffer(x) && /^-?\d+$/.test(x.toString())) return Number(x.toString());
  throw bad(what, x);
}
function str(x: unknown, what: string): string {
  return buf(x, what).toString('utf8');
}

/** One stream entry: [id, [field, value, ...]] -> seq and fields. */
function streamEntry(x: unknown): { seq: number; fields: Buffer[] } {
  const [id, fields] = arr(x, 'XREAD');
  const m = /^(\d+)-0$/.exec(str(id, 'XREAD id'));
  if (!m) throw bad('XREAD id', id);
  return { seq: Number(m[1]), fields: arr(fields, 'XREAD fields').map((f) => buf(f, 'XREAD field')) };
}

function dirChange(seq: number, f: Buffer[]): DirectoryChange {
  const op = f[1]?.toString();
  if (f[0]?.toString() !== 'op' || (op !== 'publish' && op !== 'withdraw') || f[2]?.toString() !== 'owner') {
    throw bad('a directory change', f.map(String));
  }
  const entries: { ref: string; value: Buffer }[] = [];
  for (let i = 4; i + 1 < f.length; i += 2) entries.push({ ref: String(f[i]), value: f[i + 1] as Buffer });
  return { seq, op, owner: String(f[3]), entries };
}

function peerChange(seq: number, f: Buffer[]): PeerChange {
  const kv = new Map<string, Buffer>();
  for (let i = 0; i + 1 < f.length; i += 2) kv.set(String(f[i]), f[i + 1] as Buffer);
  const id = kv.get('id')?.toString();
  const type = kv.get('type')?.toString();
  if (!id) throw bad('a peer change', f.map(String));
  if (type === 'join') return { seq, type, peer: { id, info: kv.get('info') ?? Buffer.alloc(0) } };
  const reason = kv.get('reason')?.toString();
  if (type === 'leave' && (reason === 'expired' || reason === 'removed')) return { seq, type, id, reason };
  throw bad('a peer change', f.map(String));
}

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
    const [seq, epoch, flat] = arr(
      await this.run('dirSnapshot', [this.k.dir as string, this.k.dirSeq as string, this.k.epoch as string], []),
      'snapshot',
    );
    const entries: DirectoryEntry[] = [];
    const f = arr(flat, 'snapshot entries');
    for (let i = 0; i + 1 < f.length; i += 2) {
      const v = buf(f[i + 1], 'entry');
      const nl = v.indexOf(0x0a);
      if (nl < 1) throw bad('a directory entry', v.toString());
      entries.push({
        ref: str(f[i], 'ref'),
        owner: v.subarray(0, nl).toString(),
        value: Buffer.from(v.subarray(nl + 1)),
      });
    }
    return { seq: int(seq, 'seq'), epoch: str(epoch, 'epoch'), entries };
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
    const [seq, epoch, now, live, infos] = arr(
      await this.run('peerSnapshot', this.peerKeys(), [String(this.history)]),
      'peer snapshot',
    );
    const l = arr(live, 'peers');
    const inf = arr(infos, 'peer infos');
    const t = int(now, 'now');
    const peers: LivePeer[] = [];
    for (let i = 0; i + 1 < l.length; i += 2) {
      peers.push({
        id: str(l[i], 'peer id'),
        info: Buffer.from(buf(inf[i / 2], 'peer info')),
        expiresInMs: Number(str(l[i + 1], 'expiry')) - t,
      });
    }
    return { seq: int(seq, 'seq'), epoch: str(epoch, 'epoch'), peers };
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
