/**
 * RedisStore's feeds: following the directory's or the peer set's stream of
 * changes (FeedSource over XREAD, driven by store.ts's runFeed), and the
 * reaper that makes expired peers leave.
 *
 * Why Streams and not pub/sub for changes: pub/sub drops whatever is sent
 * while a subscriber is disconnected and says nothing; a stream keeps a
 * window of changes addressed by seq, so a follower reconnecting resumes at
 * its cursor (XREAD from "<seq>-0") and one that fell out of the window sees
 * the gap and reads a snapshot. The change itself (state + seq + log entry)
 * is one Lua script: atomic, so a snapshot's seq is exact.
 *
 * Peers expire by the zset score; every store that lists or follows peers
 * runs the reap script (the peer snapshot reaps first; the reaper here runs
 * it on a timer while peers are followed), which removes expired peers and
 * logs their leave in one atomic step, so each leave is logged once however
 * many hosts reap.
 */
import type { RedisClient, RedisConnection } from './redis-connection.js';
import { arr, int, type Reply, str, streamEntry } from './redis-replies.js';
import { storeError } from './redis-url.js';
import { type FeedHandler, type FeedOptions, type FeedSource, runFeed, type Subscription } from './store.js';

/** One feed's stream in Redis and how to read it. */
export interface RedisStream<S, C extends { seq: number }> {
  /** the stream of changes, one entry "<seq>-0" per change */
  log: string;
  /** the string holding the last change's seq */
  seqKey: string;
  /** the whole state at one seq, with the epoch it belongs to */
  snapshot: () => Promise<{ seq: number; epoch: string; state: S }>;
  /** a stream entry's fields as a change */
  parse: (seq: number, fields: Buffer[]) => C;
}

export interface RedisFeedTuning {
  /** changes handed to a handler at most at once */
  batchLimit: number;
  /** how long a follower's XREAD blocks before it checks the epoch */
  blockMs: number;
  /** how often the reaper looks for expired peers */
  reapIntervalMs: number;
}

export class RedisFeeds {
  private readonly subs = new Set<{ close(): Promise<void> }>();
  private reaper: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: RedisConnection,
    /** <p>epoch: the random id of the data's history, set on first write */
    private readonly epochKey: string,
    private readonly tuning: RedisFeedTuning,
  ) {}

  /**
   * A feed over a stream: each follower has its own connection, since XREAD
   * BLOCK holds it. The epoch is checked after every empty or failed read: a
   * Redis that lost its data (restart without persistence) restarts seqs.
   */
  follow<S, C extends { seq: number }>(
    stream: RedisStream<S, C>,
    handler: FeedHandler<S, C>,
    options: FeedOptions = {},
  ): Subscription {
    const conn = this.conn;
    let reader: RedisClient | undefined;
    let epoch: string | undefined;
    let checkEpoch = false;
    const getReader = async (): Promise<RedisClient> => {
      if (reader?.isReady) return reader;
      if (!reader) {
        const fresh = conn.newReader();
        try {
          await conn.connectOrThrow(fresh, 5000, 'following the store');
        } catch (err) {
          // connectOrThrow destroyed it: forget it, so the feed's retry connects a new one
          // instead of failing on a dead client for ever.
          conn.release(fresh);
          throw err;
        }
        reader = fresh;
      }
      return reader;
    };
    const source: FeedSource<S, C> = {
      snapshot: async () => {
        const s = await stream.snapshot();
        epoch = s.epoch;
        return { seq: s.seq, state: s.state };
      },
      read: async (after, limit, signal) => {
        if (checkEpoch || epoch === undefined) {
          const r = arr(await conn.cmd(['MGET', this.epochKey, stream.seqKey]), 'MGET');
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
          got = await conn.cmd(
            [
              'XREAD',
              'COUNT',
              String(limit),
              'BLOCK',
              String(this.tuning.blockMs),
              'STREAMS',
              stream.log,
              `${after}-0`,
            ],
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
        return entries.map((e) => stream.parse(e.seq, e.fields));
      },
    };
    const sub = runFeed(source, handler, { ...options, batchLimit: this.tuning.batchLimit });
    const tracked = {
      get seq() {
        return sub.seq;
      },
      close: async () => {
        this.subs.delete(tracked);
        // Destroy first: a pending XREAD BLOCK would hold a graceful close.
        if (reader) conn.release(reader);
        await sub.close();
      },
    };
    this.subs.add(tracked);
    return tracked;
  }

  /** Starts the reaper once (reap: one run of the reap script); it stops at close(). */
  ensureReaper(reap: () => Promise<unknown>): void {
    if (this.reaper || this.conn.closed) return;
    this.reaper = setInterval(() => {
      reap().catch((err: unknown) => {
        if (!this.conn.closed) this.conn.lastError = storeError(this.conn.target, err, 'reaping expired peers');
      });
    }, this.tuning.reapIntervalMs);
    this.reaper.unref();
  }

  /** Stops the reaper and every feed (each destroys its reader). */
  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    await Promise.all([...this.subs].map((s) => s.close()));
  }
}
