/**
 * Descriptor passing over unix sockets (SCM_RIGHTS): sendmsg/recvmsg through
 * the libc binding. Node's net sockets cannot carry descriptors (only its
 * child-process IPC can), so the agent hands restored sockets to apps this
 * way, and the SDK takes them this way.
 *
 * Layouts (x86-64 / aarch64 LP64, <sys/socket.h>):
 *   struct iovec   { void *iov_base; size_t iov_len; }                    16 bytes
 *   struct msghdr  { void *name; u32 namelen; (4 pad) iovec *iov; size_t iovlen;
 *                    void *control; size_t controllen; int flags; (4 pad) } 56 bytes
 *   struct cmsghdr { size_t cmsg_len; int level; int type; data... }     16 bytes + data, 8-aligned
 * The msghdr, iovec and control buffer live in one native block so the
 * pointers inside stay valid for the call.
 */
import { errno } from './errno.js';
import { bind, koffi } from './koffi.js';

const lib = koffi.load('libc.so.6');
type Ptr = unknown;
const sendmsg = bind<[number, Ptr, number], number>(lib, 'long sendmsg(int fd, void *msg, int flags)');
const recvmsg = bind<[number, Ptr, number], number>(lib, 'long recvmsg(int fd, void *msg, int flags)');

export const SCM_RIGHTS = 1;
const SOL_SOCKET = 1;
export const MSG_CTRUNC = 0x8;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CMSG_CLOEXEC = 0x40000000;

export const MSGHDR = {
  size: 56,
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
} as const;
export const IOVEC_SIZE = 16;
export const CMSGHDR_SIZE = 16;
const align8 = (n: number): number => (n + 7) & ~7;
/** CMSG_SPACE(n): room for a control message with n data bytes. */
export const cmsgSpace = (n: number): number => CMSGHDR_SIZE + align8(n);
/** CMSG_LEN(n): the cmsg_len of a control message with n data bytes. */
export const cmsgLen = (n: number): number => CMSGHDR_SIZE + n;

/** The most descriptors one recvmsg takes; more would be closed by the kernel (MSG_CTRUNC). */
export const MAX_FDS_PER_RECV = 16;

/**
 * Encodes an SCM_RIGHTS control message carrying `fds` (pure; the kernel
 * expects cmsg_len = CMSG_LEN, the buffer CMSG_SPACE long).
 */
export function encodeRightsCmsg(fds: readonly number[]): Buffer {
  const b = Buffer.alloc(cmsgSpace(4 * fds.length));
  b.writeBigUInt64LE(BigInt(cmsgLen(4 * fds.length)), 0);
  b.writeInt32LE(SOL_SOCKET, 8);
  b.writeInt32LE(SCM_RIGHTS, 12);
  for (const [i, fd] of fds.entries()) b.writeInt32LE(fd, CMSGHDR_SIZE + 4 * i);
  return b;
}

/** The descriptors of every SCM_RIGHTS message in a control buffer of `length` used bytes (pure). */
export function decodeRightsCmsgs(control: Buffer, length: number): number[] {
  const fds: number[] = [];
  let off = 0;
  while (off + CMSGHDR_SIZE <= length) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < CMSGHDR_SIZE || off + len > length) break;
    if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let p = off + CMSGHDR_SIZE; p + 4 <= off + len; p += 4) fds.push(control.readInt32LE(p));
    }
    off += align8(len);
  }
  return fds;
}

export class ScmError extends Error {
  override readonly name = 'ScmError';
  constructor(
    readonly op: string,
    readonly errno: number,
  ) {
    super(`${op} failed: errno ${errno}`);
  }
}

interface Block {
  ptr: Ptr;
  view: Buffer;
  addr: bigint;
  size: number;
}

/**
 * One native block for every call, grown when a call needs more: calls are
 * synchronous and copy their results out, and allocating, viewing and
 * freeing a block per call cost more than the system call on the handoff
 * channel's hot path.
 */
let scratch: Block | undefined;
function block(size: number): Block {
  if (scratch && scratch.size >= size) return scratch;
  if (scratch) koffi.free(scratch.ptr as never);
  const bytes = Math.max(size, 4096);
  const ptr = koffi.alloc('uint8_t', bytes);
  const addr = koffi.address(ptr) as bigint;
  scratch = { ptr, view: Buffer.from(koffi.view(ptr as never, bytes) as ArrayBuffer), addr, size: bytes };
  return scratch;
}

/** Lays out msghdr + iovec + control + data in one block; returns offsets of control and data. */
function layout(dataLen: number, controlLen: number): { b: Block; ctl: number; data: number } {
  const ctl = MSGHDR.size + IOVEC_SIZE;
  const data = ctl + align8(controlLen);
  const b = block(data + Math.max(1, dataLen));
  const v = b.view;
  v.fill(0, 0, data);
  v.writeBigUInt64LE(b.addr + BigInt(MSGHDR.size), MSGHDR.iov);
  v.writeBigUInt64LE(1n, MSGHDR.iovlen);
  if (controlLen > 0) {
    v.writeBigUInt64LE(b.addr + BigInt(ctl), MSGHDR.control);
    v.writeBigUInt64LE(BigInt(controlLen), MSGHDR.controllen);
  }
  v.writeBigUInt64LE(b.addr + BigInt(data), MSGHDR.size);
  v.writeBigUInt64LE(BigInt(dataLen), MSGHDR.size + 8);
  return { b, ctl, data };
}

/**
 * sendmsg of `data` with `fds` attached (none: a plain write). Returns the
 * bytes the kernel took (a stream socket may take fewer; the descriptors go
 * with the first byte), or -errno when it took none.
 */
export function sendWithFds(sock: number, data: Buffer, fds: readonly number[] = [], flags = MSG_NOSIGNAL): number {
  const cm = fds.length ? encodeRightsCmsg(fds) : Buffer.alloc(0);
  const { b, ctl, data: d } = layout(data.length, cm.length);
  cm.copy(b.view, ctl);
  data.copy(b.view, d);
  const n = sendmsg(sock, b.ptr, flags);
  return n < 0 ? -errno() : n;
}

export interface Received {
  /** Bytes read; empty with eof true at end of stream. */
  data: Buffer;
  fds: number[];
  eof: boolean;
  /** The kernel had more descriptors than fitted (they were closed): a protocol violation by the sender. */
  truncated: boolean;
}

/** One recvmsg (MSG_CMSG_CLOEXEC on the descriptors received). Throws ScmError on failure (EAGAIN included). */
export function recvWithFds(sock: number, max: number, flags = 0): Received {
  const controlLen = cmsgSpace(4 * MAX_FDS_PER_RECV);
  const { b, ctl, data } = layout(max, controlLen);
  const n = recvmsg(sock, b.ptr, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) throw new ScmError('recvmsg', errno());
  return unpack(b.view, n, ctl, data);
}

function unpack(v: Buffer, n: number, ctl: number, data: number): Received {
  const controlUsed = Number(v.readBigUInt64LE(MSGHDR.controllen));
  const flags = v.readInt32LE(MSGHDR.flags);
  return {
    data: Buffer.from(v.subarray(data, data + n)),
    fds: decodeRightsCmsgs(Buffer.from(v.subarray(ctl, ctl + controlUsed)), controlUsed),
    eof: n === 0,
    truncated: (flags & MSG_CTRUNC) !== 0,
  };
}

const libcShutdown = bind<[number, number], number>(lib, 'int shutdown(int fd, int how)');
const libcSocket = bind<[number, number, number], number>(lib, 'int socket(int domain, int type, int protocol)');
const libcConnect = bind<[number, Buffer, number], number>(lib, 'int connect(int fd, const void *addr, uint32_t len)');
export const SHUT_RDWR = 2;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
/** sizeof(sun_path). */
export const UNIX_PATH_MAX = 108;

/** struct sockaddr_un for `path` (pure): u16 AF_UNIX, then the NUL-terminated path. */
export function encodeSockaddrUn(path: string): Buffer {
  const p = Buffer.from(path, 'utf8');
  if (p.length >= UNIX_PATH_MAX)
    throw new RangeError(`unix socket path is ${p.length} bytes; the limit is ${UNIX_PATH_MAX - 1}`);
  const b = Buffer.alloc(2 + UNIX_PATH_MAX);
  b.writeUInt16LE(AF_UNIX, 0);
  p.copy(b, 2);
  return b;
}

/** A blocking unix stream socket connected to `path` (a local socket: connect does not wait on the network). */
export function connectUnix(path: string): number {
  const fd = libcSocket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new ScmError('socket(AF_UNIX)', errno());
  const a = encodeSockaddrUn(path);
  if (libcConnect(fd, a, a.length) < 0) {
    const e = errno();
    libcClose(fd);
    throw new ScmError(`connect(${path})`, e);
  }
  return fd;
}

const libcClose = bind<[number], number>(lib, 'int close(int fd)');
export const closeFd = (fd: number): number => libcClose(fd);
/** shutdown(SHUT_RDWR): wakes a recvmsg blocked on another thread (it returns 0). */
export const shutdownFd = (fd: number): number => libcShutdown(fd, SHUT_RDWR);
