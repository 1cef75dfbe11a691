/**
 * parsePacket: decode a frame as far as its bytes allow, verifying the
 * IPv4 and TCP/UDP checksums on the way. Never throws: malformed input
 * yields partial layers plus human-readable errors.
 */
import { Buffer } from 'node:buffer';
import { bytesToIpv4, bytesToIpv6, bytesToMac, ipv4ToBytes } from './addresses.js';
import { internetChecksum, onesSum, pseudoHeader } from './checksum.js';
import { hex16 } from './hex.js';
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
} from './layout.js';
import type { ChecksumCheck, ParsedIpv4, ParsedIpv6, ParsedPacket, ParsedTcp, ParsedUdp } from './parsed.js';
import { tcpFlagsToString } from './tcp-flags.js';
import { decodeTcpOptions } from './tcp-options.js';

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
