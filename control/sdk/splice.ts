/**
 * splice(): hands a front end's two connected sockets to baton, which joins
 * them in the datapath so the front end holds nothing afterwards.
 *
 * The hard part is Node's read side. `socket.pause()` only stops 'data'
 * events: libuv keeps reading from the kernel into the stream's buffer
 * (unless the socket was made with `onread`). Bytes read into Node are
 * acknowledged by the kernel but invisible to baton, so they would be lost.
 * So the first thing splice() does, synchronously, is stop the handle's
 * kernel reads (readStop) and keep Node from restarting them; bytes Node had
 * already buffered on the client socket are taken out and sent to the back
 * end as part of `prefix` (after the caller's own prefix). A back-end
 * socket with buffered response bytes cannot be spliced byte-exactly and is
 * refused before asking the daemon.
 *
 * The daemon is asked over REST (POST /v1/splices with {pid, fd}) or, with
 * `channel`, over the local handoff channel (control/sdk/handoff-channel.ts:
 * the descriptors themselves, SCM_RIGHTS); everything else is the same.
 *
 * On 201 the daemon has taken both sockets in repair mode and released them:
 * closing ours sends nothing, so both are destroyed. On any error both are
 * given back exactly as they were (buffered bytes restored, reading resumed)
 * and a BatonApiError is thrown: the caller can relay in userspace instead.
 */
import type net from 'node:net';
import { ERRORS } from '../errors.js';
import { type BatonClient, createClient } from './client.js';
import { BatonApiError } from './errors.js';
import type { Migration, Splice } from './types.js';

export interface SpliceOptions {
  /** Client bytes the caller has read and not forwarded (usually the first request). */
  prefix?: Buffer;
  /** API client (default: one built from BATON_API / BATON_TOKEN). */
  client?: BatonClient;
  /** How long the daemon may wait for both connections to go quiet (ms; daemon default when unset). */
  quiesceTimeoutMs?: number;
  /** Ask over the local handoff channel instead of REST (openHandoffChannel; `client` is not used then). */
  channel?: SpliceChannel;
}

/** What splice() needs of the handoff channel: one request with the two descriptors (control/sdk/handoff-channel.ts). */
export interface SpliceChannel {
  request(clientFd: number, backendFd: number, prefix: Buffer, quiesceTimeoutMs?: number): Promise<Splice>;
}

/** What splice() needs of Node's internal TCP handle (stable since Node 12, present through 24). */
interface TcpHandle {
  fd: number;
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

interface Held {
  socket: net.Socket;
  handle: TcpHandle;
  wasReading: boolean;
  wasFlowing: boolean | null;
  /** bytes taken out of Node's read buffer, to put back on failure */
  drained: Buffer;
}

/** How long Node-buffered writes may take to reach the kernel before we give up (ms). */
const WRITE_FLUSH_TIMEOUT_MS = 500;

let defaultClient: BatonClient | undefined;
/** The client of calls that name none: one per process, made on first use. */
function sharedClient(): BatonClient {
  defaultClient ??= createClient();
  return defaultClient;
}

export async function splice(
  clientSocket: net.Socket,
  backendSocket: net.Socket,
  opts: SpliceOptions = {},
): Promise<Splice> {
  if (clientSocket === backendSocket)
    throw new TypeError('splice: the client and back-end sockets must be two different sockets');
  // Synchronously, before anything can yield to the event loop: no byte may reach Node from here on.
  const c = hold(clientSocket, 'client');
  let b: Held;
  try {
    b = hold(backendSocket, 'back-end');
  } catch (e) {
    giveBack(c);
    throw e;
  }
  try {
    c.drained = drainReadBuffer(clientSocket);
    if (backendSocket.readableLength > 0) {
      throw refusal(
        'SPLICE_REFUSED',
        'backend_unread',
        `the back-end socket holds ${backendSocket.readableLength} response bytes Node has read but nobody consumed; baton cannot deliver them to the client. Splice only pooled back-end connections that are idle (no response pending)`,
      );
    }
    // Usually nothing is queued: no await then (each is a microtask trip).
    if (clientSocket.writableLength > 0 || backendSocket.writableLength > 0)
      await flushWrites([clientSocket, backendSocket]);
    const prefix = Buffer.concat([opts.prefix ?? Buffer.alloc(0), c.drained]);
    const result = opts.channel
      ? await opts.channel.request(c.handle.fd, b.handle.fd, prefix, opts.quiesceTimeoutMs)
      : await (opts.client ?? sharedClient()).createSplice({
          client: { pid: process.pid, fd: c.handle.fd },
          backend: { pid: process.pid, fd: b.handle.fd },
          ...(prefix.length > 0 ? { prefix: prefix.toString('base64') } : {}),
          ...(opts.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: opts.quiesceTimeoutMs } : {}),
        });
    // Both sockets are in repair mode (and released by baton): closing them is silent.
    clientSocket.destroy();
    backendSocket.destroy();
    return result;
  } catch (e) {
    giveBack(b);
    giveBack(c);
    throw e;
  }
}

export interface MigrateOptions {
  /** The back end's agent ("ip:port"), one of the LB's --agent addresses. */
  agent: string;
  /** Client bytes the caller has read (the first request): the back end's app reads them first. */
  received?: Buffer;
  appProtocol?: string;
  /** How long the agent may take to confirm (ms; daemon default when unset). */
  timeoutMs?: number;
  client?: BatonClient;
  /** Ask over the local handoff channel instead of REST (openHandoffChannel; `client` is not used then). */
  channel?: MigrateChannel;
}

/** What migrate() needs of the handoff channel: one request with the client descriptor (control/sdk/handoff-channel.ts). */
export interface MigrateChannel {
  requestMigrate(
    clientFd: number,
    r: { agent: string; received?: Buffer; appProtocol?: string; timeoutMs?: number },
  ): Promise<Migration>;
}

/**
 * Migrate mode: moves the client connection itself to the back end's agent,
 * which hands it to the app there; the back end answers the client
 * directly. The same read-side care as splice(). On success the socket is
 * destroyed (closing it sends nothing); on any error it is given back as it
 * was and a BatonApiError is thrown: the caller can relay or answer itself.
 */
export async function migrate(clientSocket: net.Socket, opts: MigrateOptions): Promise<Migration> {
  const c = hold(clientSocket, 'client');
  try {
    c.drained = drainReadBuffer(clientSocket);
    await flushWrites([clientSocket]);
    const received = Buffer.concat([opts.received ?? Buffer.alloc(0), c.drained]);
    const common = {
      agent: opts.agent,
      ...(opts.appProtocol ? { appProtocol: opts.appProtocol } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    };
    const result = opts.channel
      ? await opts.channel.requestMigrate(c.handle.fd, { ...common, ...(received.length > 0 ? { received } : {}) })
      : await (opts.client ?? sharedClient()).createMigration({
          client: { pid: process.pid, fd: c.handle.fd },
          ...common,
          ...(received.length > 0 ? { received: received.toString('base64') } : {}),
        });
    clientSocket.destroy();
    return result;
  } catch (e) {
    giveBack(c);
    throw e;
  }
}

/** A later handoff of spliced connection `id` to another back end ("ip:port"). */
export function handoff(
  id: string,
  backend: string,
  opts: { client?: BatonClient; quiesceTimeoutMs?: number } = {},
): Promise<Splice> {
  const api = opts.client ?? sharedClient();
  return api.handoff(
    id,
    backend,
    opts.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: opts.quiesceTimeoutMs } : {},
  );
}

function handleOf(s: net.Socket, which: string): TcpHandle {
  const h = (s as unknown as { _handle?: Partial<TcpHandle> | null })._handle;
  if (s.destroyed || !h) throw new TypeError(`splice: the ${which} socket is destroyed`);
  if (s.connecting)
    throw new TypeError(`splice: the ${which} socket is still connecting; call splice() after its 'connect' event`);
  if (typeof h.fd !== 'number' || h.fd < 0 || typeof h.readStop !== 'function' || typeof h.readStart !== 'function') {
    throw new TypeError(`splice: the ${which} socket has no kernel descriptor (not a TCP socket of this process?)`);
  }
  return h as TcpHandle;
}

function hold(socket: net.Socket, which: string): Held {
  const handle = handleOf(socket, which);
  const held: Held = {
    socket,
    handle,
    wasReading: handle.reading === true,
    wasFlowing: socket.readableFlowing,
    drained: Buffer.alloc(0),
  };
  if (held.wasReading) {
    handle.reading = false;
    handle.readStop();
  }
  // Node restarts kernel reads from _read() whenever its buffer runs low; an
  // own no-op shadows the prototype's until giveBack() deletes it.
  (socket as unknown as { _read: () => void })._read = () => {};
  // Only a flowing stream needs pausing; pausing one that never flowed would
  // leave it "explicitly paused", so a later 'data' listener would not start it.
  if (held.wasFlowing) socket.pause();
  return held;
}

function giveBack(h: Held): void {
  const s = h.socket as unknown as { _read?: unknown };
  delete s._read;
  if (h.socket.destroyed) return;
  if (h.drained.length > 0) h.socket.unshift(h.drained);
  if (h.wasReading && !h.handle.reading) {
    h.handle.reading = true;
    h.handle.readStart();
  }
  if (h.wasFlowing) h.socket.resume();
}

/** Bytes in Node's read buffer, taken without firing the caller's 'data' listeners. */
function drainReadBuffer(socket: net.Socket): Buffer {
  if (socket.readableLength === 0) return Buffer.alloc(0);
  const listeners = socket.rawListeners('data') as ((...a: unknown[]) => void)[];
  socket.removeAllListeners('data');
  try {
    const chunks: Buffer[] = [];
    for (;;) {
      const chunk: unknown = socket.read();
      if (chunk === null) break;
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    }
    return Buffer.concat(chunks);
  } finally {
    // Not flowing (paused by hold(), or never started), so re-adding does not start the stream.
    for (const l of listeners) socket.on('data', l);
  }
}

/** Bytes the caller wrote that Node has not yet handed to the kernel must get there first. */
async function flushWrites(sockets: net.Socket[]): Promise<void> {
  const deadline = Date.now() + WRITE_FLUSH_TIMEOUT_MS;
  for (const s of sockets) {
    while (s.writableLength > 0) {
      if (Date.now() >= deadline) {
        throw refusal(
          'NOT_QUIESCENT',
          'unsent_data',
          `a socket still has ${s.writableLength} bytes queued in Node after ${WRITE_FLUSH_TIMEOUT_MS} ms; splice once your writes have drained`,
        );
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

function refusal(code: 'SPLICE_REFUSED' | 'NOT_QUIESCENT', reason: string, detail: string): BatonApiError {
  return new BatonApiError({ code, ...ERRORS[code], detail, reason });
}
