/**
 * An owner-directory entry (design.md §3-§4, source document 004): the
 * connection an LB owns, under a human-readable flow reference
 * ("client -> VIP", the key every LB looks it up by) with a small binary value
 * that peers decode without parsing the reference. The value also carries
 * when the owner published it, so a follower can measure how long the
 * directory took to reach it (on hosts with synchronized clocks).
 *
 * Value layout (big-endian), version 1:
 *   u8 version, u8 family (4 | 6), u16 client port, u16 VIP port,
 *   client address (4 or 16 bytes), VIP address (same family),
 *   f64 publishedAtMs (Date.now() of the owner)
 */
import { BatonError } from '../errors.js';
import { bytesToIp, type Family, familyOf, formatAddress, ipv4Bytes, ipv6Bytes } from '../net/addr.js';
import type { Endpoint } from '../tcp/state.js';

export const OWNED_CONNECTION_VERSION = 1;

export interface OwnedConnection {
  family: Family;
  client: Endpoint;
  vip: Endpoint;
}

/** The directory key of a connection: "client->vip", IPv6 in brackets (printable ASCII, no blank). */
export const flowRef = (c: OwnedConnection): string =>
  `${formatAddress(c.client.ip, c.client.port)}->${formatAddress(c.vip.ip, c.vip.port)}`;

const addrBytes = (ip: string, family: Family): Buffer => (family === 4 ? ipv4Bytes(ip) : ipv6Bytes(ip));

export function encodeOwnedConnection(c: OwnedConnection, publishedAtMs: number): Buffer {
  if (familyOf(c.client.ip) !== c.family || familyOf(c.vip.ip) !== c.family) {
    throw new BatonError('INTERNAL', `owned connection ${flowRef(c)} mixes address families`, 'bad_owned_connection');
  }
  const n = c.family === 4 ? 4 : 16;
  const b = Buffer.alloc(6 + 2 * n + 8);
  b.writeUInt8(OWNED_CONNECTION_VERSION, 0);
  b.writeUInt8(c.family, 1);
  b.writeUInt16BE(c.client.port, 2);
  b.writeUInt16BE(c.vip.port, 4);
  addrBytes(c.client.ip, c.family).copy(b, 6);
  addrBytes(c.vip.ip, c.family).copy(b, 6 + n);
  b.writeDoubleBE(publishedAtMs, 6 + 2 * n);
  return b;
}

/** Decodes a peer's entry; a malformed or newer one is refused (the follower skips it and counts it). */
export function decodeOwnedConnection(value: Buffer): OwnedConnection & { publishedAtMs: number } {
  const refuse = (why: string) =>
    new BatonError('STORE_REFUSED', `owner-directory entry refused: ${why}`, 'bad_owned_connection');
  if (value.length < 2) throw refuse(`${value.length} bytes is too short`);
  const version = value.readUInt8(0);
  if (version !== OWNED_CONNECTION_VERSION) {
    throw refuse(`version ${version}; this baton reads version ${OWNED_CONNECTION_VERSION} (upgrade every LB)`);
  }
  const family = value.readUInt8(1);
  if (family !== 4 && family !== 6) throw refuse(`address family ${family}`);
  const n = family === 4 ? 4 : 16;
  if (value.length !== 6 + 2 * n + 8) throw refuse(`${value.length} bytes; an IPv${family} entry has ${6 + 2 * n + 8}`);
  return {
    family,
    client: { ip: bytesToIp(value.subarray(6, 6 + n), family), port: value.readUInt16BE(2) },
    vip: { ip: bytesToIp(value.subarray(6 + n, 6 + 2 * n), family), port: value.readUInt16BE(4) },
    publishedAtMs: value.readDoubleBE(6 + 2 * n),
  };
}
