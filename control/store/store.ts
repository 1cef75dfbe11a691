/**
 * The shared store (design.md §2): what several LB hosts and agents must
 * share. Three kinds of data, one interface, two implementations
 * (control/store/memory.ts: embedded, one host; control/store/redis.ts:
 * Redis, several hosts), both run against test/store/conformance.ts.
 *
 *   - the owner directory (004): each LB publishes the connections it owns,
 *     keyed by a flow reference, and withdraws them; every LB reads the whole
 *     directory and follows its changes. Changes carry a contiguous sequence
 *     number, so a follower that missed some (slow, disconnected, restarted)
 *     notices the gap and is handed a fresh snapshot instead of silently
 *     diverging.
 *   - peers: each host registers itself with a TTL and refreshes it; a host
 *     that stops refreshing (crashed, partitioned) expires and every watcher
 *     is told it left.
 *   - records: keyed opaque values with an owner and a version, changed only
 *     atomically (compare-and-set on the version, claim on the owner); what
 *     takeover checkpoints (003) need: exactly one survivor wins a claim.
 *
 * Values are opaque Buffers at this layer. What an owner-directory entry or a
 * peer's info means, and how it is encoded, belongs to its user (the owner
 * directory in control/owner/, the checkpoint codec in control/takeover/):
 * the store only moves bytes and bounds their size.
 */
import { BatonError } from '../errors.js';

/** Limits, the one source of truth for both implementations and their tests. */
export const STORE_LIMITS = {
  /** a flow reference, record key, owner or peer id: printable ASCII, no blank */
  keyBytes: 256,
  /** one owner-directory entry's value (the owner's encoding of a connection) */
  entryBytes: 4096,
  /** entries in one publish or withdraw: one atomic change; also keeps a Redis script's argument list bounded */
  batchEntries: 1000,
  /** a peer's info (its addresses, ports, version) */
  peerInfoBytes: 4096,
  /** a record (a takeover checkpoint bundles a few connections' state) */
  recordBytes: 1 << 20,
  /** peer TTL bounds: below 50 ms refreshes would flood; above 10 min a dead host lingers */
  minTtlMs: 50,
  maxTtlMs: 600_000,
} as const;

/** Defaults; overridable per store (tests shorten them). */
export const STORE_DEFAULTS = {
  /** changes kept for followers that fall behind; an older cursor gets a snapshot */
  history: 10_000,
  /** how often a store that watches peers looks for expired ones */
  reapIntervalMs: 1000,
  /** at most this many changes in one delivered batch */
  batchLimit: 1000,
} as const;

export interface DirectoryEntry {
  /** the flow reference, e.g. the owner directory's "client ip:port" key */
  ref: string;
  /** the host that owns the connection (its peer id) */
  owner: string;
  value: Buffer;
}

export interface DirectoryChange {
  seq: number;
  op: 'publish' | 'withdraw';
  owner: string;
  /** publish: the entries as stored; withdraw: the refs removed (value empty) */
  entries: { ref: string; value: Buffer }[];
}

export interface Peer {
  id: string;
  info: Buffer;
}

export interface LivePeer extends Peer {
  /** how long until this peer expires unless it refreshes */
  expiresInMs: number;
}

export type PeerChange =
  | { seq: number; type: 'join'; peer: Peer }
  | { seq: number; type: 'leave'; id: string; reason: 'expired' | 'removed' };

export interface StoredRecord {
  key: string;
  value: Buffer;
  /** who holds the record; null when nobody has claimed it */
  owner: string | null;
  /** 1 on creation, +1 on every change (put or claim) */
  version: number;
}

export type PutResult = { ok: true; version: number } | { ok: false; current: StoredRecord | undefined };
export interface ClaimResult {
  won: boolean;
  /** the record after the attempt: on a loss, who holds it */
  record: StoredRecord;
}

/**
 * What a follower is handed: a snapshot replaces everything it knew (first
 * delivery, and after any gap); changes follow in sequence order, the first
 * one's seq being exactly one past the previous delivery's.
 */
export type FeedEvent<S, C> = { kind: 'snapshot'; seq: number; state: S } | { kind: 'changes'; changes: C[] };
export type FeedHandler<S, C> = (event: FeedEvent<S, C>) => void | Promise<void>;

export interface FeedOptions {
  /** the seq the follower already holds (e.g. from an earlier run): changes after it, or a snapshot if they are gone */
  fromSeq?: number;
  /** store trouble (STORE_UNAVAILABLE) or a handler that threw (INTERNAL, reason handler) while following; the feed retries with backoff */
  onError?: (err: BatonError) => void;
}

export interface Subscription {
  /** the seq of the last delivery handled */
  readonly seq: number;
  close(): Promise<void>;
}

export interface Store {
  readonly kind: 'memory' | 'redis';

  // Owner directory.
  /** Sets the entries (new, or moved from another owner) as owned by owner, as one change. Returns its seq. */
  publish(owner: string, entries: readonly { ref: string; value: Buffer }[]): Promise<number>;
  /** Removes those of refs that owner holds (another owner's entry stays). Returns the seq of the change, or the current seq when nothing was removed. */
  withdraw(owner: string, refs: readonly string[]): Promise<number>;
  /** The whole directory, consistent with seq. */
  readDirectory(): Promise<{ seq: number; entries: DirectoryEntry[] }>;
  followDirectory(handler: FeedHandler<DirectoryEntry[], DirectoryChange>, options?: FeedOptions): Subscription;

  // Peers.
  /** Registers or refreshes peer for ttlMs; joined is true when watchers were told it joined (new, expired before, or info changed). */
  heartbeatPeer(peer: Peer, ttlMs: number): Promise<{ joined: boolean }>;
  /** Deregisters now (a clean stop); false when it was not registered. */
  removePeer(id: string): Promise<boolean>;
  /** Live peers (expired ones are reaped first). */
  listPeers(): Promise<{ seq: number; peers: LivePeer[] }>;
  followPeers(handler: FeedHandler<LivePeer[], PeerChange>, options?: FeedOptions): Subscription;

  // Records.
  get(key: string): Promise<StoredRecord | undefined>;
  /** Writes the value (owner unchanged); with ifVersion, only if the record is at that version (0: does not exist). */
  put(key: string, value: Buffer, options?: { ifVersion?: number }): Promise<PutResult>;
  /**
   * Makes owner the record's owner if it is now held by `from` (default
   * null: nobody; an absent record is created empty). Atomic: of concurrent
   * claimers with the same `from`, exactly one wins. Claiming what one
   * already holds wins again (idempotent).
   */
  claim(key: string, owner: string, options?: { from?: string | null }): Promise<ClaimResult>;
  /** Deletes; with owner or ifVersion only if they match. False when nothing was deleted. */
  delete(key: string, options?: { owner?: string; ifVersion?: number }): Promise<boolean>;

  /** Stops every feed and timer and closes connections; later calls fail with STORE_UNAVAILABLE closed. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Validation: pure, shared by both implementations so both refuse alike.

const KEY_RE = /^[\x21-\x7e]+$/;

/** Refuses a key/ref/id that is empty, too long, or has blanks or non-ASCII (they end up in Redis keys, stream fields and messages). */
export function checkKey(what: string, key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new BatonError('STORE_REFUSED', `${what} must be a non-empty string`, 'bad_key');
  }
  if (key.length > STORE_LIMITS.keyBytes) {
    throw new BatonError(
      'STORE_REFUSED',
      `${what} is ${key.length} bytes; at most ${STORE_LIMITS.keyBytes} are allowed`,
      'key_too_long',
    );
  }
  if (!KEY_RE.test(key)) {
    throw new BatonError(
      'STORE_REFUSED',
      `${what} ${JSON.stringify(key.slice(0, 64))} has a blank, control or non-ASCII character; use printable ASCII`,
      'bad_key',
    );
  }
  return key;
}

export function checkValue(what: string, value: unknown, max: number): Buffer {
  if (!(value instanceof Uint8Array)) throw new BatonError('STORE_REFUSED', `${what} must be a Buffer`, 'bad_value');
  if (value.byteLength > max) {
    throw new BatonError(
      'STORE_REFUSED',
      `${what} is ${value.byteLength} bytes; at most ${max} are allowed`,
      'value_too_large',
    );
  }
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

export function checkBatch<T>(what: string, items: readonly T[], refOf: (t: T) => unknown): string[] {
  if (!Array.isArray(items)) throw new BatonError('STORE_REFUSED', `${what} must be an array`, 'bad_batch');
  if (items.length > STORE_LIMITS.batchEntries) {
    throw new BatonError(
      'STORE_REFUSED',
      `${what} has ${items.length} entries; at most ${STORE_LIMITS.batchEntries} go in one change: split it`,
      'batch_too_large',
    );
  }
  const seen = new Set<string>();
  return items.map((t, i) => {
    const ref = checkKey(`${what}[${i}] ref`, refOf(t));
    if (seen.has(ref)) throw new BatonError('STORE_REFUSED', `${what} names ${ref} twice`, 'duplicate_ref');
    seen.add(ref);
    return ref;
  });
}

export function checkTtl(ttlMs: unknown): number {
  if (
    typeof ttlMs !== 'number' ||
    !Number.isInteger(ttlMs) ||
    ttlMs < STORE_LIMITS.minTtlMs ||
    ttlMs > STORE_LIMITS.maxTtlMs
  ) {
    throw new BatonError(
      'STORE_REFUSED',
      `a peer TTL must be an integer from ${STORE_LIMITS.minTtlMs} to ${STORE_LIMITS.maxTtlMs} ms, got ${String(ttlMs)}`,
      'bad_ttl',
    );
  }
  return ttlMs;
}

export function checkVersion(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new BatonError('STORE_REFUSED', `${what} must be a non-negative integer, got ${String(v)}`, 'bad_version');
  }
  return v;
}

export function closedError(kind: string): BatonError {
  return new BatonError(
    'STORE_UNAVAILABLE',
    `the ${kind} store was closed; open a new one (this is a bug in the caller if the daemon is not stopping)`,
    'closed',
  );
}

/** JSON values for users that want them: the store itself stays byte-oriented. */
export function jsonValue(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}
export function fromJson<T = unknown>(b: Buffer): T {
  return JSON.parse(b.toString('utf8')) as T;
}

// ---------------------------------------------------------------------------
// The follower loop, one for both implementations and both feeds: a cursor,
// contiguous sequence numbers, a snapshot whenever the next change is gone.

export interface FeedSource<S, C extends { seq: number }> {
  snapshot(): Promise<{ seq: number; state: S }>;
  /**
   * Changes after `after`, oldest first, at most limit; when there are none
   * yet, waits for one until signal aborts or an implementation-chosen
   * timeout (then []). 'gap' when change after+1 is no longer held or the
   * store's history is not the one the cursor came from.
   */
  read(after: number, limit: number, signal: AbortSignal): Promise<C[] | 'gap'>;
}

/** Backoff between retries after store trouble: 50 ms doubling to 2 s, with jitter so hosts do not retry in step. */
export function backoffMs(attempt: number): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function runFeed<S, C extends { seq: number }>(
  source: FeedSource<S, C>,
  handler: FeedHandler<S, C>,
  options: FeedOptions & { batchLimit?: number } = {},
): Subscription {
  const ac = new AbortController();
  const limit = options.batchLimit ?? STORE_DEFAULTS.batchLimit;
  let cursor: number | undefined = options.fromSeq;
  if (cursor !== undefined) checkVersion('fromSeq', cursor);
  // Backoff that close() cuts short. The abort listener goes when the timer
  // fires: one per retry would pile up on the signal for as long as the store is away.
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        ac.signal.removeEventListener('abort', wake);
        resolve();
      }, ms);
      ac.signal.addEventListener('abort', wake, { once: true });
    });
  // A handler that throws gets the same delivery again after backoff (at least once, in order);
  // its error is reported as the handler's, not as store trouble.
  const deliver = async (event: FeedEvent<S, C>) => {
    try {
      await handler(event);
    } catch (err) {
      throw new BatonError(
        'INTERNAL',
        `a store follower's handler failed (${String(err)}); the same delivery is retried`,
        'handler',
        { cause: err },
      );
    }
  };
  const loop = async () => {
    let failures = 0;
    while (!ac.signal.aborted) {
      try {
        if (cursor === undefined) {
          const snap = await source.snapshot();
          if (ac.signal.aborted) return;
          await deliver({ kind: 'snapshot', seq: snap.seq, state: snap.state });
          cursor = snap.seq;
        } else {
          const got = await source.read(cursor, limit, ac.signal);
          if (ac.signal.aborted) return;
          if (got === 'gap' || (got.length > 0 && got[0]?.seq !== cursor + 1)) {
            cursor = undefined; // missed some: start over from a snapshot
            continue;
          }
          if (got.length > 0) {
            await deliver({ kind: 'changes', changes: got });
            cursor = got[got.length - 1]?.seq ?? cursor;
          }
        }
        failures = 0;
      } catch (err) {
        if (ac.signal.aborted) return;
        const e =
          err instanceof BatonError
            ? err
            : new BatonError('STORE_UNAVAILABLE', `following the store failed: ${String(err)}`, 'feed', {
                cause: err,
              });
        options.onError?.(e);
        await sleep(backoffMs(failures++));
      }
    }
  };
  const done = loop();
  return {
    get seq() {
      return cursor ?? -1;
    },
    async close() {
      ac.abort();
      await done;
    },
  };
}
