/**
 * What a fixture writes to describe a frame: the Ethernet, IP and TCP/UDP
 * fields that matter to it (everything else defaults), and any deliberate
 * damage (Corruption) to apply.
 */
import type { Buffer } from 'node:buffer';
import type { TcpFlagSet } from './tcp-flags.js';
import type { TcpOption } from './tcp-options.js';

export interface EthSpec {
  /** Default 02:00:00:00:00:01 (locally administered). */
  src?: string;
  /** Default 02:00:00:00:00:02. */
  dst?: string;
}

export interface Ipv4Spec {
  version: 4;
  src: string;
  dst: string;
  ttl?: number; // default 64
  id?: number; // default 0
  tos?: number; // default 0 (DSCP << 2 | ECN)
  df?: boolean; // default false
  mf?: boolean; // default false
  /** In 8-byte units, default 0. */
  fragOffset?: number;
  /** Required only when there is neither tcp nor udp (payload is then the whole IP payload). */
  protocol?: number;
}

export interface Ipv6Spec {
  version: 6;
  src: string;
  dst: string;
  hopLimit?: number; // default 64
  trafficClass?: number; // default 0
  flowLabel?: number; // default 0
  /** Next header; required only when there is neither tcp nor udp. */
  protocol?: number;
}

export interface TcpSpec {
  sport: number;
  dport: number;
  /** Sequence numbers are taken modulo 2^32. Default 0. */
  seq?: number;
  ack?: number;
  /** Letters FSRPAUECN in any order ('S', 'SA', 'PA', 'FA', 'R', 'RA', ...) or a flag set. */
  flags: string | TcpFlagSet;
  window?: number; // default 65535
  options?: TcpOption[];
  /** Urgent pointer, default 0. */
  urg?: number;
}

export interface UdpSpec {
  sport: number;
  dport: number;
}

/** Deliberate damage, applied so that only the named thing is wrong: field
 *  corruptions happen before checksums are computed, checksum corruptions
 *  after, truncation last. */
export interface Corruption {
  ipChecksum?: boolean; // IPv4 only
  l4Checksum?: boolean;
  /** Cut the whole frame (Ethernet included) to this many bytes. */
  truncateTo?: number;
  /** Claimed IP datagram length, header included. For IPv6 the payload length field becomes this - 40. */
  ipTotalLength?: number;
  /** TCP data offset field, in 32-bit words (0..15). */
  tcpDataOffset?: number;
  /** IPv4 IHL field, in 32-bit words (0..15); the real header stays 20 bytes. */
  ipIhl?: number;
  /** Last TCP option with a length byte claims 4 bytes past the end of the header. */
  badOptionLength?: boolean;
}

export interface PacketSpec {
  eth?: EthSpec;
  ip: Ipv4Spec | Ipv6Spec;
  tcp?: TcpSpec;
  udp?: UdpSpec;
  payload?: Buffer | Uint8Array | string;
  corrupt?: Corruption;
}

export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';
