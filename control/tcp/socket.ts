/**
 * Typed wrappers over the libc socket calls of control/bpf/ffi.ts: every
 * failure becomes a SocketError naming the operation and the fd, socket
 * addresses are encoded and decoded here, and nothing else in control/tcp/
 * handles raw sockaddr bytes or errno.
 */
import { bytesToIp, type Family, familyOf, formatAddress, ipv4Bytes, ipv6Bytes, unmappedIpv4 } from '../net/addr.js';
import { awayFromHome } from '../net/netns.js';
import { errno, errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { SocketError } from './errors.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  SOCKADDR_IN_LAYOUT as IN4,
  SOCKADDR_IN6_LAYOUT as IN6,
  IPPROTO_TCP,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  MSG_PEEK,
  SIOCGSKNS,
  SO_NETNS_COOKIE,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOL_SOCKET,
} from './kernel.js';
import type { Endpoint } from './state.js';

export const EAGAIN = errnoValue('EAGAIN');
export const ENOMEM = errnoValue('ENOMEM');
export const EINTR = errnoValue('EINTR');

/** Throws a SocketError for a negative return, with the errno of the call. */
export function check(rc: number, op: string, detail?: string, explanation?: string): number {
  if (rc < 0) throw new SocketError(op, errno(), detail, explanation);
  return rc;
}

// ---------------------------------------------------------------- addresses

export interface SockAddr extends Endpoint {
  /** Family as seen on the wire: an IPv4-mapped IPv6 address is reported as IPv4. */
  family: Family;
  /** True when the socket is AF_INET6 but the address is IPv4-mapped (::ffff:a.b.c.d). */
  mapped: boolean;
}

/** struct sockaddr_in / sockaddr_in6 for an endpoint of the given family. */
export function encodeSockaddr(ep: Endpoint, family: Family): Buffer {
  if (familyOf(ep.ip) !== family) throw new TypeError(`${ep.ip} is not an IPv${family} address`);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 0xffff)
    throw new RangeError(`port must be 0..65535, got ${ep.port}`);
  if (family === 4) {
    const b = Buffer.alloc(IN4.size);
    b.writeUInt16LE(AF_INET, IN4.fields.sin_family);
    b.writeUInt16BE(ep.port, IN4.fields.sin_port);
    ipv4Bytes(ep.ip).copy(b, IN4.fields.sin_addr);
    return b;
  }
  const b = Buffer.alloc(IN6.size);
  b.writeUInt16LE(AF_INET6, IN6.fields.sin6_family);
  b.writeUInt16BE(ep.port, IN6.fields.sin6_port);
  ipv6Bytes(ep.ip).copy(b, IN6.fields.sin6_addr);
  return b;
}

export function decodeSockaddr(b: Buffer): SockAddr {
  const fam = b.readUInt16LE(0);
  if (fam === AF_INET) {
    const at = IN4.fields.sin_addr;
    return {
      family: 4,
      mapped: false,
      ip: bytesToIp(b.subarray(at, at + 4), 4),
      port: b.readUInt16BE(IN4.fields.sin_port),
    };
  }
  if (fam === AF_INET6) {
    const at = IN6.fields.sin6_addr;
    const addr = b.subarray(at, at + 16);
    const port = b.readUInt16BE(IN6.fields.sin6_port);
    const v4 = unmappedIpv4(addr);
    if (v4 !== undefined) return { family: 4, mapped: true, ip: v4, port };
    return { family: 6, mapped: false, ip: bytesToIp(addr, 6), port };
  }
  throw new TypeError(`not an IP socket address (family ${fam})`);
}

function name(call: typeof libc.getsockname, op: string, fd: number): SockAddr {
  const b = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  check(call(fd, b, len), op, `of fd ${fd}`);
  return decodeSockaddr(b.subarray(0, len.readUInt32LE()));
}

export const localAddress = (fd: number): SockAddr => name(libc.getsockname, 'getsockname', fd);
export const remoteAddress = (fd: number): SockAddr => name(libc.getpeername, 'getpeername', fd);

// ---------------------------------------------------------------- options

export function getOpt(fd: number, level: number, opt: number, size: number, op: string): Buffer {
  const b = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  check(libc.getsockopt(fd, level, opt, b, len), op, `of fd ${fd}`);
  return b.subarray(0, len.readUInt32LE());
}

// Scratch buffers for the integer calls, which run many times per capture:
// calls are synchronous and their results copied out before returning.
const intBuf = Buffer.alloc(4);
const lenBuf = Buffer.alloc(4);

export function getInt(fd: number, level: number, opt: number, op: string): number {
  intBuf.writeInt32LE(0);
  lenBuf.writeUInt32LE(4);
  check(libc.getsockopt(fd, level, opt, intBuf, lenBuf), op, `of fd ${fd}`);
  return lenBuf.readUInt32LE() >= 4 ? intBuf.readInt32LE(0) : 0;
}

export function getU32(fd: number, level: number, opt: number, op: string): number {
  return getInt(fd, level, opt, op) >>> 0;
}

export function setOpt(fd: number, level: number, opt: number, value: Buffer, op: string, explanation?: string): void {
  check(libc.setsockopt(fd, level, opt, value, value.length), op, `of fd ${fd}`, explanation);
}

export function setInt(fd: number, level: number, opt: number, value: number, op: string, explanation?: string): void {
  if (value < 0) intBuf.writeInt32LE(value);
  else intBuf.writeUInt32LE(value >>> 0);
  check(libc.setsockopt(fd, level, opt, intBuf, 4), op, `of fd ${fd}`, explanation);
}

export function ioctlInt(fd: number, req: number, op: string): number {
  check(libc.ioctl(fd, req, 'void *', intBuf), op, `of fd ${fd}`);
  return intBuf.readInt32LE(0);
}

// ---------------------------------------------------------------- lifecycle

export function openTcpSocket(family: Family): number {
  return check(
    libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP),
    'socket',
    `(IPv${family} TCP)`,
  );
}

export function bindTo(fd: number, ep: Endpoint, family: Family): void {
  const a = encodeSockaddr(ep, family);
  check(libc.bind(fd, a, a.length), 'bind', `of fd ${fd} to ${fmt(ep)}`);
}

export function connectTo(fd: number, ep: Endpoint, family: Family): void {
  const a = encodeSockaddr(ep, family);
  check(libc.connect(fd, a, a.length), 'connect', `of fd ${fd} to ${fmt(ep)}`);
}

/** connect(AF_UNSPEC): tcp_disconnect(), which in repair mode sends nothing. */
export function disconnect(fd: number): void {
  const a = Buffer.alloc(IN6.size);
  a.writeUInt16LE(AF_UNSPEC, 0);
  check(libc.connect(fd, a, a.length), 'disconnect', `of fd ${fd}`);
}

export function listenOn(fd: number, backlog = 16): void {
  check(libc.listen(fd, backlog), 'listen', `on fd ${fd}`);
}

/** Blocking accept (a connection to loopback is queued by the time connect returns). */
export function acceptFrom(fd: number): number {
  return check(libc.accept4(fd, null, null, SOCK_CLOEXEC), 'accept', `on fd ${fd}`);
}

export function closeFd(fd: number): void {
  check(libc.close(fd), 'close', `of fd ${fd}`);
}

// ---------------------------------------------------------------- data

/** recv(MSG_PEEK | MSG_DONTWAIT) of up to `max` bytes; empty when nothing is there. */
export function peek(fd: number, max: number, op: string): Buffer {
  const b = Buffer.alloc(Math.max(1, max));
  const n = libc.recv(fd, b, b.length, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) {
    const e = errno();
    if (e === EAGAIN) return Buffer.alloc(0);
    throw new SocketError(op, e, `of fd ${fd}`);
  }
  return b.subarray(0, n);
}

/**
 * send() without blocking: the bytes the kernel took, or 0 with the errno
 * when it took none for lack of room (EAGAIN, ENOMEM) or was interrupted;
 * throws on any other error.
 */
export function sendSome(fd: number, data: Buffer, op: string): { sent: number; errno: number } {
  const n = libc.send(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n >= 0) return { sent: n, errno: 0 };
  const e = errno();
  if (e === EAGAIN || e === ENOMEM || e === EINTR) return { sent: 0, errno: e };
  throw new SocketError(op, e, `on fd ${fd}`);
}

export const fmt = (ep: Endpoint): string => formatAddress(ep.ip, ep.port);

/**
 * A socket's network namespace by its cookie (SO_NETNS_COOKIE: one call, and
 * unlike an inode never reused while the host runs), or undefined when it
 * is the calling thread's own namespace.
 */
function socketNetnsCookie(fd: number): string | undefined {
  const cookie = netnsCookieOf(fd, 'netns_cookie');
  return cookie === threadNetnsCookie() ? undefined : cookie;
}

const netnsCookieOf = (fd: number, op: string): string =>
  getOpt(fd, SOL_SOCKET, SO_NETNS_COOKIE, 8, op).readBigUInt64LE().toString();

let homeCookie: string | undefined;
/** The cookie of the calling thread's namespace: asked of a new socket once (again each time inside withNetnsFd). */
export function threadNetnsCookie(): string {
  if (homeCookie !== undefined && !awayFromHome()) return homeCookie;
  const fd = openTcpSocket(4);
  try {
    const cookie = netnsCookieOf(fd, 'netns_cookie');
    if (!awayFromHome()) homeCookie = cookie;
    return cookie;
  } finally {
    closeFd(fd);
  }
}

/**
 * Namespace fds for sockets, each namespace opened once (ioctl SIOCGSKNS on
 * the first of its sockets) and kept until close(). A socket of the calling
 * thread's own namespace has none (undefined): it costs one getsockopt.
 */
export class NetnsFds {
  private readonly byCookie = new Map<string, number>();

  of(fd: number): number | undefined {
    const cookie = socketNetnsCookie(fd);
    if (cookie === undefined) return undefined;
    let ns = this.byCookie.get(cookie);
    if (ns === undefined) {
      ns = check(libc.ioctl(fd, SIOCGSKNS, 'void *', Buffer.alloc(8)), 'netns', `of fd ${fd}`);
      this.byCookie.set(cookie, ns);
    }
    return ns;
  }

  close(): void {
    for (const ns of this.byCookie.values()) libc.close(ns);
    this.byCookie.clear();
  }
}

/** A C int as setsockopt takes it (native little-endian, 4 bytes). */
export function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}
