/**
 * The daemon's local handoff channel: a unix socket next to the API socket
 * (the same directory, mode and group rules: control/daemon/api-socket.ts)
 * on which same-host front ends ask for splices (and, in migrate mode,
 * migrations) in binary frames (control/handoff/wire.ts) and pass their
 * sockets as SCM_RIGHTS descriptors: no HTTP, no JSON request parsing, no
 * pidfd_getfd.
 *
 * Who may ask is decided as on the REST API's unix socket: the peer's
 * SO_PEERCRED, read once per connection, made a Caller by the service's own
 * Authorizer (control/service/authorize.ts), which then rules on every
 * request inside SpliceService.splice (MigrateService.migrate), the same
 * code path REST takes (admission, drain, limits, metrics, rollback).
 *
 * Node's net.Server accepts (pauseOnConnect: libuv never reads these
 * sockets: read() would drop the descriptors); reads are recvmsg on the
 * descriptor when control/sys/poll.ts says it is readable, replies go out
 * through the net.Socket, those finished in one event-loop tick in one write.
 *
 * Everything received belongs to the daemon at once: descriptors waiting
 * for their frame are closed when the connection ends or breaks the
 * protocol, and those of a request end spliced or closed by the service.
 * A front end that goes away mid-call leaves nothing behind: the splice
 * finishes (or fails and is rolled back) and its answer is dropped.
 */
import net from 'node:net';
import { problemOf } from '../api/problem.js';
import { listenOnSocket, prepareApiDir } from '../daemon/api-socket.js';
import { BatonError } from '../errors.js';
import type { Caller } from '../service/authorize.js';
import { toBatonError } from '../service/errors.js';
import { MigrateService } from '../service/migrate-service.js';
import type { SpliceService } from '../service/splice-service.js';
import { errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { type PeerCred, peerCred, socketFd } from '../sys/peercred.js';
import { ReadPoller } from '../sys/poll.js';
import { MAX_FDS_PER_RECV, MSG_DONTWAIT, MSG_NOSIGNAL, recvWithFds, ScmError } from '../sys/scm-rights.js';
import { type HandoffServices, type PreparedRequest, REQUEST_KINDS, type RequestKind } from './requests.js';
import { encodeReply, FRAME_TYPE, type Frame, FrameReader, type ReplyType, requestName, WireError } from './wire.js';

/** Requests one connection may have under way; more are answered RATE_LIMITED (their descriptors closed). */
export const MAX_IN_FLIGHT_PER_CONNECTION = 256;
/** Descriptors received ahead of their frame that one connection may hold (a sender's batch is at most 16). */
const MAX_QUEUED_FDS = 4 * MAX_FDS_PER_RECV;
/**
 * Bytes one recvmsg asks for: a few requests (they are small but for the
 * prefix); a larger one arrives in several reads. Kept under malloc's mmap
 * threshold, as the buffer is allocated per call.
 */
const RECV_BYTES = 16 * 1024;
const EAGAIN = errnoValue('EAGAIN');
/** How long the error frame of a protocol violation may take to leave before the socket is closed anyway (ms). */
const LAST_WORDS_MS = 1000;

export interface HandoffServerOptions {
  service: SpliceService;
  /** MIGRATE frames go here (migrate mode, the same service as POST /v1/migrations); without it, one with no agents refuses them (MIGRATE_DISABLED), as REST does. */
  migrations?: MigrateService;
  /** The socket's path. */
  path: string;
  /** Group of the socket and of the directory it creates (the API's, --api-group). */
  gid: number;
  /** Where the peer's credentials come from (default SO_PEERCRED); tests may stand in their own. */
  credOf?: (fd: number) => PeerCred;
  /** Told about connections that broke the protocol (the daemon logs them). */
  onProtocolError?: (e: BatonError, cred: PeerCred) => void;
}

interface Connection {
  socket: net.Socket;
  fd: number;
  cred: PeerCred;
  caller: Caller;
  reader: FrameReader;
  /** Descriptors received, not yet given to a frame, in arrival order. */
  fds: number[];
  inFlight: number;
  /** Replies of this tick, written together. */
  out: Buffer[];
  closed: boolean;
}

export class HandoffServer {
  private readonly server: net.Server;
  private readonly poller = new ReadPoller();
  private readonly conns = new Set<Connection>();
  private readonly credOf: (fd: number) => PeerCred;
  private readonly services: HandoffServices;

  private constructor(private readonly opts: HandoffServerOptions) {
    this.credOf = opts.credOf ?? peerCred;
    this.services = {
      splices: opts.service,
      migrations: opts.migrations ?? new MigrateService({ agents: [], operations: opts.service.operations }),
    };
    this.server = net.createServer({ pauseOnConnect: true }, (s) => this.accept(s));
  }

  /** Listens on `opts.path` (0660, the daemon's uid, group `gid`; directory 0750 when created). */
  static async listen(opts: HandoffServerOptions): Promise<HandoffServer> {
    const h = new HandoffServer(opts);
    prepareApiDir(opts.path, opts.gid);
    try {
      await listenOnSocket(
        opts.path,
        opts.gid,
        () =>
          new Promise<void>((resolve, reject) => {
            h.server.once('error', reject);
            h.server.listen({ path: opts.path }, () => {
              h.server.off('error', reject);
              resolve();
            });
          }),
      );
    } catch (e) {
      await h.poller.close();
      throw e;
    }
    return h;
  }

  get path(): string {
    return this.opts.path;
  }

  /** Connected front ends. */
  get connections(): number {
    return this.conns.size;
  }

  /**
   * Stops accepting and ends every connection; splices under way finish
   * (the service's drain waits for them), their answers are dropped.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const c of [...this.conns]) this.end(c);
    await closed;
    await this.poller.close();
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => {}); // a front end that resets: end() cleans up on the next read
    const fd = socketFd(socket);
    let cred: PeerCred;
    try {
      if (fd === undefined) throw new Error('no descriptor');
      cred = this.credOf(fd);
    } catch {
      socket.destroy();
      return;
    }
    const c: Connection = {
      socket,
      fd,
      cred,
      caller: this.opts.service.authorizer.peer(cred),
      reader: new FrameReader('request'),
      fds: [],
      inFlight: 0,
      out: [],
      closed: false,
    };
    this.conns.add(c);
    this.poller.add(fd, () => this.readable(c));
  }

  /**
   * Reads while the socket may hold more: descriptors to the queue, frames
   * to requests. A read that did not fill the buffer most likely emptied
   * the socket, and the poll is level-triggered (what is left is reported
   * again), so there is no read just to meet EAGAIN: one system call and
   * one thrown error fewer per wake-up, and the requests read start before
   * the next read. Measured (bench/handoff-paths.ts, 8 / 32 clients): the
   * daemon's p50 0.49 -> 0.14 ms / 1.03 -> 0.23 ms, the front end's 1.94 ->
   * 1.58 / 4.08 -> 3.34 ms, splices per second within the noise (-4%).
   */
  private readable(c: Connection): void {
    while (!c.closed) {
      let r: ReturnType<typeof recvWithFds>;
      try {
        r = recvWithFds(c.fd, RECV_BYTES, MSG_DONTWAIT);
      } catch (e) {
        if (e instanceof ScmError && e.errno === EAGAIN) return;
        this.end(c); // ECONNRESET and the like: the front end is gone
        return;
      }
      c.fds.push(...r.fds);
      if (r.truncated) {
        this.violation(
          c,
          'bad_fds',
          `one message carried more than ${MAX_FDS_PER_RECV} descriptors; the kernel closed the rest`,
        );
        return;
      }
      if (c.fds.length > MAX_QUEUED_FDS) {
        this.violation(
          c,
          'bad_fds',
          `${c.fds.length} descriptors arrived ahead of their frames (at most ${MAX_QUEUED_FDS})`,
        );
        return;
      }
      if (r.eof) {
        // A frame cut short, or an orderly goodbye: either way nothing more comes.
        this.end(c);
        return;
      }
      let frames: Frame[];
      try {
        frames = c.reader.push(r.data);
      } catch (e) {
        if (e instanceof WireError) {
          this.violation(c, e.reason, e.message);
          return;
        }
        throw e;
      }
      for (const f of frames) {
        if (c.closed) return;
        this.frame(c, f);
      }
      if (r.data.length < RECV_BYTES) return;
    }
  }

  private frame(c: Connection, f: Frame): void {
    const receivedAt = performance.now();
    const kind = REQUEST_KINDS[f.type] as RequestKind; // decodeHeader let through only request types
    // decodeHeader let through only frames that say they carry their type's descriptors.
    if (c.fds.length < f.fds) {
      this.violation(
        c,
        'bad_fds',
        `a ${requestName(f.type)} frame needs ${f.fds} descriptor(s) sent with it; ${c.fds.length} arrived`,
      );
      return;
    }
    const fds = c.fds.splice(0, f.fds);
    let run: PreparedRequest;
    try {
      run = kind.prepare(f.body);
    } catch (e) {
      for (const fd of fds) libc.close(fd);
      if (e instanceof WireError) {
        this.violation(c, e.reason, e.message);
        return;
      }
      throw e;
    }
    if (c.inFlight >= MAX_IN_FLIGHT_PER_CONNECTION) {
      for (const fd of fds) libc.close(fd);
      this.reply(
        c,
        FRAME_TYPE.ERROR,
        f.id,
        problemOf(
          new BatonError(
            'RATE_LIMITED',
            `${c.inFlight} requests of this connection are under way (at most ${MAX_IN_FLIGHT_PER_CONNECTION}); wait for answers before sending more`,
            'too_many_in_flight',
          ),
        ),
      );
      return;
    }
    c.inFlight++;
    // The service owns the descriptors from here: spliced or migrated, or closed on any failure.
    run(this.services, c.caller, fds, receivedAt)
      .then(
        (doc) => this.reply(c, kind.reply, f.id, doc),
        (e: unknown) => this.reply(c, FRAME_TYPE.ERROR, f.id, problemOf(toBatonError(e))),
      )
      .finally(() => c.inFlight--);
  }

  private reply(c: Connection, type: ReplyType, id: number, doc: unknown) {
    if (c.closed) return;
    c.out.push(encodeReply(type, id, doc));
    if (c.out.length === 1) setImmediate(() => this.flush(c));
  }

  private flush(c: Connection): void {
    if (c.closed || c.out.length === 0) return;
    let b = c.out.length === 1 ? (c.out[0] as Buffer) : Buffer.concat(c.out);
    c.out = [];
    // Straight to the socket when Node holds nothing queued for it (then
    // nothing can be overtaken): a send instead of a trip through Node's
    // stream machinery. What the socket does not take goes through Node.
    if (c.socket.writableLength === 0) {
      const n = libc.send(c.fd, b, b.length, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n === b.length) return;
      if (n > 0) b = b.subarray(n);
    }
    c.socket.write(b);
  }

  /** A frame that cannot be trusted: say why (BAD_REQUEST with the wire reason), then hang up. */
  private violation(c: Connection, reason: string, detail: string): void {
    const e = new BatonError(
      'BAD_REQUEST',
      `the handoff channel closed this connection: ${detail} (is the front end's baton SDK of the daemon's version?)`,
      reason,
    );
    this.opts.onProtocolError?.(e, c.cred);
    // Id 0: about the connection, not one request (the SDK fails every request under way with it).
    const frame = encodeReply(FRAME_TYPE.ERROR, 0, problemOf(e));
    this.flush(c);
    this.end(c, frame);
  }

  /** Ends the connection: the descriptors still queued are closed; splices under way finish unanswered. */
  private end(c: Connection, last?: Buffer): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c);
    this.poller.remove(c.fd); // before the descriptor is closed
    for (const fd of c.fds.splice(0)) libc.close(fd);
    c.out = [];
    const s = c.socket;
    if (!last) {
      s.destroy();
      return;
    }
    // libuv never reads this socket, so it would never see the peer's end: destroy once the last frame is out.
    const bye = setTimeout(() => s.destroy(), LAST_WORDS_MS);
    bye.unref();
    s.write(last, () => {
      clearTimeout(bye);
      s.destroy();
    });
  }
}
