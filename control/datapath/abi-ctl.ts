/**
 * The control program's part of the ABI (bpf/xdp_baton.c, baton_ctl: a
 * SEC("syscall") program that changes a live entry atomically for the
 * datapath's readers): its request and its answer. The layout lives in
 * abi.ts's LAYOUTS with the rest, so the layout test proves it against abi.h.
 */
import { CtlOp, encodeFlowKey, encodeLeg, type Flow, type FlowKey, LAYOUTS, type Leg } from './abi.js';

const L = LAYOUTS;

export type CtlRequest =
  | { op: typeof CtlOp.SET_STATE; key: FlowKey; state: Flow['state'] }
  | { op: typeof CtlOp.APPEND_LEG; key: FlowKey; state: Flow['state']; leg: Leg };

/** struct baton_ctl for the control program (bpf/xdp_baton.c, baton_ctl). */
export function encodeCtl(req: CtlRequest): Buffer {
  const f = L.baton_ctl.fields;
  const b = Buffer.alloc(L.baton_ctl.size);
  encodeFlowKey(req.key).copy(b, f.key);
  b.writeUInt32LE(req.op, f.op);
  b.writeUInt32LE(req.state, f.state);
  if (req.op === CtlOp.APPEND_LEG) encodeLeg(req.leg, b, f.leg);
  return b;
}

/** The control program's answer: 0 or a negative errno, and the legs the entry now holds. */
export function decodeCtlResult(b: Buffer): { result: number; nLegs: number } {
  const f = L.baton_ctl.fields;
  return { result: b.readInt32LE(f.result), nLegs: b.readUInt32LE(f.n_legs) };
}
