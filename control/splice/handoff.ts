/**
 * A later handoff (source document 000, claims 3-4) moves a spliced client
 * connection to another back end at a request boundary:
 *   1. open a connection to the new back end (advertising the client's MSS)
 *      and capture it;
 *   2. wait until the connection is at a boundary, read from the datapath's
 *      tracks: the current back end has acknowledged every client byte and
 *      the client every back-end byte;
 *   3. HOLD the client entry (client data dropped, ACKs still forwarded) and
 *      check the boundary again, so no request can slip to the old back end;
 *   4. insert the new back end's entry, append the new leg and forward again,
 *      in place (the control program), so the tracks stay exact;
 *   5. retire the old back end's leg: its entry goes, and a socket recreated
 *      from its state closes it with a FIN. Its answer reaches that socket,
 *      never the client.
 * Runs as a task on the connection's queue.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { FlowKind, FlowState, MAX_LEGS, PROFILE_F_NO_SACK, PROFILE_F_NO_TS, PROFILE_MSS_MAX } from '../datapath/abi.js';
import { type Boundary, boundaryOf, describeBoundary, planHandoff, retiredLegState } from '../datapath/handoff-plan.js';
import { profileMark } from '../datapath/profile-mark.js';
import { key } from '../datapath/splice-plan.js';
import { BatonError } from '../errors.js';
import type { Endpoint, TcpState } from '../tcp/state.js';
import { asBatonError, notFound, type SpliceContext, stillThere } from './context.js';
import { inRange } from './leg-ports.js';
import { currentLeg, type LegRecord, type SpliceRecord } from './records.js';

/**
 * After the client entry is held, how long before the boundary is checked
 * again: a packet that read the entry as FORWARD just before the change is
 * processed and tracked within microseconds; this leaves a wide margin.
 */
const HOLD_SETTLE_MS = 2;

/** Retired legs that could not be closed with a FIN (for logs and tests). */
export interface RetireFailure {
  id: bigint;
  backend: Endpoint;
  error: string;
}

export async function handoffConnection(
  ctx: SpliceContext,
  rec: SpliceRecord,
  backend: Endpoint,
  deadline: number,
  onRetireFailure: (f: RetireFailure) => void,
): Promise<SpliceRecord> {
  if (!stillThere(ctx, rec)) throw notFound(rec.id); // aborted or reclaimed while this waited its turn
  const leg1 = rec.clientLeg;
  if (!leg1) {
    throw new BatonError(
      'SPLICE_REFUSED',
      `connection ${rec.id} was recovered after a restart; its client leg's options are not known, so it cannot ` +
        `be handed to another back end (it keeps flowing to ${currentLeg(rec).backend.ip})`,
      'state_unknown',
    );
  }
  if (rec.legs.length >= MAX_LEGS) {
    throw new BatonError(
      'HANDOFFS_EXHAUSTED',
      `connection ${rec.id} already holds ${MAX_LEGS} back-end legs; a new client connection is needed to move it again`,
      'handoffs_exhausted',
    );
  }
  const prev = currentLeg(rec);
  const timeoutMs = Math.max(1, deadline - performance.now());

  // 1. The new leg with the client's option profile (issue 13): its SYN
  //    advertises the client's MSS, so the back end never sends a segment
  //    the client would not accept, and carries neither timestamps nor
  //    SACK-permitted when the client's leg has none (baton's TC egress
  //    program edits it per the mark, control/datapath/profile-mark.ts).
  //    Not TCP_MAXSEG: that would also clamp this socket's view of the back
  //    end's MSS and refuse the client's full-size segments.
  let fd: number;
  try {
    // From a port of the leg range, when there is one: once spliced, the leg holds no socket (leg-ports.ts).
    const flags = (leg1.timestamps ? 0 : PROFILE_F_NO_TS) | (leg1.sackPermitted ? 0 : PROFILE_F_NO_SACK);
    fd = await ctx.ops.connect(backend, rec.family, {
      mark: profileMark(flags, Math.min(leg1.mssClamp, PROFILE_MSS_MAX)) as number,
      timeoutMs,
      ...(rec.netns === undefined ? {} : { netns: rec.netns }),
      ...(ctx.legPorts ? { localPort: (localIp: string) => ctx.legPortFor(localIp, backend) } : {}),
    });
  } catch (e) {
    throw new BatonError(
      'BACKEND_UNREACHABLE',
      `could not connect to ${backend.ip}:${backend.port}: ${(e as Error).message}`,
      'connect_failed',
      { cause: e },
    );
  }
  let leg2: TcpState;
  try {
    [leg2] = (await ctx.ops.capture([fd])) as [TcpState];
  } catch (e) {
    ctx.ops.close(fd);
    throw e;
  }
  const newKey = key(leg2, 'in');
  let held = false;
  let inserted = false;
  let newLeg!: LegRecord;
  let b: Boundary;
  try {
    // 2-3. A boundary, confirmed under HOLD.
    b = await holdAtBoundary(ctx, rec, prev, deadline);
    held = true;
    // 4. Plan, insert, append.
    const plan = planHandoff(leg1, leg2, b, performance.now() - rec.capturedAt, rec.legs.length);
    ctx.table.insert(newKey, {
      connId: rec.id,
      state: FlowState.FORWARD,
      kind: FlowKind.BACKEND,
      legs: [{ seqStart: 0, ackFloor: 0, x: plan.toClient }],
    });
    inserted = true;
    ctx.table.appendLeg(rec.clientKey, plan.toBackend, FlowState.FORWARD);
    held = false;
    const next: LegRecord = {
      index: rec.legs.length,
      backend,
      local: leg2.local,
      backendKey: newKey,
      toBackend: plan.toBackend,
      toClient: plan.toClient,
      captured: leg2,
      heldFd: fd,
      retired: false,
      createdAt: Date.now(),
    };
    rec.legs.push(next);
    newLeg = next;
  } catch (e) {
    if (held) ctx.table.setState(rec.clientKey, FlowState.FORWARD);
    if (inserted) ctx.table.remove(newKey);
    try {
      ctx.ops.leaveRepair(fd);
    } finally {
      ctx.ops.close(fd); // an unused connection: a normal close
    }
    throw asBatonError(e);
  }
  // A leg on a port of the leg range: its entry reserves the tuple, the socket goes
  // silently. Should that fail, the socket keeps holding it as before.
  if (inRange(ctx.legPorts, newLeg.local.port)) {
    try {
      ctx.ops.releaseSilently(fd);
      delete newLeg.heldFd;
    } catch {
      /* still held by its socket: correct, only costlier */
    }
  }
  // 5. Retire the previous back end. The handoff stands whatever happens
  // here: a leg that cannot be closed cleanly is left to the back end's
  // own timeouts (its entry is gone, so nothing of it reaches the client).
  try {
    retire(ctx, rec, prev, b);
  } catch (e) {
    onRetireFailure({ id: rec.id, backend: prev.backend, error: (e as Error).message });
  }
  return rec;
}

/** Waits for a request boundary and holds the client entry there. */
async function holdAtBoundary(
  ctx: SpliceContext,
  rec: SpliceRecord,
  cur: LegRecord,
  deadline: number,
): Promise<Boundary> {
  for (;;) {
    const b = boundaryOf(ctx.table.track(rec.clientKey), ctx.table.track(cur.backendKey));
    if (b) {
      ctx.table.setState(rec.clientKey, FlowState.HOLD);
      await sleep(HOLD_SETTLE_MS);
      const again = boundaryOf(ctx.table.track(rec.clientKey), ctx.table.track(cur.backendKey));
      if (again && again.clientEnd === b.clientEnd && again.backendEnd === b.backendEnd) return b;
      // A request slipped through before the hold: let it be served.
      ctx.table.setState(rec.clientKey, FlowState.FORWARD);
    }
    if (performance.now() >= deadline) {
      const where = describeBoundary(ctx.table.track(rec.clientKey), ctx.table.track(cur.backendKey));
      throw new BatonError(
        'NOT_QUIESCENT',
        `connection ${rec.id} reached no request boundary (every byte acknowledged both ways) within the timeout ` +
          `(${where}); retry when the current request is answered, or raise quiesceTimeoutMs`,
        'busy',
      );
    }
    await sleep(1);
  }
}

/**
 * Closes the leg to a back end that a later handoff replaced: its entry
 * goes first (so nothing of it reaches the client any more), then a socket
 * recreated at the boundary sends it a FIN; the kernel completes the close.
 */
function retire(ctx: SpliceContext, rec: SpliceRecord, h: LegRecord, b: Boundary): void {
  h.retired = true;
  if (h.heldFd !== undefined) {
    ctx.ops.releaseSilently(h.heldFd); // frees the tuple for the recreated socket
    delete h.heldFd;
  }
  ctx.table.remove(h.backendKey);
  if (!h.captured) return;
  ctx.ops.finish(retiredLegState(h.captured, h, b, performance.now() - rec.capturedAt), rec.netns);
}
