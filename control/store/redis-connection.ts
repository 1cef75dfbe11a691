/**
 * RedisStore's connection to the server: the node-redis client (RESP2,
 * Buffers in and out: values are opaque bytes), connecting with a deadline,
 * reconnecting with backoff, the commands and scripts sent over it, the extra
 * connections feeds read on, and closing it all.
 *
 * Errors: the connection's trouble becomes STORE_UNAVAILABLE with a reason
 * (connection_refused, auth_failed, permission_denied, tls, timeout,
 * disconnected, closed) and a message naming the store (password redacted)
 * and what to check (the classification is storeError in redis-url.ts).
 * While disconnected, commands fail at once (no offline queue: the caller
 * decides what to retry) and the client reconnects with backoff; feeds
 * resume from their cursor.
 */
import { readFileSync } from 'node:fs';
import { createClient, RESP_TYPES } from '@redis/client';
import { BatonError } from '../errors.js';
import { type Reply, str } from './redis-replies.js';
import { SCRIPTS, type ScriptName } from './redis-scripts.js';
import { type RedisTarget, storeError, where } from './redis-url.js';
import { backoffMs, closedError } from './store.js';

/** The client as created below: RESP2, no modules or scripts of node-redis's own. */
function newClient(options: Parameters<typeof createClient>[0]) {
  return createClient({ ...options, RESP: 2 });
}
export type RedisClient = ReturnType<typeof newClient>;
const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer } as const;

/** The CA file a rediss:// URL names (?ca=), read once at connect; CONFIG_INVALID when it cannot be read. */
export function readCaFile(target: RedisTarget): Buffer | undefined {
  if (!target.caFile) return undefined;
  try {
    return readFileSync(target.caFile);
  } catch (err) {
    throw new BatonError(
      'CONFIG_INVALID',
      `--store ${target.redacted}: cannot read the CA file ${target.caFile} (${(err as Error).message})`,
      'store_ca_unreadable',
      { cause: err },
    );
  }
}

export class RedisConnection {
  private readonly client: RedisClient;
  private readonly shas = new Map<ScriptName, string>();
  /** the feeds' own connections (XREAD BLOCK holds one), destroyed at close if still open */
  private readonly readers = new Set<RedisClient>();
  private isClosed = false;
  /** set once the first connection succeeded */
  private connected = false;
  /** the last connection trouble seen (for messages; the client reconnects by itself) */
  lastError: BatonError | undefined;

  /** Creates the client; nothing is sent until connect(). */
  constructor(
    readonly target: RedisTarget,
    ca: Buffer | undefined,
    private readonly connectTimeoutMs: number,
  ) {
    this.client = this.makeClient(ca);
  }

  /** true from the start of close(): the store refuses calls, commands fail as closed, nothing reconnects */
  get closed(): boolean {
    return this.isClosed;
  }

  /** whether the main connection is up right now (when not, commands fail at once and it reconnects by itself) */
  get ready(): boolean {
    return this.client.isReady;
  }

  private makeClient(ca: Buffer | undefined): RedisClient {
    const t = this.target;
    const connectTimeout = this.connectTimeoutMs;
    const reconnectStrategy = (retries: number, cause: Error): number | false => {
      if (this.isClosed) return false;
      const e = storeError(t, cause, this.connected ? 'reconnecting' : 'connecting');
      this.lastError = e;
      const lasting = e.reason === 'auth_failed' || e.reason === 'permission_denied' || e.reason === 'tls';
      // At start, credentials or TLS that are wrong now will not be right in a
      // moment: fail at once (a refused connection is retried: the server may
      // be starting). Later an operator may fix the server: keep trying, slowly.
      if (lasting) return this.connected ? 2000 : false;
      return backoffMs(retries);
    };
    const socket = t.path
      ? { path: t.path, tls: false as const, connectTimeout, reconnectStrategy }
      : t.tls
        ? {
            host: t.host as string,
            port: t.port as number,
            tls: true as const,
            ...(ca && { ca }),
            ...(t.servername && { servername: t.servername }),
            connectTimeout,
            reconnectStrategy,
          }
        : { host: t.host as string, port: t.port as number, connectTimeout, reconnectStrategy };
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

  /** Connects (trying with backoff for connectTimeoutMs) and checks the server answers; throws STORE_UNAVAILABLE saying why not. */
  async connect(): Promise<void> {
    await this.connectOrThrow(this.client, this.connectTimeoutMs, 'connecting');
    this.connected = true;
    try {
      await this.cmd(['PING']);
    } catch (err) {
      await this.close(async () => {});
      throw storeError(this.target, err, 'checking the connection');
    }
  }

  /** connect() with a deadline: the client retries by itself, which on a wrong address would be forever. */
  async connectOrThrow(client: RedisClient, timeoutMs: number, doing: string): Promise<void> {
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

  /** A connection of a feed's own, not yet connected (connectOrThrow it); destroyed by release() or close(). */
  newReader(): RedisClient {
    const r = this.client.duplicate();
    r.on('error', () => {});
    this.readers.add(r);
    return r;
  }

  release(reader: RedisClient): void {
    this.readers.delete(reader);
    if (reader.isOpen) reader.destroy(); // a failed connect destroyed it already
  }

  /** One command (on the main client unless another is given); its trouble as a catalogue error. */
  async cmd(args: (string | Buffer)[], client: RedisClient = this.client): Promise<Reply> {
    try {
      return (await client.sendCommand(args, { typeMapping: BUFFERS })) as Reply;
    } catch (err) {
      if (this.isClosed) throw closedError('redis');
      throw storeError(this.target, err, `${args[0]}`);
    }
  }

  /** EVALSHA, loading the script on NOSCRIPT (a restarted or flushed server). */
  async run(name: ScriptName, keys: string[], args: (string | Buffer)[]): Promise<Reply> {
    if (this.isClosed) throw closedError('redis');
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

  /**
   * Closes once: from here on commands fail as closed and nothing reconnects;
   * stopUsers (the feeds) runs next, then the readers left are destroyed and
   * the main connection closes gracefully (pending replies are awaited).
   */
  async close(stopUsers: () => Promise<void>): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await stopUsers();
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
