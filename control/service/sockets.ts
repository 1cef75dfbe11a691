/**
 * Finding a front end's sockets and bringing them into this process.
 *
 *   by descriptor: {pid, fd} -> pidfd_getfd, with the front end's pidfd kept
 *                  between requests;
 *   by address:    every descriptor of the pid is taken in turn and its
 *                  getsockname/getpeername compared with the addresses given;
 *                  what does not match is closed at once.
 *
 * Callers that may not name every process pass a gate (the authorization
 * rule of control/service/authorize.ts): it runs once the pidfd is open and
 * before any descriptor is taken, and the pidfd is then checked to be alive,
 * so what the gate read in /proc was about the process the pidfd names, not
 * about a later one that reused its pid.
 *
 * A taken descriptor is a duplicate: closing it never closes the front end's
 * socket. Each one remembers the socket's inode, so it can be closed later
 * only if the number still names that socket (the splicer may have closed
 * it, and a concurrent request may have been given the same number since).
 */
import { fstatSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { BatonError } from '../errors.js';
import { errno, errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { pidfdAlive } from '../sys/peercred.js';
import { SocketError } from '../tcp/errors.js';
import { SOL_TCP, SYS_pidfd_getfd, SYS_pidfd_open, TCP_ESTABLISHED, TCP_INFO, TCP_STATES } from '../tcp/kernel.js';
import { fmt, localAddress, remoteAddress } from '../tcp/socket.js';
import type { Endpoint } from '../tcp/state.js';
import { sameEndpoint } from './endpoint.js';
import { toBatonError } from './errors.js';

export interface TakenSocket {
  readonly fd: number;
  /** Inode and device of the socket: what `fd` must still name to be closed by us. */
  readonly ino: number;
  readonly dev: number;
}

/** `fd` with the inode and device it names now. */
export function identify(fd: number): TakenSocket {
  const st = fstatSync(fd);
  return { fd, ino: st.ino, dev: st.dev };
}

/** Closes our duplicate if the number still names the same socket. */
export function release(s: TakenSocket): void {
  try {
    const st = fstatSync(s.fd);
    if (st.ino !== s.ino || st.dev !== s.dev) return;
  } catch {
    return; // already closed
  }
  libc.close(s.fd);
}

const ENOTSOCK = errnoValue('ENOTSOCK');
/** What getsockopt(SOL_TCP) answers on a socket that is not TCP (UDP, unix). */
const NOT_TCP = new Set([errnoValue('EOPNOTSUPP'), errnoValue('ENOPROTOOPT')]);
const tcpInfoHead = Buffer.alloc(8);
const tcpInfoLen = Buffer.alloc(4);

/**
 * A socket baton can splice: TCP, established. One getsockopt(TCP_INFO)
 * answers all three questions (a socket? TCP? which state?). Throws
 * SOCKET_UNUSABLE otherwise.
 */
export function assertEstablishedTcp(fd: number, which: string): void {
  tcpInfoLen.writeUInt32LE(tcpInfoHead.length);
  if (libc.getsockopt(fd, SOL_TCP, TCP_INFO, tcpInfoHead, tcpInfoLen) < 0) {
    const e = errno();
    if (e === ENOTSOCK)
      throw new BatonError('SOCKET_UNUSABLE', `the ${which} descriptor is not a socket`, 'not_a_socket');
    if (NOT_TCP.has(e))
      throw new BatonError(
        'SOCKET_UNUSABLE',
        `the ${which} socket is not a TCP socket; baton splices TCP connections only`,
        'not_tcp',
      );
    throw toBatonError(new SocketError('tcp_info', e, `of the ${which} socket`));
  }
  // tcpi_state is the first byte; the kernel copies min(len, sizeof tcp_info).
  const state = tcpInfoHead[0] ?? 0;
  if (state !== TCP_ESTABLISHED) {
    throw new BatonError(
      'SOCKET_UNUSABLE',
      `the ${which} socket is ${TCP_STATES[state] ?? state}, not ESTABLISHED; splice a connected socket before either side closes it`,
      'not_established',
    );
  }
}

/**
 * pidfds of recent front ends. A front end names its sockets by its pid
 * request after request: keeping its pidfd saves a pidfd_open and a close
 * per socket. A pidfd names one process, never a later one with a reused
 * pid: when its process is gone, pidfd_getfd fails with ESRCH and the entry
 * is opened again for whatever process has the pid now.
 */
const PIDFD_CACHE_SIZE = 64;
const pidfds = new Map<number, number>();
const ESRCH = errnoValue('ESRCH');

function pidfdOf(pid: number): number {
  const cached = pidfds.get(pid);
  if (cached !== undefined) return cached;
  const fd = libc.syscall(SYS_pidfd_open, 'int', pid, 'unsigned int', 0);
  if (fd < 0) throw new SocketError('pidfd_open', errno(), `of pid ${pid}`);
  if (pidfds.size >= PIDFD_CACHE_SIZE) {
    const [oldPid, oldFd] = pidfds.entries().next().value as [number, number];
    pidfds.delete(oldPid);
    libc.close(oldFd);
  }
  pidfds.set(pid, fd);
  return fd;
}

function forgetPidfd(pid: number): void {
  const fd = pidfds.get(pid);
  if (fd === undefined) return;
  pidfds.delete(pid);
  libc.close(fd);
}

/** Throws to refuse the descriptors of `pid` to this caller (control/service/authorize.ts). */
export type ProcessGate = (pid: number) => void;

/**
 * The pidfd of `pid`, passed through `gate`: the gate reads /proc/<pid>
 * after the pidfd is open, and the pidfd still naming a live process proves
 * the pid was not reused in between. A cached pidfd of an exited process is
 * replaced once.
 */
function gatedPidfd(pid: number, gate: ProcessGate): number {
  for (let attempt = 0; ; attempt++) {
    const pidfd = pidfdOf(pid);
    gate(pid);
    if (pidfdAlive(pidfd)) return pidfd;
    forgetPidfd(pid);
    if (attempt > 0) throw new SocketError('pidfd_open', ESRCH, `of pid ${pid}`);
  }
}

/** Our duplicate of descriptor `fd` of process `pid` (pidfd_getfd). */
function getfd(pid: number, fd: number, gate?: ProcessGate): number {
  for (let attempt = 0; ; attempt++) {
    const mine = libc.syscall(
      SYS_pidfd_getfd,
      'int',
      gate ? gatedPidfd(pid, gate) : pidfdOf(pid),
      'int',
      fd,
      'unsigned int',
      0,
    );
    if (mine >= 0) return mine;
    const e = errno();
    if (e === ESRCH) {
      forgetPidfd(pid); // that process is gone; the pid may name a new one (which a gate checks again)
      if (attempt === 0) continue;
    }
    throw new SocketError('pidfd_getfd', e, `of fd ${fd} of pid ${pid}`);
  }
}

/** {pid, fd} -> our descriptor for it, checked to be an established TCP socket. */
export function takeByDescriptor(pid: number, fd: number, which: string, gate?: ProcessGate): TakenSocket {
  let mine: number;
  try {
    mine = getfd(pid, fd, gate);
  } catch (e) {
    const be = toBatonError(e);
    throw new BatonError(be.code, `the ${which} socket (fd ${fd} of pid ${pid}): ${be.message}`, be.reason, {
      cause: e,
    });
  }
  const taken = identify(mine);
  try {
    assertEstablishedTcp(mine, which);
  } catch (e) {
    release(taken);
    throw toBatonError(e);
  }
  return taken;
}

export interface AddressQuery {
  client: Endpoint;
  vip: Endpoint;
  backend: Endpoint;
  /** The LB side of the back-end connection, when several go to the same back end. */
  local?: Endpoint;
}

/**
 * The pid's client socket (local = vip, remote = client) and back-end socket
 * (remote = backend, and local = `local` when given), as our descriptors.
 */
export async function takeByAddress(
  pid: number,
  q: AddressQuery,
  gate?: ProcessGate,
): Promise<{ client: TakenSocket; backend: TakenSocket }> {
  // The gate decides before the pid's descriptors are even listed.
  if (gate) {
    try {
      gatedPidfd(pid, gate);
    } catch (e) {
      throw toBatonError(e);
    }
  }
  let names: string[];
  try {
    names = await readdir(`/proc/${pid}/fd`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM')
      throw new BatonError(
        'SOCKET_ACCESS_DENIED',
        `cannot list the descriptors of pid ${pid}: run baton as root`,
        'ptrace_denied',
      );
    throw new BatonError('SOCKET_NOT_FOUND', `no process with pid ${pid} exists (it may have exited)`, 'no_process');
  }
  let pidfd: number;
  try {
    pidfd = gate ? gatedPidfd(pid, gate) : pidfdOf(pid);
  } catch (e) {
    throw toBatonError(e);
  }
  const clients = new Map<number, TakenSocket>();
  const backends = new Map<number, TakenSocket>();
  try {
    for (const name of names) {
      const theirs = Number(name);
      if (!Number.isInteger(theirs)) continue;
      const mine = libc.syscall(SYS_pidfd_getfd, 'int', pidfd, 'int', theirs, 'unsigned int', 0);
      if (mine < 0) continue; // closed meanwhile, or not ours to take
      let keep: Map<number, TakenSocket> | undefined;
      try {
        const local = localAddress(mine);
        const remote = remoteAddress(mine);
        if (sameEndpoint(local, q.vip) && sameEndpoint(remote, q.client)) keep = clients;
        else if (sameEndpoint(remote, q.backend) && (!q.local || sameEndpoint(local, q.local))) keep = backends;
      } catch (e) {
        if (!(e instanceof SocketError || e instanceof TypeError)) throw e; // not a socket, not connected, not IP
      }
      if (!keep) {
        libc.close(mine);
        continue;
      }
      const taken = identify(mine);
      if (keep.has(taken.ino))
        libc.close(mine); // the same socket under two numbers
      else keep.set(taken.ino, taken);
    }
    const client = only(clients, 'client', `local ${fmt(q.vip)}, remote ${fmt(q.client)}`, pid);
    const backend = only(
      backends,
      'back-end',
      `remote ${fmt(q.backend)}${q.local ? `, local ${fmt(q.local)}` : ''}`,
      pid,
      'name the LB side of the connection with "local"',
    );
    assertEstablishedTcp(client.fd, 'client');
    assertEstablishedTcp(backend.fd, 'back-end');
    return { client, backend };
  } catch (e) {
    for (const s of [...clients.values(), ...backends.values()]) release(s);
    throw toBatonError(e);
  }
}

function only(
  found: Map<number, TakenSocket>,
  which: string,
  wanted: string,
  pid: number,
  disambiguate = 'check the addresses',
): TakenSocket {
  const [first, second] = found.values();
  if (!first)
    throw new BatonError(
      'SOCKET_NOT_FOUND',
      `pid ${pid} has no ${which} socket with ${wanted}`,
      `no_${which.replace('-', '')}_socket`,
    );
  if (second)
    throw new BatonError(
      'SOCKET_AMBIGUOUS',
      `pid ${pid} has ${found.size} ${which} sockets with ${wanted}; ${disambiguate}, or name the sockets by {pid, fd}`,
      'ambiguous',
    );
  return first;
}
