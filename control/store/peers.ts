/**
 * A host's own registration: heartbeats every ttl/3 so that two lost
 * refreshes in a row are survived, and a host that dies (no refresh) expires
 * after ttl. stop() deregisters at once (a clean stop: peers are told now,
 * not after the TTL).
 */
import type { BatonError } from '../errors.js';
import { checkTtl, type Peer, type Store } from './store.js';

export interface PeerRegistration {
  /** Changes the info peers see (it is sent with the next heartbeat, which is now). */
  update(info: Buffer): Promise<void>;
  /** Stops refreshing; deregister (default true) removes the peer now, false leaves it to expire. */
  stop(options?: { deregister?: boolean }): Promise<void>;
}

export async function registerPeer(
  store: Store,
  peer: Peer,
  ttlMs: number,
  onError?: (err: BatonError) => void,
): Promise<PeerRegistration> {
  checkTtl(ttlMs);
  let current = peer;
  await store.heartbeatPeer(current, ttlMs); // the first one must work: the caller learns the store is usable
  let stopped = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  const beat = () => {
    inFlight = store.heartbeatPeer(current, ttlMs).catch((err: BatonError) => onError?.(err));
  };
  const timer = setInterval(beat, Math.max(1, Math.floor(ttlMs / 3)));
  timer.unref();
  return {
    async update(info) {
      current = { id: current.id, info };
      await store.heartbeatPeer(current, ttlMs);
    },
    async stop(options = {}) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await inFlight;
      if (options.deregister !== false) await store.removePeer(current.id);
    },
  };
}
