/**
 * Reclaiming the agent's flow-id mappings of migrated connections that
 * ended: the client's FIN or exact RST went through (the mapping's track)
 * and nothing arrived for the linger time. Until then the mapping stays, so
 * the client's last ACK or a retransmitted FIN is still restored to the
 * socket's tuple rather than reset by this host's stack. Once removed, the
 * (client IP, flow id) may be installed again by the next blob.
 */

import { type FidKey, FidState } from '../datapath/abi-migrate.js';
import type { FlowIdTable } from '../datapath/fid-table.js';
import { formatFidKey } from '../datapath/fid-table.js';
import { DEFAULT_RECLAIM_LINGER_MS, nextReclaimCheck, reclaimable } from '../datapath/flow-id.js';

type Fids = Pick<FlowIdTable, 'entries' | 'get' | 'remove'>;

/**
 * The agent's reclaim passes. A full pass reads every mapping (one syscall
 * pair each), so it runs only every `scanEveryMs` (at most half the linger,
 * 30 s by default): a mapping inserted since cannot be reclaimable before
 * the linger ends, so the next full pass finds it in time. Between full
 * passes a tick reads only the known mappings that are due
 * (nextReclaimCheck): an ended one when its linger runs out, an open one
 * every 1-30 s. Before, every mapping was read every second: at a few
 * hundred migrations a second, each lingering a minute, that was tens of
 * thousands of lookups a second on a 2-core host.
 */
export class FidReclaimer {
  private readonly known = new Map<string, { key: FidKey; atNs: bigint; intervalNs: bigint }>();
  private nextScanNs = 0n;
  private readonly scanEveryNs: bigint;

  constructor(
    private readonly fids: Fids,
    private readonly lingerMs = DEFAULT_RECLAIM_LINGER_MS,
    scanEveryMs = Math.min(30_000, lingerMs / 2),
  ) {
    this.scanEveryNs = BigInt(Math.round(scanEveryMs * 1e6));
  }

  /** Mappings this reclaimer watches (those of its last full pass, less the ones removed since). */
  get tracked(): number {
    return this.known.size;
  }

  /** One pass; returns how many mappings were removed. */
  tick(nowNs: bigint = process.hrtime.bigint()): number {
    return nowNs >= this.nextScanNs ? this.fullScan(nowNs) : this.due(nowNs);
  }

  private fullScan(nowNs: bigint): number {
    this.nextScanNs = nowNs + this.scanEveryNs;
    const seen = new Set<string>();
    let n = 0;
    for (const e of [...this.fids.entries()]) {
      const key = { client: e.key.client, flowId: e.key.flowId };
      const k = formatFidKey(key);
      if (reclaimable(e.mapping.track, nowNs, this.lingerMs)) {
        this.fids.remove(key);
        this.known.delete(k);
        n++;
        continue;
      }
      seen.add(k);
      const prev = this.known.get(k);
      const next = nextReclaimCheck(e.mapping.track, nowNs, this.lingerMs, prev?.intervalNs);
      this.known.set(k, { key, atNs: next.atNs, intervalNs: next.intervalNs });
    }
    for (const k of [...this.known.keys()]) if (!seen.has(k)) this.known.delete(k);
    return n;
  }

  private due(nowNs: bigint): number {
    let n = 0;
    for (const [k, w] of this.known) {
      if (w.atNs > nowNs) continue;
      const m = this.fids.get(w.key);
      if (!m) {
        this.known.delete(k); // removed elsewhere (a refusal, a restart's dropHeld)
        continue;
      }
      if (reclaimable(m.track, nowNs, this.lingerMs)) {
        this.fids.remove(w.key);
        this.known.delete(k);
        n++;
        continue;
      }
      const next = nextReclaimCheck(m.track, nowNs, this.lingerMs, w.intervalNs);
      w.atNs = next.atNs;
      w.intervalNs = next.intervalNs;
    }
    return n;
  }
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
