/**
 * Connections baton opens or ends itself, outside any application: the new
 * back-end leg of a later handoff (opened without blocking the event loop),
 * and the resets of an abort.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Family } from '../net/addr.js';
import { awayFromHome, withNetnsFd } from '../net/netns.js';
import { errno, errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { SocketError } from './errors.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  SO_ERROR,
  SO_LINGER,
  SO_MARK,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  SOL_TCP,
  TCP_ESTABLISHED,
  TCP_INFO,
  TCP_INFO_LAYOUT,
  TCP_MAXSEG,
} from './kernel.js';
import { restoreTcp } from './restore.js';
import { bindTo, check, closeFd, encodeSockaddr, fmt, getInt, getOpt, localAddress, setInt, setOpt } from './socket.js';
import type { Endpoint, TcpState } from './state.js';

const EINPROGRESS = errnoValue('EINPROGRESS');
const EADDRINUSE = errnoValue('EADDRINUSE');
const EADDRNOTAVAIL = errnoValue('EADDRNOTAVAIL');

export interface ConnectOptions {
  /** TCP_MAXSEG before connecting: the MSS advertised to the peer (the largest segment it may send us). */
  mss?: number;
  /**
   * SO_MARK before connecting (needs CAP_NET_ADMIN or CAP_NET_RAW): what
   * baton's TC egress program reads to give the SYN a client's option
   * profile (control/dispatcher/profile.ts, bpf/lib/tcp_options_profile.h).
   */
  mark?: number;
  timeoutMs: number;
  /** Network namespace to open the socket in (default: the calling thread's). */
  netnsFd?: number;
  /**
   * Chooses the local port once the source address toward `remote` is known
   * (a route lookup: a UDP socket connected to it, nothing sent). A port
   * that a live socket holds on the same tuple (EADDRINUSE, EADDRNOTAVAIL)
   * is asked again, up to LOCAL_PORT_ATTEMPTS times.
   */
  localPort?: (localIp: string) => number;
}

/** Ports tried when a chosen local port is held by a live socket on the same tuple. */
export const LOCAL_PORT_ATTEMPTS = 8;

/**
 * How long a route lookup's answer is reused (ms). The lookup is a UDP
 * socket and four system calls, a sizeable share of a pooled connection's
 * cost under one-shot load; routes change rarely, and a caller whose bind
 * fails on a stale address forgets it (forgetSourceAddress).
 */
const SOURCE_ADDRESS_TTL_MS = 1000;
const SOURCE_ADDRESSES_MAX = 1024;
const sourceAddresses = new Map<string, { ip: string; at: number }>();
const sourceKey = (remote: Endpoint): string => `${remote.ip}|${remote.port}`;

/**
 * The address the kernel would send from toward `remote` (its route),
 * without sending anything. Remembered for SOURCE_ADDRESS_TTL_MS in the
 * thread's home namespace (inside withNetnsFd it is looked up each time).
 */
export function sourceAddressFor(remote: Endpoint, family: Family): string {
  if (awayFromHome()) return routeSource(remote, family);
  const now = performance.now();
  const known = sourceAddresses.get(sourceKey(remote));
  if (known && now - known.at <= SOURCE_ADDRESS_TTL_MS) return known.ip;
  const ip = routeSource(remote, family);
  if (sourceAddresses.size >= SOURCE_ADDRESSES_MAX) sourceAddresses.clear();
  sourceAddresses.set(sourceKey(remote), { ip, at: now });
  return ip;
}

/** Drops what sourceAddressFor remembers for `remote` (its address may be gone). */
export function forgetSourceAddress(remote: Endpoint): void {
  sourceAddresses.delete(sourceKey(remote));
}

function routeSource(remote: Endpoint, family: Family): string {
  const fd = check(libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), 'socket', '(UDP)');
  try {
    const a = encodeSockaddr(remote, family);
    check(libc.connect(fd, a, a.length), 'route', `to ${fmt(remote)}`);
    return localAddress(fd).ip;
  } finally {
    libc.close(fd);
  }
}

/**
 * Opens a TCP connection to `remote` and resolves with the fd (non-blocking)
 * once it is established. The socket is created in `netnsFd` synchronously
 * (setns moves only this thread, briefly); the handshake is awaited by
 * polling its state, so the event loop keeps running.
 */
export async function connectTcp(remote: Endpoint, family: Family, opts: ConnectOptions): Promise<number> {
  const attempt = (localIp: string | undefined): number => {
    const fd = check(
      libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP),
      'socket',
      `(IPv${family} TCP)`,
    );
    try {
      if (opts.mss) setInt(fd, SOL_TCP, TCP_MAXSEG, opts.mss, 'connect');
      if (opts.mark !== undefined) setInt(fd, SOL_SOCKET, SO_MARK, opts.mark, 'connect');
      if (localIp !== undefined && opts.localPort) {
        // SO_REUSEADDR: the port may be bound by connections to other back ends.
        setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, 'connect');
        bindTo(fd, { ip: localIp, port: opts.localPort(localIp) }, family);
      }
      const a = encodeSockaddr(remote, family);
      if (libc.connect(fd, a, a.length) < 0 && errno() !== EINPROGRESS)
        throw new SocketError('connect', errno(), `to ${fmt(remote)}`);
      return fd;
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  };
  const open = (): number => {
    if (!opts.localPort) return attempt(undefined);
    const localIp = sourceAddressFor(remote, family);
    for (let i = 1; ; i++) {
      try {
        return attempt(localIp);
      } catch (e) {
        const taken = e instanceof SocketError && (e.errno === EADDRINUSE || e.errno === EADDRNOTAVAIL);
        if (!taken || i >= LOCAL_PORT_ATTEMPTS) {
          if (taken) forgetSourceAddress(remote); // the address itself may be gone
          throw e;
        }
      }
    }
  };
  const fd = opts.netnsFd === undefined ? open() : withNetnsFd(opts.netnsFd, open);
  const deadline = performance.now() + opts.timeoutMs;
  try {
    for (let spins = 0; ; spins++) {
      const err = getInt(fd, SOL_SOCKET, SO_ERROR, 'connect');
      if (err) throw new SocketError('connect', err, `to ${fmt(remote)}`);
      if (getOpt(fd, SOL_TCP, TCP_INFO, TCP_INFO_LAYOUT.size, 'connect')[0] === TCP_ESTABLISHED) return fd;
      if (performance.now() >= deadline)
        throw new SocketError(
          'connect',
          errnoValue('ETIMEDOUT'),
          `to ${fmt(remote)}`,
          `no answer within ${opts.timeoutMs} ms`,
        );
      // A handshake inside one host or a LAN takes well under a millisecond.
      if (spins < 50) await new Promise<void>((r) => setImmediate(r));
      else await sleep(1);
    }
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}

/**
 * A state with just a tuple and sequence numbers (no options, empty
 * queues), for sockets that only need to exist: a reset, a placeholder.
 */
export function minimalState(s: Pick<TcpState, 'family' | 'local' | 'remote' | 'sndNxt' | 'rcvNxt'>): TcpState {
  return {
    ...s,
    sndUna: s.sndNxt,
    mssClamp: 536,
    advMss: 536,
    sndWscale: 0,
    rcvWscale: 0,
    timestamps: false,
    sackPermitted: false,
    tsNow: 0,
    sendQueue: Buffer.alloc(0),
    recvQueue: Buffer.alloc(0),
    window: { sndWl1: s.rcvNxt, sndWnd: 65535, maxWindow: 65535, rcvWnd: 65535, rcvWup: s.rcvNxt },
  };
}

/**
 * Resets a connection whose socket baton no longer has: a socket with the
 * given sequence numbers is recreated with TCP_REPAIR and closed with a zero
 * linger, so the kernel sends a RST at `sndNxt`. If that is not exactly the
 * peer's rcv_nxt the peer answers with a challenge ACK, which (the entries
 * being gone and the socket closed) reaches the stack with no socket and
 * draws a second RST carrying the exact number.
 */
export function resetConnection(
  s: Pick<TcpState, 'family' | 'local' | 'remote' | 'sndNxt' | 'rcvNxt'>,
  netnsFd?: number,
): void {
  const state = minimalState(s);
  const run = (): void => {
    const fd = restoreTcp(state);
    const linger = Buffer.alloc(8);
    linger.writeInt32LE(1, 0); // l_onoff
    linger.writeInt32LE(0, 4); // l_linger: 0 -> RST on close
    try {
      setOpt(fd, SOL_SOCKET, SO_LINGER, linger, 'reset');
    } finally {
      closeFd(fd);
    }
  };
  if (netnsFd === undefined) run();
  else withNetnsFd(netnsFd, run);
}
