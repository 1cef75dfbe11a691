/**
 * Splice orchestration.
 *
 * A first splice, in the order design.md §3 fixes:
 *   1. block both flows in the datapath: data segments are dropped (peers
 *      retransmit them later), pure ACKs still reach the LB's sockets;
 *   2. wait (bounded) until both sockets' sent bytes are acknowledged and
 *      the back-end socket holds no unread response bytes;
 *   3. capture both sockets with TCP_REPAIR;
 *   4. refuse what cannot be translated (rolling everything back);
 *   5. replace the block entries by forwarding entries, one step per direction;
 *   6. release the client-side socket silently (closed in repair mode);
 *   7. client bytes the LB already holds (the request the front end read, plus
 *      anything unread on the client socket) are sent to the back end by the
 *      back-end socket itself: repair off, write, and once the datapath has
 *      seen the back end acknowledge them, repair on again.
 * Then the back-end socket is held open in repair mode (silent): while it
 * exists the kernel will not hand its 4-tuple to a new connection, whose
 * packets the datapath would otherwise take for the spliced flow's.
 *
 * A later handoff (source document 000, claims 3-4) moves a spliced client
 * connection to another back end at a request boundary:
 *   1. open a connection to the new back end (advertising the client's MSS)
 *      and capture it;
 *   2. wait until the connection is at a boundary, read from the datapath's
 *      tracks: the current back end has acknowledged every client byte and
 *      the client every back-end byte;
 *   3. HOLD the client entry (client data dropped, ACKs still forwarded) and
 *      check the boundary again, so no request can slip to the old back end;
 *   4. insert the new back end's entry, append the handoff and forward again,
 *      in place (the control program), so the tracks stay exact;
 *   5. retire the old back end's leg: its entry goes, and a socket recreated
 *      from its state closes it with a FIN. Its answer reaches that socket,
 *      never the client.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfError } from '../bpf/index.js';
import type { Datapath } from '../datapath/datapath.js';
import {
  CtlOp, decodeFlow, decodeFlowConnId, decodeFlowKey, decodeFlowState, decodeTrack, encodeFlow, encodeFlowKey, type FlowKey, FlowKind, FlowState, type Handoff,
  MAX_HANDOFFS, type Track, TRACK_F_FIN, TRACK_F_RST, TRACK_F_SEEN, type Xlate,
} from '../datapath/abi.js';
import { key, planSplice, refusalReason, relay, SpliceRefused, TS_MARGIN } from '../datapath/splice-plan.js';
import { BatonError } from '../errors.js';
import type { Family } from '../net/addr.js';
import { type Endpoint, seqBefore, type TcpState, u32 } from '../tcp/state.js';
import { minimalState } from '../tcp/connect.js';
import type { SocketOps } from './socket-ops.js';
import type { ReclaimReason } from './sweeper.js';

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

/** One back end a client connection was handed to. */
export interface HandoffRecord {
  index: number;
  backend: Endpoint;
  /** The LB's end of the leg to this back end. */
  local: Endpoint;
  /** Key of the back end -> LB entry. */
  backendKey: FlowKey;
  /** The client entry's handoff (client -> back end translation and range). */
  toBackend: Handoff;
  /** The back-end entry's translation (back end -> client). */
  toClient: Xlate;
  /** Leg 2 as captured; absent for connections recovered after a restart. */
  leg?: TcpState;
  /** The LB's socket of this leg, held in repair mode (see the module comment). */
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
  handoffs: HandoffRecord[];
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
  timings: { quiesceMs: number; captureMs: number; installMs: number; totalMs: number };
}

export type ConnectionState = 'blocked' | 'forwarding' | 'held' | 'closing' | 'closed';

export interface TrafficView {
  packets: bigint;
  bytes: bigint;
  fin: boolean;
  rst: boolean;
  /** bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last packet; 0n when none. */
  lastSeenNs: bigint;
}

export interface ConnectionStatus {
  state: ConnectionState;
  toBackend: TrafficView;
  toClient: TrafficView;
}

const DEFAULT_QUIESCE_MS = 500;
const DEFAULT_HANDOFF_QUIESCE_MS = 2000;
/**
 * How long leg 2 may take to acknowledge the pending bytes before it goes
 * silent anyway. Until then the socket retransmits them on its own timer;
 * released early, a lost request would be lost for good. Runs in the
 * background, so a long bound costs no latency.
 */
const PENDING_ACK_TIMEOUT_MS = 30_000;
/**
 * After the client entry is held, how long before the boundary is checked
 * again: a packet that read the entry as FORWARD just before the change is
 * processed and tracked within microseconds; this leaves a wide margin.
 */
const HOLD_SETTLE_MS = 2;
/**
 * TSvals the recreated socket of a retired leg sends start this far ahead of
 * what the old back end last saw (estimated): PAWS only rejects values that
 * go backwards, and the estimate can lag when the client was idle before the
 * splice. 2^24 ms is 4.6 hours; a jump forward is harmless.
 */
const RETIRE_TS_LEAD = 1 << 24;

export class Splicer {
  private nextId = 1n;
  readonly records = new Map<bigint, SpliceRecord>();
  /** Per connection, the tail of its queue of handoffs and aborts (one at a time). */
  private readonly queues = new Map<bigint, Promise<unknown>>();

  constructor(
    private readonly dp: Datapath,
    private readonly ops: SocketOps,
  ) {}

  // ---------------------------------------------------------------- first splice

  /** Joins the front end's client socket and back-end socket (fds in this process). */
  async splice(clientFd: number, backendFd: number, opts: SpliceOptions = {}): Promise<SpliceRecord> {
    const t0 = performance.now();
    const e1 = this.socketEndpoints(clientFd, 'client');
    const e2 = this.socketEndpoints(backendFd, 'back-end');
    const id = this.nextId++;
    const clientKey = key(e1, 'in');
    const backendKey = key(e2, 'in');

    // 1. Block.
    this.insertEntry(clientKey, { connId: id, state: FlowState.BLOCK, kind: FlowKind.CLIENT, handoffs: [] });
    try {
      this.insertEntry(backendKey, { connId: id, state: FlowState.BLOCK, kind: FlowKind.BACKEND, handoffs: [] });
    } catch (e) {
      this.dp.flows.delete(this.kb(clientKey));
      throw e;
    }

    let captured = false;
    let forwarding = false;
    try {
      // 2. Quiesce.
      await this.waitQuiescent(clientFd, backendFd, opts.quiesceTimeoutMs ?? DEFAULT_QUIESCE_MS);
      const tq = performance.now();
      // 3. Capture.
      const [leg1, leg2] = (await this.ops.capture([clientFd, backendFd])) as [TcpState, TcpState];
      captured = true;
      const capturedAt = performance.now();
      const tc = capturedAt;
      const pending = Buffer.concat([opts.prefix ?? Buffer.alloc(0), leg1.recvQueue]);
      // 4. Refuse or plan.
      const plan = planSplice(id, leg1, leg2, pending.length);
      // 5. Forward, one update per direction (each atomic for readers).
      this.dp.flows.update(this.kb(plan.backendKey), encodeFlow(plan.backend), 'EXIST');
      this.dp.flows.update(this.kb(plan.clientKey), encodeFlow(plan.client), 'EXIST');
      forwarding = true;
      const netns = this.ops.netnsOf(clientFd);
      // 6. Release the client side.
      this.ops.releaseSilently(clientFd);
      const ti = performance.now();
      const now = Date.now();
      const first: HandoffRecord = {
        index: 0,
        backend: e2.remote,
        local: e2.local,
        backendKey,
        toBackend: plan.client.handoffs[0] as Handoff,
        toClient: (plan.backend.handoffs[0] as Handoff).x,
        leg: leg2,
        retired: false,
        createdAt: now,
      };
      const rec: SpliceRecord = {
        id,
        family: e1.family,
        client: e1.remote,
        vip: e1.local,
        clientKey,
        handoffs: [first],
        clientLeg: leg1,
        capturedAt,
        ...(netns === undefined ? {} : { netns }),
        createdAt: now,
        recovered: false,
        ownerUid: opts.ownerUid ?? 0,
        timings: { quiesceMs: tq - t0, captureMs: tc - tq, installMs: ti - tc, totalMs: 0 },
      };
      // 7. Pending client bytes go out on leg 2; the socket is held (silent) once they are acknowledged.
      if (pending.length > 0) {
        this.ops.leaveRepair(backendFd);
        this.ops.send(backendFd, pending);
      } else {
        first.heldFd = backendFd;
      }
      rec.timings.totalMs = performance.now() - t0;
      this.records.set(id, rec);
      if (pending.length > 0) this.inBackground(this.holdAfterAck(rec, first, backendFd, pending.length, u32(leg1.rcvNxt)));
      return rec;
    } catch (e) {
      if (forwarding) {
        // The client side is released: the splice stands, but leg 2 failed.
        // Reset is the only honest outcome; the entries stay until reclaimed.
        throw e;
      }
      // Nothing half-made: entries gone, sockets back to normal operation.
      this.dp.flows.delete(this.kb(clientKey));
      this.dp.flows.delete(this.kb(backendKey));
      if (captured) {
        for (const fd of [clientFd, backendFd]) {
          try {
            this.ops.leaveRepair(fd);
          } catch {
            /* the socket may be gone; nothing else to undo */
          }
        }
      }
      if (e instanceof SpliceRefused) throw new BatonError('SPLICE_REFUSED', e.message, e.reason, { cause: e });
      throw e;
    }
  }

  /**
   * The back-end socket has sent the client bytes the LB held; once the back
   * end has acknowledged them (or after a bound) a silent socket takes its
   * place and is held, owning the 4-tuple, so the kernel cannot
   * give the tuple to a new connection toward the same back end, whose
   * packets the datapath would take for this one's. Its retransmissions
   * until then are harmless duplicates; the back end's ACKs reach the client
   * through the datapath (as duplicate ACKs in its own space). Runs after
   * splice() has answered: the front end may close its descriptors, ours
   * keeps the socket.
   */
  private async holdAfterAck(rec: SpliceRecord, h: HandoffRecord, fd: number, pending: number, clientRcvNxt: number): Promise<void> {
    const started = performance.now();
    const deadline = started + PENDING_ACK_TIMEOUT_MS;
    while (performance.now() < deadline) {
      const t = this.track(h.backendKey);
      if (!t) break;
      // The BACKEND entry tracks acks in client space: the request's end is leg-1 rcvNxt.
      if (t.flags & TRACK_F_SEEN && !seqBefore(t.ackMax, clientRcvNxt)) break;
      // Usually one round trip; then back off toward the retransmission timer's pace.
      await sleep(Math.min(50, 1 + Math.floor((performance.now() - started) / 20)));
    }
    // The socket still counts the pending bytes as unacknowledged (their ACK
    // went to the client) and would retransmit them for minutes. It makes way
    // for a placeholder with the same tuple, nothing queued, never sending.
    this.ops.enterRepair(fd);
    this.ops.releaseSilently(fd);
    if (this.records.get(rec.id) !== rec || h.retired || !h.leg) return; // removed or retired meanwhile
    const at = u32(h.leg.sndNxt + pending);
    h.heldFd = this.ops.placeholder({ ...h.leg, sndNxt: at, sndUna: at, sendQueue: Buffer.alloc(0), recvQueue: Buffer.alloc(0) }, rec.netns);
  }

  // ---------------------------------------------------------------- later handoff

  /** Moves a spliced connection to another back end at its next request boundary. */
  handoff(id: bigint, backend: Endpoint, opts: HandoffOptions = {}): Promise<SpliceRecord> {
    const rec = this.get(id);
    return this.serialized(id, () => this.doHandoff(rec, backend, opts.quiesceTimeoutMs ?? DEFAULT_HANDOFF_QUIESCE_MS));
  }

  private async doHandoff(rec: SpliceRecord, backend: Endpoint, timeoutMs: number): Promise<SpliceRecord> {
    const leg1 = rec.clientLeg;
    if (!leg1) {
      throw new BatonError('SPLICE_REFUSED', `connection ${rec.id} was recovered after a restart; its client leg's options are not known, so it cannot be handed to another back end (it keeps flowing to ${this.current(rec).backend.ip})`, 'state_unknown');
    }
    if (rec.handoffs.length >= MAX_HANDOFFS) {
      throw new BatonError('HANDOFFS_EXHAUSTED', `connection ${rec.id} already holds ${MAX_HANDOFFS} handoffs; a new client connection is needed to move it again`, 'handoffs_exhausted');
    }
    const deadline = performance.now() + timeoutMs;
    const prev = this.current(rec);

    // 1. The new leg, advertising the client's MSS so the back end never
    //    sends a segment the client would not accept.
    let fd: number;
    try {
      fd = await this.ops.connect(backend, rec.family, { mss: leg1.mssClamp, timeoutMs, ...(rec.netns === undefined ? {} : { netns: rec.netns }) });
    } catch (e) {
      throw new BatonError('BACKEND_UNREACHABLE', `could not connect to ${backend.ip}:${backend.port}: ${(e as Error).message}`, 'connect_failed', { cause: e });
    }
    let leg2: TcpState;
    try {
      [leg2] = (await this.ops.capture([fd])) as [TcpState];
    } catch (e) {
      this.ops.close(fd);
      throw e;
    }
    const newKey = key(leg2, 'in');
    let held = false;
    let inserted = false;
    let b: { clientEnd: number; backendEnd: number };
    try {
      // 2-3. A boundary, confirmed under HOLD.
      b = await this.holdAtBoundary(rec, prev, deadline);
      held = true;
      // 4. Plan, insert, append.
      const elapsed = performance.now() - rec.capturedAt;
      const from: TcpState = {
        ...leg1,
        rcvNxt: b.clientEnd,
        sndNxt: b.backendEnd,
        sndUna: b.backendEnd,
        // The client's clock, estimated: at least its TSval at capture plus
        // the time since (PAWS at the new back end only needs a lower bound).
        tsRecent: u32((leg1.tsRecent ?? 0) + ticks(leg1, elapsed)),
        // Leg 1's socket clock now, plus a margin per handoff: the client
        // must never see TSvals go backwards across back ends.
        tsNow: u32(leg1.tsNow + ticks(leg1, elapsed) + TS_MARGIN * rec.handoffs.length),
        sendQueue: Buffer.alloc(0),
        recvQueue: Buffer.alloc(0),
      };
      const refused = refusalReason(from, leg2);
      if (refused) throw refused;
      const toBackend: Handoff = { seqStart: b.clientEnd, ackFloor: b.backendEnd, x: relay(from, leg2) };
      const toClient = relay(leg2, from);
      this.insertEntry(newKey, { connId: rec.id, state: FlowState.FORWARD, kind: FlowKind.BACKEND, handoffs: [{ seqStart: 0, ackFloor: 0, x: toClient }] });
      inserted = true;
      this.dp.control({ op: CtlOp.APPEND_HANDOFF, key: rec.clientKey, state: FlowState.FORWARD, handoff: toBackend });
      held = false;
      rec.handoffs.push({ index: rec.handoffs.length, backend, local: leg2.local, backendKey: newKey, toBackend, toClient, leg: leg2, heldFd: fd, retired: false, createdAt: Date.now() });
    } catch (e) {
      if (held) this.dp.control({ op: CtlOp.SET_STATE, key: rec.clientKey, state: FlowState.FORWARD });
      if (inserted) this.dp.flows.delete(this.kb(newKey));
      try {
        this.ops.leaveRepair(fd);
      } finally {
        this.ops.close(fd); // an unused connection: a normal close
      }
      if (e instanceof SpliceRefused) throw new BatonError('SPLICE_REFUSED', e.message, e.reason, { cause: e });
      throw e;
    }
    // 5. Retire the previous back end. The handoff stands whatever happens
    // here: a leg that cannot be closed cleanly is left to the back end's
    // own timeouts (its entry is gone, so nothing of it reaches the client).
    try {
      this.retire(rec, prev, b);
    } catch (e) {
      if (this.retireFailures.push({ id: rec.id, backend: prev.backend, error: (e as Error).message }) > 100) this.retireFailures.shift();
    }
    return rec;
  }

  /** Retired legs that could not be closed with a FIN (for logs and tests); the most recent 100. */
  readonly retireFailures: Array<{ id: bigint; backend: Endpoint; error: string }> = [];

  /**
   * Waits for a request boundary and holds the client entry there. Returns
   * the boundary in client sequence space: clientEnd (the client's next
   * byte, where the new handoff starts) and backendEnd (the next byte the
   * client expects, where the new back end's stream starts).
   */
  private async holdAtBoundary(rec: SpliceRecord, cur: HandoffRecord, deadline: number): Promise<{ clientEnd: number; backendEnd: number }> {
    for (;;) {
      const b = this.boundary(rec, cur);
      if (b) {
        this.dp.control({ op: CtlOp.SET_STATE, key: rec.clientKey, state: FlowState.HOLD });
        await sleep(HOLD_SETTLE_MS);
        const again = this.boundary(rec, cur);
        if (again && again.clientEnd === b.clientEnd && again.backendEnd === b.backendEnd) return b;
        // A request slipped through before the hold: let it be served.
        this.dp.control({ op: CtlOp.SET_STATE, key: rec.clientKey, state: FlowState.FORWARD });
      }
      if (performance.now() >= deadline) {
        throw new BatonError('NOT_QUIESCENT', `connection ${rec.id} reached no request boundary (every byte acknowledged both ways) within the timeout (${this.describeBoundary(rec, cur)}); retry when the current request is answered, or raise quiesceTimeoutMs`, 'busy');
      }
      await sleep(1);
    }
  }

  /** Where the two directions stand, for an error message. */
  private describeBoundary(rec: SpliceRecord, cur: HandoffRecord): string {
    const c = this.track(rec.clientKey);
    const b = this.track(cur.backendKey);
    if (!c || !b || !(c.flags & TRACK_F_SEEN) || !(b.flags & TRACK_F_SEEN)) return 'no segment seen yet in one direction';
    const fin = (c.flags | b.flags) & TRACK_F_FIN ? '; a FIN was seen' : '';
    return `client sent up to ${c.seqEnd}, back end acknowledged ${b.ackMax}; back end sent up to ${b.seqEnd}, client acknowledged ${c.ackMax}${fin}`;
  }

  /** The boundary if the connection is at one now. */
  private boundary(rec: SpliceRecord, cur: HandoffRecord): { clientEnd: number; backendEnd: number } | undefined {
    const c = this.track(rec.clientKey);
    const b = this.track(cur.backendKey);
    if (!c || !b || !(c.flags & TRACK_F_SEEN) || !(b.flags & TRACK_F_SEEN)) return undefined;
    if ((c.flags | b.flags) & (TRACK_F_FIN | TRACK_F_RST)) return undefined;
    // Every client byte acknowledged by the back end, every back-end byte by the client.
    if (b.ackMax !== c.seqEnd || c.ackMax !== b.seqEnd) return undefined;
    return { clientEnd: c.seqEnd, backendEnd: b.seqEnd };
  }

  /**
   * Closes the leg to a back end that a later handoff replaced: its entry
   * goes first (so nothing of it reaches the client any more), then a socket
   * recreated at the boundary sends it a FIN; the kernel completes the close.
   */
  private retire(rec: SpliceRecord, h: HandoffRecord, b: { clientEnd: number; backendEnd: number }): void {
    h.retired = true;
    if (h.heldFd !== undefined) {
      this.ops.releaseSilently(h.heldFd); // frees the tuple for the recreated socket
      delete h.heldFd;
    }
    this.dp.flows.delete(this.kb(h.backendKey));
    if (!h.leg) return;
    const elapsed = performance.now() - rec.capturedAt;
    const at = u32(b.clientEnd + h.toBackend.x.seqDelta); // the back end's rcv_nxt, in its space
    const rcv = u32(b.backendEnd - h.toClient.seqDelta); // its snd_nxt
    const tsNow = u32(h.leg.tsNow + ticks(h.leg, elapsed) + RETIRE_TS_LEAD);
    this.ops.finish(
      {
        ...h.leg,
        sndNxt: at,
        sndUna: at,
        rcvNxt: rcv,
        tsNow: (tsNow & ~1) | (h.leg.tsNow & 1), // bit 0 is the usec-clock flag
        sendQueue: Buffer.alloc(0),
        recvQueue: Buffer.alloc(0),
        window: { ...h.leg.window, sndWl1: rcv, rcvWup: rcv },
      },
      rec.netns,
    );
  }

  // ---------------------------------------------------------------- lifecycle

  /** What the datapath saw of a connection, or undefined when unknown. */
  status(id: bigint): ConnectionStatus | undefined {
    const rec = this.records.get(id);
    if (!rec) return undefined;
    const raw = this.dp.flows.lookup(this.kb(rec.clientKey));
    // The state byte and the track: a status needs nothing else of the entry.
    const flowState = raw ? decodeFlowState(raw) : undefined;
    const c = raw ? decodeTrack(raw) : undefined;
    const active = rec.handoffs.filter((h) => !h.retired);
    const backs = active.map((h) => this.track(h.backendKey)).filter((t): t is Track => t !== undefined);
    const toBackend = view(c ? [c] : []);
    const toClient = view(backs);
    let state: ConnectionState;
    if (toBackend.rst || toClient.rst) state = 'closed';
    else if (c && toBackend.fin && toClient.fin) {
      const cur = active.at(-1);
      const b = cur && this.track(cur.backendKey);
      // Both FINs acknowledged: each side's ack is past the other's FIN.
      state = b && !seqBefore(b.ackMax, u32(c.finSeq + 1)) && !seqBefore(c.ackMax, u32(b.finSeq + 1)) ? 'closed' : 'closing';
    } else if (toBackend.fin || toClient.fin) state = 'closing';
    else if (flowState === FlowState.BLOCK) state = 'blocked';
    else if (flowState === FlowState.HOLD) state = 'held';
    else state = 'forwarding';
    return { state, toBackend, toClient };
  }

  /** Removes a connection's entries and releases what baton holds of it. */
  remove(id: bigint): boolean {
    const rec = this.records.get(id);
    if (!rec) return false;
    this.dp.flows.delete(this.kb(rec.clientKey));
    for (const h of rec.handoffs) {
      if (!h.retired) this.dp.flows.delete(this.kb(h.backendKey));
      if (h.heldFd !== undefined) {
        try {
          this.ops.releaseSilently(h.heldFd);
        } catch {
          /* already closed */
        }
        delete h.heldFd;
      }
    }
    this.records.delete(id);
    return true;
  }

  /**
   * Aborts a connection: its entries go and both ends get a RST, at the
   * sequence numbers the datapath last saw (see resetConnection for why an
   * inexact number still ends in an exact RST).
   */
  abort(id: bigint): Promise<boolean> {
    const rec = this.records.get(id);
    if (!rec) return Promise.resolve(false);
    return this.serialized(id, async () => {
      const cur = this.current(rec);
      const c = this.track(rec.clientKey);
      const b = this.track(cur.backendKey);
      this.remove(id);
      const seen = (t: Track | undefined): t is Track => t !== undefined && (t.flags & TRACK_F_SEEN) !== 0;
      // Each RST carries the end of what the other side sent: the receiver's
      // rcv_nxt once everything arrived, else a number inside its window
      // (which draws the challenge ACK described above). The peer's last ACK
      // would be no good: bytes it received since put that number below its
      // window, where a RST is dropped without an answer (RFC 5961).
      // Toward the client, from the VIP (client sequence space).
      const backendSent = seen(b) ? b.seqEnd : cur.toBackend.ackFloor;
      const clientSent = seen(c) ? c.seqEnd : cur.toBackend.seqStart;
      const toClientSeq = backendSent;
      // Toward the back end, in its space.
      const toBackendSeq = u32(clientSent + cur.toBackend.x.seqDelta);
      const backendSentThere = u32(backendSent - cur.toClient.seqDelta);
      const errors: unknown[] = [];
      for (const s of [
        { family: rec.family, local: rec.vip, remote: rec.client, sndNxt: toClientSeq, rcvNxt: clientSent },
        { family: rec.family, local: cur.local, remote: cur.backend, sndNxt: toBackendSeq, rcvNxt: backendSentThere },
      ]) {
        try {
          this.ops.reset(s, rec.netns);
        } catch (e) {
          errors.push(e);
        }
      }
      if (errors.length) throw new BatonError('DATAPATH', `connection ${id} was removed, but a RST could not be sent: ${(errors[0] as Error).message}`, 'reset_failed', { cause: errors[0] });
      return true;
    });
  }

  /**
   * Rebuilds the records of the connections in a pinned table (after a
   * restart or an upgrade): addresses, handoffs and translations come from
   * the entries; the legs' captured state is gone, so such connections keep
   * flowing and can be listed, aborted and reclaimed, but not handed off again.
   * Entries of a splice that a crash interrupted (still blocked, or without
   * their client entry) are deleted: their peers retransmit into the stack,
   * which answers with a RST, as it would have without baton. Call it once,
   * before any splice. `netns` is the network namespace of the LB's sockets
   * (an fd; default: this process's), where aborts recreate them.
   * Returns how many connections were adopted.
   */
  adopt(opts: { netns?: number } = {}): number {
    const clients = new Map<bigint, { k: FlowKey & { family: Family }; handoffs: Handoff[] }>();
    const backends = new Map<bigint, Array<{ k: FlowKey; x: Xlate }>>();
    const unfinished: Array<{ kb: Buffer; connId: bigint }> = [];
    for (const [kb, vb] of this.dp.flows.entries()) {
      const k = decodeFlowKey(kb);
      const f = decodeFlow(vb, k.family);
      if (f.state === FlowState.BLOCK || !f.handoffs[0]) unfinished.push({ kb, connId: f.connId });
      else if (f.kind === FlowKind.CLIENT) clients.set(f.connId, { k, handoffs: f.handoffs });
      else backends.set(f.connId, [...(backends.get(f.connId) ?? []), { k, x: f.handoffs[0].x }]);
      if (f.connId >= this.nextId) this.nextId = f.connId + 1n;
    }
    for (const u of unfinished) this.dp.flows.delete(u.kb);
    for (const [connId, legs] of backends) {
      if (!clients.has(connId)) for (const l of legs) this.dp.flows.delete(this.kb(l.k));
    }
    let n = 0;
    const now = Date.now();
    for (const [id, c] of clients) {
      if (this.records.has(id)) continue;
      const legs = backends.get(id) ?? [];
      const handoffs: HandoffRecord[] = c.handoffs.map((h, index) => {
        const out = h.x.out; // LB -> back end
        const back = legs.find((l) => l.k.src === out.dst && l.k.sport === out.dport && l.k.dst === out.src && l.k.dport === out.sport);
        return {
          index,
          backend: { ip: out.dst, port: out.dport },
          local: { ip: out.src, port: out.sport },
          backendKey: { src: out.dst, dst: out.src, sport: out.dport, dport: out.sport },
          toBackend: h,
          toClient: back?.x ?? { ...h.x, out: { src: c.k.dst, dst: c.k.src, sport: c.k.dport, dport: c.k.sport } },
          retired: back === undefined && index < c.handoffs.length - 1,
          createdAt: now,
        };
      });
      this.records.set(id, {
        id,
        family: c.k.family,
        client: { ip: c.k.src, port: c.k.sport },
        vip: { ip: c.k.dst, port: c.k.dport },
        clientKey: { src: c.k.src, dst: c.k.dst, sport: c.k.sport, dport: c.k.dport },
        handoffs,
        capturedAt: performance.now(),
        ...(opts.netns === undefined ? {} : { netns: opts.netns }),
        createdAt: now,
        recovered: true,
        ownerUid: 0,
        timings: { quiesceMs: 0, captureMs: 0, installMs: 0, totalMs: 0 },
      });
      // The previous process's placeholders died with it: hold the tuples again.
      for (const h of handoffs) {
        if (h.retired) continue;
        try {
          h.heldFd = this.ops.placeholder(minimalState({ family: c.k.family, local: h.local, remote: h.backend, sndNxt: 0, rcvNxt: 0 }), opts.netns);
        } catch {
          /* still held by someone (the old process is alive?): nothing to reserve */
        }
      }
      n++;
    }
    return n;
  }

  // ---------------------------------------------------------------- helpers

  private readonly background = new Set<Promise<void>>();

  /** Work that finishes a splice after it has answered; failures only cost the held socket. */
  private inBackground(p: Promise<void>): void {
    const tracked = p.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  /** Resolves when every splice's background work is done (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.background.size) await Promise.all([...this.background]);
  }

  private get(id: bigint): SpliceRecord {
    const rec = this.records.get(id);
    if (!rec) throw new BatonError('NOT_FOUND', `no spliced connection with id ${id}; list them with GET /v1/splices`, 'unknown_id');
    return rec;
  }

  /** The back end the client's new bytes go to. */
  private current(rec: SpliceRecord): HandoffRecord {
    return rec.handoffs.at(-1) as HandoffRecord;
  }

  /** Runs `fn` after the connection's earlier handoffs and aborts. */
  private serialized<T>(id: bigint, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return run;
  }

  /** Encoded table keys, once per key object (records keep theirs; polls look them up often). */
  private readonly keyBufs = new WeakMap<FlowKey, Buffer>();
  private kb(k: FlowKey): Buffer {
    let b = this.keyBufs.get(k);
    if (!b) this.keyBufs.set(k, (b = encodeFlowKey(k)));
    return b;
  }

  private track(k: FlowKey): Track | undefined {
    const v = this.dp.flows.lookup(this.kb(k));
    return v ? decodeTrack(v) : undefined;
  }

  private socketEndpoints(fd: number, which: string) {
    try {
      return this.ops.endpoints(fd);
    } catch (e) {
      throw new BatonError('SOCKET_UNUSABLE', `the ${which} socket (fd ${fd}) is not an established TCP socket: ${(e as Error).message}`, 'not_established', { cause: e });
    }
  }

  private insertEntry(k: FlowKey, flow: Parameters<typeof encodeFlow>[0]): void {
    for (let retried = false; ; retried = true) {
      try {
        this.dp.flows.update(this.kb(k), encodeFlow(flow), 'NOEXIST');
        return;
      } catch (e) {
        if (e instanceof BpfError && e.code === 'EEXIST') {
          // A client reusing the ip:port of a connection that is over: the
          // datapath handed its SYN to the front end (bpf/lib/syn.h), whose
          // splice now meets the old connection's entry. Reclaimed now, not
          // after the sweeper's grace period; a live owner keeps its tuple.
          if (!retried && this.reclaimFinished(k)) continue;
          throw new BatonError('ALREADY_SPLICED', `${k.src}:${k.sport} -> ${k.dst}:${k.dport} is already in the connection table, held by a connection that is not over; list them with GET /v1/splices`, 'duplicate');
        }
        if (e instanceof BpfError && e.code === 'E2BIG') {
          throw new BatonError('TABLE_FULL', `the connection table is full (${this.dp.flows.maxEntries} entries); raise flowsCapacity or wait for connections to end`, 'table_full');
        }
        throw e;
      }
    }
  }

  /** Told of every connection the splicer reclaims itself (the sweeper forwards it to its own onReclaim). */
  onReclaim?: (id: bigint, reason: ReclaimReason) => void;

  /**
   * Removes the connection that owns the entry at `k` if it is over (status
   * 'closed': both FINs acknowledged, or a RST; the datapath's rule for
   * letting a new SYN through). Returns whether the key is free now.
   */
  private reclaimFinished(k: FlowKey): boolean {
    const v = this.dp.flows.lookup(this.kb(k));
    if (!v) return true;
    const id = decodeFlowConnId(v);
    const st = this.status(id);
    if (st?.state !== 'closed') return false;
    this.remove(id);
    this.onReclaim?.(id, st.toBackend.rst || st.toClient.rst ? 'reset' : 'closed');
    return true;
  }

  /** Both sockets' sent bytes acknowledged; nothing unread on the back-end socket. */
  private async waitQuiescent(clientFd: number, backendFd: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const c = this.ops.queued(clientFd);
      const b = this.ops.queued(backendFd);
      if (c.unacked === 0 && b.unacked === 0 && b.unread === 0) return;
      if (performance.now() >= deadline) {
        throw new BatonError(
          'NOT_QUIESCENT',
          `sockets did not become quiet within ${timeoutMs} ms (client socket: ${c.unacked} bytes unacknowledged; back-end socket: ${b.unacked} unacknowledged, ${b.unread} unread); read the whole response and let the client acknowledge it before splicing`,
          'busy',
        );
      }
      await sleep(c.unacked || b.unacked ? 1 : 0);
    }
  }
}

/** TSval ticks of a socket's clock in `ms` milliseconds. */
function ticks(s: TcpState, ms: number): number {
  return Math.floor(s.usecTs ? ms * 1000 : ms);
}

function view(tracks: Track[]): TrafficView {
  const v: TrafficView = { packets: 0n, bytes: 0n, fin: false, rst: false, lastSeenNs: 0n };
  for (const t of tracks) {
    v.packets += t.packets;
    v.bytes += t.bytes;
    v.fin ||= (t.flags & TRACK_F_FIN) !== 0;
    v.rst ||= (t.flags & TRACK_F_RST) !== 0;
    if (t.lastNs > v.lastSeenNs) v.lastSeenNs = t.lastNs;
  }
  return v;
}
