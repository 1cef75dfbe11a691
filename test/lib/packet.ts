/**
 * Packet fixtures for datapath tests, Katran style: build a frame, feed it to
 * the XDP program, then parse / verify / diff what comes out.
 *
 * Pure TypeScript on node:buffer, no dependencies, so fixture tests run
 * anywhere the unit tests run. Scope is what baton's datapath sees:
 * Ethernet II + (IPv4 | IPv6 without extension headers) + (TCP | UDP).
 *
 * Sections: addresses, checksums, TCP flags, TCP options, builder, parser,
 * verifier, diff.
 */
import { Buffer } from 'node:buffer';
import { bytesToIp, ipv4Bytes, ipv6Bytes } from '../../control/net/addr.js';

const ETH_HLEN = 14;
const IPV4_HLEN = 20;
const IPV6_HLEN = 40;
const TCP_HLEN = 20;
const UDP_HLEN = 8;
const TCP_MAX_OPTIONS = 40; // data offset is 4 bits of 32-bit words: 60 - 20

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/* ------------------------------------------------------------------------ */
/* Addresses                                                                */
/* ------------------------------------------------------------------------ */

// Addresses have one implementation, the control plane's (control/net/addr.ts).
export const ipv4ToBytes = ipv4Bytes;
export const ipv6ToBytes = ipv6Bytes;

export function bytesToIpv4(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 4) throw new Error('bytesToIpv4: need 4 bytes');
  return bytesToIp(bytes.subarray(offset, offset + 4), 4);
}

/** RFC 5952 canonical text: lowercase, longest run (>= 2) of zero groups compressed. */
export function bytesToIpv6(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 16) throw new Error('bytesToIpv6: need 16 bytes');
  return bytesToIp(bytes.subarray(offset, offset + 16), 6);
}

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`invalid MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 6) throw new Error('bytesToMac: need 6 bytes');
  return Array.from(bytes.subarray(offset, offset + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

/* ------------------------------------------------------------------------ */
/* Checksums (RFC 1071)                                                     */
/* ------------------------------------------------------------------------ */

/** Folded 16-bit one's complement sum of the concatenation of `parts`. */
function onesSum(parts: Uint8Array[]): number {
  // Concatenate first so an odd-length part does not shift the byte pairing.
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length & 1) sum += data.readUInt8(data.length - 1) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum (one's complement of the one's complement sum). */
export function internetChecksum(...parts: Uint8Array[]): number {
  return ~onesSum(parts) & 0xffff;
}

function pseudoHeader(version: 4 | 6, src: Uint8Array, dst: Uint8Array, proto: number, l4len: number): Buffer {
  if (version === 4) {
    const p = Buffer.alloc(12);
    p.set(src, 0);
    p.set(dst, 4);
    p.writeUInt8(proto, 9);
    p.writeUInt16BE(l4len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  p.set(src, 0);
  p.set(dst, 16);
  p.writeUInt32BE(l4len, 32);
  p.writeUInt8(proto, 39);
  return p;
}

/**
 * Flip bits so the value is wrong even under one's complement equivalence
 * (0x0000 == 0xffff) and never becomes 0, which for UDP/IPv4 would mean
 * "no checksum" and pass verification.
 */
function corruptedChecksum(c: number): number {
  const x = c ^ 0x0101;
  return x === 0 ? c ^ 0x0202 : x;
}

/* ------------------------------------------------------------------------ */
/* TCP flags                                                                */
/* ------------------------------------------------------------------------ */

export interface TcpFlagSet {
  fin?: boolean;
  syn?: boolean;
  rst?: boolean;
  psh?: boolean;
  ack?: boolean;
  urg?: boolean;
  ece?: boolean;
  cwr?: boolean;
  ns?: boolean;
}

// Letter order follows bit order (scapy convention), so SYN+ACK prints 'SA'.
const FLAG_LETTERS: ReadonlyArray<[string, keyof TcpFlagSet, number]> = [
  ['F', 'fin', 0x001],
  ['S', 'syn', 0x002],
  ['R', 'rst', 0x004],
  ['P', 'psh', 0x008],
  ['A', 'ack', 0x010],
  ['U', 'urg', 0x020],
  ['E', 'ece', 0x040],
  ['C', 'cwr', 0x080],
  ['N', 'ns', 0x100],
];

/** 'SA', 'pa', { syn: true } -> 9-bit flag value (NS in bit 8). Letters may come in any order. */
export function tcpFlagBits(flags: string | TcpFlagSet): number {
  let bits = 0;
  if (typeof flags === 'string') {
    for (const ch of flags.toUpperCase()) {
      const f = FLAG_LETTERS.find(([l]) => l === ch);
      if (!f) throw new Error(`unknown TCP flag letter ${JSON.stringify(ch)} in ${JSON.stringify(flags)} (use FSRPAUECN)`);
      bits |= f[2];
    }
    return bits;
  }
  for (const [, key, bit] of FLAG_LETTERS) if (flags[key]) bits |= bit;
  return bits;
}

/** Canonical flag string, e.g. 0x12 -> 'SA'; '' when no flag is set. */
export function tcpFlagsToString(bits: number): string {
  return FLAG_LETTERS.filter(([, , bit]) => bits & bit)
    .map(([l]) => l)
    .join('');
}

/* ------------------------------------------------------------------------ */
/* TCP options                                                              */
/* ------------------------------------------------------------------------ */

export type SackBlock = [left: number, right: number];

export type TcpOption =
  | { kind: 'eol' }
  | { kind: 'nop' }
  | { kind: 'mss'; value: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sackPermitted' }
  | { kind: 'sack'; blocks: SackBlock[] }
  | { kind: 'timestamp'; tsval: number; tsecr: number }
  /** Anything else, or a known kind with a length the decoder does not accept. */
  | { kind: 'raw'; type: number; data: Buffer };

const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERM = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;

function u8(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new Error(`${what} must be an integer 0..255, got ${n}`);
  return n;
}
function u16(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${what} must be an integer 0..65535, got ${n}`);
  return n;
}
/** Sequence-space values wrap, so tests may write `isn + len` without masking. */
function u32wrap(n: number, what: string): number {
  if (!Number.isInteger(n)) throw new Error(`${what} must be an integer, got ${n}`);
  return n >>> 0;
}

function encodeOption(o: TcpOption): number[] {
  const be32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  switch (o.kind) {
    case 'eol':
      return [OPT_EOL];
    case 'nop':
      return [OPT_NOP];
    case 'mss': {
      const v = u16(o.value, 'mss value');
      return [OPT_MSS, 4, v >> 8, v & 0xff];
    }
    case 'wscale':
      return [OPT_WSCALE, 3, u8(o.shift, 'wscale shift')];
    case 'sackPermitted':
      return [OPT_SACK_PERM, 2];
    case 'sack': {
      if (o.blocks.length < 1 || o.blocks.length > 4) {
        throw new Error(`sack option needs 1..4 blocks, got ${o.blocks.length}`);
      }
      const out = [OPT_SACK, 2 + 8 * o.blocks.length];
      for (const [l, r] of o.blocks) out.push(...be32(u32wrap(l, 'sack left')), ...be32(u32wrap(r, 'sack right')));
      return out;
    }
    case 'timestamp':
      return [OPT_TIMESTAMP, 10, ...be32(u32wrap(o.tsval, 'tsval')), ...be32(u32wrap(o.tsecr, 'tsecr'))];
    case 'raw':
      if (o.data.length > 253) throw new Error(`raw option data too long: ${o.data.length} bytes`);
      return [u8(o.type, 'raw option type'), 2 + o.data.length, ...o.data];
  }
}

/**
 * Encode options in the order given, then pad with zero bytes (EOL followed by
 * zeros) to a 4-byte multiple. Real stacks insert NOPs for alignment
 * themselves, so callers wanting Linux-identical bytes list the NOPs explicitly.
 */
export function encodeTcpOptions(options: readonly TcpOption[]): Buffer {
  const bytes = options.flatMap(encodeOption);
  const padded = Buffer.alloc(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  if (padded.length > TCP_MAX_OPTIONS) {
    throw new Error(`TCP options take ${padded.length} bytes after padding, max is ${TCP_MAX_OPTIONS}`);
  }
  return padded;
}

export interface DecodedTcpOptions {
  options: TcpOption[];
  /** Bytes after the last decoded option (alignment padding, or what follows an explicit EOL). */
  padding: Buffer;
  errors: string[];
}

/**
 * Decode an options area. An EOL that only starts the final alignment padding
 * (fewer than 4 bytes, all zero) is reported as padding rather than an option,
 * so `[mss, wscale]` round-trips as written instead of gaining an 'eol'.
 * Known kinds with a wrong length decode as 'raw' (stacks ignore them too).
 */
export function decodeTcpOptions(area: Uint8Array): DecodedTcpOptions {
  const buf = Buffer.from(area);
  const options: TcpOption[] = [];
  const errors: string[] = [];
  let i = 0;
  while (i < buf.length) {
    const kind = buf.readUInt8(i);
    if (kind === OPT_EOL) {
      const rest = buf.subarray(i);
      if (rest.length < 4 && rest.every((x) => x === 0)) return { options, padding: rest, errors };
      options.push({ kind: 'eol' });
      return { options, padding: buf.subarray(i + 1), errors };
    }
    if (kind === OPT_NOP) {
      options.push({ kind: 'nop' });
      i++;
      continue;
    }
    if (i + 1 >= buf.length) {
      errors.push(`tcp.options: option kind ${kind} at offset ${i} has no length byte before the header ends`);
      return { options, padding: buf.subarray(i), errors };
    }
    const len = buf.readUInt8(i + 1);
    if (len < 2) {
      errors.push(`tcp.options: option kind ${kind} at offset ${i} has invalid length ${len} (< 2)`);
      return { options, padding: buf.subarray(i), errors };
    }
    if (i + len > buf.length) {
      errors.push(
        `tcp.options: option kind ${kind} at offset ${i} has length ${len}, running past the end of the ` +
          `${buf.length}-byte options area by ${i + len - buf.length} bytes`,
      );
      return { options, padding: buf.subarray(i), errors };
    }
    options.push(decodeOption(kind, buf.subarray(i + 2, i + len)));
    i += len;
  }
  return { options, padding: Buffer.alloc(0), errors };
}

function decodeOption(kind: number, data: Buffer): TcpOption {
  const n = data.length;
  if (kind === OPT_MSS && n === 2) return { kind: 'mss', value: data.readUInt16BE(0) };
  if (kind === OPT_WSCALE && n === 1) return { kind: 'wscale', shift: data.readUInt8(0) };
  if (kind === OPT_SACK_PERM && n === 0) return { kind: 'sackPermitted' };
  if (kind === OPT_TIMESTAMP && n === 8) {
    return { kind: 'timestamp', tsval: data.readUInt32BE(0), tsecr: data.readUInt32BE(4) };
  }
  if (kind === OPT_SACK && n > 0 && n % 8 === 0 && n <= 32) {
    const blocks: SackBlock[] = [];
    for (let j = 0; j < n; j += 8) blocks.push([data.readUInt32BE(j), data.readUInt32BE(j + 4)]);
    return { kind: 'sack', blocks };
  }
  return { kind: 'raw', type: kind, data: Buffer.from(data) };
}

/**
 * For corrupt.badOptionLength: make the last length-carrying option claim
 * more bytes than remain in the header, the classic parser overrun case.
 */
function overrunLastOption(opts: Buffer): void {
  let last = -1;
  for (let i = 0; i < opts.length; ) {
    const kind = opts.readUInt8(i);
    if (kind === OPT_EOL || kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= opts.length) break;
    last = i;
    i += Math.max(2, opts.readUInt8(i + 1));
  }
  if (last < 0) throw new Error('corrupt.badOptionLength needs at least one TCP option with a length byte');
  opts.writeUInt8(opts.length - last + 4, last + 1);
}

/* ------------------------------------------------------------------------ */
/* Builder                                                                  */
/* ------------------------------------------------------------------------ */

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

function buildTcpHeader(t: TcpSpec, c: Corruption): Buffer {
  const opts = encodeTcpOptions(t.options ?? []);
  if (c.badOptionLength) overrunLastOption(opts);
  const h = Buffer.alloc(TCP_HLEN + opts.length);
  const flags = tcpFlagBits(t.flags);
  const doff = c.tcpDataOffset ?? h.length / 4;
  if (!Number.isInteger(doff) || doff < 0 || doff > 15) throw new Error(`corrupt.tcpDataOffset must be 0..15, got ${doff}`);
  h.writeUInt16BE(u16(t.sport, 'tcp.sport'), 0);
  h.writeUInt16BE(u16(t.dport, 'tcp.dport'), 2);
  h.writeUInt32BE(u32wrap(t.seq ?? 0, 'tcp.seq'), 4);
  h.writeUInt32BE(u32wrap(t.ack ?? 0, 'tcp.ack'), 8);
  h.writeUInt8((doff << 4) | (flags >> 8), 12);
  h.writeUInt8(flags & 0xff, 13);
  h.writeUInt16BE(u16(t.window ?? 65535, 'tcp.window'), 14);
  h.writeUInt16BE(u16(t.urg ?? 0, 'tcp.urg'), 18);
  h.set(opts, TCP_HLEN);
  return h;
}

function buildUdpHeader(u: UdpSpec, payloadLen: number): Buffer {
  const h = Buffer.alloc(UDP_HLEN);
  h.writeUInt16BE(u16(u.sport, 'udp.sport'), 0);
  h.writeUInt16BE(u16(u.dport, 'udp.dport'), 2);
  h.writeUInt16BE(u16(UDP_HLEN + payloadLen, 'udp.length'), 4);
  return h;
}

function buildIpv4Header(ip: Ipv4Spec, proto: number, l4len: number, c: Corruption): Buffer {
  const h = Buffer.alloc(IPV4_HLEN);
  const ihl = c.ipIhl ?? 5;
  if (!Number.isInteger(ihl) || ihl < 0 || ihl > 15) throw new Error(`corrupt.ipIhl must be 0..15, got ${ihl}`);
  const frag = ip.fragOffset ?? 0;
  if (!Number.isInteger(frag) || frag < 0 || frag > 0x1fff) throw new Error(`ip.fragOffset must be 0..8191, got ${frag}`);
  h.writeUInt8(0x40 | ihl, 0);
  h.writeUInt8(u8(ip.tos ?? 0, 'ip.tos'), 1);
  h.writeUInt16BE(u16(c.ipTotalLength ?? IPV4_HLEN + l4len, 'IPv4 total length'), 2);
  h.writeUInt16BE(u16(ip.id ?? 0, 'ip.id'), 4);
  h.writeUInt16BE((ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | frag, 6);
  h.writeUInt8(u8(ip.ttl ?? 64, 'ip.ttl'), 8);
  h.writeUInt8(proto, 9);
  h.set(ipv4ToBytes(ip.src), 12);
  h.set(ipv4ToBytes(ip.dst), 16);
  h.writeUInt16BE(internetChecksum(h), 10);
  if (c.ipChecksum) h.writeUInt16BE(corruptedChecksum(h.readUInt16BE(10)), 10);
  return h;
}

function buildIpv6Header(ip: Ipv6Spec, proto: number, l4len: number, c: Corruption): Buffer {
  if (c.ipChecksum) throw new Error('corrupt.ipChecksum: IPv6 has no header checksum');
  if (c.ipIhl !== undefined) throw new Error('corrupt.ipIhl: IPv6 has no IHL field');
  const h = Buffer.alloc(IPV6_HLEN);
  const flow = ip.flowLabel ?? 0;
  if (!Number.isInteger(flow) || flow < 0 || flow > 0xfffff) throw new Error(`ip.flowLabel must be 0..0xfffff, got ${flow}`);
  h.writeUInt32BE(((6 << 28) | (u8(ip.trafficClass ?? 0, 'ip.trafficClass') << 20) | flow) >>> 0, 0);
  let plen = l4len;
  if (c.ipTotalLength !== undefined) {
    if (c.ipTotalLength < IPV6_HLEN) throw new Error('corrupt.ipTotalLength for IPv6 must be >= 40 (it includes the header)');
    plen = c.ipTotalLength - IPV6_HLEN;
  }
  h.writeUInt16BE(u16(plen, 'IPv6 payload length'), 4);
  h.writeUInt8(proto, 6);
  h.writeUInt8(u8(ip.hopLimit ?? 64, 'ip.hopLimit'), 7);
  h.set(ipv6ToBytes(ip.src), 8);
  h.set(ipv6ToBytes(ip.dst), 24);
  return h;
}

function toBuffer(p: Buffer | Uint8Array | string | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p);
}

/** Build an Ethernet frame with correct lengths and checksums, unless `corrupt` says otherwise. */
export function buildPacket(spec: PacketSpec): Buffer {
  const c = spec.corrupt ?? {};
  const { ip, tcp, udp } = spec;
  if (tcp && udp) throw new Error('buildPacket: give tcp or udp, not both');
  if (!tcp && (c.tcpDataOffset !== undefined || c.badOptionLength)) {
    throw new Error('buildPacket: tcpDataOffset/badOptionLength corruption needs a tcp layer');
  }
  const payload = toBuffer(spec.payload);

  let proto: number;
  let l4hdr: Buffer;
  if (tcp) {
    proto = IPPROTO_TCP;
    l4hdr = buildTcpHeader(tcp, c);
  } else if (udp) {
    proto = IPPROTO_UDP;
    l4hdr = buildUdpHeader(udp, payload.length);
  } else {
    if (ip.protocol === undefined) throw new Error('buildPacket: without tcp/udp, ip.protocol is required');
    if (c.l4Checksum) throw new Error('corrupt.l4Checksum needs a tcp or udp layer');
    proto = ip.protocol;
    l4hdr = Buffer.alloc(0);
  }
  if (ip.protocol !== undefined && ip.protocol !== proto) {
    throw new Error(`buildPacket: ip.protocol ${ip.protocol} contradicts the ${tcp ? 'tcp' : 'udp'} layer`);
  }
  u8(proto, 'ip.protocol');

  const segment = Buffer.concat([l4hdr, payload]);
  const src = ip.version === 4 ? ipv4ToBytes(ip.src) : ipv6ToBytes(ip.src);
  const dst = ip.version === 4 ? ipv4ToBytes(ip.dst) : ipv6ToBytes(ip.dst);
  if (tcp || udp) {
    // The checksum always covers the real segment, whatever length the IP header claims.
    const at = tcp ? 16 : 6;
    let sum = internetChecksum(pseudoHeader(ip.version, src, dst, proto, segment.length), segment);
    if (udp && sum === 0) sum = 0xffff; // 0 means "no checksum" for UDP (RFC 768)
    if (c.l4Checksum) sum = corruptedChecksum(sum);
    segment.writeUInt16BE(sum, at);
  }

  const ipHdr =
    ip.version === 4 ? buildIpv4Header(ip, proto, segment.length, c) : buildIpv6Header(ip, proto, segment.length, c);
  const eth = Buffer.alloc(ETH_HLEN);
  eth.set(macToBytes(spec.eth?.dst ?? DEFAULT_DST_MAC), 0);
  eth.set(macToBytes(spec.eth?.src ?? DEFAULT_SRC_MAC), 6);
  eth.writeUInt16BE(ip.version === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6, 12);

  const frame = Buffer.concat([eth, ipHdr, segment]);
  if (c.truncateTo !== undefined) {
    if (!Number.isInteger(c.truncateTo) || c.truncateTo < 0 || c.truncateTo > frame.length) {
      throw new Error(`corrupt.truncateTo must be 0..${frame.length}, got ${c.truncateTo}`);
    }
    return Buffer.from(frame.subarray(0, c.truncateTo));
  }
  return frame;
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                   */
/* ------------------------------------------------------------------------ */

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

/**
 * Decode as far as the bytes allow. Never throws: malformed input yields
 * partial layers plus human-readable `errors`.
 */
export function parsePacket(frame: Uint8Array): ParsedPacket {
  const pkt: ParsedPacket = { payload: Buffer.alloc(0), trailer: Buffer.alloc(0), checksums: [], errors: [] };
  try {
    parseFrame(Buffer.from(frame), pkt);
  } catch (e) {
    // Bounds are checked explicitly; this is a backstop so a parser bug shows up as a readable error.
    pkt.errors.push(`internal parser error: ${e instanceof Error ? e.message : String(e)}`);
  }
  return pkt;
}

function parseFrame(b: Buffer, pkt: ParsedPacket): void {
  if (b.length < ETH_HLEN) {
    pkt.errors.push(`frame is ${b.length} bytes, shorter than the ${ETH_HLEN}-byte Ethernet header`);
    return;
  }
  pkt.eth = { dst: bytesToMac(b, 0), src: bytesToMac(b, 6), etherType: b.readUInt16BE(12) };
  const l3 = b.subarray(ETH_HLEN);
  if (pkt.eth.etherType === ETHERTYPE_IPV4) parseIpv4(l3, pkt);
  else if (pkt.eth.etherType === ETHERTYPE_IPV6) parseIpv6(l3, pkt);
  else pkt.errors.push(`unsupported ethertype 0x${hex16(pkt.eth.etherType)}`);
}

function parseIpv4(b: Buffer, pkt: ParsedPacket): void {
  if (b.length < IPV4_HLEN) {
    pkt.errors.push(`IPv4 header truncated: ${b.length} bytes after Ethernet, need ${IPV4_HLEN}`);
    return;
  }
  const ihl = b.readUInt8(0) & 0x0f;
  const version = b.readUInt8(0) >> 4;
  const fragField = b.readUInt16BE(6);
  const ip: ParsedIpv4 = {
    version: 4,
    ihl,
    tos: b.readUInt8(1),
    totalLength: b.readUInt16BE(2),
    id: b.readUInt16BE(4),
    rf: (fragField & 0x8000) !== 0,
    df: (fragField & 0x4000) !== 0,
    mf: (fragField & 0x2000) !== 0,
    fragOffset: fragField & 0x1fff,
    ttl: b.readUInt8(8),
    protocol: b.readUInt8(9),
    checksum: b.readUInt16BE(10),
    src: bytesToIpv4(b, 12),
    dst: bytesToIpv4(b, 16),
    options: Buffer.alloc(0),
  };
  pkt.ip = ip;
  if (version !== 4) {
    pkt.errors.push(`ip.version is ${version} but the ethertype says IPv4`);
    return;
  }
  const hlen = ihl * 4;
  if (ihl < 5) {
    pkt.errors.push(`ip.ihl ${ihl} (${hlen} bytes) is below the ${IPV4_HLEN}-byte minimum`);
    pkt.checksums.push({ layer: 'ipv4', ok: false, found: ip.checksum, note: 'IHL invalid, header extent unknown' });
    return;
  }
  if (hlen > b.length) {
    pkt.errors.push(`ip.ihl ${ihl} (${hlen} bytes) runs past the ${b.length} bytes present`);
    pkt.checksums.push({ layer: 'ipv4', ok: false, found: ip.checksum, note: 'header truncated' });
    return;
  }
  ip.options = Buffer.from(b.subarray(IPV4_HLEN, hlen));
  const hdr = b.subarray(0, hlen);
  const zeroed = Buffer.from(hdr);
  zeroed.writeUInt16BE(0, 10);
  pkt.checksums.push({
    layer: 'ipv4',
    ok: onesSum([hdr]) === 0xffff,
    found: ip.checksum,
    expected: internetChecksum(zeroed),
  });
  if (ip.totalLength < hlen) {
    pkt.errors.push(`ip.totalLength ${ip.totalLength} is smaller than the ${hlen}-byte header`);
    return;
  }
  const end = Math.min(ip.totalLength, b.length);
  if (ip.totalLength > b.length) {
    pkt.errors.push(`ip.totalLength ${ip.totalLength} exceeds the ${b.length} bytes present (truncated frame?)`);
  }
  pkt.trailer = Buffer.from(b.subarray(end));
  const body = b.subarray(hlen, end);
  if (ip.mf || ip.fragOffset !== 0) {
    // Fragments carry no complete L4 segment; leave them undecoded rather than guess.
    pkt.payload = Buffer.from(body);
    return;
  }
  const truncated =
    ip.totalLength > b.length ? `frame truncated: IP claims ${ip.totalLength} bytes, ${b.length} present` : undefined;
  parseL4(4, ipv4ToBytes(ip.src), ipv4ToBytes(ip.dst), ip.protocol, body, truncated, pkt);
}

function parseIpv6(b: Buffer, pkt: ParsedPacket): void {
  if (b.length < IPV6_HLEN) {
    pkt.errors.push(`IPv6 header truncated: ${b.length} bytes after Ethernet, need ${IPV6_HLEN}`);
    return;
  }
  const w0 = b.readUInt32BE(0);
  const ip: ParsedIpv6 = {
    version: 6,
    trafficClass: (w0 >>> 20) & 0xff,
    flowLabel: w0 & 0xfffff,
    payloadLength: b.readUInt16BE(4),
    protocol: b.readUInt8(6),
    hopLimit: b.readUInt8(7),
    src: bytesToIpv6(b, 8),
    dst: bytesToIpv6(b, 24),
  };
  pkt.ip = ip;
  if (w0 >>> 28 !== 6) {
    pkt.errors.push(`ip.version is ${w0 >>> 28} but the ethertype says IPv6`);
    return;
  }
  const avail = b.length - IPV6_HLEN;
  const end = IPV6_HLEN + Math.min(ip.payloadLength, avail);
  if (ip.payloadLength > avail) {
    pkt.errors.push(`ip.payloadLength ${ip.payloadLength} exceeds the ${avail} bytes present (truncated frame?)`);
  }
  pkt.trailer = Buffer.from(b.subarray(end));
  const truncated =
    ip.payloadLength > avail
      ? `frame truncated: IPv6 claims ${ip.payloadLength} payload bytes, ${avail} present`
      : undefined;
  parseL4(6, b.subarray(8, 24), b.subarray(24, 40), ip.protocol, b.subarray(IPV6_HLEN, end), truncated, pkt);
}

function parseL4(
  version: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  seg: Buffer,
  truncated: string | undefined,
  pkt: ParsedPacket,
): void {
  if (proto === IPPROTO_TCP) parseTcp(version, src, dst, seg, truncated, pkt);
  else if (proto === IPPROTO_UDP) parseUdp(version, src, dst, seg, truncated, pkt);
  else pkt.payload = Buffer.from(seg);
}

/** Verify an L4 checksum over `covered` bytes of the segment. */
function checkL4(
  layer: 'tcp' | 'udp',
  version: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  seg: Buffer,
  covered: number,
  truncated: string | undefined,
): ChecksumCheck {
  const at = layer === 'tcp' ? 16 : 6;
  const proto = layer === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
  const found = seg.length >= at + 2 ? seg.readUInt16BE(at) : undefined;
  if (truncated) return { layer, ok: false, found, note: truncated };
  if (found === undefined) return { layer, ok: false, note: `segment of ${seg.length} bytes has no checksum field` };
  const data = seg.subarray(0, covered);
  const pseudo = pseudoHeader(version, src, dst, proto, covered);
  const zeroed = Buffer.from(data);
  zeroed.writeUInt16BE(0, at);
  let expected = internetChecksum(pseudo, zeroed);
  if (layer === 'udp' && expected === 0) expected = 0xffff;
  if (layer === 'udp' && found === 0) {
    return version === 4
      ? { layer, ok: true, found, expected, note: 'UDP checksum not used (0)' }
      : { layer, ok: false, found, expected, note: 'zero UDP checksum is not allowed over IPv6 (RFC 8200)' };
  }
  // Receivers accept any value whose sum folds to 0xffff, so 0x0000/0xffff both pass.
  return { layer, ok: onesSum([pseudo, data]) === 0xffff, found, expected };
}

function parseTcp(
  version: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  seg: Buffer,
  truncated: string | undefined,
  pkt: ParsedPacket,
): void {
  pkt.checksums.push(checkL4('tcp', version, src, dst, seg, seg.length, truncated));
  if (seg.length < TCP_HLEN) {
    pkt.errors.push(`TCP header truncated: ${seg.length} bytes, need ${TCP_HLEN}`);
    return;
  }
  const doff = seg.readUInt8(12) >> 4;
  const bits = ((seg.readUInt8(12) & 1) << 8) | seg.readUInt8(13);
  const tcp: ParsedTcp = {
    sport: seg.readUInt16BE(0),
    dport: seg.readUInt16BE(2),
    seq: seg.readUInt32BE(4),
    ack: seg.readUInt32BE(8),
    dataOffset: doff,
    reserved: (seg.readUInt8(12) >> 1) & 0x7,
    flags: tcpFlagsToString(bits),
    window: seg.readUInt16BE(14),
    checksum: seg.readUInt16BE(16),
    urg: seg.readUInt16BE(18),
    options: [],
    optionsPadding: Buffer.alloc(0),
  };
  pkt.tcp = tcp;
  const hlen = doff * 4;
  if (doff < 5) {
    pkt.errors.push(`tcp.dataOffset ${doff} (${hlen} bytes) is below the ${TCP_HLEN}-byte minimum`);
    return;
  }
  if (hlen > seg.length) {
    pkt.errors.push(`tcp.dataOffset ${doff} (${hlen} bytes) runs past the ${seg.length}-byte segment`);
    return;
  }
  const opts = decodeTcpOptions(seg.subarray(TCP_HLEN, hlen));
  tcp.options = opts.options;
  tcp.optionsPadding = Buffer.from(opts.padding);
  pkt.errors.push(...opts.errors);
  pkt.payload = Buffer.from(seg.subarray(hlen));
}

function parseUdp(
  version: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  seg: Buffer,
  truncated: string | undefined,
  pkt: ParsedPacket,
): void {
  if (seg.length < UDP_HLEN) {
    pkt.errors.push(`UDP header truncated: ${seg.length} bytes, need ${UDP_HLEN}`);
    pkt.checksums.push(checkL4('udp', version, src, dst, seg, seg.length, truncated));
    return;
  }
  const udp: ParsedUdp = {
    sport: seg.readUInt16BE(0),
    dport: seg.readUInt16BE(2),
    length: seg.readUInt16BE(4),
    checksum: seg.readUInt16BE(6),
  };
  pkt.udp = udp;
  let covered = udp.length;
  if (udp.length < UDP_HLEN) {
    pkt.errors.push(`udp.length ${udp.length} is below the ${UDP_HLEN}-byte header`);
    covered = seg.length;
  } else if (udp.length > seg.length && !truncated) {
    pkt.errors.push(`udp.length ${udp.length} exceeds the ${seg.length}-byte IP payload`);
    covered = seg.length;
  }
  // Like Linux, a UDP length shorter than the IP payload trims it; the rest is ignored.
  covered = Math.min(covered, seg.length);
  pkt.checksums.push(checkL4('udp', version, src, dst, seg, covered, truncated));
  pkt.payload = Buffer.from(seg.subarray(UDP_HLEN, covered));
}

/* ------------------------------------------------------------------------ */
/* Verifier                                                                 */
/* ------------------------------------------------------------------------ */

function describeCheck(c: ChecksumCheck): string {
  if (c.expected === undefined) return `${c.layer} checksum cannot be verified: ${c.note ?? 'unknown reason'}`;
  const msg = `${c.layer} checksum 0x${hex16(c.found ?? 0)} is wrong, expected 0x${hex16(c.expected)}`;
  return c.note ? `${msg} (${c.note})` : msg;
}

/**
 * Check the IPv4 header checksum and the TCP/UDP checksum. A checksum that
 * cannot be checked (truncated frame, unknown header extent) counts as an
 * error, and so does a frame with no IP layer at all.
 */
export function verifyChecksums(frame: Uint8Array): { ok: boolean; errors: string[] } {
  const pkt = parsePacket(frame);
  const errors = pkt.checksums.filter((c) => !c.ok).map(describeCheck);
  if (!pkt.ip || pkt.checksums.length === 0) {
    // Parsing stopped before any checksum could be located; say why.
    errors.push(...pkt.errors.map((e) => `cannot verify checksums: ${e}`));
  }
  return { ok: errors.length === 0 && pkt.ip !== undefined, errors };
}

/* ------------------------------------------------------------------------ */
/* Diff                                                                     */
/* ------------------------------------------------------------------------ */

type Leaf = number | string | boolean | Buffer;

function hex16(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Flatten a parse into `path -> value` leaves, in header order. */
function flatten(pkt: ParsedPacket): Map<string, Leaf> {
  const out = new Map<string, Leaf>();
  const walk = (prefix: string, v: unknown): void => {
    if (v === undefined) return;
    if (Buffer.isBuffer(v) || typeof v !== 'object' || v === null) {
      out.set(prefix, v as Leaf);
      return;
    }
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(`${prefix}[${i}]`, x));
      return;
    }
    for (const [k, x] of Object.entries(v)) walk(`${prefix}.${k}`, x);
  };
  walk('eth', pkt.eth);
  walk('ip', pkt.ip);
  walk('tcp', pkt.tcp);
  if (pkt.tcp) out.set('tcp.options.count', pkt.tcp.options.length);
  walk('udp', pkt.udp);
  out.set('payload', pkt.payload);
  out.set('trailer', pkt.trailer);
  for (const c of pkt.checksums) out.set(`valid.${c.layer}`, c.ok ? 'ok' : describeCheck(c));
  if (pkt.errors.length) out.set('errors', pkt.errors.join('; '));
  return out;
}

function showLeaf(v: Leaf | undefined): string {
  if (v === undefined) return '(absent)';
  if (typeof v === 'number') return `${v} (0x${v.toString(16)})`;
  if (Buffer.isBuffer(v)) {
    const shown = v.subarray(0, 32).toString('hex');
    return `${v.length} bytes [${shown}${v.length > 32 ? '…' : ''}]`;
  }
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function sameLeaf(a: Leaf | undefined, b: Leaf | undefined): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a.readUInt8(i) !== b.readUInt8(i)) return i;
  return n;
}

/** Plain 16-bytes-per-line hex dump. */
export function hexDump(buf: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < buf.length; off += 16) {
    const row = Array.from(buf.subarray(off, off + 16), (x) => x.toString(16).padStart(2, '0')).join(' ');
    lines.push(`${off.toString(16).padStart(4, '0')}  ${row}`);
  }
  return lines.join('\n');
}

/** Rows that differ, expected over actual, with a ^^ marker under each differing byte. */
function markedHexDump(exp: Buffer, act: Buffer): string {
  const byte = (b: Buffer, i: number): string => (i < b.length ? b.readUInt8(i).toString(16).padStart(2, '0') : '--');
  const lines = [`hex dump (rows that differ; expected ${exp.length} bytes, actual ${act.length} bytes, -- = absent):`];
  const len = Math.max(exp.length, act.length);
  for (let off = 0; off < len; off += 16) {
    const idx = Array.from({ length: Math.min(16, len - off) }, (_, k) => off + k);
    const diffs = idx.map((i) => byte(exp, i) !== byte(act, i));
    if (!diffs.includes(true)) continue;
    const o = off.toString(16).padStart(4, '0');
    lines.push(`  ${o} expected ${idx.map((i) => byte(exp, i)).join(' ')}`);
    lines.push(`  ${o} actual   ${idx.map((i) => byte(act, i)).join(' ')}`);
    lines.push(`  ${' '.repeat(o.length)}          ${diffs.map((d) => (d ? '^^' : '  ')).join(' ')}`.trimEnd());
  }
  return lines.join('\n');
}

/**
 * Field-level diff of two frames, or null when they are byte-identical.
 * Lines look like `tcp.seq: expected 1000 (0x3e8) got 1001 (0x3e9)`. A marked
 * hex dump is appended when the structure differs (length, layers, option
 * layout, parse errors) or when no decoded field explains the difference.
 */
export function diffPackets(expected: Uint8Array, actual: Uint8Array): string | null {
  const exp = Buffer.from(expected);
  const act = Buffer.from(actual);
  if (exp.equals(act)) return null;
  const pe = parsePacket(exp);
  const pa = parsePacket(act);
  const fe = flatten(pe);
  const fa = flatten(pa);
  const lines: string[] = [];
  const keys = [...fe.keys(), ...[...fa.keys()].filter((k) => !fe.has(k))];
  // A layer missing on one side is one line, not one line per field.
  const missing = new Set<string>();
  for (const layer of ['eth', 'ip', 'tcp', 'udp'] as const) {
    if ((pe[layer] === undefined) === (pa[layer] === undefined)) continue;
    missing.add(layer);
    lines.push(`${layer}: expected ${pe[layer] ? 'present' : '(absent)'} got ${pa[layer] ? 'present' : '(absent)'}`);
  }
  for (const k of keys) {
    if (missing.has(k.split(/[.[]/)[0] ?? '')) continue;
    const a = fe.get(k);
    const b = fa.get(k);
    if (sameLeaf(a, b)) continue;
    let line = `${k}: expected ${showLeaf(a)} got ${showLeaf(b)}`;
    if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) line += ` (first difference at offset ${firstDiff(a, b)})`;
    lines.push(line);
  }
  const sameShape = keys.every((k) => fe.has(k) && fa.has(k));
  const structural =
    exp.length !== act.length || !sameShape || pe.errors.length > 0 || pa.errors.length > 0 || lines.length === 0;
  const out = ['packets differ:', ...lines.map((l) => `  ${l}`)];
  if (structural) out.push(markedHexDump(exp, act));
  return out.join('\n');
}
