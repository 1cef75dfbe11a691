/**
 * Reclaiming the agent's flow-id mappings of migrated connections that
 * ended: the client's FIN or exact RST went through (the mapping's track)
 * and nothing arrived for the linger time. Until then the mapping stays, so
 * the client's last ACK or a retransmitted FIN is still restored to the
 * socket's tuple rather than reset by this host's stack. Once removed, the
 * (client IP, flow id) may be installed again by the next blob.
 */

import { FidState } from '../datapath/abi-migrate.js';
import type { FlowIdTable } from '../datapath/fid-table.js';
import { DEFAULT_RECLAIM_LINGER_MS, reclaimable } from '../datapath/flow-id.js';

/** Removes every reclaimable mapping; returns how many. */
export function reclaimFids(
  fids: Pick<FlowIdTable, 'entries' | 'remove'>,
  lingerMs = DEFAULT_RECLAIM_LINGER_MS,
  nowNs: bigint = process.hrtime.bigint(),
): number {
  const done = [...fids.entries()].filter((e) => reclaimable(e.mapping.track, nowNs, lingerMs));
  for (const e of done) fids.remove({ client: e.key.client, flowId: e.key.flowId });
  return done.length;
}

/**
 * At start: removes the mappings an earlier agent left in HOLD. Each belongs
 * to a migration that agent never confirmed (a reservation whose state did
 * not come, or a restore cut short); its LB saw the channel fail and gave
 * the socket back, so nothing will ever restore through them. Returns how
 * many.
 */
export function dropHeld(fids: Pick<FlowIdTable, 'entries' | 'remove'>): number {
  const held = [...fids.entries()].filter((e) => e.mapping.state === FidState.HOLD);
  for (const e of held) fids.remove({ client: e.key.client, flowId: e.key.flowId });
  return held.length;
}
