/**
 * Membership of an LB cluster: this LB registers itself in the store with a
 * TTL (control/store/peers.ts heartbeats it) and follows the other
 * registrations, so peers come from the store, not from static lists, and a
 * dead LB disappears when its TTL runs out. The peers' addresses are what
 * the datapath accepts owner headers from (never from anyone else).
 */
import type { BatonError } from '../errors.js';
import { type PeerRegistration, registerPeer } from '../store/peers.js';
import type { LivePeer, Store, Subscription } from '../store/store.js';
import { decodePeerInfo, encodePeerInfo, type PeerInfo } from './peer-info.js';

export interface ClusterOptions {
  store: Store;
  /** this LB's peer id */
  self: string;
  info: PeerInfo;
  ttlMs: number;
  /** the peers (without this LB) after every change: where the datapath's peer set comes from */
  onPeers?: (peers: ReadonlyMap<string, PeerInfo>) => void;
  /** a peer left: deregistered itself, or expired (crashed, partitioned, or a restart slower than the TTL) */
  onLeave?: (id: string, reason: 'expired' | 'removed') => void;
  onError?: (err: BatonError) => void;
}

export interface Cluster {
  readonly self: string;
  peers(): ReadonlyMap<string, PeerInfo>;
  /** Stops following and refreshing; deregister (default true) tells peers now, false lets the TTL run out. */
  leave(options?: { deregister?: boolean }): Promise<void>;
}

export async function joinCluster(o: ClusterOptions): Promise<Cluster> {
  const peers = new Map<string, PeerInfo>();
  const set = (p: { id: string; info: Buffer }): boolean => {
    if (p.id === o.self) return false;
    try {
      peers.set(p.id, decodePeerInfo(p.id, p.info));
      return true;
    } catch (err) {
      // A registration we cannot read is not trusted: it is left out, and said.
      peers.delete(p.id);
      o.onError?.(err as BatonError);
      return true;
    }
  };
  const registration: PeerRegistration = await registerPeer(
    o.store,
    { id: o.self, info: encodePeerInfo(o.info) },
    o.ttlMs,
    o.onError,
  );
  const feed: Subscription = o.store.followPeers(
    (event) => {
      let changed = false;
      if (event.kind === 'snapshot') {
        peers.clear();
        for (const p of event.state as LivePeer[]) set(p);
        changed = true;
      } else {
        for (const c of event.changes) {
          if (c.type === 'join') changed = set(c.peer) || changed;
          else if (c.id !== o.self) {
            changed = peers.delete(c.id) || changed;
            o.onLeave?.(c.id, c.reason);
          }
        }
      }
      if (changed) o.onPeers?.(peers);
    },
    { ...(o.onError ? { onError: o.onError } : {}) },
  );
  return {
    self: o.self,
    peers: () => peers,
    async leave(options = {}) {
      await feed.close();
      await registration.stop({ deregister: options.deregister !== false });
    },
  };
}
