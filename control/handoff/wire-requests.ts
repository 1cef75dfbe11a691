/**
 * The request bodies of the local handoff channel (SPLICE, MIGRATE,
 * LEG_PORT; their layouts are in wire.ts's header comment): encoders for the
 * SDK and decoders for the daemon, which refuse with a WireError whatever
 * does not match its lengths or is not printable ASCII.
 */
import { MAX_PREFIX_BYTES } from '../service/limits.js';
import {
  FRAME_TYPE,
  frameOf,
  LEG_PORT_FIXED_BYTES,
  MAX_AGENT_BYTES,
  MAX_APP_PROTOCOL_BYTES,
  MAX_ENDPOINT_BYTES,
  MIGRATE_FIXED_BYTES,
  NO_TIMEOUT,
  SPLICE_FIXED_BYTES,
  WireError,
} from './wire.js';

export interface SpliceFrame {
  id: number;
  /** undefined: the daemon's default */
  quiesceTimeoutMs?: number;
  prefix?: Buffer;
}

export function encodeSplice(r: SpliceFrame): Buffer {
  const prefix = r.prefix ?? Buffer.alloc(0);
  if (prefix.length > MAX_PREFIX_BYTES)
    throw new RangeError(`a prefix of ${prefix.length} bytes; at most ${MAX_PREFIX_BYTES} are accepted`);
  const q = r.quiesceTimeoutMs ?? NO_TIMEOUT;
  if (!Number.isInteger(q) || q < 0 || q > NO_TIMEOUT) throw new RangeError(`quiesce timeout ${q} is not a u32`);
  const body = Buffer.alloc(SPLICE_FIXED_BYTES + prefix.length);
  body.writeUInt32LE(q, 0);
  body.writeUInt32LE(prefix.length, 4);
  prefix.copy(body, SPLICE_FIXED_BYTES);
  return frameOf(FRAME_TYPE.SPLICE, r.id, body);
}

/** A SPLICE frame's body; throws WireError when its prefix length disagrees with the body's. */
export function decodeSpliceBody(body: Buffer): Omit<SpliceFrame, 'id'> {
  if (body.length < SPLICE_FIXED_BYTES)
    throw new WireError('bad_length', `a splice body is at least ${SPLICE_FIXED_BYTES} bytes, got ${body.length}`);
  const q = body.readUInt32LE(0);
  const n = body.readUInt32LE(4);
  if (n !== body.length - SPLICE_FIXED_BYTES)
    throw new WireError(
      'bad_length',
      `the splice body says its prefix is ${n} bytes, but ${body.length - SPLICE_FIXED_BYTES} follow`,
    );
  return {
    ...(q === NO_TIMEOUT ? {} : { quiesceTimeoutMs: q }),
    ...(n > 0 ? { prefix: Buffer.from(body.subarray(SPLICE_FIXED_BYTES)) } : {}),
  };
}

export interface MigrateFrame {
  id: number;
  /** The agent's blob endpoint, "ip:port". */
  agent: string;
  /** Client bytes the front end read (the first request). */
  received?: Buffer;
  appProtocol?: string;
  /** undefined: the daemon's default */
  timeoutMs?: number;
}

const PRINTABLE_ASCII = /^[\x21-\x7e]*$/;

/** An address field as frames carry it: 1..MAX_ENDPOINT_BYTES printable ASCII characters. */
const isEndpointText = (v: string): boolean =>
  v.length > 0 && v.length <= MAX_ENDPOINT_BYTES && PRINTABLE_ASCII.test(v);

export function encodeMigrate(r: MigrateFrame): Buffer {
  const agent = Buffer.from(r.agent, 'latin1');
  const proto = Buffer.from(r.appProtocol ?? '', 'latin1');
  const received = r.received ?? Buffer.alloc(0);
  if (!isEndpointText(r.agent))
    throw new RangeError(`agent ${JSON.stringify(r.agent)} is not 1-${MAX_AGENT_BYTES} printable ASCII characters`);
  if (!PRINTABLE_ASCII.test(r.appProtocol ?? '') || proto.length > MAX_APP_PROTOCOL_BYTES)
    throw new RangeError(
      `app protocol ${JSON.stringify(r.appProtocol)} is not up to ${MAX_APP_PROTOCOL_BYTES} printable ASCII characters`,
    );
  if (received.length > MAX_PREFIX_BYTES)
    throw new RangeError(`${received.length} received bytes; at most ${MAX_PREFIX_BYTES} are accepted`);
  const t = r.timeoutMs ?? NO_TIMEOUT;
  if (!Number.isInteger(t) || t < 0 || t > NO_TIMEOUT) throw new RangeError(`timeout ${t} is not a u32`);
  const body = Buffer.alloc(MIGRATE_FIXED_BYTES + agent.length + proto.length + received.length);
  body.writeUInt32LE(t, 0);
  body.writeUInt8(agent.length, 4);
  body.writeUInt8(proto.length, 5);
  body.writeUInt32LE(received.length, 8);
  agent.copy(body, MIGRATE_FIXED_BYTES);
  proto.copy(body, MIGRATE_FIXED_BYTES + agent.length);
  received.copy(body, MIGRATE_FIXED_BYTES + agent.length + proto.length);
  return frameOf(FRAME_TYPE.MIGRATE, r.id, body);
}

/**
 * A MIGRATE frame's body; throws WireError when its lengths disagree with
 * the body's or its names are not printable ASCII. The values themselves
 * (a timeout out of range, an agent that is not one of the LB's) are the
 * service's to refuse, with the REST route's errors.
 */
export function decodeMigrateBody(body: Buffer): Omit<MigrateFrame, 'id'> {
  if (body.length < MIGRATE_FIXED_BYTES)
    throw new WireError('bad_length', `a migrate body is at least ${MIGRATE_FIXED_BYTES} bytes, got ${body.length}`);
  if (body.readUInt16LE(6) !== 0) throw new WireError('bad_reserved', 'the reserved migrate body bytes must be zero');
  const t = body.readUInt32LE(0);
  const a = body.readUInt8(4);
  const p = body.readUInt8(5);
  const n = body.readUInt32LE(8);
  if (MIGRATE_FIXED_BYTES + a + p + n !== body.length)
    throw new WireError(
      'bad_length',
      `the migrate body says ${a} + ${p} + ${n} bytes follow its fixed part, but ${body.length - MIGRATE_FIXED_BYTES} do`,
    );
  const agent = body.toString('latin1', MIGRATE_FIXED_BYTES, MIGRATE_FIXED_BYTES + a);
  const proto = body.toString('latin1', MIGRATE_FIXED_BYTES + a, MIGRATE_FIXED_BYTES + a + p);
  if (!isEndpointText(agent))
    throw new WireError('bad_field', `the agent must be 1-${MAX_AGENT_BYTES} printable ASCII characters`);
  if (p > MAX_APP_PROTOCOL_BYTES || !PRINTABLE_ASCII.test(proto))
    throw new WireError(
      'bad_field',
      `the app protocol must be up to ${MAX_APP_PROTOCOL_BYTES} printable ASCII characters`,
    );
  return {
    agent,
    ...(p > 0 ? { appProtocol: proto } : {}),
    ...(n > 0 ? { received: Buffer.from(body.subarray(MIGRATE_FIXED_BYTES + a + p)) } : {}),
    ...(t === NO_TIMEOUT ? {} : { timeoutMs: t }),
  };
}

export interface LegPortFrame {
  id: number;
  /** The source address toward the back end (the LB's side of the new connection). */
  local: string;
  /** The back end, "ip:port". */
  backend: string;
}

export function encodeLegPort(r: LegPortFrame): Buffer {
  for (const [what, v] of [
    ['local address', r.local],
    ['back end', r.backend],
  ] as const) {
    if (!isEndpointText(v))
      throw new RangeError(`${what} ${JSON.stringify(v)} is not 1-${MAX_ENDPOINT_BYTES} printable ASCII characters`);
  }
  const body = Buffer.alloc(LEG_PORT_FIXED_BYTES + r.local.length + r.backend.length);
  body.writeUInt8(r.local.length, 0);
  body.writeUInt8(r.backend.length, 1);
  body.write(r.local, LEG_PORT_FIXED_BYTES, 'latin1');
  body.write(r.backend, LEG_PORT_FIXED_BYTES + r.local.length, 'latin1');
  return frameOf(FRAME_TYPE.LEG_PORT, r.id, body);
}

/** A LEG_PORT frame's body; throws WireError when its lengths disagree with the body's or a field is not printable ASCII. */
export function decodeLegPortBody(body: Buffer): Omit<LegPortFrame, 'id'> {
  if (body.length < LEG_PORT_FIXED_BYTES)
    throw new WireError('bad_length', `a leg port body is at least ${LEG_PORT_FIXED_BYTES} bytes, got ${body.length}`);
  if (body.readUInt16LE(2) !== 0) throw new WireError('bad_reserved', 'the reserved leg port body bytes must be zero');
  const l = body.readUInt8(0);
  const b = body.readUInt8(1);
  if (LEG_PORT_FIXED_BYTES + l + b !== body.length)
    throw new WireError(
      'bad_length',
      `the leg port body says ${l} + ${b} bytes follow its fixed part, but ${body.length - LEG_PORT_FIXED_BYTES} do`,
    );
  const local = body.toString('latin1', LEG_PORT_FIXED_BYTES, LEG_PORT_FIXED_BYTES + l);
  const backend = body.toString('latin1', LEG_PORT_FIXED_BYTES + l);
  for (const [what, v] of [
    ['local address', local],
    ['back end', backend],
  ] as const) {
    if (!isEndpointText(v))
      throw new WireError('bad_field', `the ${what} must be 1-${MAX_ENDPOINT_BYTES} printable ASCII characters`);
  }
  return { local, backend };
}
