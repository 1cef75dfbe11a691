/**
 * Splice orchestration, in the order design.md §3 fixes:
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
 * The back-end-side socket is held open, still in repair mode (silent): while
 * it exists the kernel will not hand its 4-tuple (LB address and ephemeral
 * port toward that back end) to a new connection, whose packets the datapath
 * would otherwise take for the spliced flow's. It is released when the entry
 * is reclaimed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfError } from '../bpf/index.js';
import type { Datapath } from '../datapath/datapath.js';
import { decodeTrack, encodeFlow, encodeFlowKey, type FlowKey, FlowKind, FlowState, TRACK_F_SEEN } from '../datapath/abi.js';
import { key, planSplice, SpliceRefused, type SplicePlan } from '../datapath/splice-plan.js';
import { BatonError } from '../errors.js';
import { seqBefore, type TcpState, u32 } from '../tcp/state.js';
import type { SocketOps } from './socket-ops.js';

export interface SpliceOptions {
  /** How long to wait for both sockets to be quiet before giving up (ms). */
  quiesceTimeoutMs?: number;
  /** Client bytes the front end has read but not forwarded (typically the request). */
  prefix?: Buffer;
}

export interface SpliceRecord {
  id: bigint;
  clientKey: FlowKey;
  backendKeys: FlowKey[];
  plan: SplicePlan;
  legs: { client: TcpState; backend: TcpState };
  /** Back-end-side sockets held in repair mode (see the module comment). */
  heldFds: number[];
  createdAt: number;
  /** Timings of the phases, for the handoff-duration histogram. */
  timings: { quiesceMs: number; totalMs: number };
}

const DEFAULT_QUIESCE_MS = 500;
/** How long leg 2 may take to acknowledge the pending bytes before it goes silent anyway. */
const PENDING_ACK_TIMEOUT_MS = 1000;

export class Splicer {
  private nextId = 1n;
  readonly records = new Map<bigint, SpliceRecord>();

  constructor(
    private readonly dp: Datapath,
    private readonly ops: SocketOps,
  ) {}

  /** Joins the front end's client socket and back-end socket (fds in this process). */
  async splice(clientFd: number, backendFd: number, opts: SpliceOptions = {}): Promise<SpliceRecord> {
    const t0 = performance.now();
    const e1 = this.socketEndpoints(clientFd, 'client');
    const e2 = this.socketEndpoints(backendFd, 'back-end');
    const id = this.nextId++;
    const clientKey = key(e1, 'in');
    const backendKey = key(e2, 'in');

    // 1. Block.
    this.insertBlock(id, clientKey, FlowKind.CLIENT);
    try {
      this.insertBlock(id, backendKey, FlowKind.BACKEND);
    } catch (e) {
      this.dp.flows.delete(encodeFlowKey(clientKey));
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
      const pending = Buffer.concat([opts.prefix ?? Buffer.alloc(0), leg1.recvQueue]);
      // 4. Refuse or plan.
      const plan = planSplice(id, leg1, leg2, pending.length);
      // 5. Forward, one update per direction (each atomic for readers).
      this.dp.flows.update(encodeFlowKey(plan.backendKey), encodeFlow(plan.backend), 'EXIST');
      this.dp.flows.update(encodeFlowKey(plan.clientKey), encodeFlow(plan.client), 'EXIST');
      forwarding = true;
      // 6. Release the client side.
      this.ops.releaseSilently(clientFd);
      // 7. Pending client bytes go out on leg 2.
      if (pending.length > 0) await this.sendPending(backendFd, backendKey, pending, u32(leg1.rcvNxt));
      const rec: SpliceRecord = {
        id,
        clientKey,
        backendKeys: [backendKey],
        plan,
        legs: { client: leg1, backend: leg2 },
        heldFds: pending.length > 0 ? [] : [backendFd], // sendPending released it
        createdAt: Date.now(),
        timings: { quiesceMs: tq - t0, totalMs: performance.now() - t0 },
      };
      this.records.set(id, rec);
      return rec;
    } catch (e) {
      if (forwarding) {
        // The client side is released: the splice stands, but leg 2 failed.
        // Reset is the only honest outcome; the entries stay until reclaimed.
        throw e;
      }
      // Nothing half-made: entries gone, sockets back to normal operation.
      this.dp.flows.delete(encodeFlowKey(clientKey));
      this.dp.flows.delete(encodeFlowKey(backendKey));
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
   * The back-end socket sends the client bytes the LB holds, then goes
   * silent again once the back end has acknowledged them. Its later
   * retransmissions would be harmless duplicates; the back end's ACKs reach
   * the client through the datapath (as duplicate ACKs in its own space).
   */
  private async sendPending(fd: number, backendKey: FlowKey, pending: Buffer, clientRcvNxt: number): Promise<void> {
    this.ops.leaveRepair(fd);
    this.ops.send(fd, pending);
    const deadline = performance.now() + PENDING_ACK_TIMEOUT_MS;
    const key = encodeFlowKey(backendKey);
    while (performance.now() < deadline) {
      const v = this.dp.flows.lookup(key);
      if (!v) break;
      const t = decodeTrack(v);
      // The BACKEND entry tracks acks in client space: the request's end is leg-1 rcvNxt.
      if (t.flags & TRACK_F_SEEN && !seqBefore(t.ackMax, clientRcvNxt)) break;
      await sleep(1);
    }
    // Repair on, then close: silent. (Held open, the socket would keep
    // retransmitting bytes whose ACK the datapath sends to the client.)
    this.ops.enterRepair(fd);
    this.ops.releaseSilently(fd);
  }

  /** Removes a connection's entries and releases what baton holds of it. */
  remove(id: bigint): boolean {
    const rec = this.records.get(id);
    if (!rec) return false;
    this.dp.flows.delete(encodeFlowKey(rec.clientKey));
    for (const k of rec.backendKeys) this.dp.flows.delete(encodeFlowKey(k));
    for (const fd of rec.heldFds) {
      try {
        this.ops.releaseSilently(fd);
      } catch {
        /* already closed */
      }
    }
    this.records.delete(id);
    return true;
  }

  private socketEndpoints(fd: number, which: string) {
    try {
      return this.ops.endpoints(fd);
    } catch (e) {
      throw new BatonError('SOCKET_UNUSABLE', `the ${which} socket (fd ${fd}) is not an established TCP socket: ${(e as Error).message}`, 'not_established', { cause: e });
    }
  }

  private insertBlock(connId: bigint, key: FlowKey, kind: (typeof FlowKind)[keyof typeof FlowKind]): void {
    try {
      this.dp.flows.update(encodeFlowKey(key), encodeFlow({ connId, state: FlowState.BLOCK, kind, handoffs: [] }), 'NOEXIST');
    } catch (e) {
      if (e instanceof BpfError && e.code === 'EEXIST') {
        throw new BatonError('ALREADY_SPLICED', `${key.src}:${key.sport} -> ${key.dst}:${key.dport} is already in the connection table`, 'duplicate');
      }
      if (e instanceof BpfError && e.code === 'E2BIG') {
        throw new BatonError('TABLE_FULL', `the connection table is full (${this.dp.flows.maxEntries} entries); raise flowsCapacity or wait for connections to end`, 'table_full');
      }
      throw e;
    }
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
