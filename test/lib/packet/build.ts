/**
 * buildPacket: a PacketSpec to the bytes of an Ethernet frame, with correct
 * lengths and checksums unless the spec's Corruption says otherwise.
 */
import { Buffer } from 'node:buffer';
import { ipv4ToBytes, ipv6ToBytes, macToBytes } from './addresses.js';
import { corruptedChecksum, internetChecksum, pseudoHeader } from './checksum.js';
import {
  ETH_HLEN,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HLEN,
  IPV6_HLEN,
  TCP_HLEN,
  UDP_HLEN,
  u8,
  u16,
  u32wrap,
} from './layout.js';
import {
  type Corruption,
  DEFAULT_DST_MAC,
  DEFAULT_SRC_MAC,
  type Ipv4Spec,
  type Ipv6Spec,
  type PacketSpec,
  type TcpSpec,
  type UdpSpec,
} from './spec.js';
import { tcpFlagBits } from './tcp-flags.js';
import { encodeTcpOptions, overrunLastOption } from './tcp-options.js';

function buildTcpHeader(t: TcpSpec, c: Corruption): Buffer {
  const opts = encodeTcpOptions(t.options ?? []);
  if (c.badOptionLength) overrunLastOption(opts);
  const h = Buffer.alloc(TCP_HLEN + opts.length);
  const flags = tcpFlagBits(t.flags);
  const doff = c.tcpDataOffset ?? h.length / 4;
  if (!Number.isInteger(doff) || doff < 0 || doff > 15)
    throw new Error(`corrupt.tcpDataOffset must be 0..15, got ${doff}`);
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
  if (!Number.isInteger(frag) || frag < 0 || frag > 0x1fff)
    throw new Error(`ip.fragOffset must be 0..8191, got ${frag}`);
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
  if (!Number.isInteger(flow) || flow < 0 || flow > 0xfffff)
    throw new Error(`ip.flowLabel must be 0..0xfffff, got ${flow}`);
  h.writeUInt32BE(((6 << 28) | (u8(ip.trafficClass ?? 0, 'ip.trafficClass') << 20) | flow) >>> 0, 0);
  let plen = l4len;
  if (c.ipTotalLength !== undefined) {
    if (c.ipTotalLength < IPV6_HLEN)
      throw new Error('corrupt.ipTotalLength for IPv6 must be >= 40 (it includes the header)');
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
