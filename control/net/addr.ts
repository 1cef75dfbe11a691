/** IP address text <-> wire bytes, for IPv4 and IPv6 (RFC 5952 output). */
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

/** The first 12 bytes of an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2). */
export const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** The IPv4 address inside 16 IPv4-mapped IPv6 bytes, or undefined when they are not mapped. */
export function unmappedIpv4(b: Buffer): string | undefined {
  return b.subarray(0, 12).equals(V4_MAPPED_PREFIX) ? bytesToIp(b.subarray(12, 16), 4) : undefined;
}

export function familyOf(ip: string): Family {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
}

export function ipv4Bytes(ip: string): Buffer {
  if (!isIPv4(ip)) throw new TypeError(`invalid IPv4 address: ${JSON.stringify(ip)}`);
  return Buffer.from(ip.split('.').map(Number));
}

export function ipv6Bytes(ip: string): Buffer {
  if (!isIPv6(ip)) throw new TypeError(`invalid IPv6 address: ${JSON.stringify(ip)}`);
  let text = ip;
  const out = Buffer.alloc(16);
  // Trailing dotted quad (::ffff:1.2.3.4).
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipv4Bytes(tail);
    text = `${text.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...new Array<string>(8 - h.length - r.length).fill('0'), ...r];
  for (const [i, g] of groups.entries()) out.writeUInt16BE(parseInt(g, 16), i * 2);
  return out;
}

/** 16 bytes: IPv4 in the first 4 (the datapath's key layout), IPv6 whole. */
export function addrToKeyBytes(ip: string): Buffer {
  return Buffer.from(parsedAddr(ip).bytes);
}

/**
 * An address as map keys hold it (16 bytes, IPv4 in the first 4) and its
 * family, parsed once: every splice encodes the same few addresses (VIP, LB,
 * back ends) into keys again and again, and parsing text was a visible
 * share of a splice's CPU. Bounded: cleared whole when full.
 */
const parsed = new Map<string, { family: Family; bytes: Buffer }>();
const PARSED_MAX = 4096;
export function parsedAddr(ip: string): { readonly family: Family; readonly bytes: Buffer } {
  let p = parsed.get(ip);
  if (!p) {
    const family = familyOf(ip);
    const bytes = Buffer.alloc(16);
    (family === 4 ? ipv4Bytes(ip) : ipv6Bytes(ip)).copy(bytes);
    if (parsed.size >= PARSED_MAX) parsed.clear();
    p = { family, bytes };
    parsed.set(ip, p);
  }
  return p;
}

export function bytesToIp(bytes: Uint8Array, family: Family): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(i * 2));
  // Longest run of zero groups (length >= 2) becomes '::'.
  let best = -1,
    bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** "ip:port" as baton writes it everywhere: IPv6 in brackets. */
export function formatAddress(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * Splits "198.18.1.2:80" / "[2001:db8::1]:80" into host and port text, or
 * says what is wrong with it. Callers check the host and port themselves
 * and raise their own kind of error (API problem, config error).
 */
export function splitAddress(text: string): { host: string; port: string } | { error: string } {
  if (text.startsWith('[')) {
    const end = text.indexOf(']:');
    if (end < 0) return { error: 'an IPv6 address goes in brackets followed by ":port"' };
    return { host: text.slice(1, end), port: text.slice(end + 2) };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { error: 'the port is missing' };
  const host = text.slice(0, colon);
  if (host.includes(':')) return { error: 'an IPv6 address goes in brackets' };
  return { host, port: text.slice(colon + 1) };
}
