/**
 * Who is on the other end of a unix socket: SO_PEERCRED (the pid, effective
 * uid and effective gid the peer had when it called connect(), translated
 * into this process's namespaces), and whether a descriptor is a unix socket
 * at all (SO_DOMAIN). Node has no API for either; this goes through the libc
 * binding (control/sys/libc.ts) on the descriptor of the accepted socket.
 *
 * Also pidfd_send_signal(pidfd, 0): whether the process a pidfd names is
 * still alive, which is how a check of /proc/<pid> made after pidfd_open is
 * proven to be about that process and not about a later one with the same pid.
 */
import type { Socket } from 'node:net';
import { SO_DOMAIN, SOL_SOCKET } from '../tcp/kernel.js';
import { errno, errnoName } from './errno.js';
import { libc } from './libc.js';

export const AF_UNIX = 1;
/** asm-generic/socket.h */
export const SO_PEERCRED = 17;
/** x86-64 syscall number (uapi asm/unistd_64.h). */
export const SYS_pidfd_send_signal = 424;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; }: three 32-bit fields. */
const UCRED_SIZE = 12;

/** struct ucred bytes -> PeerCred (pure; uid and gid are unsigned). */
export function decodeUcred(b: Buffer): PeerCred {
  if (b.length < UCRED_SIZE) throw new RangeError(`struct ucred is ${UCRED_SIZE} bytes, got ${b.length}`);
  return { pid: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8) };
}

export class PeerCredError extends Error {
  override readonly name = 'PeerCredError';
  constructor(
    readonly op: string,
    readonly code: string,
  ) {
    super(`${op} failed: ${code}`);
  }
}

function getsockopt(fd: number, name: number, size: number, op: string): Buffer {
  const val = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  if (libc.getsockopt(fd, SOL_SOCKET, name, val, len) < 0) throw new PeerCredError(op, errnoName(errno()));
  return val.subarray(0, len.readUInt32LE(0));
}

/** The address family of socket `fd` (AF_UNIX, AF_INET, ...). */
export function socketDomain(fd: number): number {
  return getsockopt(fd, SO_DOMAIN, 4, 'getsockopt(SO_DOMAIN)').readInt32LE(0);
}

/** SO_PEERCRED of unix socket `fd`. */
export function peerCred(fd: number): PeerCred {
  return decodeUcred(getsockopt(fd, SO_PEERCRED, UCRED_SIZE, 'getsockopt(SO_PEERCRED)'));
}

/** The descriptor of a net.Socket (Linux: the libuv handle's fd), or undefined when it has none (closed, or not a real socket). */
export function socketFd(s: Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The transport a connection came over: a unix socket with its peer's
 * credentials, or a network socket (TCP) whose caller only a token can name.
 */
export type Transport = { kind: 'unix'; cred: PeerCred } | { kind: 'tcp' };

/**
 * The transport of an accepted connection. A socket without a descriptor
 * (fastify's inject, an already closed socket) counts as TCP: it gets no
 * peer credentials, so it has only what a token gives.
 */
export function transportOf(s: Socket): Transport {
  const fd = socketFd(s);
  if (fd === undefined || socketDomain(fd) !== AF_UNIX) return { kind: 'tcp' };
  return { kind: 'unix', cred: peerCred(fd) };
}

/** True while the process `pidfd` names is alive (signal 0 delivers nothing; ESRCH once it has exited). */
export function pidfdAlive(pidfd: number): boolean {
  if (libc.syscall(SYS_pidfd_send_signal, 'int', pidfd, 'int', 0, 'void *', null, 'unsigned int', 0) === 0) return true;
  const e = errnoName(errno());
  if (e === 'ESRCH') return false;
  throw new PeerCredError('pidfd_send_signal', e);
}
