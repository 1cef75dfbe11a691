/**
 * The owner-forwarding part of the ABI (source document 004, bpf/lib/owner.h):
 * peers, VIPs, OWNER entries, the configuration entry, the owner header and
 * the flow hash the datapath uses for the outer source port and the
 * second-chance bucket. Layouts live in abi.ts's LAYOUTS with the rest.
 */
import { addrToKeyBytes, bytesToIp, type Family, familyOf } from '../net/addr.js';
import type { IPPROTO_TCP } from '../tcp/kernel.js';
import { checkPort, encodeFlowKey, type FlowKey, FlowKind, FlowState, LAYOUTS } from './abi.js';

const L = LAYOUTS;

export const OWNER_HDR_VERSION = 1;
/** Outer UDP destination port of the owner header unless configured otherwise. */
export const OWNER_PORT_DEFAULT = 6181;
export const OWNER_MAX_HOPS_DEFAULT = 3;
export const SECOND_CHANCE_BUCKETS = 256;
/** Entries of baton_peers (BATON_PEERS_MAX); peer indexes 1..PEERS_MAX are their baton_peer_stats slots. */
export const PEERS_MAX = 256;
export const OWNER_SPORT_BASE = 0xc000;
export const OWNER_SPORT_MASK = 0x3fff;
export const IPPROTO_UDP = 17;
/** Bytes the owner header adds to a packet: outer IP + UDP (8) + struct baton_owner_hdr. */
export const OWNER_OVERHEAD = { 4: 20 + 8 + L.baton_owner_hdr.size, 6: 40 + 8 + L.baton_owner_hdr.size } as const;

/** A connection-table key of either L4 protocol (owner entries hold UDP flows too; claim 5). */
export function encodeFlowKeyProto(k: FlowKey, proto: typeof IPPROTO_TCP | typeof IPPROTO_UDP): Buffer {
  const b = encodeFlowKey(k);
  b.writeUInt8(proto, L.baton_flow_key.fields.proto);
  return b;
}

/** struct baton_peer_addr (also struct baton_vip_key: same layout): one address, IPv4 in the first 4 bytes. */
export function encodePeerAddr(ip: string): Buffer {
  const b = Buffer.alloc(L.baton_peer_addr.size);
  addrToKeyBytes(ip).copy(b, L.baton_peer_addr.fields.addr);
  b.writeUInt8(familyOf(ip), L.baton_peer_addr.fields.family);
  return b;
}

/** The address of a struct baton_peer_addr, or undefined for an empty one (family 0). */
export function decodePeerAddr(b: Buffer, at = 0): string | undefined {
  const family = b.readUInt8(at + L.baton_peer_addr.fields.family);
  if (family !== 4 && family !== 6) return undefined;
  return bytesToIp(b.subarray(at, at + 16), family);
}

export const encodeVipKey = (ip: string): Buffer => encodePeerAddr(ip);

export function encodePeer(p: { index: number }): Buffer {
  const b = Buffer.alloc(L.baton_peer.size);
  b.writeUInt32LE(p.index, L.baton_peer.fields.index);
  return b;
}

/** Where an OWNER entry sends its flow: the owner LB and its application's port there. */
export interface OwnerRef {
  owner: string;
  ownerPort: number;
  /** the owner's index in baton_peers (its baton_peer_stats slot); 0 or absent: the datapath looks it up */
  slot?: number;
}

/** The value of an OWNER entry: struct baton_flow with kind OWNER and `owner` in the leg union. */
export function encodeOwnerFlow(connId: bigint, ref: OwnerRef): Buffer {
  checkPort(ref.ownerPort, 'owner port');
  const f = L.baton_flow.fields;
  const b = Buffer.alloc(L.baton_flow.size);
  b.writeBigUInt64LE(connId, f.conn_id);
  b.writeUInt8(FlowState.FORWARD, f.state);
  b.writeUInt8(FlowKind.OWNER, f.kind);
  encodePeerAddr(ref.owner).copy(b, f.owner + L.baton_owner.fields.peer);
  b.writeUInt16BE(ref.ownerPort, f.owner + L.baton_owner.fields.port);
  const slot = ref.slot ?? 0;
  if (!Number.isInteger(slot) || slot < 0 || slot > PEERS_MAX)
    throw new RangeError(`an owner's stats slot must be 0..${PEERS_MAX}, got ${slot}`);
  b.writeUInt16LE(slot, f.owner + L.baton_owner.fields.slot);
  return b;
}

/** The owner of an OWNER entry's value, or undefined when the value is another kind. */
export function decodeOwnerFlow(b: Buffer): (OwnerRef & { connId: bigint }) | undefined {
  const f = L.baton_flow.fields;
  if (b.readUInt8(f.kind) !== FlowKind.OWNER) return undefined;
  const owner = decodePeerAddr(b, f.owner + L.baton_owner.fields.peer);
  if (!owner) return undefined;
  return {
    owner,
    ownerPort: b.readUInt16BE(f.owner + L.baton_owner.fields.port),
    slot: b.readUInt16LE(f.owner + L.baton_owner.fields.slot),
    connId: b.readBigUInt64LE(f.conn_id),
  };
}

export interface OwnerConfig {
  /** Outer source of IPv4 owner headers (this LB's address among its peers); undefined: none. */
  local4?: string;
  /** Outer source of IPv6 owner headers; undefined: none. */
  local6?: string;
  /** Outer UDP port; 0 turns owner forwarding off. */
  udpPort: number;
  maxHops: number;
}

export function encodeOwnerConfig(c: OwnerConfig): Buffer {
  const f = L.baton_owner_config.fields;
  const b = Buffer.alloc(L.baton_owner_config.size);
  checkPort(c.udpPort, 'owner header UDP port');
  if (!Number.isInteger(c.maxHops) || c.maxHops < 1 || c.maxHops > 255)
    throw new RangeError(`max hops must be 1..255, got ${c.maxHops}`);
  if (c.local6 !== undefined) {
    if (familyOf(c.local6) !== 6) throw new TypeError(`local6 must be an IPv6 address, got ${c.local6}`);
    addrToKeyBytes(c.local6).copy(b, f.local6);
  }
  if (c.local4 !== undefined) {
    if (familyOf(c.local4) !== 4) throw new TypeError(`local4 must be an IPv4 address, got ${c.local4}`);
    addrToKeyBytes(c.local4).copy(b, f.local4, 0, 4);
  }
  b.writeUInt16BE(c.udpPort, f.udp_port);
  b.writeUInt8(c.maxHops, f.max_hops);
  return b;
}

/** The reference at the start of an owner header's payload (struct baton_owner_hdr). */
export interface OwnerHeader {
  hops: number;
  family: Family;
  proto: number;
  client: string;
  clientPort: number;
  owner: string;
  ownerPort: number;
}

export function encodeOwnerHeader(h: OwnerHeader): Buffer {
  const f = L.baton_owner_hdr.fields;
  const b = Buffer.alloc(L.baton_owner_hdr.size);
  b.writeUInt8(OWNER_HDR_VERSION, f.version);
  b.writeUInt8(h.hops, f.hops);
  b.writeUInt8(h.family, f.family);
  b.writeUInt8(h.proto, f.proto);
  b.writeUInt16BE(h.clientPort, f.client_port);
  b.writeUInt16BE(h.ownerPort, f.owner_port);
  addrToKeyBytes(h.client).copy(b, f.client_addr);
  addrToKeyBytes(h.owner).copy(b, f.owner_addr);
  return b;
}

/** `ownerFamily`: the outer header's (owner_addr is in it); default the inner family. */
export function decodeOwnerHeader(b: Buffer, ownerFamily?: Family): OwnerHeader & { version: number } {
  const f = L.baton_owner_hdr.fields;
  const family = b.readUInt8(f.family) as Family;
  return {
    version: b.readUInt8(f.version),
    hops: b.readUInt8(f.hops),
    family,
    proto: b.readUInt8(f.proto),
    clientPort: b.readUInt16BE(f.client_port),
    ownerPort: b.readUInt16BE(f.owner_port),
    client: bytesToIp(b.subarray(f.client_addr, f.client_addr + 16), family),
    owner: bytesToIp(b.subarray(f.owner_addr, f.owner_addr + 16), ownerFamily ?? family),
  };
}

const mix = (x0: number): number => {
  let x = x0 >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
};

/**
 * The datapath's flow hash (bpf/lib/owner.h, owner_flow_hash) of an encoded
 * connection-table key: words read as the little-endian LB loads them.
 */
export function ownerFlowHash(key: Buffer): number {
  const f = L.baton_flow_key.fields;
  let h = (0x9e3779b9 ^ key.readUInt8(f.proto)) >>> 0;
  for (let i = 0; i < 4; i++) {
    h = mix(h ^ key.readUInt32LE(f.saddr + 4 * i));
    h = mix(h ^ key.readUInt32LE(f.daddr + 4 * i));
  }
  return mix(h ^ (key.readUInt16LE(f.sport) | (key.readUInt16LE(f.dport) << 16)));
}

/** Outer UDP source port of a flow's owner headers. */
export const ownerSourcePort = (key: Buffer): number => OWNER_SPORT_BASE | (ownerFlowHash(key) & OWNER_SPORT_MASK);

/** The second-chance bucket (baton_second_chance index) of a flow. */
export const secondChanceBucket = (key: Buffer): number => ownerFlowHash(key) & (SECOND_CHANCE_BUCKETS - 1);
