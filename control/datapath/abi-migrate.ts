/**
 * The migrate part of the ABI (source document 002): the agent's flow-id
 * mapping table (bpf/lib/fid_maps.h, bpf/xdp_agent.c) and the flow id in
 * the ports (bpf/lib/flowid.h). Layouts live in abi.ts's LAYOUTS with the
 * rest, so the layout test proves them against abi.h too.
 */
import { addrToKeyBytes, bytesToIp, type Family, familyOf } from '../net/addr.js';
import { IPPROTO_TCP } from '../tcp/kernel.js';
import { checkPort, decodeTrack, encodeTrack, LAYOUTS, type Track } from './abi.js';

const L = LAYOUTS;

/** enum baton_fid_state: HOLD drops (socket not restored yet), RESTORE rewrites back and passes to the stack. */
export const FidState = { HOLD: 1, RESTORE: 2 } as const;
export type FidStateValue = (typeof FidState)[keyof typeof FidState];
export const FidCtlOp = { SET_STATE: 1 } as const;

/** Largest flow id: 32 bits, high 16 in the source port, low 16 in the destination port. */
export const FLOW_ID_MAX = 0xffff_ffff;

function checkFlowId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > FLOW_ID_MAX)
    throw new RangeError(`a flow id is a 32-bit unsigned integer, got ${id}`);
}

/** The port fields that carry a flow id on the wire (bpf/lib/flowid.h): sport = high 16 bits, dport = low 16. */
export function flowIdPorts(flowId: number): { sport: number; dport: number } {
  checkFlowId(flowId);
  return { sport: flowId >>> 16, dport: flowId & 0xffff };
}

/** The flow id two port fields carry (inverse of flowIdPorts). */
export function flowIdOfPorts(sport: number, dport: number): number {
  checkPort(sport, 'sport');
  checkPort(dport, 'dport');
  return ((sport << 16) | dport) >>> 0;
}

/** struct baton_fid_key: the client's address and the flow id of a migrated connection. */
export interface FidKey {
  client: string;
  flowId: number;
}

/** struct baton_fid_mapping without its track: the original tuple's other fields. */
export interface FidMapping {
  connId: bigint;
  /** the client's own port */
  clientPort: number;
  /** the address and port the client connected to */
  vip: string;
  vipPort: number;
  state: FidStateValue;
}

export function encodeFidKey(k: FidKey): Buffer {
  const f = L.baton_fid_key.fields;
  const b = Buffer.alloc(L.baton_fid_key.size);
  checkFlowId(k.flowId);
  addrToKeyBytes(k.client).copy(b, f.saddr);
  b.writeUInt32BE(k.flowId, f.flow_id); // network order: the wire's sport then dport
  b.writeUInt8(familyOf(k.client), f.family);
  b.writeUInt8(IPPROTO_TCP, f.proto);
  return b;
}

export function decodeFidKey(b: Buffer): FidKey & { family: Family } {
  const f = L.baton_fid_key.fields;
  const family = b.readUInt8(f.family) as Family;
  return {
    family,
    client: bytesToIp(b.subarray(f.saddr, f.saddr + 16), family),
    flowId: b.readUInt32BE(f.flow_id),
  };
}

/**
 * A mapping value. `track` seeds the client direction's track (the agent
 * passes the restored socket's rcv_nxt as seqEnd with TRACK_F_SEEN, so the
 * first exact RST is recognised: bpf/lib/flowid.h, fid_rst_kind).
 */
export function encodeFidMapping(family: Family, m: FidMapping, track?: Track): Buffer {
  const f = L.baton_fid_mapping.fields;
  const b = Buffer.alloc(L.baton_fid_mapping.size);
  if (familyOf(m.vip) !== family) throw new TypeError(`the VIP ${m.vip} is not of the client's address family`);
  checkPort(m.clientPort, 'clientPort');
  checkPort(m.vipPort, 'vipPort');
  if (m.state !== FidState.HOLD && m.state !== FidState.RESTORE)
    throw new RangeError(`a flow-id mapping is HOLD or RESTORE, got state ${m.state}`);
  b.writeBigUInt64LE(m.connId, f.conn_id);
  addrToKeyBytes(m.vip).copy(b, f.vip);
  b.writeUInt16BE(m.clientPort, f.cport);
  b.writeUInt16BE(m.vipPort, f.vport);
  b.writeUInt8(m.state, f.state);
  if (track) encodeTrack(track, b, f.track);
  return b;
}

export function decodeFidMapping(b: Buffer, family: Family): FidMapping & { track: Track } {
  const f = L.baton_fid_mapping.fields;
  return {
    connId: b.readBigUInt64LE(f.conn_id),
    vip: bytesToIp(b.subarray(f.vip, f.vip + 16), family),
    clientPort: b.readUInt16BE(f.cport),
    vipPort: b.readUInt16BE(f.vport),
    state: b.readUInt8(f.state) as FidStateValue,
    track: decodeTrack(b, f.track),
  };
}

/** struct baton_fid_ctl for the agent's control program (bpf/xdp_agent.c, baton_agent_ctl). */
export function encodeFidCtl(key: FidKey, state: FidStateValue): Buffer {
  const f = L.baton_fid_ctl.fields;
  const b = Buffer.alloc(L.baton_fid_ctl.size);
  encodeFidKey(key).copy(b, f.key);
  b.writeUInt32LE(FidCtlOp.SET_STATE, f.op);
  b.writeUInt32LE(state, f.state);
  return b;
}

/** The agent control program's answer: 0 or a negative errno. */
export const decodeFidCtlResult = (b: Buffer): number => b.readInt32LE(L.baton_fid_ctl.fields.result);
