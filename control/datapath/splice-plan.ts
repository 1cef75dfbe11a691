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
import { type FlowKey, FlowKind, FlowState, type Flow, type Handoff, type Xlate } from './abi.js';
import { type TcpState, u32 } from '../tcp/state.js';

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

/** Why these two legs cannot be joined byte-exactly, or undefined. */
export function refusalReason(leg1: TcpState, leg2: TcpState): SpliceRefused | undefined {
  if (leg1.family !== leg2.family) {
    return new SpliceRefused('family_mismatch', `leg 1 is IPv${leg1.family} and leg 2 IPv${leg2.family}; both legs must use the same IP version`);
  }
  for (const [name, leg] of [['client', leg1], ['back-end', leg2]] as const) {
    if (leg.sendQueue.length > 0 || leg.sndUna !== leg.sndNxt) {
      return new SpliceRefused('unacked_data', `the ${name} socket still has ${leg.sendQueue.length} unacknowledged or unsent bytes; splice once its peer has acknowledged everything`);
    }
  }
  if (leg1.recvQueue.length > 0) {
    return new SpliceRefused('unread_data', `the client socket holds ${leg1.recvQueue.length} bytes the front end has not read (they would never reach the back end); read them and forward them first`);
  }
  if (leg2.recvQueue.length > 0) {
    return new SpliceRefused('unread_data', `the back-end socket holds ${leg2.recvQueue.length} unread bytes of a response; read them first`);
  }
  if (leg1.timestamps !== leg2.timestamps) {
    return new SpliceRefused('options_mismatch', `timestamps are ${leg1.timestamps ? 'on' : 'off'} toward the client but ${leg2.timestamps ? 'on' : 'off'} toward the back end; both legs must agree (RFC 7323 forbids adding or removing them mid-connection)`);
  }
  if (leg1.sackPermitted !== leg2.sackPermitted && leg2.sackPermitted) {
    return new SpliceRefused('options_mismatch', 'the back end may send SACK blocks the client never agreed to; disable SACK toward the back end or enable it toward the client');
  }
  if (leg1.timestamps && (leg1.tsRecent === undefined || leg2.tsRecent === undefined)) {
    return new SpliceRefused('timestamps_unknown', 'the peers\' latest TSval could not be read, so timestamps cannot be translated safely');
  }
  if (leg2.advMss > leg1.mssClamp) {
    return new SpliceRefused('mss_too_large', `the back end may send ${leg2.advMss}-byte segments but the client accepts at most ${leg1.mssClamp}; set TCP_MAXSEG to ${leg1.mssClamp} or less on the back-end socket before connecting`);
  }
  return undefined;
}

function key(s: TcpState, dir: 'in' | 'out'): FlowKey {
  return dir === 'in'
    ? { src: s.remote.ip, dst: s.local.ip, sport: s.remote.port, dport: s.local.port }
    : { src: s.local.ip, dst: s.remote.ip, sport: s.local.port, dport: s.remote.port };
}

/** Client -> back-end translation for a leg-2 socket, given where the client stands. */
export function clientToBackend(
  client: { rcvNxt: number; sndNxt: number; tsRecent?: number; sndWscale: number; timestamps: boolean; tsNow: number },
  leg2: TcpState,
  out: FlowKey,
): Xlate {
  const ts = client.timestamps && leg2.timestamps;
  const d1 = ts ? u32(leg2.tsNow - (client.tsRecent ?? 0)) : 0; // client TSval -> leg-2 clock
  const d2 = ts ? u32(client.tsNow - (leg2.tsRecent ?? 0)) : 0; // back-end TSval -> leg-1 clock
  return {
    out,
    seqDelta: u32(leg2.sndNxt - client.rcvNxt),
    ackDelta: u32(leg2.rcvNxt - client.sndNxt),
    tsvalDelta: d1,
    tsecrDelta: u32(-d2),
    wscaleIn: client.sndWscale,
    wscaleOut: leg2.rcvWscale,
    timestamps: ts,
  };
}

export function backendToClient(
  client: { rcvNxt: number; sndNxt: number; tsRecent?: number; rcvWscale: number; timestamps: boolean; tsNow: number },
  leg2: TcpState,
  out: FlowKey,
): Xlate {
  const ts = client.timestamps && leg2.timestamps;
  const d1 = ts ? u32(leg2.tsNow - (client.tsRecent ?? 0)) : 0;
  const d2 = ts ? u32(client.tsNow - (leg2.tsRecent ?? 0)) : 0;
  return {
    out,
    seqDelta: u32(client.sndNxt - leg2.rcvNxt),
    ackDelta: u32(client.rcvNxt - leg2.sndNxt),
    tsvalDelta: d2,
    tsecrDelta: u32(-d1),
    wscaleIn: leg2.sndWscale,
    wscaleOut: client.rcvWscale,
    timestamps: ts,
  };
}

/** The two entries of a first splice. Throws SpliceRefused. */
export function planSplice(connId: bigint, leg1: TcpState, leg2: TcpState, state: 'block' | 'forward' = 'forward'): SplicePlan {
  const refused = refusalReason(leg1, leg2);
  if (refused) throw refused;
  const clientKey = key(leg1, 'in');
  const backendKey = key(leg2, 'in');
  const handoff: Handoff = { seqStart: u32(leg1.rcvNxt), ackFloor: u32(leg1.sndNxt), x: clientToBackend(leg1, leg2, key(leg2, 'out')) };
  const st = state === 'block' ? FlowState.BLOCK : FlowState.FORWARD;
  return {
    clientKey,
    client: { connId, state: st, kind: FlowKind.CLIENT, handoffs: [handoff] },
    backendKey,
    backend: {
      connId,
      state: st,
      kind: FlowKind.BACKEND,
      handoffs: [{ seqStart: 0, ackFloor: 0, x: backendToClient(leg1, leg2, key(leg1, 'out')) }],
    },
  };
}
