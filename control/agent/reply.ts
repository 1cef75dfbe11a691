/**
 * The agent's answer to one state blob on the channel, and the app header
 * (agent -> app over the unix socket): both a u32 big-endian length then
 * UTF-8 JSON, so any language can read them. Pure codec + a stream reader.
 */
import { splitAddress } from '../net/addr.js';
import { canonicalIp } from '../service/endpoint.js';

export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Why an agent refused a migration (stable codes the LB logs and counts). */
export const REFUSAL_CODES = [
  'blob_invalid',
  'no_app',
  'restore_failed',
  'handoff_failed',
  'shutting_down',
  // The blob's flow-id mapping could not be installed (migrate datapath, control/datapath/fid-table.ts).
  'flow_id_in_use',
  'fid_table_full',
  'no_datapath',
  'datapath_failed',
  // The state came too late: its sender stops waiting (REPLY_BY) before a confirmation could reach it.
  'too_late',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** The socket exists in an app: the LB may release its own. */
export type Confirmation = { migrationId: string; ok: true; queuedBytes: number };
/** A reservation's mapping is in HOLD: the LB may forward the client's segments here. */
export type Held = { migrationId: string; ok: true; held: true };
export type Refusal = { migrationId: string; ok: false; code: RefusalCode; reason: string };
/** The agent's answer to one blob: a confirmation (state), held (reservation), or a refusal (either). */
export type Reply = Confirmation | Held | Refusal;

export function encodeMessage(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  if (json.length > MAX_MESSAGE_BYTES)
    throw new RangeError(`message of ${json.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  const b = Buffer.alloc(4 + json.length);
  b.writeUInt32BE(json.length, 0);
  json.copy(b, 4);
  return b;
}

export class MessageError extends Error {
  override readonly name = 'MessageError';
}

/** Bytes in, complete JSON messages out; a length above MAX_MESSAGE_BYTES or bad JSON fails the reader for good. */
export class MessageReader {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): unknown[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: unknown[] = [];
    while (this.buf.length >= 4) {
      const n = this.buf.readUInt32BE(0);
      if (n > MAX_MESSAGE_BYTES) throw new MessageError(`message length ${n} exceeds ${MAX_MESSAGE_BYTES}`);
      if (this.buf.length < 4 + n) break;
      const json = this.buf.subarray(4, 4 + n).toString('utf8');
      this.buf = this.buf.subarray(4 + n);
      try {
        out.push(JSON.parse(json));
      } catch {
        throw new MessageError('message is not JSON');
      }
    }
    return out;
  }
  get pending(): number {
    return this.buf.length;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseReply(v: unknown): Reply {
  if (!isObj(v) || typeof v.migrationId !== 'string' || !/^\d{1,20}$/.test(v.migrationId))
    throw new MessageError('reply without a migrationId');
  if (v.ok === true && v.held === true) return { migrationId: v.migrationId, ok: true, held: true };
  if (v.ok === true) {
    if (typeof v.queuedBytes !== 'number') throw new MessageError('confirmation without queuedBytes');
    return { migrationId: v.migrationId, ok: true, queuedBytes: v.queuedBytes };
  }
  if (v.ok === false && typeof v.code === 'string' && (REFUSAL_CODES as readonly string[]).includes(v.code)) {
    return { migrationId: v.migrationId, ok: false, code: v.code as RefusalCode, reason: String(v.reason ?? '') };
  }
  throw new MessageError('reply is neither a confirmation nor a refusal with a known code');
}

export interface Endpoint {
  ip: string;
  port: number;
}

/** What an app gets with each migrated connection's descriptor. */
export interface ConnectionHeader {
  type: 'connection';
  migrationId: string;
  client: Endpoint;
  vip: Endpoint;
  /** Bytes of the client's data already in the socket's receive queue (the first request). */
  queuedBytes: number;
}

/** App -> agent. */
export interface RegisterRequest {
  type: 'register';
  /** "ip:port" ("[v6]:port" for IPv6). */
  vip: string;
}
/** Agent -> app. */
export type RegisterReply = { type: 'registered'; vip: string } | { type: 'refused'; code: string; reason: string };

const isEndpoint = (v: unknown): v is Endpoint =>
  isObj(v) &&
  typeof v.ip === 'string' &&
  Number.isInteger(v.port) &&
  (v.port as number) >= 0 &&
  (v.port as number) < 65536;

export function parseConnectionHeader(v: unknown): ConnectionHeader {
  if (
    !isObj(v) ||
    v.type !== 'connection' ||
    typeof v.migrationId !== 'string' ||
    !isEndpoint(v.client) ||
    !isEndpoint(v.vip) ||
    !Number.isInteger(v.queuedBytes)
  )
    throw new MessageError('malformed connection header');
  return {
    type: 'connection',
    migrationId: v.migrationId,
    client: v.client,
    vip: v.vip,
    queuedBytes: v.queuedBytes as number,
  };
}

export function parseRegisterRequest(v: unknown): RegisterRequest {
  if (!isObj(v) || v.type !== 'register' || typeof v.vip !== 'string')
    throw new MessageError('malformed register request');
  return { type: 'register', vip: v.vip };
}

/** "ip:port" / "[ip]:port" -> endpoint with the address in canonical form (as the kernel reports it), or undefined (pure). */
export function parseVip(s: string): Endpoint | undefined {
  const parts = splitAddress(s);
  if ('error' in parts || !/^[0-9]{1,5}$/.test(parts.port)) return undefined;
  const port = Number(parts.port);
  const ip = canonicalIp(parts.host);
  if (!ip || port < 1 || port > 65535) return undefined;
  return { ip: ip.ip, port };
}

export const vipKey = (e: Endpoint): string => (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`);
