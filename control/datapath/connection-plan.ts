/**
 * The arithmetic of a connection's lifecycle, from what the datapath saw:
 * its state (what `baton splices ls` shows and the sweeper acts on) and the
 * sequence numbers of the RSTs that abort it. Pure functions over the
 * entries' tracks (test/unit/connection-plan.test.ts).
 */
import { type Endpoint, seqBefore, u32 } from '../tcp/state.js';
import { FlowState, type Leg, TRACK_F_FIN, TRACK_F_RST, TRACK_F_SEEN, type Track, type Xlate } from './abi.js';

/** The track has seen at least one segment. */
export const seen = (t: Track | undefined): t is Track => t !== undefined && (t.flags & TRACK_F_SEEN) !== 0;

export const CONNECTION_STATES = ['blocked', 'forwarding', 'held', 'closing', 'closed'] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

/** What one direction of a connection carried. */
export interface TrafficView {
  packets: bigint;
  bytes: bigint;
  fin: boolean;
  rst: boolean;
  /** bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC, jiffy steps) of the last packet forwarded; 0n when none. */
  lastSeenNs: bigint;
}

export interface ConnectionStatus {
  state: ConnectionState;
  toBackend: TrafficView;
  toClient: TrafficView;
}

/** The sum of some tracks (one direction over several legs). */
export function trafficView(tracks: readonly Track[]): TrafficView {
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

/**
 * A connection's state from its client entry (state byte and track; absent
 * when the entry is gone), the tracks of its live back-end legs, and the
 * current leg's track: closed after a RST either way or once both FINs are
 * acknowledged (each side's ack past the other's FIN), closing while a FIN
 * is outstanding, else what the client entry's state says.
 */
export function connectionStatus(
  client: { state: number; track: Track } | undefined,
  liveLegs: readonly Track[],
  current: Track | undefined,
): ConnectionStatus {
  const c = client?.track;
  const toBackend = trafficView(c ? [c] : []);
  const toClient = trafficView(liveLegs);
  let state: ConnectionState;
  if (toBackend.rst || toClient.rst) state = 'closed';
  else if (c && toBackend.fin && toClient.fin) {
    const bothAcked =
      current && !seqBefore(current.ackMax, u32(c.finSeq + 1)) && !seqBefore(c.ackMax, u32(current.finSeq + 1));
    state = bothAcked ? 'closed' : 'closing';
  } else if (toBackend.fin || toClient.fin) state = 'closing';
  else if (client?.state === FlowState.BLOCK) state = 'blocked';
  else if (client?.state === FlowState.HOLD) state = 'held';
  else state = 'forwarding';
  return { state, toBackend, toClient };
}

/** One RST to send: the socket recreated for it, by its sequence numbers. */
export interface ResetSpec {
  local: Endpoint;
  remote: Endpoint;
  sndNxt: number;
  rcvNxt: number;
}

/**
 * The two RSTs that abort a connection, at the numbers the datapath last
 * saw. Each carries the end of what the other side sent: the receiver's
 * rcv_nxt once everything arrived, else a number inside its window (which
 * draws a challenge ACK, answered by an exact RST). The peer's last ACK would
 * be no good: bytes it received since put that number below its window,
 * where a RST is dropped without an answer (RFC 5961).
 */
export function abortResets(
  conn: { client: Endpoint; vip: Endpoint },
  leg: { local: Endpoint; backend: Endpoint; toBackend: Leg; toClient: Xlate },
  client: Track | undefined,
  backend: Track | undefined,
): { toClient: ResetSpec; toBackend: ResetSpec } {
  const backendSent = seen(backend) ? backend.seqEnd : leg.toBackend.ackFloor;
  const clientSent = seen(client) ? client.seqEnd : leg.toBackend.seqStart;
  return {
    // From the VIP, in client space.
    toClient: { local: conn.vip, remote: conn.client, sndNxt: u32(backendSent), rcvNxt: u32(clientSent) },
    // From the LB's leg address, in the back end's space.
    toBackend: {
      local: leg.local,
      remote: leg.backend,
      sndNxt: u32(clientSent + leg.toBackend.x.seqDelta),
      rcvNxt: u32(backendSent - leg.toClient.seqDelta),
    },
  };
}
