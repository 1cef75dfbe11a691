/**
 * The API's address strings: "ip:port", "[ipv6]:port". Parsed into the
 * socket layer's Endpoint with the address in canonical form (RFC 5952 for
 * IPv6, IPv4-mapped IPv6 as plain IPv4, as decodeSockaddr reports sockets),
 * so addresses compare as strings.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { BatonError } from '../errors.js';
import { bytesToIp, type Family, formatAddress, ipv6Bytes, splitAddress, unmappedIpv4 } from '../net/addr.js';
import type { Endpoint } from '../tcp/state.js';

/** "ip:port" of an endpoint, IPv6 in brackets. */
export const formatEndpoint = (ep: Endpoint): string => formatAddress(ep.ip, ep.port);

/** Canonical text of an IP address, or undefined when it is not one. */
export function canonicalIp(ip: string): { ip: string; family: Family } | undefined {
  if (isIPv4(ip)) return { ip, family: 4 };
  if (!isIPv6(ip) || ip.includes('%')) return undefined; // zone ids name local links, not peers
  const b = ipv6Bytes(ip);
  const v4 = unmappedIpv4(b);
  if (v4 !== undefined) return { ip: v4, family: 4 };
  return { ip: bytesToIp(b, 6), family: 6 };
}

/**
 * "198.18.1.2:80" or "[2001:db8::1]:80" -> Endpoint. Throws BAD_REQUEST
 * naming the field, so a caller sees which of its addresses is wrong.
 */
export function parseEndpoint(text: string, field: string): Endpoint & { family: Family } {
  const bad = (why: string) =>
    new BatonError(
      'BAD_REQUEST',
      `${field}: ${JSON.stringify(text)} is not an address: ${why}; write "ip:port", e.g. "198.18.1.2:80" or "[2001:db8::1]:80"`,
      'bad_address',
    );
  const parts = splitAddress(text);
  if ('error' in parts) throw bad(parts.error);
  const { host, port: portText } = parts;
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) throw bad('the port must be 0..65535');
  const ip = canonicalIp(host);
  if (!ip) throw bad(`${JSON.stringify(host)} is not an IPv4 or IPv6 address`);
  return { ip: ip.ip, family: ip.family, port: Number(portText) };
}

export const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => a.port === b.port && a.ip === b.ip;
