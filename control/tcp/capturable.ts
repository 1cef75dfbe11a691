/**
 * What may be captured: an established TCP socket. checkCapturable refuses
 * anything else with a message that says what the descriptor is instead;
 * explained() turns a failed capture step into that message.
 */
import { errnoValue } from '../sys/errno.js';
import { SocketError } from './errors.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  SO_DOMAIN,
  SO_PROTOCOL,
  SO_TYPE,
  SOCK_STREAM,
  SOL_SOCKET,
  SOL_TCP,
  TCP_ESTABLISHED,
  TCP_INFO,
  TCP_INFO_LAYOUT,
  TCP_LISTEN,
  TCP_STATES,
  TCPI_WSCALE_BYTE,
} from './kernel.js';
import { getInt, getOpt } from './socket.js';

const E = (name: string): number => errnoValue(name);

export interface TcpInfo {
  state: number;
  options: number;
  sndWscale: number;
  rcvWscale: number;
  advMss: number;
}

function tcpInfo(fd: number, op: string): TcpInfo {
  const b = getOpt(fd, SOL_TCP, TCP_INFO, TCP_INFO_LAYOUT.size, op);
  if (b.length < TCP_INFO_LAYOUT.fields.tcpi_advmss + 4) {
    throw new SocketError(op, E('EPROTO'), `of fd ${fd}`, `the kernel returned a ${b.length}-byte tcp_info`);
  }
  const ws = b.readUInt8(TCPI_WSCALE_BYTE);
  return {
    state: b.readUInt8(TCP_INFO_LAYOUT.fields.tcpi_state),
    options: b.readUInt8(TCP_INFO_LAYOUT.fields.tcpi_options),
    sndWscale: ws & 0x0f,
    rcvWscale: ws >> 4,
    advMss: b.readUInt32LE(TCP_INFO_LAYOUT.fields.tcpi_advmss),
  };
}

/**
 * Refuses anything but an established TCP socket, with a message that says
 * what it is instead. One TCP_INFO call answers for a good socket; the
 * socket's domain, type and protocol are only asked to explain a refusal.
 */
export function checkCapturable(fd: number): TcpInfo {
  const op = 'capture';
  let info: TcpInfo | undefined;
  try {
    info = tcpInfo(fd, op);
  } catch {
    /* not TCP (or not a socket): explained below */
  }
  if (!info) {
    const domain = getInt(fd, SOL_SOCKET, SO_DOMAIN, op);
    if (domain !== AF_INET && domain !== AF_INET6) {
      throw new SocketError(
        op,
        E('EAFNOSUPPORT'),
        `of fd ${fd}`,
        `fd ${fd} is not an IPv4/IPv6 socket (address family ${domain}); only TCP connections can be captured`,
      );
    }
    const type = getInt(fd, SOL_SOCKET, SO_TYPE, op);
    const proto = getInt(fd, SOL_SOCKET, SO_PROTOCOL, op);
    if (type !== SOCK_STREAM || proto !== IPPROTO_TCP) {
      const what = proto === 17 ? 'a UDP socket' : `a socket of type ${type}, protocol ${proto}`;
      throw new SocketError(
        op,
        E('EPROTOTYPE'),
        `of fd ${fd}`,
        `fd ${fd} is ${what}, not TCP; only TCP connections can be captured`,
      );
    }
    info = tcpInfo(fd, op); // a TCP socket: now the real error, if any
  }
  if (info.state !== TCP_ESTABLISHED) {
    const name = TCP_STATES[info.state] ?? `state ${info.state}`;
    const why =
      info.state === TCP_LISTEN
        ? `fd ${fd} is a listening socket; only established connections can be captured (capture the accepted socket instead)`
        : `fd ${fd} is in state ${name}; only ESTABLISHED connections can be captured`;
    throw new SocketError(op, E('ENOTCONN'), `of fd ${fd}`, why);
  }
  return info;
}

/** checkCapturable's explanation of why `fd` cannot be captured, or `cause` when it finds nothing wrong. */
export function explained(fd: number, cause: unknown): unknown {
  try {
    checkCapturable(fd);
  } catch (why) {
    return why;
  }
  return cause;
}
