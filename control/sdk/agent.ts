/**
 * The Node SDK for back-end apps in migrate mode:
 *
 *   import { connectAgent } from 'baton/control/sdk/agent.js';
 *   const agent = await connectAgent({ socketPath: '/run/baton/agent.sock' });
 *   await agent.attach(httpServer, { vip: '198.19.0.1:80' });
 *
 * Every connection the agent restores for that VIP then arrives at the
 * server as an ordinary 'connection' (server.emit('connection', socket)),
 * with the client's first request already readable in the socket. The
 * server need not listen. The unix socket carries descriptors (SCM_RIGHTS),
 * which Node's net sockets cannot receive, so this reads it with recvmsg
 * when the event loop says it is readable (control/sys/poll.ts: a uv_poll_t
 * on the main loop, no worker thread in the way of a hand-off).
 */
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  type ConnectionHeader,
  encodeMessage,
  MessageReader,
  parseConnectionHeader,
  parseVip,
  vipKey,
} from '../agent/reply.js';
import { BatonError } from '../errors.js';
import { errnoValue } from '../sys/errno.js';
import { ReadPoller } from '../sys/poll.js';
import {
  closeFd,
  connectUnix,
  MSG_DONTWAIT,
  recvWithFds,
  ScmError,
  sendWithFds,
  shutdownFd,
} from '../sys/scm-rights.js';

const EAGAIN = errnoValue('EAGAIN');

export const DEFAULT_AGENT_SOCKET = '/run/baton/agent.sock';

export interface AgentConnectOptions {
  socketPath?: string;
}

export interface AttachOptions {
  /** "ip:port" or "[ipv6]:port" the app serves. */
  vip: string;
}

/** A migrated connection as the SDK hands it over: the socket carries `baton` with the header. */
export type MigratedSocket = net.Socket & { baton?: ConnectionHeader };

type Waiter = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class AgentConnection {
  private readonly reader = new MessageReader();
  private readonly fds: number[] = [];
  private readonly targets = new Map<string, EventEmitter>();
  private readonly waiters: Waiter[] = [];
  private closed = false;
  /** Resolves when the agent connection ends (closed by us or by the agent). */
  readonly done: Promise<void>;

  private readonly poller = new ReadPoller();
  private finish: () => void = () => {};
  private ended = false;

  constructor(private readonly fd: number) {
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.poller.add(fd, () => this.readable());
  }

  /**
   * Registers for `vip` and routes its migrated connections to `server`
   * (any EventEmitter that takes 'connection': http.Server, net.Server,
   * https.Server). Rejects with FORBIDDEN_PROCESS when the agent refuses.
   */
  async attach(server: EventEmitter, opts: AttachOptions): Promise<void> {
    const ep = parseVip(opts.vip);
    if (!ep) throw new BatonError('BAD_REQUEST', `${JSON.stringify(opts.vip)} is not ip:port or [ipv6]:port`);
    const key = vipKey(ep);
    const reply = (await this.request({ type: 'register', vip: key })) as {
      type: string;
      code?: string;
      reason?: string;
    };
    if (reply.type !== 'registered')
      throw new BatonError(
        reply.code === 'forbidden' ? 'FORBIDDEN_PROCESS' : 'BAD_REQUEST',
        `the agent refused to register ${key}: ${reply.reason}`,
        reply.code,
      );
    this.targets.set(key, server);
  }

  /** Stops receiving connections; connections already handed over keep working. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      shutdownFd(this.fd);
    }
    return this.done;
  }

  private request(m: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new BatonError('API_UNREACHABLE', 'the agent connection is closed'));
      this.waiters.push({ resolve, reject });
      const b = encodeMessage(m);
      const n = sendWithFds(this.fd, b);
      if (n !== b.length) {
        this.waiters.pop();
        reject(new BatonError('API_UNREACHABLE', `writing to the agent failed (${n < 0 ? `errno ${-n}` : 'partial'})`));
      }
    });
  }

  /** Reads what the agent sent until EAGAIN; the end of the connection (or a failure) ends this side. */
  private readable(): void {
    while (!this.ended) {
      let r: ReturnType<typeof recvWithFds>;
      try {
        r = recvWithFds(this.fd, 64 * 1024, MSG_DONTWAIT);
      } catch (e) {
        if (e instanceof ScmError && e.errno === EAGAIN) return;
        if (!this.closed) process.emitWarning(`baton agent connection failed: ${(e as Error).message}`);
        this.end();
        return;
      }
      // Descriptors arrive with the first byte of their message: queue them, the message takes one when complete.
      this.fds.push(...r.fds);
      if (r.eof) {
        this.end();
        return;
      }
      try {
        for (const m of this.reader.push(r.data)) this.onMessage(m);
      } catch (e) {
        process.emitWarning(`baton agent connection failed: ${(e as Error).message}`);
        this.end();
        return;
      }
    }
  }

  /** Once: requests under way fail, queued descriptors close, the watch goes, then the socket. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    for (const w of this.waiters.splice(0))
      w.reject(new BatonError('API_UNREACHABLE', 'the agent closed the connection'));
    for (const fd of this.fds.splice(0)) closeFd(fd);
    this.poller.remove(this.fd);
    closeFd(this.fd);
    void this.poller.close().then(this.finish);
  }

  private onMessage(m: unknown): void {
    const type = (m as { type?: unknown } | null)?.type;
    if (type !== 'connection') {
      this.waiters.shift()?.resolve(m);
      return;
    }
    const fd = this.fds.shift();
    if (fd === undefined) throw new Error('the agent sent a connection header without a descriptor');
    const header = parseConnectionHeader(m);
    const target = this.targets.get(vipKey(header.vip));
    if (!target) {
      // Not ours any more (detached): the agent confirmed already, so the client is ours; close it normally.
      closeFd(fd);
      return;
    }
    const socket = new net.Socket({ fd, readable: true, writable: true }) as MigratedSocket;
    socket.baton = header;
    target.emit('connection', socket);
  }
}

/** Connects to the local agent's app socket (default /run/baton/agent.sock). */
export async function connectAgent(opts: AgentConnectOptions = {}): Promise<AgentConnection> {
  const path = opts.socketPath ?? DEFAULT_AGENT_SOCKET;
  try {
    return new AgentConnection(connectUnix(path));
  } catch (e) {
    throw new BatonError(
      'API_UNREACHABLE',
      `cannot connect to the baton agent at ${path}: ${(e as Error).message}`,
      'connect',
      {
        cause: e,
      },
    );
  }
}
