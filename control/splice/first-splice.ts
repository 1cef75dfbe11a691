/**
 * A first splice, in the order design.md §4 fixes:
 *   1. block both flows in the datapath: data segments are dropped (peers
 *      retransmit them later), pure ACKs still reach the LB's sockets;
 *   2. wait (bounded) until both sockets' sent bytes are acknowledged and
 *      the back-end socket holds no unread response bytes;
 *   3. capture both sockets with TCP_REPAIR;
 *   4. refuse what cannot be translated (rolling everything back);
 *   5. replace the block entries by forwarding entries, one per direction;
 *   6. release the client-side socket silently (closed in repair mode);
 *   7. client bytes the LB already holds (the request the front end read, plus
 *      anything unread on the client socket) are sent to the back end by the
 *      back-end socket itself: repair off, write; the background step below
 *      then waits for the back end to acknowledge them.
 * Then the leg-2 tuple must not go to a new connection, whose packets the
 * datapath would take for this one's. A local port in baton's leg range
 * (leg-ports.ts) is reserved by the back-end entry alone: the socket goes
 * silently. Any other port is held by the back-end socket (or a placeholder
 * with its tuple) in repair mode, for the connection's life.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type FlowKey, FlowKind, FlowState, type Leg } from '../datapath/abi.js';
import type { FlowEntry } from '../datapath/flow-table.js';
import { pendingAcked, placeholderState } from '../datapath/handoff-plan.js';
import { key, planSplice } from '../datapath/splice-plan.js';
import { BatonError } from '../errors.js';
import type { TcpState } from '../tcp/state.js';
import type { TaskSignal } from './connection-queue.js';
import { asBatonError, type SpliceContext, stillThere } from './context.js';
import { inRange } from './leg-ports.js';
import { DEFAULT_QUIESCE_MS, type LegRecord, type SpliceOptions, type SpliceRecord } from './records.js';
import { abortConnection } from './teardown.js';

/**
 * How long leg 2 may take to acknowledge the pending bytes before it goes
 * silent anyway. Until then the socket retransmits them on its own timer;
 * released early, a lost request would be lost for good. Runs in the
 * background, so a long bound costs no latency.
 */
export const PENDING_ACK_TIMEOUT_MS = 30_000;

/** What the background step needs once the splice has answered. */
export interface PendingBytes {
  leg: LegRecord;
  fd: number;
  bytes: number;
  /** Leg 1's rcv_nxt at capture: the end of the pending bytes in client space. */
  clientRcvNxt: number;
}

/**
 * Steps 1-7 for connection `id` (a task on its queue). Returns the record
 * and, when client bytes were sent on leg 2, what the background step must
 * finish (holdAfterAck).
 */
export async function firstSplice(
  ctx: SpliceContext,
  id: bigint,
  clientFd: number,
  backendFd: number,
  opts: SpliceOptions,
): Promise<{ rec: SpliceRecord; pending?: PendingBytes }> {
  const t0 = performance.now();
  const e1 = socketEndpoints(ctx, clientFd, 'client');
  const e2 = socketEndpoints(ctx, backendFd, 'back-end');
  const clientKey = key(e1, 'in');
  const backendKey = key(e2, 'in');
  const tEndpoints = performance.now();

  // 1. Block.
  // Synchronous unless a finished connection must be reclaimed first: each
  // await is a trip through the microtask queue, and a splice makes many.
  const c = insertNew(ctx, clientKey, { connId: id, state: FlowState.BLOCK, kind: FlowKind.CLIENT, legs: [] });
  if (c) await c;
  try {
    const b = insertNew(ctx, backendKey, { connId: id, state: FlowState.BLOCK, kind: FlowKind.BACKEND, legs: [] });
    if (b) await b;
  } catch (e) {
    ctx.table.remove(clientKey);
    throw e;
  }

  const tBlock = performance.now();
  let captured = false;
  let clientReleased = false;
  let rec: SpliceRecord | undefined;
  try {
    // 2. Quiesce.
    const quieting = waitQuiescent(ctx, clientFd, backendFd, opts.quiesceTimeoutMs ?? DEFAULT_QUIESCE_MS);
    if (quieting) await quieting;
    const tq = performance.now();
    // 3. Capture.
    const got = ctx.ops.capture([clientFd, backendFd], [e1, e2]);
    const [leg1, leg2] = (got instanceof Promise ? await got : got) as [TcpState, TcpState];
    captured = true;
    const capturedAt = performance.now();
    const pending = Buffer.concat([opts.prefix ?? Buffer.alloc(0), leg1.recvQueue]);
    // 4. Refuse or plan.
    const plan = planSplice(id, leg1, leg2, pending.length);
    const netns = ctx.ops.netnsOf(clientFd);
    const now = Date.now();
    const tPlan = performance.now();
    const first: LegRecord = {
      index: 0,
      backend: e2.remote,
      local: e2.local,
      backendKey,
      toBackend: plan.client.legs[0] as Leg,
      toClient: (plan.backend.legs[0] as Leg).x,
      captured: leg2,
      retired: false,
      createdAt: now,
    };
    const made: SpliceRecord = {
      id,
      family: e1.family,
      client: e1.remote,
      vip: e1.local,
      clientKey,
      legs: [first],
      clientLeg: leg1,
      capturedAt,
      ...(netns === undefined ? {} : { netns }),
      createdAt: now,
      recovered: false,
      ownerUid: opts.ownerUid ?? 0,
      timings: { quiesceMs: tq - t0, captureMs: capturedAt - tq, installMs: 0, totalMs: 0 },
    };
    // 5. Forward, one update per direction (each atomic for readers). From
    // here on the record owns the entries, whatever fails next.
    ctx.table.replace(plan.backendKey, plan.backend);
    ctx.table.replace(plan.clientKey, plan.client);
    rec = made;
    ctx.records.set(id, rec);
    const tForward = performance.now();
    // 6. Release the client side.
    ctx.ops.releaseSilently(clientFd);
    clientReleased = true;
    const tRelease = performance.now();
    rec.timings.installMs = tRelease - capturedAt;
    // 7. Pending client bytes go out on leg 2; the socket is held once they are acknowledged.
    if (pending.length > 0) {
      // No window probe: the back end would answer it with an ACK that the
      // datapath forwards to the client, two needless segments per splice;
      // the pending bytes draw the ACK that matters.
      ctx.ops.leaveRepair(backendFd, { windowProbe: false });
      ctx.ops.send(backendFd, pending);
    } else if (inRange(ctx.legPorts, e2.local.port)) {
      ctx.ops.releaseSilently(backendFd); // the back-end entry reserves the tuple (leg-ports.ts)
    } else {
      first.heldFd = backendFd;
    }
    const tEnd = performance.now();
    rec.timings.totalMs = tEnd - t0;
    rec.timings.phases = {
      endpoints: tEndpoints - t0,
      block: tBlock - tEndpoints,
      quiesce: tq - tBlock,
      capture: capturedAt - tq,
      plan: tPlan - capturedAt,
      forward: tForward - tPlan,
      release: tRelease - tForward,
      send: tEnd - tRelease,
    };
    if (pending.length === 0) return { rec };
    return { rec, pending: { leg: first, fd: backendFd, bytes: pending.length, clientRcvNxt: leg1.rcvNxt } };
  } catch (e) {
    if (rec) {
      // The client side may already be released: the connection is
      // forwarding but cannot be completed. Reset both ends (honest) rather
      // than leave entries and a client waiting on a request that never
      // arrives; the record goes with them.
      // Our sockets go silently first: the RSTs are sent by sockets
      // recreated on the same tuples.
      for (const fd of clientReleased ? [backendFd] : [clientFd, backendFd]) {
        try {
          ctx.ops.enterRepair(fd);
          ctx.ops.releaseSilently(fd);
        } catch {
          /* already in repair mode or gone */
        }
      }
      try {
        abortConnection(ctx, rec);
      } catch {
        /* the entries are gone; a RST that failed leaves the peers to their own timeouts */
      }
      throw new BatonError(
        'DATAPATH',
        `connection ${id} was forwarding when its splice failed (${(e as Error).message}); both ends were reset`,
        'splice_incomplete',
        { cause: e },
      );
    }
    // Nothing half-made: entries gone, sockets back to normal operation.
    ctx.table.remove(clientKey);
    ctx.table.remove(backendKey);
    if (captured) {
      for (const fd of [clientFd, backendFd]) {
        try {
          ctx.ops.leaveRepair(fd);
        } catch {
          /* the socket may be gone; nothing else to undo */
        }
      }
    }
    throw asBatonError(e);
  }
}

/**
 * The background step after a splice that sent pending client bytes on
 * leg 2 (a task on the connection's queue, after the splice answered): once
 * the back end has acknowledged them (or after PENDING_ACK_TIMEOUT_MS, or
 * at once when a later abort or reclaim preempts it) the socket goes silent
 * and a placeholder with the same tuple, nothing queued, takes its place.
 * Its retransmissions until then are harmless duplicates; the back end's
 * ACKs reach the client through the datapath.
 */
export async function holdAfterAck(
  ctx: SpliceContext,
  rec: SpliceRecord,
  p: PendingBytes,
  signal: TaskSignal,
): Promise<void> {
  const started = performance.now();
  const deadline = started + PENDING_ACK_TIMEOUT_MS;
  while (performance.now() < deadline && !signal.aborted) {
    const t = ctx.table.track(p.leg.backendKey);
    if (!t || pendingAcked(t, p.clientRcvNxt)) break;
    // Usually one round trip; then back off toward the retransmission timer's pace.
    await sleep(Math.min(50, 1 + Math.floor((performance.now() - started) / 20)));
  }
  // The socket still counts the pending bytes as unacknowledged (their ACK
  // went to the client) and would retransmit them for minutes.
  ctx.ops.enterRepair(p.fd);
  ctx.ops.releaseSilently(p.fd);
  if (signal.aborted || !stillThere(ctx, rec) || p.leg.retired || !p.leg.captured) return;
  if (inRange(ctx.legPorts, p.leg.local.port)) return; // the back-end entry reserves the tuple (leg-ports.ts)
  p.leg.heldFd = ctx.ops.placeholder(placeholderState(p.leg.captured, p.bytes), rec.netns);
}

/**
 * Inserts a block entry. A client reusing the ip:port of a connection that
 * is over meets that connection's entry: the datapath handed its SYN to the
 * front end (bpf/lib/syn.h), whose splice comes here. The old connection is
 * reclaimed now, not after the sweeper's grace period, and the insert tried
 * once more; a live owner keeps its tuple (ALREADY_SPLICED).
 */
function insertNew(ctx: SpliceContext, k: FlowKey, entry: FlowEntry): Promise<void> | undefined {
  try {
    ctx.table.insert(k, entry);
    return undefined;
  } catch (e) {
    const owner = e instanceof BatonError && e.code === 'ALREADY_SPLICED' ? ctx.table.ownerOf(k) : undefined;
    if (owner === undefined) throw e;
    return ctx.reclaimIfFinished(owner).then((reclaimed) => {
      if (!reclaimed) throw e;
      ctx.table.insert(k, entry);
    });
  }
}

function socketEndpoints(ctx: SpliceContext, fd: number, which: string) {
  try {
    return ctx.ops.endpoints(fd);
  } catch (e) {
    throw new BatonError(
      'SOCKET_UNUSABLE',
      `the ${which} socket (fd ${fd}) is not an established TCP socket: ${(e as Error).message}`,
      'not_established',
      { cause: e },
    );
  }
}

/** Both sockets' queue readings while either is not quiet yet; undefined once both are. */
function notQuiet(ctx: SpliceContext, clientFd: number, backendFd: number) {
  const c = ctx.ops.queued(clientFd);
  const b = ctx.ops.queued(backendFd);
  return c.unacked === 0 && b.unacked === 0 && b.unread === 0 ? undefined : { c, b };
}

/**
 * Both sockets' sent bytes acknowledged and nothing unread on the back-end
 * socket: undefined when that holds now (the usual case), else a bounded
 * wait for it.
 */
function waitQuiescent(
  ctx: SpliceContext,
  clientFd: number,
  backendFd: number,
  timeoutMs: number,
): Promise<void> | undefined {
  const busy = notQuiet(ctx, clientFd, backendFd);
  return busy && untilQuiet(ctx, clientFd, backendFd, timeoutMs, busy);
}

async function untilQuiet(
  ctx: SpliceContext,
  clientFd: number,
  backendFd: number,
  timeoutMs: number,
  first: NonNullable<ReturnType<typeof notQuiet>>,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (let busy: ReturnType<typeof notQuiet> = first; busy; busy = notQuiet(ctx, clientFd, backendFd)) {
    const { c, b } = busy;
    if (performance.now() >= deadline) {
      throw new BatonError(
        'NOT_QUIESCENT',
        `sockets did not become quiet within ${timeoutMs} ms (client socket: ${c.unacked} bytes unacknowledged; ` +
          `back-end socket: ${b.unacked} unacknowledged, ${b.unread} unread); read the whole response and let the ` +
          'client acknowledge it before splicing',
        'busy',
      );
    }
    await sleep(c.unacked || b.unacked ? 1 : 0);
  }
}
