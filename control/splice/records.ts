/**
 * What the control plane remembers of each spliced connection. The
 * datapath's entries are the truth about packets; a record adds what the
 * entries cannot hold: the captured legs (for later handoffs), the sockets
 * baton holds, timings, and who asked for the splice.
 */
import type { FlowKey, Leg, Xlate } from '../datapath/abi.js';
import type { Family } from '../net/addr.js';
import type { Endpoint, TcpState } from '../tcp/state.js';

export interface SpliceOptions {
  /** How long to wait for both sockets to be quiet before giving up (ms). */
  quiesceTimeoutMs?: number;
  /** Client bytes the front end has read but not forwarded (typically the request). */
  prefix?: Buffer;
  /** uid of whoever asked for the splice (default 0, root). */
  ownerUid?: number;
}

export interface HandoffOptions {
  /** How long to wait for the new back end and for a request boundary (ms). */
  quiesceTimeoutMs?: number;
}

export const DEFAULT_QUIESCE_MS = 500;
export const DEFAULT_HANDOFF_QUIESCE_MS = 2000;

/** One back end a client connection was joined to: the first splice's, then one per later handoff. */
export interface LegRecord {
  index: number;
  backend: Endpoint;
  /** The LB's end of the leg to this back end. */
  local: Endpoint;
  /** Key of the back end -> LB entry. */
  backendKey: FlowKey;
  /** The client entry's leg (client -> back end translation and range). */
  toBackend: Leg;
  /** The back-end entry's translation (back end -> client). */
  toClient: Xlate;
  /** The leg's socket as captured; absent for connections recovered after a restart. */
  captured?: TcpState;
  /** The LB's socket of this leg, held in repair mode so the kernel never gives its tuple to a new connection. */
  heldFd?: number;
  /** A later handoff replaced it; its leg was closed. */
  retired: boolean;
  createdAt: number;
}

export interface SpliceRecord {
  id: bigint;
  family: Family;
  client: Endpoint;
  vip: Endpoint;
  /** Key of the client -> VIP entry. */
  clientKey: FlowKey;
  /** Every back-end leg, the first splice's first, in the datapath's order. */
  legs: LegRecord[];
  /** Leg 1 as captured; absent for connections recovered after a restart. */
  clientLeg?: TcpState;
  /** performance.now() when leg 1 was captured: the base of clock estimates. */
  capturedAt: number;
  /** Network namespace of the LB's sockets (SocketOps handle); undefined: ours. */
  netns?: number;
  /** Date.now() of the splice (or of the recovery). */
  createdAt: number;
  /** Rebuilt from the pinned table after a restart: legs unknown. */
  recovered: boolean;
  /**
   * uid that created the connection: only it (and root) may see and act on
   * it (control/service/authorize.ts). Adopted records get 0 until the
   * daemon restores the owners it saved (control/daemon/owners.ts).
   */
  ownerUid: number;
  /**
   * Phases of the first splice (ms): waiting for quiet sockets, capturing
   * them, installing the entries; total is request to sockets released (the
   * wait for the back end to acknowledge pending bytes runs after it).
   */
  timings: { quiesceMs: number; captureMs: number; installMs: number; totalMs: number; phases?: SplicePhases };
}

/**
 * Where a first splice's time went, in order (ms, performance.now() spans):
 * addresses of both sockets, block entries, quiescence check, TCP_REPAIR
 * capture with the socket probe, plan (refuse or translate), forwarding
 * entries, silent release of the client side, pending bytes written on leg 2
 * (or the leg's tuple reserved). bench/splice-cost.ts reports them.
 */
export interface SplicePhases {
  endpoints: number;
  block: number;
  quiesce: number;
  capture: number;
  plan: number;
  forward: number;
  release: number;
  send: number;
}

/** The leg the client's new bytes go to. */
export function currentLeg(rec: SpliceRecord): LegRecord {
  return rec.legs.at(-1) as LegRecord;
}

/** Legs not replaced by a later handoff (their entries are in the table). */
export function liveLegs(rec: SpliceRecord): LegRecord[] {
  return rec.legs.filter((h) => !h.retired);
}

/** Told when a connection's record appears (spliced, adopted) and when it goes (reclaimed, aborted). */
export interface RecordListener {
  added(rec: SpliceRecord): void;
  removed(rec: SpliceRecord): void;
}

/**
 * The connections this LB holds, by id: a Map that tells listeners of every
 * record added or removed (the owner directory publishes from it), so no
 * operation has to remember to.
 */
export class ConnectionRecords extends Map<bigint, SpliceRecord> {
  private readonly listeners = new Set<RecordListener>();

  /** Adds a listener; returns its removal. */
  listen(l: RecordListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  override set(id: bigint, rec: SpliceRecord): this {
    const had = super.get(id);
    super.set(id, rec);
    if (had !== rec) {
      if (had) this.tell('removed', had);
      this.tell('added', rec);
    }
    return this;
  }

  override delete(id: bigint): boolean {
    const had = super.get(id);
    if (!super.delete(id)) return false;
    if (had) this.tell('removed', had);
    return true;
  }

  override clear(): void {
    const all = [...super.values()];
    super.clear();
    for (const rec of all) this.tell('removed', rec);
  }

  /** A listener that throws must not break the splice that changed the record. */
  private tell(what: keyof RecordListener, rec: SpliceRecord): void {
    for (const l of this.listeners) {
      try {
        l[what](rec);
      } catch {
        // The listener reports its own trouble; the record change stands.
      }
    }
  }
}
