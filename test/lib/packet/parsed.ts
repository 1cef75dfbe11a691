/**
 * What parsePacket returns: each decoded layer with its fields as on the
 * wire, the checksum verdicts, and the structural problems found.
 */
import type { Buffer } from 'node:buffer';
import type { TcpOption } from './tcp-options.js';

export interface ParsedEth {
  dst: string;
  src: string;
  etherType: number;
}

export interface ParsedIpv4 {
  version: 4;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  rf: boolean; // reserved ("evil") bit
  df: boolean;
  mf: boolean;
  fragOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  /** Bytes between the fixed header and ihl * 4. */
  options: Buffer;
}

export interface ParsedIpv6 {
  version: 6;
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  /** Next header; extension headers are not walked. */
  protocol: number;
  hopLimit: number;
  src: string;
  dst: string;
}

export interface ParsedTcp {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** In 32-bit words, as on the wire. */
  dataOffset: number;
  reserved: number;
  /** Canonical letters, e.g. 'SA' (see tcpFlagsToString). */
  flags: string;
  window: number;
  checksum: number;
  urg: number;
  options: TcpOption[];
  optionsPadding: Buffer;
}

export interface ParsedUdp {
  sport: number;
  dport: number;
  length: number;
  checksum: number;
}

export interface ChecksumCheck {
  layer: 'ipv4' | 'tcp' | 'udp';
  ok: boolean;
  /** Value in the packet, when the field is present. */
  found?: number;
  /** Correct value, when it could be computed. */
  expected?: number;
  /** Why it could not be verified, or why a zero UDP checksum passed. */
  note?: string;
}

export interface ParsedPacket {
  eth?: ParsedEth;
  ip?: ParsedIpv4 | ParsedIpv6;
  tcp?: ParsedTcp;
  udp?: ParsedUdp;
  /** L4 payload; the whole IP payload for other protocols or fragments. */
  payload: Buffer;
  /** Bytes after the IP datagram (e.g. Ethernet minimum-size padding). */
  trailer: Buffer;
  checksums: ChecksumCheck[];
  /** Structural problems; empty for a well-formed packet. */
  errors: string[];
}
