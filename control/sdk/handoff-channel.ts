/**
 * The front end's side of the daemon's local handoff channel
 * (control/handoff/server.ts): a persistent unix socket to `baton lb` on the
 * same host that carries splice requests as binary frames
 * (control/handoff/wire.ts) with the two sockets passed as SCM_RIGHTS
 * descriptors, and answers the REST route's own Splice and problem documents.
 *
 *   const channel = await openHandoffChannel('/run/baton/handoff.sock');
 *   const s = await channel.splice(clientSocket, backendSocket, { prefix });
 *
 * splice() is control/sdk/splice.ts's with the channel as transport: the
 * same read-side care, the same result, the same BatonApiError on refusal
 * (both sockets given back untouched); migrate() likewise for migrate mode
 * (`channel.migrate(clientSocket, { agent, received })`). Requests made in one event-loop
 * tick leave in as few sendmsg calls as the descriptor limit allows.
 *
 * Replies carry no descriptors, so they are read by Node as usual; requests
 * are written with sendmsg on the socket's descriptor (never through Node's
 * write queue, so the two cannot interleave).
 */
import net from 'node:net';
import { dirname, join } from 'node:path';
import { ERRORS } from '../errors.js';
import {
  decodeReplyBody,
  FRAME_TYPE,
  FrameReader,
  MAX_FDS_PER_MESSAGE,
  MAX_REQUEST_ID,
  WireError,
} from '../handoff/wire.js';
import { encodeLegPort, encodeMigrate, encodeSplice, type MigrateFrame } from '../handoff/wire-requests.js';
import { errnoValue } from '../sys/errno.js';
import { socketFd } from '../sys/peercred.js';
import { MSG_DONTWAIT, MSG_NOSIGNAL, sendWithFds } from '../sys/scm-rights.js';
import { unreachable } from './client.js';
import { DEFAULT_API_SOCKET, HANDOFF_SOCKET_NAME } from './endpoint.js';
import { BatonApiError, isProblem } from './errors.js';
import { type MigrateOptions, migrate, type SpliceOptions, splice } from './splice.js';
import type { Migration, Splice } from './types.js';

/** The channel's socket beside an API socket (default: beside /run/baton/api.sock). */
export const handoffSocketFor = (apiSocketPath: string = DEFAULT_API_SOCKET): string =>
  join(dirname(apiSocketPath), HANDOFF_SOCKET_NAME);

export const DEFAULT_HANDOFF_SOCKET = handoffSocketFor();

/** How long a sendmsg that found the socket full waits before trying again (ms). */
const SEND_RETRY_MS = 1;
const EAGAIN = errnoValue('EAGAIN');

interface Pending {
  /** The reply type that answers it besides ERROR: SPLICED for a splice, MIGRATED for a migration, LEG_PORT_CHOSEN for a port. */
  expects: typeof FRAME_TYPE.SPLICED | typeof FRAME_TYPE.MIGRATED | typeof FRAME_TYPE.LEG_PORT_CHOSEN;
  resolve: (doc: unknown) => void;
  reject: (e: Error) => void;
}

/** Bytes still to send and the descriptors that go with their first byte. */
interface Outgoing {
  data: Buffer;
  fds: number[];
}

export class HandoffChannel {
  private readonly reader = new FrameReader('reply');
  private readonly pending = new Map<number, Pending>();
  /** Frames of this tick, not yet sent: [frame, its descriptors]. */
  private batch: Array<[Buffer, number[]]> = [];
  private outgoing: Outgoing[] = [];
  private retry: NodeJS.Timeout | undefined;
  private nextId = 1;
  private failure: BatonApiError | undefined;
  private readonly fd: number;

  private constructor(
    readonly path: string,
    private readonly socket: net.Socket,
  ) {
    this.fd = socketFd(socket) as number;
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(this.lost(e.message)));
    socket.on('close', () => this.fail(this.lost('the daemon closed it')));
  }

  /** Connects to the daemon's channel; API_UNREACHABLE (as the REST client says it) when it cannot. */
  static open(path: string): Promise<HandoffChannel> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path });
      s.once('error', (e) => reject(unreachable({ socketPath: path }, e)));
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(new HandoffChannel(path, s));
      });
    });
  }

  /** False once the channel broke or was closed: open a new one (or use REST). */
  get usable(): boolean {
    return this.failure === undefined;
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** splice() of control/sdk/splice.ts over this channel. */
  splice(clientSocket: net.Socket, backendSocket: net.Socket, opts: Omit<SpliceOptions, 'channel'> = {}) {
    return splice(clientSocket, backendSocket, { ...opts, channel: this });
  }

  /** One splice request for two descriptors of this process (what splice() calls once they are held). */
  request(clientFd: number, backendFd: number, prefix: Buffer, quiesceTimeoutMs?: number): Promise<Splice> {
    return this.enqueue<Splice>(
      FRAME_TYPE.SPLICED,
      (id) =>
        encodeSplice({
          id,
          ...(prefix.length ? { prefix } : {}),
          ...(quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs } : {}),
        }),
      [clientFd, backendFd],
    );
  }

  /** migrate() of control/sdk/splice.ts over this channel. */
  migrate(clientSocket: net.Socket, opts: Omit<MigrateOptions, 'channel' | 'client'>) {
    return migrate(clientSocket, { ...opts, channel: this });
  }

  /** One migrate request for a client descriptor of this process (what migrate() calls once it is held). */
  requestMigrate(clientFd: number, r: Omit<MigrateFrame, 'id'>): Promise<Migration> {
    return this.enqueue<Migration>(FRAME_TYPE.MIGRATED, (id) => encodeMigrate({ ...r, id }), [clientFd]);
  }

  /**
   * Local ports of the daemon's leg range for new connections from `local`
   * (the source address toward the back end) to `backend` ("ip:port"), one
   * or more (the daemon leases several at once): bind one (SO_REUSEADDR)
   * and connect, and the leg holds no socket in the daemon once spliced. Use
   * them soon: a lease reserves nothing, and a bind or connect refused with
   * EADDRINUSE / EADDRNOTAVAIL takes the next. CONFIG_INVALID when the
   * daemon has no leg range (--leg-ports off): let the kernel choose.
   */
  async legPorts(local: string, backend: string): Promise<number[]> {
    const doc = await this.enqueue<{ port?: unknown; ports?: unknown }>(
      FRAME_TYPE.LEG_PORT_CHOSEN,
      (id) => encodeLegPort({ id, local, backend }),
      [],
    );
    const isPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
    // An older daemon answers {"port": n} alone.
    const ports = Array.isArray(doc.ports) ? doc.ports : [doc.port];
    if (ports.length === 0 || !ports.every(isPort))
      throw this.badResponse(`a leg port answer without valid ports (${JSON.stringify(doc)})`);
    return ports;
  }

  private enqueue<T>(expects: Pending['expects'], encode: (id: number) => Buffer, fds: number[]): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.takeId();
    let frame: Buffer;
    try {
      frame = encode(id);
    } catch (e) {
      return Promise.reject(
        new BatonApiError({ code: 'BAD_REQUEST', ...ERRORS.BAD_REQUEST, detail: (e as Error).message }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { expects, resolve: resolve as (doc: unknown) => void, reject });
      this.batch.push([frame, fds]);
      if (this.batch.length === 1) setImmediate(() => this.flushBatch());
    });
  }

  /** Closes the channel; requests not answered yet fail with API_UNREACHABLE. */
  close(): void {
    this.fail(this.lost('closed by this front end'));
  }

  private takeId(): number {
    do {
      this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    } while (this.pending.has(this.nextId));
    return this.nextId;
  }

  /** The tick's frames in sendmsg calls of at most MAX_FDS_PER_MESSAGE descriptors each. */
  private flushBatch(): void {
    const frames = this.batch;
    this.batch = [];
    let part: Array<[Buffer, number[]]> = [];
    let partFds = 0;
    const cut = () => {
      if (part.length === 0) return;
      this.outgoing.push({ data: Buffer.concat(part.map(([f]) => f)), fds: part.flatMap(([, fds]) => fds) });
      part = [];
      partFds = 0;
    };
    for (const entry of frames) {
      if (partFds + entry[1].length > MAX_FDS_PER_MESSAGE) cut();
      part.push(entry);
      partFds += entry[1].length;
    }
    cut();
    this.send();
  }

  private send(): void {
    this.retry = undefined;
    while (!this.failure && this.outgoing.length > 0) {
      const o = this.outgoing[0] as Outgoing;
      const n = sendWithFds(this.fd, o.data, o.fds, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n === -EAGAIN) {
        // The daemon is behind: try again shortly (rare: a request is a few dozen bytes).
        this.retry = setTimeout(() => this.send(), SEND_RETRY_MS);
        return;
      }
      if (n < 0) {
        this.fail(this.lost(`sendmsg failed: errno ${-n}`));
        return;
      }
      // The descriptors went with the first byte; the rest carries none.
      if (n < o.data.length) this.outgoing[0] = { data: o.data.subarray(n), fds: [] };
      else this.outgoing.shift();
    }
  }

  private onData(d: Buffer): void {
    let frames: ReturnType<FrameReader['push']>;
    try {
      frames = this.reader.push(d);
    } catch (e) {
      this.fail(this.badResponse((e as Error).message));
      return;
    }
    for (const f of frames) {
      let doc: unknown;
      try {
        doc = decodeReplyBody(f.body);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        this.fail(this.badResponse(e.message));
        return;
      }
      if (f.id === 0) {
        // About the connection itself (a protocol violation): the daemon hangs up after it.
        this.fail(isProblem(doc) ? BatonApiError.fromProblem(doc) : this.badResponse('an error without a problem'));
        return;
      }
      const p = this.pending.get(f.id);
      if (!p) {
        this.fail(this.badResponse(`an answer to request ${f.id}, which is not under way`));
        return;
      }
      this.pending.delete(f.id);
      if (f.type === p.expects) p.resolve(doc);
      else if (f.type !== FRAME_TYPE.ERROR)
        this.fail(this.badResponse(`a reply of type 0x${f.type.toString(16)} to request ${f.id}`));
      else if (isProblem(doc)) p.reject(BatonApiError.fromProblem(doc));
      else p.reject(this.badResponse('an error frame without a problem document'));
    }
  }

  private lost(why: string): BatonApiError {
    return new BatonApiError({
      code: 'API_UNREACHABLE',
      ...ERRORS.API_UNREACHABLE,
      detail: `the handoff channel ${this.path} is gone (${why}); requests under way have an unknown outcome`,
    });
  }

  private badResponse(what: string): BatonApiError {
    return new BatonApiError({
      code: 'BAD_RESPONSE',
      ...ERRORS.BAD_RESPONSE,
      detail: `the handoff channel ${this.path} sent ${what}; is the daemon of a matching version?`,
    });
  }

  /** Once: every request not answered fails with `e`, and the socket is closed. */
  private fail(e: BatonApiError): void {
    if (this.failure) return;
    this.failure = e;
    if (this.retry) clearTimeout(this.retry);
    this.outgoing = [];
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.batch = []; // never sent; their callers get `e` below and still hold their sockets
    for (const p of waiting) p.reject(e);
    this.socket.destroy();
  }
}

/** Connects to the daemon's local handoff channel (default /run/baton/handoff.sock). */
export function openHandoffChannel(path: string = DEFAULT_HANDOFF_SOCKET): Promise<HandoffChannel> {
  return HandoffChannel.open(path);
}
