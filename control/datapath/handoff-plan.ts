/**
 * The arithmetic of a later handoff (source document 000, claims 3-4) and of
 * what surrounds it: where a request boundary is, the state the new leg is
 * joined from, the socket that closes a retired leg, and the placeholder
 * that holds a leg's tuple once its pending bytes are acknowledged. Pure
 * functions over captured states and datapath tracks, unit-tested without a
 * kernel (test/unit/handoff-plan.test.ts); control/splice runs them.
 *
 * Sequence spaces: a connection's client entry speaks client space (leg 1:
 * the client's bytes and the bytes the client receives); a back-end leg's
 * own numbers are in its space, reached through its translation's deltas.
 */
import { seqBefore, type TcpState, u32 } from '../tcp/state.js';
import { type Leg, TRACK_F_FIN, TRACK_F_RST, type Track, type Xlate } from './abi.js';
import { seen } from './connection-plan.js';
import { refusalReason, TS_MARGIN, translation } from './splice-plan.js';

/** A request boundary, in client sequence space. */
export interface Boundary {
  /** The client's next byte: where the new leg's range starts. */
  clientEnd: number;
  /** The next byte the client expects: where the new back end's stream starts. */
  backendEnd: number;
}

/**
 * TSvals the recreated socket of a retired leg sends start this far ahead of
 * what the old back end last saw (estimated): PAWS only rejects values that
 * go backwards, and the estimate can lag when the client was idle before the
 * splice. 2^24 ms is 4.6 hours; a jump forward is harmless.
 */
export const RETIRE_TS_LEAD = 1 << 24;

/**
 * The boundary if the connection is at one: both directions seen, neither
 * closing, every client byte acknowledged by the back end and every
 * back-end byte by the client. `client` is the client entry's track (client
 * -> back end), `backend` the current back-end leg's (back end -> client).
 */
export function boundaryOf(client: Track | undefined, backend: Track | undefined): Boundary | undefined {
  if (!seen(client) || !seen(backend)) return undefined;
  if ((client.flags | backend.flags) & (TRACK_F_FIN | TRACK_F_RST)) return undefined;
  if (backend.ackMax !== client.seqEnd || client.ackMax !== backend.seqEnd) return undefined;
  return { clientEnd: client.seqEnd, backendEnd: backend.seqEnd };
}

/** Where the two directions stand, for the error when no boundary came. */
export function describeBoundary(client: Track | undefined, backend: Track | undefined): string {
  if (!seen(client) || !seen(backend)) return 'no segment seen yet in one direction';
  const fin = (client.flags | backend.flags) & TRACK_F_FIN ? '; a FIN was seen' : '';
  return (
    `client sent up to ${client.seqEnd}, back end acknowledged ${backend.ackMax}; ` +
    `back end sent up to ${backend.seqEnd}, client acknowledged ${client.ackMax}${fin}`
  );
}

/** TSval ticks of a socket's clock in `ms` milliseconds. */
export function ticks(s: Pick<TcpState, 'usecTs'>, ms: number): number {
  return Math.floor(s.usecTs ? ms * 1000 : ms);
}

/**
 * Leg 1 as it stands at the boundary, `elapsedMs` after it was captured,
 * with `legsSoFar` back-end legs joined already: what the new leg is
 * translated from. The client's clock is estimated from below (its TSval at
 * capture plus the time since: PAWS at the new back end only needs a lower
 * bound); leg 1's own clock gets TS_MARGIN per leg so the client never sees
 * TSvals go backwards across back ends.
 */
export function handoffStartState(leg1: TcpState, b: Boundary, elapsedMs: number, legsSoFar: number): TcpState {
  return {
    ...leg1,
    rcvNxt: b.clientEnd,
    sndNxt: b.backendEnd,
    sndUna: b.backendEnd,
    tsRecent: u32((leg1.tsRecent ?? 0) + ticks(leg1, elapsedMs)),
    tsNow: u32(leg1.tsNow + ticks(leg1, elapsedMs) + TS_MARGIN * legsSoFar),
    sendQueue: Buffer.alloc(0),
    recvQueue: Buffer.alloc(0),
  };
}

export interface HandoffPlan {
  /** The client entry's new leg: client bytes from the boundary on go to the new back end. */
  toBackend: Leg;
  /** The new back end's entry: its segments, translated toward the client. */
  toClient: Xlate;
}

/** The entries that join the new leg at the boundary. Throws SpliceRefused. */
export function planHandoff(
  leg1: TcpState,
  newLeg: TcpState,
  b: Boundary,
  elapsedMs: number,
  legsSoFar: number,
): HandoffPlan {
  const from = handoffStartState(leg1, b, elapsedMs, legsSoFar);
  const refused = refusalReason(from, newLeg);
  if (refused) throw refused;
  return {
    toBackend: { seqStart: b.clientEnd, ackFloor: b.backendEnd, x: translation(from, newLeg) },
    toClient: translation(newLeg, from),
  };
}

/**
 * The socket recreated to close a leg a handoff replaced: at the boundary,
 * in that leg's own sequence space (its back end has received every client
 * byte up to clientEnd and sent every byte up to backendEnd), nothing
 * queued, with a TSval clock ahead of anything the back end saw.
 */
export function retiredLegState(
  leg: TcpState,
  legXlate: { toBackend: Leg; toClient: Xlate },
  b: Boundary,
  elapsedMs: number,
): TcpState {
  const at = u32(b.clientEnd + legXlate.toBackend.x.seqDelta); // the back end's rcv_nxt, in its space
  const rcv = u32(b.backendEnd - legXlate.toClient.seqDelta); // its snd_nxt
  const tsNow = u32(leg.tsNow + ticks(leg, elapsedMs) + RETIRE_TS_LEAD);
  return {
    ...leg,
    sndNxt: at,
    sndUna: at,
    rcvNxt: rcv,
    tsNow: u32((tsNow & ~1) | (leg.tsNow & 1)), // bit 0 is the usec-clock flag
    sendQueue: Buffer.alloc(0),
    recvQueue: Buffer.alloc(0),
    window: { ...leg.window, sndWl1: rcv, rcvWup: rcv },
  };
}

/**
 * The placeholder that holds leg 2's tuple after the first splice sent
 * `pending` client bytes on it: past those bytes, nothing queued, so it
 * never sends anything again.
 */
export function placeholderState(leg2: TcpState, pending: number): TcpState {
  const at = u32(leg2.sndNxt + pending);
  return { ...leg2, sndNxt: at, sndUna: at, sendQueue: Buffer.alloc(0), recvQueue: Buffer.alloc(0) };
}

/**
 * The back end has acknowledged the `pending` client bytes leg 2 sent when
 * its entry's track (acks in client space) reaches leg 1's rcv_nxt.
 */
export function pendingAcked(backendTrack: Track | undefined, clientRcvNxt: number): boolean {
  return seen(backendTrack) && !seqBefore(backendTrack.ackMax, u32(clientRcvNxt));
}
