/**
 * Owner forwarding's maps (source document 004, bpf/lib/owner.h) behind
 * typed surfaces: the peers whose owner headers are accepted, the VIPs whose
 * unknown mid-connection segments must never reach the stack, the
 * second-chance buckets, and the configuration entry (outer addresses, UDP
 * port, hop limit). OWNER entries themselves live in the connection table
 * (FlowTable.insertOwner). The control plane (the owner directory, later
 * the store) is what fills these; nothing else touches the raw maps.
 */
import { BpfError, type BpfMap } from '../bpf/index.js';
import { BatonError } from '../errors.js';
import { familyOf } from '../net/addr.js';
import { LAYOUTS } from './abi.js';
import {
  decodePeerAddr,
  encodeOwnerConfig,
  encodePeer,
  encodePeerAddr,
  encodeVipKey,
  OWNER_MAX_HOPS_DEFAULT,
  OWNER_PORT_DEFAULT,
  type OwnerConfig,
  PEERS_MAX,
  SECOND_CHANCE_BUCKETS,
} from './abi-owner.js';

function checkAddress(ip: string, what: string): void {
  try {
    familyOf(ip);
  } catch (e) {
    throw new BatonError(
      'CONFIG_INVALID',
      `${what} must be an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`,
      'bad_address',
      {
        cause: e,
      },
    );
  }
}

function mapFull(what: string, capacity: number, cause: unknown): BatonError {
  return new BatonError(
    'OWNER_MAP_FULL',
    `the ${what} map is full (${capacity} entries); remove stale ones or raise its size in bpf/lib/owner.h`,
    'owner_map_full',
    { cause },
  );
}

/** baton_peers: the LBs from which an owner header is accepted (anything else is dropped, owner_header_not_peer). */
export class Peers {
  constructor(private readonly map: BpfMap) {}

  /** Adds or renumbers a peer. OWNER_MAP_FULL when the map is full. */
  add(address: string, index: number): void {
    checkAddress(address, 'a peer');
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff)
      throw new BatonError(
        'CONFIG_INVALID',
        `a peer index must be a 32-bit unsigned integer, got ${index}`,
        'bad_index',
      );
    try {
      this.map.update(encodePeerAddr(address), encodePeer({ index }));
    } catch (e) {
      if (e instanceof BpfError && e.code === 'E2BIG') throw mapFull('peers', this.map.maxEntries, e);
      throw e;
    }
  }

  /** Removes a peer; false when it was not there. */
  remove(address: string): boolean {
    checkAddress(address, 'a peer');
    return this.map.delete(encodePeerAddr(address));
  }

  has(address: string): boolean {
    return this.map.lookup(encodePeerAddr(address)) !== undefined;
  }

  list(): string[] {
    return [...this.map.keys()].flatMap((k) => decodePeerAddr(k) ?? []);
  }
}

/** baton_vips: the addresses served (a non-SYN segment for one that matches nothing goes on a second chance). */
export class Vips {
  constructor(private readonly map: BpfMap) {}

  add(address: string): void {
    checkAddress(address, 'a VIP');
    try {
      this.map.update(encodeVipKey(address), Buffer.alloc(LAYOUTS.baton_vip.size));
    } catch (e) {
      if (e instanceof BpfError && e.code === 'E2BIG') throw mapFull('VIPs', this.map.maxEntries, e);
      throw e;
    }
  }

  remove(address: string): boolean {
    checkAddress(address, 'a VIP');
    return this.map.delete(encodeVipKey(address));
  }

  list(): string[] {
    return [...this.map.keys()].flatMap((k) => decodePeerAddr(k) ?? []);
  }
}

/**
 * baton_second_chance: per flow-hash bucket (secondChanceBucket() of
 * control/datapath/abi.ts), the peer an unknown mid-connection segment is
 * sent to, typically the bucket's owner before the last rehash.
 */
export class SecondChance {
  constructor(private readonly map: BpfMap) {}

  /** Sets a bucket's peer, or empties it (undefined): its unknown segments are then dropped (no_owner). */
  set(bucket: number, peer: string | undefined): void {
    if (!Number.isInteger(bucket) || bucket < 0 || bucket >= SECOND_CHANCE_BUCKETS)
      throw new BatonError(
        'CONFIG_INVALID',
        `a second-chance bucket is 0..${SECOND_CHANCE_BUCKETS - 1}, got ${bucket}`,
        'bad_bucket',
      );
    if (peer !== undefined) checkAddress(peer, 'a second-chance peer');
    this.map.update(
      bucketKey(bucket),
      peer === undefined ? Buffer.alloc(LAYOUTS.baton_peer_addr.size) : encodePeerAddr(peer),
    );
  }

  /** Every bucket to the same peer (or none): a two-LB cluster, tests. */
  setAll(peer: string | undefined): void {
    for (let i = 0; i < SECOND_CHANCE_BUCKETS; i++) this.set(i, peer);
  }

  get(bucket: number): string | undefined {
    const v = this.map.lookup(bucketKey(bucket));
    return v ? decodePeerAddr(v) : undefined;
  }
}

const bucketKey = (bucket: number): Buffer => {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(bucket);
  return k;
};

/** Defaults of the configuration entry: what `configure()` fills in. */
export const OWNER_DEFAULTS = { udpPort: OWNER_PORT_DEFAULT, maxHops: OWNER_MAX_HOPS_DEFAULT } as const;

/** baton_owner_config[0]: owner forwarding on (with this LB's outer addresses) or off. */
export class OwnerSettings {
  constructor(private readonly map: BpfMap) {}

  /** Turns owner forwarding on. At least one outer address is needed: it is what peers accept headers from. */
  configure(c: Partial<OwnerConfig> & Pick<OwnerConfig, 'local4' | 'local6'>): void {
    if (c.local4 === undefined && c.local6 === undefined)
      throw new BatonError(
        'CONFIG_INVALID',
        'owner forwarding needs this LB address among its peers (local4 and/or local6): peers accept headers only from it',
        'no_local_address',
      );
    const cfg: OwnerConfig = { ...OWNER_DEFAULTS, ...c };
    if (cfg.udpPort === 0)
      throw new BatonError(
        'CONFIG_INVALID',
        'the owner header UDP port cannot be 0 (0 means off; use disable())',
        'bad_port',
      );
    let value: Buffer;
    try {
      value = encodeOwnerConfig(cfg);
    } catch (e) {
      throw new BatonError('CONFIG_INVALID', `owner forwarding configuration: ${(e as Error).message}`, 'bad_config', {
        cause: e,
      });
    }
    this.map.update(bucketKey(0), value);
  }

  /** Turns owner forwarding off: the datapath behaves as without it (owner entries then drop, no_owner). */
  disable(): void {
    this.map.update(bucketKey(0), Buffer.alloc(LAYOUTS.baton_owner_config.size));
  }
}

/** What left in the owner header toward one peer, summed over CPUs. */
export interface PeerTraffic {
  packets: bigint;
  bytes: bigint;
}

/**
 * baton_peer_stats: packets sent in the owner header per peer (to_owner and
 * second_chance alike), in the slot of the peer's index in baton_peers
 * (1..PEERS_MAX). The control plane zeroes a slot when it gives it to a
 * peer and reads only live peers' slots.
 */
export class PeerStats {
  constructor(private readonly map: BpfMap) {}

  /** Zeroes `slot` (a peer got it: its counts start from nothing). */
  reset(slot: number): void {
    this.map.update(slotKey(slot), this.map.replicate(Buffer.alloc(LAYOUTS.baton_counter.size)));
  }

  /** What was sent to the peer in `slot`, summed over CPUs. */
  read(slot: number): PeerTraffic {
    const v = this.map.lookup(slotKey(slot));
    const [packets = 0n, bytes = 0n] = v ? this.map.sumU64(v) : [];
    return { packets, bytes };
  }
}

const slotKey = (slot: number): Buffer => {
  if (!Number.isInteger(slot) || slot < 1 || slot > PEERS_MAX)
    throw new BatonError('CONFIG_INVALID', `a peer stats slot is 1..${PEERS_MAX}, got ${slot}`, 'bad_slot');
  return bucketKey(slot);
};

/** All five, over one loaded object's maps. */
export interface OwnerMaps {
  peers: Peers;
  vips: Vips;
  secondChance: SecondChance;
  settings: OwnerSettings;
  peerStats: PeerStats;
}

/** The map names bpf/lib/owner.h defines (pinned by the Datapath with the others). */
export const OWNER_MAP_NAMES = [
  'baton_peers',
  'baton_vips',
  'baton_second_chance',
  'baton_owner_config',
  'baton_peer_stats',
] as const;

export function ownerMaps(map: (name: (typeof OWNER_MAP_NAMES)[number]) => BpfMap): OwnerMaps {
  return {
    peers: new Peers(map('baton_peers')),
    vips: new Vips(map('baton_vips')),
    secondChance: new SecondChance(map('baton_second_chance')),
    settings: new OwnerSettings(map('baton_owner_config')),
    peerStats: new PeerStats(map('baton_peer_stats')),
  };
}
