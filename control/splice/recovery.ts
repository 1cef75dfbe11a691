/**
 * Rebuilding the records of the connections in a pinned table (after a
 * restart or an upgrade): addresses, legs and translations come from the
 * entries; the legs' captured state is gone, so such connections keep
 * flowing and can be listed, aborted and reclaimed, but not handed off again.
 * Entries of a splice that a crash interrupted (still blocked, or without
 * their client entry) are deleted: their peers retransmit into the stack,
 * which answers with a RST, as it would have without baton.
 */
import type { FlowKey, Leg, Xlate } from '../datapath/abi.js';
import { FlowKind, FlowState } from '../datapath/abi.js';
import type { Family } from '../net/addr.js';
import { minimalState } from '../tcp/connect.js';
import type { SpliceContext } from './context.js';
import { inRange } from './leg-ports.js';
import type { LegRecord, SpliceRecord } from './records.js';

export interface Recovered {
  records: SpliceRecord[];
  /** The highest connection id seen in the table (new ids start after it). */
  maxId: bigint;
}

/** Reads the table, deletes half-made entries, and returns the records to adopt. */
export function recoverFromTable(ctx: SpliceContext, opts: { netns?: number } = {}): Recovered {
  const clients = new Map<bigint, { k: FlowKey & { family: Family }; legs: Leg[] }>();
  const backends = new Map<bigint, Array<{ k: FlowKey; x: Xlate }>>();
  const unfinished: FlowKey[] = [];
  let maxId = 0n;
  for (const { key: k, flow: f } of ctx.table.entries()) {
    if (f.connId > maxId) maxId = f.connId;
    // Migrated connections (migrate mode) are not splices: their owner recovers them, never deletes them here.
    if (f.kind === FlowKind.MIGRATED) continue;
    if (f.state === FlowState.BLOCK || !f.legs[0]) unfinished.push(k);
    else if (f.kind === FlowKind.CLIENT) clients.set(f.connId, { k, legs: f.legs });
    else backends.set(f.connId, [...(backends.get(f.connId) ?? []), { k, x: f.legs[0].x }]);
  }
  for (const k of unfinished) ctx.table.remove(k);
  for (const [connId, backendEntries] of backends) {
    if (!clients.has(connId)) for (const l of backendEntries) ctx.table.remove(l.k);
  }
  const records: SpliceRecord[] = [];
  const now = Date.now();
  for (const [id, c] of clients) {
    if (ctx.records.has(id)) continue;
    const backendEntries = backends.get(id) ?? [];
    const legs: LegRecord[] = c.legs.map((h, index) => {
      const out = h.x.out; // LB -> back end
      const back = backendEntries.find(
        (l) => l.k.src === out.dst && l.k.sport === out.dport && l.k.dst === out.src && l.k.dport === out.sport,
      );
      return {
        index,
        backend: { ip: out.dst, port: out.dport },
        local: { ip: out.src, port: out.sport },
        backendKey: { src: out.dst, dst: out.src, sport: out.dport, dport: out.sport },
        toBackend: h,
        toClient: back?.x ?? { ...h.x, out: { src: c.k.dst, dst: c.k.src, sport: c.k.dport, dport: c.k.sport } },
        retired: back === undefined && index < c.legs.length - 1,
        createdAt: now,
      };
    });
    records.push({
      id,
      family: c.k.family,
      client: { ip: c.k.src, port: c.k.sport },
      vip: { ip: c.k.dst, port: c.k.dport },
      clientKey: { src: c.k.src, dst: c.k.dst, sport: c.k.sport, dport: c.k.dport },
      legs,
      capturedAt: performance.now(),
      ...(opts.netns === undefined ? {} : { netns: opts.netns }),
      createdAt: now,
      recovered: true,
      ownerUid: 0,
      timings: { quiesceMs: 0, captureMs: 0, installMs: 0, totalMs: 0 },
    });
  }
  return { records, maxId };
}

/**
 * The previous process's placeholders died with it: hold the live legs'
 * tuples again. A leg in baton's port range needs none: its entry, pinned,
 * still reserves the tuple (leg-ports.ts).
 */
export function holdTuplesAgain(ctx: SpliceContext, rec: SpliceRecord): void {
  for (const h of rec.legs) {
    if (h.retired || inRange(ctx.legPorts, h.local.port)) continue;
    try {
      h.heldFd = ctx.ops.placeholder(
        minimalState({ family: rec.family, local: h.local, remote: h.backend, sndNxt: 0, rcvNxt: 0 }),
        rec.netns,
      );
    } catch {
      /* still held by someone (the old process is alive?): nothing to reserve */
    }
  }
}
