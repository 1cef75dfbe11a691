/**
 * The arithmetic of a splice: from the captured state of the two legs to the
 * datapath entries that join them. Pure functions, so every delta is unit
 * tested without a kernel.
 *
 *   leg 1: client <-> VIP (the front end's accepted socket)
 *   leg 2: LB <-> back end (the front end's connection to the back end)
 *
 * A client byte at leg-1 seq s becomes leg-2 seq s + (leg2.sndNxt - leg1.rcvNxt);
 * a back-end byte at leg-2 seq s becomes leg-1 seq s + (leg1.sndNxt - leg2.rcvNxt).
 * Acks and SACK edges move with the other direction's seq delta. Timestamps:
 * each side's TSval is moved onto the clock of the LB socket the receiver
 * knows, so PAWS (which only needs TSvals not to go backwards) passes, and
 * TSecr is moved back by the reverse offset, so echoed values (RTT samples)
 * are exact.
 */

import { type Endpoint, type TcpState, u32 } from '../tcp/state.js';
import {
  type Flow,
  type FlowKey,
  FlowKind,
  FlowState,
  type Leg,
  PROFILE_F_NO_SACK,
  PROFILE_F_NO_TS,
  PROFILE_MARK_TAG,
  type Xlate,
} from './abi.js';

export interface SplicePlan {
  clientKey: FlowKey;
  client: Flow;
  backendKey: FlowKey;
  backend: Flow;
}

export class SpliceRefused extends Error {
  override readonly name = 'SpliceRefused';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The client leg's options as people name them, for refusals: a refusal
 * says which client profile it was and what would have made it splice.
 */
export function clientProfileText(leg1: TcpState): string {
  const on = (b: boolean) => (b ? 'on' : 'off');
  return `client profile: timestamps ${on(leg1.timestamps)}, SACK ${on(leg1.sackPermitted)}, window scaling ${on(leg1.sndWscale > 0 || leg1.rcvWscale > 0)}, MSS ${leg1.mssClamp}`;
}

/** What a front end does to give its back-end leg the client's options (issue 13). */
const MATCH_HINT =
  "open the back-end leg with the client's option profile: baton's dispatcher does (control/dispatcher/profile.ts); another front end sets SO_MARK";

/** Why these two legs cannot be joined byte-exactly, or undefined. */
export function refusalReason(leg1: TcpState, leg2: TcpState): SpliceRefused | undefined {
  if (leg1.family !== leg2.family) {
    return new SpliceRefused(
      'family_mismatch',
      `leg 1 is IPv${leg1.family} and leg 2 IPv${leg2.family}; both legs must use the same IP version`,
    );
  }
  for (const [name, leg] of [
    ['client', leg1],
    ['back-end', leg2],
  ] as const) {
    if (leg.sendQueue.length > 0 || leg.sndUna !== leg.sndNxt) {
      return new SpliceRefused(
        'unacked_data',
        `the ${name} socket still has ${leg.sendQueue.length} unacknowledged or unsent bytes; splice once its peer has acknowledged everything`,
      );
    }
  }
  if (leg2.recvQueue.length > 0) {
    return new SpliceRefused(
      'unread_data',
      `the back-end socket holds ${leg2.recvQueue.length} unread bytes of a response; read them first`,
    );
  }
  if (leg1.timestamps !== leg2.timestamps) {
    return new SpliceRefused(
      'options_mismatch',
      `timestamps are ${leg1.timestamps ? 'on' : 'off'} toward the client but ${leg2.timestamps ? 'on' : 'off'} toward the back end; both legs must agree (RFC 7323 forbids adding or removing them mid-connection) (${clientProfileText(leg1)}). ${
        leg1.timestamps
          ? 'Enable net.ipv4.tcp_timestamps on the LB for its back-end legs'
          : `To splice it, ${MATCH_HINT} 0x${(PROFILE_MARK_TAG | PROFILE_F_NO_TS).toString(16)} (BATON_PROFILE_F_NO_TS) before connecting, with baton lb's TC egress program on the back-end interface`
      }`,
    );
  }
  if (leg1.sackPermitted !== leg2.sackPermitted && leg2.sackPermitted) {
    return new SpliceRefused(
      'options_mismatch',
      `the back end may send SACK blocks the client never agreed to; disable SACK toward the back end or enable it toward the client (${clientProfileText(leg1)}). To splice it, ${MATCH_HINT} 0x${(PROFILE_MARK_TAG | PROFILE_F_NO_SACK).toString(16)} (BATON_PROFILE_F_NO_SACK) before connecting, with baton lb's TC egress program on the back-end interface`,
    );
  }
  if (leg1.timestamps && (leg1.tsRecent === undefined || leg2.tsRecent === undefined)) {
    return new SpliceRefused(
      'timestamps_unknown',
      "the peers' latest TSval could not be read, so timestamps cannot be translated safely",
    );
  }
  if (leg1.advMss > leg2.mssClamp) {
    return new SpliceRefused(
      'mss_too_large',
      `the client may send ${leg1.advMss}-byte segments but the back end accepts at most ${leg2.mssClamp}; lower the MSS advertised toward clients (TCP_MAXSEG on the listener) to ${leg2.mssClamp} or less`,
    );
  }
  if (leg2.advMss > leg1.mssClamp) {
    return new SpliceRefused(
      'mss_too_large',
      `the back end may send ${leg2.advMss}-byte segments but the client accepts at most ${leg1.mssClamp}; set TCP_MAXSEG to ${leg1.mssClamp} or less on the back-end socket before connecting (${clientProfileText(leg1)}; baton's dispatcher does)`,
    );
  }
  return undefined;
}

/** A socket's tuple as the datapath sees it: 'in' for what its peer sends, 'out' for what it sends. */
export function key(s: { local: Endpoint; remote: Endpoint }, dir: 'in' | 'out'): FlowKey {
  return dir === 'in'
    ? { src: s.remote.ip, dst: s.local.ip, sport: s.remote.port, dport: s.local.port }
    : { src: s.local.ip, dst: s.remote.ip, sport: s.local.port, dport: s.remote.port };
}

/**
 * TSval offsets: d1 moves client TSvals onto the leg-2 socket's clock, d2
 * back-end TSvals onto the leg-1 socket's clock. PAWS only needs translated
 * TSvals never to fall below what the receiver last saw from the LB socket;
 * TS_MARGIN keeps that true even when the LB socket transmits once more
 * after capture (pending bytes, see Splicer) on a clock a tick ahead. Echoed
 * TSecr values are moved back by the exact reverse offset, so RTT samples
 * stay exact whatever the margin.
 */
export const TS_MARGIN = 1000;

/**
 * The translation of segments that socket `from` would have received from
 * its peer into segments socket `to` would have sent to its own peer: the
 * client -> back end direction is translation(leg1, leg2), the reverse
 * translation(leg2, leg1). TSvals move onto `to`'s clock (plus TS_MARGIN); echoed
 * TSecrs move back by the reverse direction's TSval offset.
 */
export function translation(from: TcpState, to: TcpState): Xlate {
  const ts = from.timestamps && to.timestamps;
  return {
    out: key(to, 'out'),
    seqDelta: u32(to.sndNxt - from.rcvNxt),
    ackDelta: u32(to.rcvNxt - from.sndNxt),
    tsvalDelta: ts ? u32(to.tsNow + TS_MARGIN - (from.tsRecent ?? 0)) : 0,
    tsecrDelta: ts ? u32(-(from.tsNow + TS_MARGIN - (to.tsRecent ?? 0))) : 0,
    wscaleIn: from.sndWscale,
    wscaleOut: to.rcvWscale,
    timestamps: ts,
  };
}

/**
 * The two entries of a first splice. Throws SpliceRefused.
 * `pendingBytes` client bytes the LB already holds (read by the front end or
 * still queued on leg 1) are sent on leg 2 by the LB socket itself right
 * after the entries are in place, so leg 2's sequence space starts after them.
 */
export function planSplice(connId: bigint, leg1: TcpState, leg2In: TcpState, pendingBytes = 0): SplicePlan {
  const refused = refusalReason(leg1, leg2In);
  if (refused) throw refused;
  const leg2 = { ...leg2In, sndNxt: u32(leg2In.sndNxt + pendingBytes) };
  const leg: Leg = { seqStart: u32(leg1.rcvNxt), ackFloor: u32(leg1.sndNxt), x: translation(leg1, leg2) };
  return {
    clientKey: key(leg1, 'in'),
    client: { connId, state: FlowState.FORWARD, kind: FlowKind.CLIENT, legs: [leg] },
    backendKey: key(leg2, 'in'),
    backend: {
      connId,
      state: FlowState.FORWARD,
      kind: FlowKind.BACKEND,
      legs: [{ seqStart: 0, ackFloor: 0, x: translation(leg2, leg1) }],
    },
  };
}
