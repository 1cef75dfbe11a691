/**
 * The LB's side of migrate mode's datapath (source document 002, claims
 * 9-10): per migration, a 32-bit flow id from a per-back-end counter and a
 * BATON_KIND_MIGRATED entry in the LB's connection table, steered through
 * the order of design.md §4 "Migrate":
 *
 *   const pending = sw.begin(connId, clientKey, backend);  // entry in BLOCK, before capture
 *   ...reservation of pending.mapping sent; capture; the agent answers held (its mapping in HOLD)...
 *   pending.forward();                                     // BLOCK -> FORWARD, in place
 *   ...the state blob sent; the agent restores (RESTORE), hands the socket to its app, confirms...
 *   pending.confirm();                                     // a forwarded migration from now on
 *   ...or, on any failure before the confirmation: pending.abort()  // entry gone, flow id free
 *
 * In BLOCK the LB's datapath drops the client's data segments (pure ACKs
 * pass), so nothing the client sends changes the socket while it is
 * captured, and nothing reaches the back end before the agent holds a
 * mapping for it. FORWARD comes before the state is sent, so everything
 * the client sends once the app answers (its ACKs above all) goes to the
 * back end: were the entry still in BLOCK, those ACKs would reach the
 * LB's captured socket and the app's first flight would wait for an RTO.
 */
import { type FlowKey, FlowKind, FlowState } from '../datapath/abi.js';
import { flowIdOfPorts } from '../datapath/abi-migrate.js';
import { DEFAULT_RECLAIM_LINGER_MS, nextReclaimCheck, planMigratedEntry, reclaimable } from '../datapath/flow-id.js';
import { type FlowTable, formatKey } from '../datapath/flow-table.js';
import { BatonError } from '../errors.js';
import type { FlowMapping } from '../tcp/blob/index.js';

/** A flow id is usable on the wire when neither 16-bit half is 0 (each half is a TCP port; port 0 is dropped by stacks and middleboxes). */
export const isWireFlowId = (id: number): boolean => id >>> 16 !== 0 && (id & 0xffff) !== 0;

/**
 * Flow ids per back end, from a counter (pure). An id is live from next()
 * until release(); the counter skips live ids and ids with a zero half, and
 * wraps at 2^32. Ids are reused only after release (the entries on both
 * hosts reclaimed).
 */
export class FlowIdAllocator {
  private readonly counters = new Map<string, number>();
  private readonly live = new Map<string, Set<number>>();

  /** `limit`: how many ids may be live per back end (bounds the search of next()). */
  constructor(readonly limit = 1 << 20) {}

  next(backend: string): number {
    const live = this.live.get(backend) ?? new Set<number>();
    if (live.size >= this.limit)
      throw new BatonError(
        'TABLE_FULL',
        `${live.size} migrated connections to ${backend} hold a flow id already (the limit); wait for some to end`,
        'flow_ids_exhausted',
      );
    let id = this.counters.get(backend) ?? 0;
    // At most limit + 2 * 65536 steps: each live id and each zero-half id is skipped once per pass.
    for (;;) {
      id = (id + 1) >>> 0;
      if (!isWireFlowId(id) || live.has(id)) continue;
      break;
    }
    this.counters.set(backend, id);
    live.add(id);
    this.live.set(backend, live);
    return id;
  }

  /** Marks `id` live (a migration an earlier daemon made), so next() skips it until release(). */
  reserve(backend: string, id: number): void {
    const live = this.live.get(backend) ?? new Set<number>();
    live.add(id);
    this.live.set(backend, live);
  }

  release(backend: string, id: number): void {
    const live = this.live.get(backend);
    live?.delete(id);
    if (live?.size === 0) this.live.delete(backend);
  }

  liveCount(backend: string): number {
    return this.live.get(backend)?.size ?? 0;
  }
}

/** One migration's entry in the LB's table, between begin() and forward()/abort(). */
export interface PendingSwitch {
  readonly flowId: number;
  readonly key: FlowKey;
  /** What the blob carries to the agent (control/tcp/blob FLOW_MAPPING). */
  readonly mapping: FlowMapping;
  /** The agent holds a mapping: the client's segments go to the back end with the flow id in the ports. */
  forward(): void;
  /** The agent confirmed: the migration is forwarded (reclaimed once it ends); abort() does nothing from now on. */
  confirm(): void;
  /** Before the confirmation: the entry goes (segments reach the LB's socket again) and the flow id is free. */
  abort(): void;
}

export class FlowIdSwitch {
  /** Forwarded migrations, until reclaimed: their entry key, back end and flow id. */
  /** Confirmed migrations, with when reclaim() looks at each next (nextReclaimCheck; 0: at its next pass). */
  private readonly forwarded = new Map<
    string,
    { key: FlowKey; backend: string; flowId: number; checkAtNs: bigint; intervalNs: bigint }
  >();

  constructor(
    private readonly table: Pick<FlowTable, 'insert' | 'setState' | 'remove' | 'track' | 'entries'>,
    /** This LB's address, as the blob names it (flow ids are unique per LB and back end). */
    private readonly lb: string,
    readonly ids: FlowIdAllocator = new FlowIdAllocator(),
  ) {}

  /**
   * Allocates a flow id and inserts the MIGRATED entry in BLOCK. `client` is
   * the client's connection as the LB sees it (client -> VIP). Throws
   * (ALREADY_SPLICED, TABLE_FULL) with nothing left behind.
   */
  begin(connId: bigint, client: FlowKey, backend: string): PendingSwitch {
    const flowId = this.ids.next(backend);
    let planned: ReturnType<typeof planMigratedEntry>;
    try {
      planned = planMigratedEntry({ connId, client, backend, flowId });
      try {
        this.table.insert(planned.key, planned.entry);
      } catch (e) {
        // A client reusing its ip:port after an earlier migrated connection on
        // it ended: that entry (superseded by the new SYN in the datapath) gives
        // way now instead of after its linger, and its flow id is freed.
        if (!(e instanceof BatonError && e.code === 'ALREADY_SPLICED') || !this.supersede(planned.key)) throw e;
        this.table.insert(planned.key, planned.entry);
      }
    } catch (e) {
      this.ids.release(backend, flowId);
      throw e;
    }
    const { key } = planned;
    let done = false;
    return {
      flowId,
      key,
      mapping: {
        lb: this.lb,
        flowId,
        client: { ip: client.src, port: client.sport },
        vip: { ip: client.dst, port: client.dport },
      },
      forward: () => {
        if (!done) this.table.setState(key, FlowState.FORWARD);
      },
      confirm: () => {
        if (done) return;
        done = true;
        this.forwarded.set(formatKey(key), { key, backend, flowId, checkAtNs: 0n, intervalNs: 0n });
      },
      abort: () => {
        if (done) return;
        done = true;
        this.table.remove(key);
        this.ids.release(backend, flowId);
      },
    };
  }

  /**
   * After a restart: takes over the MIGRATED entries an earlier daemon left
   * in the (pinned) table. Forwarded ones are tracked and reclaimed like
   * this daemon's own, their flow ids kept live; ones still in BLOCK belong
   * to a migration the earlier daemon never finished (the agent did not
   * hold a mapping, or the daemon died): removed, so the client's segments
   * reach the LB's socket again. A FORWARD entry whose state never reached
   * the agent (the daemon died between held and the confirmation) is
   * adopted too: its socket died with the capture, and the back end's RST
   * to the client's next segment ends it and lets it be reclaimed. Returns
   * how many of each.
   */
  adopt(): { forwarded: number; removed: number } {
    let forwarded = 0;
    const stale: FlowKey[] = [];
    for (const { key, flow } of this.table.entries()) {
      if (flow.kind !== FlowKind.MIGRATED) continue;
      const out = flow.legs[0]?.x.out;
      if (flow.state !== FlowState.FORWARD || !out) {
        stale.push(key);
        continue;
      }
      const flowId = flowIdOfPorts(out.sport, out.dport);
      const k: FlowKey = { src: key.src, sport: key.sport, dst: key.dst, dport: key.dport };
      this.ids.reserve(out.dst, flowId);
      this.forwarded.set(formatKey(k), { key: k, backend: out.dst, flowId, checkAtNs: 0n, intervalNs: 0n });
      forwarded++;
    }
    for (const k of stale) this.table.remove(k);
    return { forwarded, removed: stale.length };
  }

  /** Removes our ended migration at `key` (client FIN or RST seen); false when there is none. */
  private supersede(key: FlowKey): boolean {
    const k = formatKey(key);
    const old = this.forwarded.get(k);
    const track = old && this.table.track(old.key);
    if (!old || (track && !reclaimable(track, process.hrtime.bigint(), 0))) return false;
    this.table.remove(old.key);
    this.forwarded.delete(k);
    this.ids.release(old.backend, old.flowId);
    return true;
  }

  /** Forwarded migrations not reclaimed yet. */
  get forwardedCount(): number {
    return this.forwarded.size;
  }

  /**
   * Removes the entries of forwarded migrations that ended (reclaimable())
   * and frees their flow ids; an entry already gone (removed elsewhere) only
   * frees its id. Looks only at the entries due (nextReclaimCheck), so an
   * entry is read a few times in its life rather than once a pass. Returns
   * how many were reclaimed. Call it periodically.
   */
  reclaim(lingerMs = DEFAULT_RECLAIM_LINGER_MS, nowNs: bigint = process.hrtime.bigint()): number {
    let n = 0;
    for (const [k, f] of this.forwarded) {
      if (f.checkAtNs > nowNs) continue;
      const track = this.table.track(f.key);
      if (track && !reclaimable(track, nowNs, lingerMs)) {
        const next = nextReclaimCheck(track, nowNs, lingerMs, f.intervalNs);
        f.checkAtNs = next.atNs;
        f.intervalNs = next.intervalNs;
        continue;
      }
      if (track) this.table.remove(f.key);
      this.forwarded.delete(k);
      this.ids.release(f.backend, f.flowId);
      n++;
    }
    return n;
  }
}
