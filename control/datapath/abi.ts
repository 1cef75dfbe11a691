/**
 * TypeScript mirror of bpf/include/baton/abi.h: the codecs for every map key
 * and value. The C header is the source of truth; the layout descriptors here
 * are checked against it by test/unit/abi-layout.test.ts (a compiled C
 * program prints sizeof/offsetof and the reason table).
 */
import { bytesToIp, type Family, parsedAddr } from '../net/addr.js';
import type { Layout } from '../sys/struct-layout.js';
import { IPPROTO_TCP } from '../tcp/kernel.js';
import { u32 } from '../tcp/state.js';

export const ABI_VERSION = 7;
export const MAX_LEGS = 8;
export type { Layout } from '../sys/struct-layout.js';

export const LAYOUTS = {
  baton_flow_key: { size: 40, fields: { saddr: 0, daddr: 16, sport: 32, dport: 34, family: 36, proto: 37 } },
  baton_xlate: {
    size: 56,
    fields: {
      saddr: 0,
      daddr: 16,
      sport: 32,
      dport: 34,
      seq_delta: 36,
      ack_delta: 40,
      tsval_delta: 44,
      tsecr_delta: 48,
      wscale_in: 52,
      wscale_out: 53,
      flags: 54,
    },
  },
  baton_leg: { size: 64, fields: { seq_start: 0, ack_floor: 4, x: 8 } },
  baton_track: {
    size: 40,
    fields: { packets: 0, bytes: 8, last_ns: 16, seq_end: 24, ack_max: 28, fin_seq: 32, flags: 36 },
  },
  baton_nexthop: { size: 32, fields: { expires_ns: 0, ifindex: 8, leg: 12, smac: 16, dmac: 22, mtu: 28 } },
  baton_flow: {
    size: 152,
    fields: { conn_id: 0, state: 8, kind: 9, n_legs: 10, challenge_ms: 12, track: 16, nexthop: 56, leg: 88, owner: 88 },
  },
  baton_leg_list: { size: 512, fields: { leg: 0 } },
  baton_counter: { size: 16, fields: { packets: 0, bytes: 8 } },
  baton_ctl: { size: 120, fields: { key: 0, op: 40, state: 44, result: 48, n_legs: 52, leg: 56 } },
  baton_tcp_probe: {
    size: 76,
    fields: {
      ts_recent: 0,
      ts_recent_stamp: 4,
      rcv_tsval: 8,
      rcv_tsecr: 12,
      tsoffset: 16,
      snd_una: 20,
      snd_nxt: 24,
      rcv_nxt: 28,
      write_seq: 32,
      flags: 36,
      copied_seq: 40,
      ts_now: 44,
      snd_wl1: 48,
      snd_wnd: 52,
      max_window: 56,
      rcv_wnd: 60,
      rcv_wup: 64,
      mss_clamp: 68,
      advmss: 70,
      state: 72,
      snd_wscale: 73,
      rcv_wscale: 74,
    },
  },
  baton_sk_query: { size: 116, fields: { key: 0, result: 40 } },
  // ---- migrate: the agent's flow-id mapping table (bpf/xdp_agent.c)
  baton_fid_key: { size: 24, fields: { saddr: 0, flow_id: 16, family: 20, proto: 21 } },
  baton_fid_mapping: { size: 72, fields: { conn_id: 0, vip: 8, cport: 24, vport: 26, state: 28, track: 32 } },
  baton_fid_ctl: { size: 40, fields: { key: 0, op: 24, state: 28, result: 32 } },
  // BEGIN owner forwarding (004)
  baton_peer_addr: { size: 20, fields: { addr: 0, family: 16 } },
  baton_peer: { size: 8, fields: { index: 0, flags: 4 } },
  baton_owner: { size: 24, fields: { peer: 0, port: 20, slot: 22 } },
  baton_vip_key: { size: 20, fields: { addr: 0, family: 16 } },
  baton_vip: { size: 4, fields: { flags: 0 } },
  baton_owner_config: { size: 24, fields: { local6: 0, local4: 16, udp_port: 20, max_hops: 22, flags: 23 } },
  baton_owner_hdr: {
    size: 40,
    fields: { version: 0, hops: 1, family: 2, proto: 3, client_port: 4, owner_port: 6, client_addr: 8, owner_addr: 24 },
  },
  // END owner forwarding
} as const satisfies Record<string, Layout>;

const L = LAYOUTS;

/** SUPERSEDED is written by the datapath only: a SYN found the connection finished and a new one took the tuple. */
export const FlowState = { BLOCK: 1, FORWARD: 2, HOLD: 3, SUPERSEDED: 4 } as const;
export const CtlOp = { SET_STATE: 1, APPEND_LEG: 2 } as const;
/**
 * MIGRATED: a connection whose socket moved to a back end (migrate); see FlowIdMapping / control/datapath/flow-id.ts.
 * OWNER (004): the connection is held by a peer LB (values 8.. are owner forwarding's).
 */
export const FlowKind = { CLIENT: 1, BACKEND: 2, MIGRATED: 3, OWNER: 8 } as const;
export const XLATE_F_TS = 0x01;

// ---- profiles (issue 13): abi.h's BATON_PROFILE_* (SO_MARK of a back-end
// leg opened with a client's option profile); test/unit/profile.test.ts
// compares them with the header.
export const PROFILE_MARK_TAG = 0x0ba70000;
export const PROFILE_MARK_MASK = 0xffff0000;
export const PROFILE_F_NO_TS = 0x1;
export const PROFILE_F_NO_SACK = 0x2;
export const PROFILE_F_NO_WSCALE = 0x4;
export const PROFILE_MSS_SHIFT = 3;
export const PROFILE_MSS_MAX = 0x1fff;
// ---- end profiles
export const TRACK_F_FIN = 0x01;
export const TRACK_F_RST = 0x02;
export const TRACK_F_SEEN = 0x04;

/** enum baton_reason, in order: [action, reason] as the metrics label them. */
export const REASONS = [
  ['passed', 'not_ip'],
  ['passed', 'not_tcp'],
  ['passed', 'fragment'],
  ['passed', 'ipv6_ext_header'],
  ['passed', 'malformed'],
  ['passed', 'no_flow'],
  ['forwarded', 'redirect'],
  ['forwarded', 'tx'],
  ['forwarded', 'via_stack'],
  ['dropped', 'blocked'],
  ['dropped', 'bad_tcp_options'],
  ['dropped', 'no_leg'],
  ['dropped', 'fib_blackhole'],
  ['dropped', 'rewrite_failed'],
  ['passed', 'blocked_ack'],
  ['dropped', 'held'],
  ['passed', 'syn_on_finished'],
  ['passed', 'superseded'],
  ['answered', 'syn_challenge_ack'],
  ['dropped', 'syn_on_live'],
  ['dropped', 'rst_out_of_window'],
  // migrate, agent side (bpf/xdp_agent.c)
  ['passed', 'flow_id_restored'],
  ['dropped', 'flow_id_held'],
  // BEGIN owner forwarding (004): BATON_OWNER_REASONS
  ['forwarded', 'to_owner'],
  ['forwarded', 'second_chance'],
  ['dropped', 'owner_header_not_peer'],
  ['dropped', 'owner_hop_limit'],
  ['dropped', 'owner_header_malformed'],
  ['dropped', 'no_owner'],
  ['dropped', 'owner_too_big'],
  ['dropped', 'owner_no_route'],
  ['dropped', 'owner_encap_failed'],
  // END owner forwarding
] as const;
/** enum baton_direction, in order: the direction label of a counter slot (slot = reason * DIRECTIONS.length + direction). */
export const DIRECTIONS = ['none', 'to_backend', 'to_client'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export type Action = (typeof REASONS)[number][0];
export type ReasonName = (typeof REASONS)[number][1];

// ---------------------------------------------------------------- flow key

export interface FlowKey {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new RangeError(`${what} must be a port 0..65535, got ${p}`);
}

/** Field offsets of a 4-tuple: baton_flow_key and baton_xlate both start with one. */
type TupleFields = { readonly saddr: number; readonly daddr: number; readonly sport: number; readonly dport: number };

/** Writes a 4-tuple at `at`; returns its address family (both ends must agree). */
function encodeTuple(t: FlowKey, b: Buffer, at: number, f: TupleFields): Family {
  const src = parsedAddr(t.src);
  const dst = parsedAddr(t.dst);
  const family = src.family;
  if (dst.family !== family) throw new TypeError(`address families differ: ${t.src} and ${t.dst}`);
  checkPort(t.sport, 'sport');
  checkPort(t.dport, 'dport');
  src.bytes.copy(b, at + f.saddr);
  dst.bytes.copy(b, at + f.daddr);
  b.writeUInt16BE(t.sport, at + f.sport);
  b.writeUInt16BE(t.dport, at + f.dport);
  return family;
}

function decodeTuple(b: Buffer, at: number, f: TupleFields, family: Family): FlowKey {
  return {
    src: bytesToIp(b.subarray(at + f.saddr, at + f.saddr + 16), family),
    dst: bytesToIp(b.subarray(at + f.daddr, at + f.daddr + 16), family),
    sport: b.readUInt16BE(at + f.sport),
    dport: b.readUInt16BE(at + f.dport),
  };
}

export function encodeFlowKey(k: FlowKey): Buffer {
  const f = L.baton_flow_key.fields;
  const b = Buffer.alloc(L.baton_flow_key.size);
  b.writeUInt8(encodeTuple(k, b, 0, f), f.family);
  b.writeUInt8(IPPROTO_TCP, f.proto);
  return b;
}

export function decodeFlowKey(b: Buffer): FlowKey & { family: Family } {
  const family = b.readUInt8(L.baton_flow_key.fields.family) as Family;
  return { family, ...decodeTuple(b, 0, L.baton_flow_key.fields, family) };
}

// ---------------------------------------------------------------- xlate

export interface Xlate {
  /** The rewritten tuple. */
  out: FlowKey;
  seqDelta: number;
  ackDelta: number;
  tsvalDelta: number;
  tsecrDelta: number;
  wscaleIn: number;
  wscaleOut: number;
  timestamps: boolean;
}

function encodeXlate(x: Xlate, b: Buffer, at: number): void {
  const f = L.baton_xlate.fields;
  encodeTuple(x.out, b, at, f);
  b.writeUInt32LE(u32(x.seqDelta), at + f.seq_delta);
  b.writeUInt32LE(u32(x.ackDelta), at + f.ack_delta);
  b.writeUInt32LE(u32(x.tsvalDelta), at + f.tsval_delta);
  b.writeUInt32LE(u32(x.tsecrDelta), at + f.tsecr_delta);
  if (x.wscaleIn < 0 || x.wscaleIn > 14 || x.wscaleOut < 0 || x.wscaleOut > 14) {
    throw new RangeError(`window scale must be 0..14 (RFC 7323), got ${x.wscaleIn}/${x.wscaleOut}`);
  }
  b.writeUInt8(x.wscaleIn, at + f.wscale_in);
  b.writeUInt8(x.wscaleOut, at + f.wscale_out);
  b.writeUInt8(x.timestamps ? XLATE_F_TS : 0, at + f.flags);
}

function decodeXlate(b: Buffer, at: number, family: Family): Xlate {
  const f = L.baton_xlate.fields;
  return {
    out: decodeTuple(b, at, f, family),
    seqDelta: b.readUInt32LE(at + f.seq_delta),
    ackDelta: b.readUInt32LE(at + f.ack_delta),
    tsvalDelta: b.readUInt32LE(at + f.tsval_delta),
    tsecrDelta: b.readUInt32LE(at + f.tsecr_delta),
    wscaleIn: b.readUInt8(at + f.wscale_in),
    wscaleOut: b.readUInt8(at + f.wscale_out),
    timestamps: (b.readUInt8(at + f.flags) & XLATE_F_TS) !== 0,
  };
}

// ---------------------------------------------------------------- flow

export interface Leg {
  seqStart: number;
  ackFloor: number;
  x: Xlate;
}

export interface Track {
  packets: bigint;
  bytes: bigint;
  lastNs: bigint;
  seqEnd: number;
  ackMax: number;
  finSeq: number;
  flags: number;
}

export interface Flow {
  connId: bigint;
  state: (typeof FlowState)[keyof typeof FlowState];
  kind: (typeof FlowKind)[keyof typeof FlowKind];
  legs: Leg[];
  track?: Track;
}

/**
 * The entry's value: its first leg inline, n_legs = every leg. A CLIENT
 * entry with more than one leg also needs its list (encodeLegList) in
 * baton_legs, written before the entry (control/datapath/flow-table.ts,
 * writeFlow).
 */
export function encodeFlow(flow: Flow): Buffer {
  if (flow.legs.length > MAX_LEGS)
    throw new RangeError(`at most ${MAX_LEGS} back-end legs per connection, got ${flow.legs.length}`);
  const f = L.baton_flow.fields;
  const b = Buffer.alloc(L.baton_flow.size);
  b.writeBigUInt64LE(flow.connId, f.conn_id);
  b.writeUInt8(flow.state, f.state);
  b.writeUInt8(flow.kind, f.kind);
  b.writeUInt8(flow.legs.length, f.n_legs);
  if (flow.track) encodeTrack(flow.track, b, f.track);
  const first = flow.legs[0];
  if (first) encodeLeg(first, b, f.leg);
  return b;
}

/** Key of baton_legs: the entry's conn_id. */
export function encodeConnId(connId: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(connId);
  return b;
}

/** struct baton_leg_list of every leg, or undefined when one leg (or none) fits in the entry itself. */
export function encodeLegList(legs: readonly Leg[]): Buffer | undefined {
  if (legs.length <= 1) return undefined;
  if (legs.length > MAX_LEGS)
    throw new RangeError(`at most ${MAX_LEGS} back-end legs per connection, got ${legs.length}`);
  const b = Buffer.alloc(L.baton_leg_list.size);
  for (const [i, h] of legs.entries()) encodeLeg(h, b, L.baton_leg_list.fields.leg + i * L.baton_leg.size);
  return b;
}

/** How many legs an entry holds (n_legs), without decoding them. */
export const decodeFlowLegCount = (b: Buffer): number => b.readUInt8(L.baton_flow.fields.n_legs);

export function encodeLeg(h: Leg, b: Buffer, at: number): void {
  b.writeUInt32LE(u32(h.seqStart), at + L.baton_leg.fields.seq_start);
  b.writeUInt32LE(u32(h.ackFloor), at + L.baton_leg.fields.ack_floor);
  encodeXlate(h.x, b, at + L.baton_leg.fields.x);
}

export function encodeTrack(t: Track, b: Buffer, at: number): void {
  const f = L.baton_track.fields;
  b.writeBigUInt64LE(t.packets, at + f.packets);
  b.writeBigUInt64LE(t.bytes, at + f.bytes);
  b.writeBigUInt64LE(t.lastNs, at + f.last_ns);
  b.writeUInt32LE(u32(t.seqEnd), at + f.seq_end);
  b.writeUInt32LE(u32(t.ackMax), at + f.ack_max);
  b.writeUInt32LE(u32(t.finSeq), at + f.fin_seq);
  b.writeUInt32LE(t.flags, at + f.flags);
}

export function decodeTrack(b: Buffer, at: number = L.baton_flow.fields.track): Track {
  const f = L.baton_track.fields;
  return {
    packets: b.readBigUInt64LE(at + f.packets),
    bytes: b.readBigUInt64LE(at + f.bytes),
    lastNs: b.readBigUInt64LE(at + f.last_ns),
    seqEnd: b.readUInt32LE(at + f.seq_end),
    ackMax: b.readUInt32LE(at + f.ack_max),
    finSeq: b.readUInt32LE(at + f.fin_seq),
    flags: b.readUInt32LE(at + f.flags),
  };
}

/** Just the connection id of a flow value. */
export const decodeFlowConnId = (b: Buffer): bigint => b.readBigUInt64LE(L.baton_flow.fields.conn_id);

/** Just the state byte of a flow value (no decoding of its legs). */
export const decodeFlowState = (b: Buffer): Flow['state'] => b.readUInt8(L.baton_flow.fields.state) as Flow['state'];

const decodeLeg = (b: Buffer, at: number, family: Family): Leg => ({
  seqStart: b.readUInt32LE(at + L.baton_leg.fields.seq_start),
  ackFloor: b.readUInt32LE(at + L.baton_leg.fields.ack_floor),
  x: decodeXlate(b, at + L.baton_leg.fields.x, family),
});

/**
 * An entry, with its legs: the inline one, or, when it holds more than
 * one, those of `legList` (its baton_legs value). Without the list such an
 * entry decodes with its first leg only.
 */
export function decodeFlow(b: Buffer, family: Family, legList?: Buffer): Flow & { track: Track } {
  const f = L.baton_flow.fields;
  const n = Math.min(decodeFlowLegCount(b), MAX_LEGS);
  const legs: Leg[] = [];
  if (n > 1 && legList) {
    for (let i = 0; i < n; i++)
      legs.push(decodeLeg(legList, L.baton_leg_list.fields.leg + i * L.baton_leg.size, family));
  } else if (n >= 1) legs.push(decodeLeg(b, f.leg, family));
  return {
    connId: b.readBigUInt64LE(f.conn_id),
    state: decodeFlowState(b),
    kind: b.readUInt8(f.kind) as Flow['kind'],
    legs,
    track: decodeTrack(b),
  };
}
