/**
 * bytes -> StateBlob (layout in format.ts). All or nothing: the header, the
 * checksum, the version, every field and the state as a whole are checked
 * before anything is returned; the first failure throws one BlobError and no
 * partial object ever escapes. The returned Buffers are copies, so the input
 * may be reused afterwards.
 */
import { bytesToIp, type Family } from '../../net/addr.js';
import type { Endpoint, TcpState } from '../state.js';
import { checkBlob, checkReservation } from './check.js';
import { blobChecksum } from './checksum.js';
import { BlobError } from './errors.js';
import {
  BLOB_MAGIC,
  BLOB_VERSION,
  type ChannelBlob,
  FIELD,
  FIELD_CRITICAL,
  FIELD_HEADER_BYTES,
  FIXED_SIZE,
  type FieldType,
  type FlowMapping,
  type FlowReservation,
  HEADER,
  HEADER_BYTES,
  MAX_APP_STATE_BYTES,
  MAX_BLOB_BYTES,
  REQUIRED_FIELDS,
  RESERVATION_FIELDS,
  type StateBlob,
  TCP_FLAG,
  TCP_FLAGS_DEFINED,
} from './format.js';

export interface BlobHeader {
  version: number;
  headerLength: number;
  totalLength: number;
  crc: number;
}

const KNOWN = new Set<number>(Object.values(FIELD));
const NAME = new Map<number, string>(Object.entries(FIELD).map(([k, v]) => [v, k]));
const hex = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;
const fieldName = (type: number): string => `${NAME.get(type) ?? 'unknown'} (${hex(type)})`;

/**
 * Checks whatever part of the fixed header `buf` already holds, so a framer
 * can refuse a stream as soon as its first bytes are wrong. Returns the
 * header once all HEADER_BYTES are present, undefined before. Throws
 * 'bad_magic', 'bad_header', or 'oversized' (declared total above maxBytes).
 */
export function peekBlobHeader(buf: Uint8Array, maxBytes = MAX_BLOB_BYTES): BlobHeader | undefined {
  const seen = Math.min(buf.length, BLOB_MAGIC.length);
  for (let i = 0; i < seen; i++) {
    if (buf[i] !== BLOB_MAGIC[i]) {
      throw new BlobError(
        'bad_magic',
        `not a baton state blob: it starts with 0x${Buffer.from(buf.subarray(0, seen)).toString('hex')}, not "BTSB"; the sender is not a baton LB or agent, or the channel lost its framing (close it and reconnect)`,
      );
    }
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length >= HEADER.headerLength + 2) {
    const headerLength = b.readUInt16BE(HEADER.headerLength);
    if (headerLength < HEADER_BYTES) {
      throw new BlobError(
        'bad_header',
        `state blob header length ${headerLength} is below the ${HEADER_BYTES}-byte minimum; the sender is broken`,
      );
    }
  }
  if (b.length < HEADER.totalLength + 4) return undefined;
  const totalLength = b.readUInt32BE(HEADER.totalLength);
  if (totalLength > maxBytes) {
    throw new BlobError(
      'oversized',
      `state blob declares ${totalLength} bytes, more than the ${maxBytes} accepted; refused before reading it (a socket with this much queued data cannot be moved)`,
    );
  }
  const headerLength = b.readUInt16BE(HEADER.headerLength);
  if (totalLength < headerLength) {
    throw new BlobError(
      'bad_header',
      `state blob declares a total length of ${totalLength} bytes, shorter than its ${headerLength}-byte header; the sender is broken`,
    );
  }
  if (b.length < HEADER_BYTES) return undefined;
  return { version: b.readUInt16BE(HEADER.version), headerLength, totalLength, crc: b.readUInt32BE(HEADER.crc) };
}

/** A bounds-checked reader over one field value. */
class Cursor {
  off = 0;
  constructor(
    readonly v: Buffer,
    readonly type: number,
  ) {}
  private need(n: number): void {
    if (this.off + n > this.v.length) {
      throw new BlobError(
        'bad_field',
        `state blob field ${fieldName(this.type)} is ${this.v.length} bytes, too short for its contents; the sender is broken`,
      );
    }
  }
  u8(): number {
    this.need(1);
    return this.v.readUInt8(this.off++);
  }
  u16(): number {
    this.need(2);
    const n = this.v.readUInt16BE(this.off);
    this.off += 2;
    return n;
  }
  u32(): number {
    this.need(4);
    const n = this.v.readUInt32BE(this.off);
    this.off += 4;
    return n;
  }
  u64(): bigint {
    this.need(8);
    const n = this.v.readBigUInt64BE(this.off);
    this.off += 8;
    return n;
  }
  address(): { family: Family; ip: string } {
    const family = this.u8();
    if (family !== 4 && family !== 6) {
      throw new BlobError(
        'bad_field',
        `state blob field ${fieldName(this.type)} names address family ${family}; only 4 and 6 exist`,
      );
    }
    const n = family === 4 ? 4 : 16;
    this.need(n);
    const ip = bytesToIp(this.v.subarray(this.off, this.off + n), family);
    this.off += n;
    return { family, ip };
  }
  endpoint(): Endpoint & { family: Family } {
    const a = this.address();
    return { family: a.family, ip: a.ip, port: this.u16() };
  }
  rest(): Buffer {
    const r = this.v.subarray(this.off);
    this.off = this.v.length;
    return r;
  }
  end(): void {
    if (this.off !== this.v.length) {
      throw new BlobError(
        'bad_field',
        `state blob field ${fieldName(this.type)} has ${this.v.length - this.off} bytes after its contents; the sender is broken`,
      );
    }
  }
}

/** Splits the field area into known field values; skips unknown fields, refuses unknown critical ones and duplicates. */
function splitFields(blob: Buffer, start: number): Map<FieldType, Buffer> {
  const fields = new Map<FieldType, Buffer>();
  let off = start;
  while (off < blob.length) {
    if (blob.length - off < FIELD_HEADER_BYTES) {
      throw new BlobError(
        'bad_field',
        `state blob ends with ${blob.length - off} stray bytes at offset ${off}, too few for a field header; the sender is broken`,
      );
    }
    const type = blob.readUInt16BE(off);
    const length = blob.readUInt32BE(off + 2);
    const valueAt = off + FIELD_HEADER_BYTES;
    if (length > blob.length - valueAt) {
      throw new BlobError(
        'bad_field',
        `state blob field ${fieldName(type)} at offset ${off} declares ${length} bytes but only ${blob.length - valueAt} remain; the sender is broken`,
      );
    }
    off = valueAt + length;
    if (!KNOWN.has(type)) {
      if (type & FIELD_CRITICAL) {
        throw new BlobError(
          'unsupported_field',
          `state blob carries field ${hex(type)}, which this baton does not know and the sender marked as required to restore the connection; upgrade this host's baton`,
        );
      }
      continue; // A newer writer's addition: safe to ignore by the versioning rule.
    }
    const known = type as FieldType;
    if (fields.has(known)) {
      throw new BlobError('bad_field', `state blob carries field ${fieldName(type)} twice; the sender is broken`);
    }
    const fixed = FIXED_SIZE[known];
    if (fixed !== undefined && length !== fixed) {
      throw new BlobError('bad_field', `state blob field ${fieldName(type)} is ${length} bytes; it must be ${fixed}`);
    }
    fields.set(known, blob.subarray(valueAt, valueAt + length));
  }
  return fields;
}

/** Refuses a blob that lacks one of `required` ('missing_field'). */
function requireFields(fields: Map<FieldType, Buffer>, required: readonly FieldType[], what: string): void {
  for (const type of required) {
    if (!fields.has(type)) {
      throw new BlobError(
        'missing_field',
        `${what} lacks the required field ${fieldName(type)}; the sender wrote an incomplete ${what}, nothing was restored`,
      );
    }
  }
}

/** The parsed blob, its Buffers still views of the input (copied once everything passed). */
function parse(fields: Map<FieldType, Buffer>): StateBlob {
  const cursor = (type: FieldType): Cursor => new Cursor(fields.get(type) as Buffer, type);
  const optional = (type: FieldType): Cursor | undefined => (fields.has(type) ? cursor(type) : undefined);

  const { migrationId, createdAtMs } = parseMeta(fields);

  const app: StateBlob['app'] = {};
  const protocol = fields.get(FIELD.APP_PROTOCOL);
  if (protocol) app.protocol = protocol.toString('latin1');
  const state = fields.get(FIELD.APP_STATE);
  if (state) {
    if (state.length > MAX_APP_STATE_BYTES) {
      throw new BlobError(
        'oversized',
        `state blob app state is ${state.length} bytes, more than the ${MAX_APP_STATE_BYTES} allowed`,
      );
    }
    app.state = state;
  }
  const object = optional(FIELD.APP_OBJECT);
  if (object) app.object = { firstByteSeq: object.u32(), id: object.rest() };

  const seq = cursor(FIELD.TCP_SEQ);
  const [sndUna, sndNxt, rcvNxt] = [seq.u32(), seq.u32(), seq.u32()];
  const opts = cursor(FIELD.TCP_OPTIONS);
  const [mssClamp, advMss, sndWscale, rcvWscale, flags] = [opts.u16(), opts.u16(), opts.u8(), opts.u8(), opts.u8()];
  if (flags & ~TCP_FLAGS_DEFINED || (flags & TCP_FLAG.USEC_TS && !(flags & TCP_FLAG.USEC_TS_KNOWN))) {
    throw new BlobError(
      'bad_field',
      `state blob field ${fieldName(FIELD.TCP_OPTIONS)} has flags 0x${flags.toString(16)}; only 0x${TCP_FLAGS_DEFINED.toString(16)} are defined, and usec_ts needs usec_ts_known`,
    );
  }
  const win = cursor(FIELD.TCP_WINDOW);
  const window = { sndWl1: win.u32(), sndWnd: win.u32(), maxWindow: win.u32(), rcvWnd: win.u32(), rcvWup: win.u32() };

  const ends = cursor(FIELD.IP_ENDPOINTS);
  const local = ends.endpoint();
  const remote = ends.endpoint();
  ends.end();
  if (local.family !== remote.family) {
    throw new BlobError(
      'bad_field',
      `state blob field ${fieldName(FIELD.IP_ENDPOINTS)} mixes IPv${local.family} and IPv${remote.family} endpoints`,
    );
  }

  const tcp: TcpState = {
    family: local.family,
    local: { ip: local.ip, port: local.port },
    remote: { ip: remote.ip, port: remote.port },
    sndNxt,
    sndUna,
    rcvNxt,
    mssClamp,
    advMss,
    sndWscale,
    rcvWscale,
    timestamps: (flags & TCP_FLAG.TIMESTAMPS) !== 0,
    sackPermitted: (flags & TCP_FLAG.SACK_PERMITTED) !== 0,
    tsNow: cursor(FIELD.TCP_TS_CLOCK).u32(),
    sendQueue: fields.get(FIELD.TCP_SEND_QUEUE) as Buffer,
    recvQueue: fields.get(FIELD.TCP_RECV_QUEUE) as Buffer,
    window,
  };
  if (flags & TCP_FLAG.USEC_TS_KNOWN) tcp.usecTs = (flags & TCP_FLAG.USEC_TS) !== 0;
  const recent = optional(FIELD.TCP_TS_RECENT);
  if (recent) tcp.tsRecent = recent.u32();

  const replyBy = optional(FIELD.REPLY_BY)?.u64();
  if (replyBy !== undefined && replyBy > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BlobError(
      'bad_field',
      `state blob field ${fieldName(FIELD.REPLY_BY)} is ${replyBy} ms, beyond any real clock; the sender is broken`,
    );
  }
  const out: StateBlob = {
    migrationId,
    createdAtMs,
    ...(replyBy === undefined ? {} : { replyByMs: Number(replyBy) }),
    app,
    tcp,
    receivedData: fields.get(FIELD.TCP_RECEIVED_DATA) as Buffer,
  };
  const ip = optional(FIELD.IP_OPTIONS);
  if (ip) out.ip = { tos: ip.u8(), ttl: ip.u8() };
  const flow = optional(FIELD.FLOW_MAPPING);
  if (flow) out.flow = parseFlow(flow);
  return out;
}

function parseMeta(fields: Map<FieldType, Buffer>): { migrationId: bigint; createdAtMs: number } {
  const migrationId = new Cursor(fields.get(FIELD.MIGRATION_ID) as Buffer, FIELD.MIGRATION_ID).u64();
  const createdAt = new Cursor(fields.get(FIELD.CREATED_AT) as Buffer, FIELD.CREATED_AT).u64();
  if (createdAt > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BlobError(
      'bad_field',
      `state blob field ${fieldName(FIELD.CREATED_AT)} is ${createdAt} ms, beyond any real clock; the sender is broken`,
    );
  }
  return { migrationId, createdAtMs: Number(createdAt) };
}

function parseFlow(flow: Cursor): FlowMapping {
  const flowId = flow.u32();
  const lb = flow.address().ip;
  const client = flow.endpoint();
  const vip = flow.endpoint();
  flow.end();
  return { lb, flowId, client: { ip: client.ip, port: client.port }, vip: { ip: vip.ip, port: vip.port } };
}

const copy = (b: Buffer): Buffer => Buffer.from(b);

/**
 * Decodes exactly one blob. Throws BlobError (code BLOB_INVALID) with a
 * stable `reason` for anything wrong; never returns a partial state.
 */
export function decodeStateBlob(input: Uint8Array): StateBlob {
  const fields = openBlob(input);
  if (fields.has(FIELD.FLOW_RESERVATION)) {
    throw new BlobError(
      'bad_field',
      'this blob is a flow-id reservation (FLOW_RESERVATION), not a state; decode channel traffic with decodeChannelBlob',
    );
  }
  return stateOf(fields);
}

/**
 * Decodes one blob of a channel: a state, or a reservation ahead of one
 * (FLOW_RESERVATION). The same all-or-nothing checks as decodeStateBlob.
 */
export function decodeChannelBlob(input: Uint8Array): ChannelBlob {
  const fields = openBlob(input);
  if (!fields.has(FIELD.FLOW_RESERVATION)) return { kind: 'state', blob: stateOf(fields) };
  requireFields(fields, RESERVATION_FIELDS, 'flow-id reservation');
  for (const type of fields.keys()) {
    if (!RESERVATION_FIELDS.includes(type)) {
      throw new BlobError(
        'bad_field',
        `a flow-id reservation carries ${fieldName(type)}; it holds only the migration id, its time and the flow-id mapping (the state follows in its own blob)`,
      );
    }
  }
  const reservation: FlowReservation = {
    ...parseMeta(fields),
    flow: parseFlow(new Cursor(fields.get(FIELD.FLOW_MAPPING) as Buffer, FIELD.FLOW_MAPPING)),
  };
  checkReservation(reservation);
  return { kind: 'reservation', reservation };
}

/** The state of a blob that opened: required fields, parse, check, then copies detached from the input. */
function stateOf(fields: Map<FieldType, Buffer>): StateBlob {
  requireFields(fields, REQUIRED_FIELDS, 'state blob');
  const parsed = parse(fields);
  checkBlob(parsed);

  // Everything passed: detach the Buffers from the input.
  const { app, tcp } = parsed;
  if (app.state) app.state = copy(app.state);
  if (app.object) app.object.id = copy(app.object.id);
  tcp.sendQueue = copy(tcp.sendQueue);
  tcp.recvQueue = copy(tcp.recvQueue);
  parsed.receivedData = copy(parsed.receivedData);
  return parsed;
}

/** Header, length, checksum and version of exactly one blob, then its known fields (views of the input). */
function openBlob(input: Uint8Array): Map<FieldType, Buffer> {
  const blob = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const header = peekBlobHeader(blob);
  if (header === undefined) {
    throw new BlobError(
      'truncated',
      `state blob is ${blob.length} bytes, shorter than its ${HEADER_BYTES}-byte header; the transfer was cut short, have the sender resend it`,
    );
  }
  if (blob.length < header.totalLength) {
    throw new BlobError(
      'truncated',
      `state blob is ${blob.length} bytes but declares ${header.totalLength}; the transfer was cut short, have the sender resend it`,
    );
  }
  if (blob.length > header.totalLength) {
    throw new BlobError(
      'bad_header',
      `state blob declares ${header.totalLength} bytes but ${blob.length} were given; decode one blob at a time (frame a stream with BlobFramer)`,
    );
  }
  const crc = blobChecksum(blob);
  if (crc !== header.crc) {
    throw new BlobError(
      'checksum',
      `state blob checksum mismatch (carried 0x${header.crc.toString(16).padStart(8, '0')}, computed 0x${crc.toString(16).padStart(8, '0')}): corrupted in transit or storage; have the sender resend it`,
    );
  }
  // After the checksum: a corrupted version byte reads as corruption, a real newer version as such.
  if (header.version !== BLOB_VERSION) {
    throw new BlobError(
      'unsupported_version',
      `state blob is format version ${header.version}; this baton reads version ${BLOB_VERSION}; run the same baton release on sender and receiver`,
    );
  }
  return splitFields(blob, header.headerLength);
}
