/**
 * The owner directory and the cluster, applied to this LB's datapath:
 * peers' connections become OWNER entries (forwarded to the owner in the
 * owner header), live peers become the set owner headers are accepted from,
 * and the second-chance buckets spread over them, so a segment that matches
 * nothing goes to a peer rather than to a stack that would answer it with a
 * RST.
 *
 * An entry whose owner is not (or no longer) a live peer is kept here but
 * not in the datapath: there is no address to forward it to, and a dead
 * LB's connections are dead. It is installed as soon as that peer appears.
 */

import { PEERS_MAX, SECOND_CHANCE_BUCKETS } from '../datapath/abi-owner.js';
import type { FlowTable } from '../datapath/flow-table.js';
import type { OwnerMaps, PeerTraffic } from '../datapath/owner.js';
import type { BatonError } from '../errors.js';
import type { OwnerEntries } from './directory.js';
import type { OwnedConnection } from './owned-connection.js';
import type { PeerInfo } from './peer-info.js';

export interface DatapathOwners extends OwnerEntries {
  /** The live peers changed (from the cluster). */
  setPeers(peers: ReadonlyMap<string, PeerInfo>): void;
  /** OWNER entries in the datapath now. */
  readonly installedCount: number;
  /** Packets and bytes sent in the owner header to each live peer, by address. */
  peerTraffic(): Map<string, PeerTraffic>;
}

/**
 * Each live peer's index in baton_peers, which is also its slot of
 * baton_peer_stats (pure): a peer keeps its slot while it stays, a new one
 * gets the lowest free slot (1..PEERS_MAX), so slots stay bounded however
 * many peers come and go. `given` are the slots handed out now (to be
 * zeroed: their counts start from nothing); a peer beyond PEERS_MAX gets
 * none (baton_peers is full then anyway).
 */
export function peerSlots(
  current: ReadonlyMap<string, number>,
  live: Iterable<string>,
): { slots: Map<string, number>; given: number[] } {
  const ids = [...new Set(live)];
  const slots = new Map<string, number>();
  for (const id of ids) {
    const s = current.get(id);
    if (s !== undefined) slots.set(id, s);
  }
  const used = new Set(slots.values());
  const given: number[] = [];
  let next = 1;
  for (const id of [...ids].sort()) {
    if (slots.has(id)) continue;
    while (used.has(next)) next++;
    if (next > PEERS_MAX) break;
    slots.set(id, next);
    used.add(next);
    given.push(next);
  }
  return { slots, given };
}

/**
 * The second-chance buckets over the live peers' addresses (pure): round
 * robin in address order (the same whatever order peers came in), each peer
 * gets an equal share. The datapath relies on neighbouring buckets (b and
 * b ^ 1) naming different peers whenever there are two or more: a segment
 * that came on a second chance is never sent back where it came from, and
 * takes the neighbouring bucket instead (bpf/lib/owner.h, owner_no_flow).
 * No peer: every bucket empty (such segments are dropped, no_owner).
 */
export function secondChancePlan(addresses: readonly string[]): Array<string | undefined> {
  const live = [...new Set(addresses)].sort();
  return Array.from({ length: SECOND_CHANCE_BUCKETS }, (_, b) => live[b % live.length]);
}

const keyOf = (c: OwnedConnection) => ({ src: c.client.ip, dst: c.vip.ip, sport: c.client.port, dport: c.vip.port });

export function datapathOwners(table: FlowTable, maps: OwnerMaps, onError: (err: BatonError) => void): DatapathOwners {
  const wanted = new Map<string, { conn: OwnedConnection; owner: string }>();
  const inDatapath = new Set<string>();
  let peers: ReadonlyMap<string, PeerInfo> = new Map();
  /** Each live peer's index in baton_peers and slot of baton_peer_stats (peerSlots). */
  let slotOf = new Map<string, number>();

  const put = (ref: string) => {
    const w = wanted.get(ref);
    const info = w && peers.get(w.owner);
    try {
      if (w && info) {
        // The owner's slot rides in the entry: the datapath counts its packets without a lookup.
        table.insertOwner(keyOf(w.conn), {
          owner: info.address,
          ownerPort: w.conn.vip.port,
          slot: slotOf.get(w.owner) ?? 0,
        });
        inDatapath.add(ref);
      } else if (inDatapath.delete(ref) && w) {
        table.removeOwner(keyOf(w.conn));
      }
    } catch (err) {
      // OWNER_ENTRY_CONFLICT (this LB holds the flow itself), TABLE_FULL: said, and the entry is left out.
      onError(err as BatonError);
    }
  };

  return {
    install(ref, conn, owner) {
      wanted.set(ref, { conn, owner });
      put(ref);
    },
    remove(ref) {
      const w = wanted.get(ref);
      wanted.delete(ref);
      if (w && inDatapath.delete(ref)) {
        try {
          table.removeOwner(keyOf(w.conn));
        } catch (err) {
          onError(err as BatonError);
        }
      }
    },
    setPeers(next) {
      const before = peers;
      peers = new Map(next);
      try {
        const now = new Set([...peers.values()].map((p) => p.address));
        // By address: a peer that came back with another address leaves no stale one behind.
        for (const info of before.values()) if (!now.has(info.address)) maps.peers.remove(info.address);
        const { slots, given } = peerSlots(slotOf, peers.keys());
        slotOf = slots;
        // A slot handed out (first use, or a gone peer's): its counts start from nothing.
        for (const slot of given) maps.peerStats.reset(slot);
        for (const [id, info] of peers) maps.peers.add(info.address, slotOf.get(id) ?? 0);
        // Second chance: every bucket to some live peer (none: dropped, no_owner).
        for (const [b, address] of secondChancePlan([...peers.values()].map((p) => p.address)).entries())
          maps.secondChance.set(b, address);
      } catch (err) {
        onError(err as BatonError);
      }
      for (const [ref, w] of wanted) {
        const was = before.get(w.owner)?.address;
        const now = peers.get(w.owner)?.address;
        if (was !== now) put(ref);
      }
    },
    get installedCount() {
      return inDatapath.size;
    },
    peerTraffic() {
      const out = new Map<string, PeerTraffic>();
      for (const [id, info] of peers) {
        const slot = slotOf.get(id);
        if (slot !== undefined) out.set(info.address, maps.peerStats.read(slot));
      }
      return out;
    },
  };
}
