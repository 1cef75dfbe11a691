/**
 * What an LB tells its peers about itself when it registers in the store:
 * the address other LBs send owner-header packets to (and accept them from),
 * the owner header's UDP port, and its baton version. JSON, so an operator
 * reading the store (redis-cli) sees it plainly; bounded by the store's
 * peer-info limit.
 */
import { BatonError } from '../errors.js';
import { canonicalIp } from '../service/endpoint.js';

export interface PeerInfo {
  /** the LB's address on the network between LBs */
  address: string;
  /** UDP port of the owner header on that address */
  ownerPort: number;
  version: string;
  /** the TTL it registers with (peers tell from it how long ago it refreshed); absent from older LBs */
  ttlMs?: number;
}

export function encodePeerInfo(info: PeerInfo): Buffer {
  return Buffer.from(JSON.stringify(info));
}

/** A peer's info, checked; a peer whose info is malformed is not trusted with forwarded packets. */
export function decodePeerInfo(id: string, raw: Buffer): PeerInfo {
  const refuse = (why: string) =>
    new BatonError('STORE_REFUSED', `peer ${id}: registration refused: ${why}`, 'bad_peer_info');
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw refuse('its info is not JSON');
  }
  if (typeof v !== 'object' || v === null) throw refuse('its info is not an object');
  const o = v as Record<string, unknown>;
  const ip = typeof o.address === 'string' ? canonicalIp(o.address) : undefined;
  if (!ip) throw refuse(`address ${JSON.stringify(o.address)} is not an IP address`);
  const port = o.ownerPort;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw refuse(`ownerPort ${JSON.stringify(port)} is not a port`);
  }
  const ttl = o.ttlMs;
  return {
    address: ip.ip,
    ownerPort: port,
    version: typeof o.version === 'string' ? o.version : 'unknown',
    // Informational only (status): a TTL that is not a positive integer is left out, not refused.
    ...(typeof ttl === 'number' && Number.isInteger(ttl) && ttl > 0 ? { ttlMs: ttl } : {}),
  };
}
