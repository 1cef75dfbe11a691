/**
 * What baton knows of one TCP socket: everything TCP_REPAIR (and the
 * socket probe) can read, enough to translate between two legs or to
 * recreate the socket elsewhere. Sequence numbers and timestamps are u32
 * and wrap; compare them with seqBefore, never with <.
 */
import type { Family } from '../net/addr.js';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface TcpState {
  family: Family;
  local: Endpoint;
  remote: Endpoint;
  /** Next sequence number this socket will send. */
  sndNxt: number;
  /** Oldest unacknowledged sequence number; sndUna === sndNxt when all is acked. */
  sndUna: number;
  /** Next sequence number expected from the peer. */
  rcvNxt: number;
  /** Peer's MSS (rx_opt.mss_clamp): the largest segment the peer accepts. */
  mssClamp: number;
  /** MSS this socket advertised: the largest segment the peer will send us. */
  advMss: number;
  /** Shift applied to window fields the peer sends (0 when no scaling). */
  sndWscale: number;
  /** Shift this socket applies to window fields it sends. */
  rcvWscale: number;
  timestamps: boolean;
  sackPermitted: boolean;
  /** This socket's current TSval clock (TCP_TIMESTAMP). Opaque to the kernel on
   * restore: its lowest bit carries the usec_ts flag (set when usecTs). */
  tsNow: number;
  /** TSvals tick in microseconds, not milliseconds (tcp_usec_ts, Linux 6.7+,
   * negotiated per route); undefined when unknown (treat as false). */
  usecTs?: boolean;
  /** Peer's most recent TSval (rx_opt.ts_recent); undefined when unknown. */
  tsRecent?: number;
  /** Bytes in the send queue not yet acknowledged (includes unsent). */
  sendQueue: Buffer;
  /** Bytes received but not read by the application. */
  recvQueue: Buffer;
  window: { sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number };
}

export const seqBefore = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const u32 = (n: number): number => n >>> 0;

/** Largest TCP window scale shift (RFC 7323 §2.3). */
export const MAX_WSCALE = 14;

/**
 * Why a TcpState cannot be restored as it stands, or undefined: the
 * consistency rules restoring (control/tcp/restore.ts) and the state blob
 * (control/tcp/blob/check.ts) share. Sequence numbers wrap, so the bytes in
 * flight are taken modulo 2^32.
 */
export function tcpStateInconsistency(s: TcpState): string | undefined {
  const sent = u32(s.sndNxt - s.sndUna);
  if (sent > s.sendQueue.length)
    return `sndNxt - sndUna is ${sent} bytes but the send queue holds only ${s.sendQueue.length}`;
  if (s.sndWscale > MAX_WSCALE || s.rcvWscale > MAX_WSCALE || s.sndWscale < 0 || s.rcvWscale < 0) {
    return `window scale must be 0..${MAX_WSCALE}, got ${s.sndWscale}/${s.rcvWscale}`;
  }
  if (!Number.isInteger(s.mssClamp) || s.mssClamp < 1 || s.mssClamp > 0xffff)
    return `mssClamp must be 1..65535, got ${s.mssClamp}`;
  if (s.window.maxWindow < s.window.sndWnd) {
    return `window.maxWindow (${s.window.maxWindow}) is below window.sndWnd (${s.window.sndWnd})`;
  }
  return undefined;
}
