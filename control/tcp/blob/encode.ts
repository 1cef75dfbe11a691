/**
 * StateBlob -> bytes (layout in format.ts). The state is checked first with
 * the same checks the decoder applies, so a blob this writes is one every
 * reader of this version accepts.
 */
import { addrToKeyBytes, familyOf } from '../../net/addr.js';
import type { Endpoint } from '../state.js';
import { checkBlob, checkReservation } from './check.js';
import { sealBlob } from './checksum.js';
import { BlobError } from './errors.js';
import {
  addressBytes,
  BLOB_MAGIC,
  BLOB_VERSION,
  FIELD,
  FIELD_HEADER_BYTES,
  type FlowMapping,
  type FlowReservation,
  HEADER,
  HEADER_BYTES,
  MAX_BLOB_BYTES,
  type StateBlob,
  TCP_FLAG,
} from './format.js';

/** Writes the ADDRESS encoding (u8 family, 4 or 16 bytes) at `off`; returns the next offset. */
export function writeAddress(out: Buffer, off: number, ip: string): number {
  const family = familyOf(ip);
  out.writeUInt8(family, off);
  addrToKeyBytes(ip).copy(out, off + 1, 0, family === 4 ? 4 : 16);
  return off + addressBytes(family);
}

function writeEndpoint(out: Buffer, off: number, e: Endpoint): number {
  const next = writeAddress(out, off, e.ip);
  out.writeUInt16BE(e.port, next);
  return next + 2;
}

function endpoints(parts: Endpoint[], lead = 0): { buf: Buffer; off: number } {
  const size = parts.reduce((n, e) => n + addressBytes(familyOf(e.ip)) + 2, lead);
  return { buf: Buffer.alloc(size), off: lead };
}

/** The blob's fields in writing order (ascending type), values not yet framed. */
function fieldsOf(b: StateBlob): Array<[number, Buffer]> {
  const t = b.tcp;
  const out: Array<[number, Buffer]> = [];

  out.push(...metaFields(b.migrationId, b.createdAtMs));
  if (b.replyByMs !== undefined) {
    const by = Buffer.alloc(8);
    by.writeBigUInt64BE(BigInt(b.replyByMs));
    out.push([FIELD.REPLY_BY, by]);
  }

  const app = b.app ?? {};
  if (app.protocol !== undefined) out.push([FIELD.APP_PROTOCOL, Buffer.from(app.protocol, 'latin1')]);
  if (app.state !== undefined) out.push([FIELD.APP_STATE, app.state]);
  if (app.object !== undefined) {
    const v = Buffer.alloc(4 + app.object.id.length);
    v.writeUInt32BE(app.object.firstByteSeq, 0);
    app.object.id.copy(v, 4);
    out.push([FIELD.APP_OBJECT, v]);
  }

  const seq = Buffer.alloc(12);
  seq.writeUInt32BE(t.sndUna, 0);
  seq.writeUInt32BE(t.sndNxt, 4);
  seq.writeUInt32BE(t.rcvNxt, 8);
  out.push([FIELD.TCP_SEQ, seq]);

  const opts = Buffer.alloc(7);
  opts.writeUInt16BE(t.mssClamp, 0);
  opts.writeUInt16BE(t.advMss, 2);
  opts.writeUInt8(t.sndWscale, 4);
  opts.writeUInt8(t.rcvWscale, 5);
  let flags = 0;
  if (t.timestamps) flags |= TCP_FLAG.TIMESTAMPS;
  if (t.sackPermitted) flags |= TCP_FLAG.SACK_PERMITTED;
  if (t.usecTs !== undefined) flags |= TCP_FLAG.USEC_TS_KNOWN;
  if (t.usecTs === true) flags |= TCP_FLAG.USEC_TS;
  opts.writeUInt8(flags, 6);
  out.push([FIELD.TCP_OPTIONS, opts]);

  const clock = Buffer.alloc(4);
  clock.writeUInt32BE(t.tsNow, 0);
  out.push([FIELD.TCP_TS_CLOCK, clock]);
  if (t.tsRecent !== undefined) {
    const recent = Buffer.alloc(4);
    recent.writeUInt32BE(t.tsRecent, 0);
    out.push([FIELD.TCP_TS_RECENT, recent]);
  }

  const win = Buffer.alloc(20);
  [t.window.sndWl1, t.window.sndWnd, t.window.maxWindow, t.window.rcvWnd, t.window.rcvWup].forEach((v, i) => {
    win.writeUInt32BE(v, i * 4);
  });
  out.push([FIELD.TCP_WINDOW, win]);
  out.push([FIELD.TCP_SEND_QUEUE, t.sendQueue]);
  out.push([FIELD.TCP_RECV_QUEUE, t.recvQueue]);
  out.push([FIELD.TCP_RECEIVED_DATA, b.receivedData]);

  const ends = endpoints([t.local, t.remote]);
  writeEndpoint(ends.buf, writeEndpoint(ends.buf, 0, t.local), t.remote);
  out.push([FIELD.IP_ENDPOINTS, ends.buf]);
  if (b.ip !== undefined) out.push([FIELD.IP_OPTIONS, Buffer.from([b.ip.tos, b.ip.ttl])]);

  if (b.flow !== undefined) out.push([FIELD.FLOW_MAPPING, flowMappingValue(b.flow)]);
  return out;
}

function metaFields(migrationId: bigint, createdAtMs: number): Array<[number, Buffer]> {
  const id = Buffer.alloc(8);
  id.writeBigUInt64BE(migrationId);
  const at = Buffer.alloc(8);
  at.writeBigUInt64BE(BigInt(createdAtMs));
  return [
    [FIELD.MIGRATION_ID, id],
    [FIELD.CREATED_AT, at],
  ];
}

function flowMappingValue(f: FlowMapping): Buffer {
  const m = endpoints([f.client, f.vip], 4 + addressBytes(familyOf(f.lb)));
  m.buf.writeUInt32BE(f.flowId, 0);
  writeEndpoint(m.buf, writeEndpoint(m.buf, writeAddress(m.buf, 4, f.lb), f.client), f.vip);
  return m.buf;
}

/**
 * Frames raw fields into a blob: header, fields in the given order, CRC.
 * Exported for tests and for writers of fields this version does not know
 * (what a newer writer would produce); everyone else calls encodeStateBlob.
 */
export function frameFields(fields: ReadonlyArray<readonly [number, Uint8Array]>, version = BLOB_VERSION): Buffer {
  const total = fields.reduce((n, [, v]) => n + FIELD_HEADER_BYTES + v.length, HEADER_BYTES);
  if (total > MAX_BLOB_BYTES) {
    throw new BlobError(
      'oversized',
      `a state blob of ${total} bytes exceeds the ${MAX_BLOB_BYTES}-byte maximum; this socket cannot be moved, serve it where it is`,
    );
  }
  const out = Buffer.alloc(total);
  BLOB_MAGIC.copy(out, HEADER.magic);
  out.writeUInt16BE(version, HEADER.version);
  out.writeUInt16BE(HEADER_BYTES, HEADER.headerLength);
  out.writeUInt32BE(total, HEADER.totalLength);
  let off = HEADER_BYTES;
  for (const [type, value] of fields) {
    out.writeUInt16BE(type, off);
    out.writeUInt32BE(value.length, off + 2);
    out.set(value, off + FIELD_HEADER_BYTES);
    off += FIELD_HEADER_BYTES + value.length;
  }
  sealBlob(out);
  return out;
}

/** Encodes a state for the wire. Throws BlobError ('bad_field', 'oversized') for a state no reader would accept. */
export function encodeStateBlob(blob: StateBlob): Buffer {
  checkBlob(blob);
  return frameFields(fieldsOf(blob));
}

/** Encodes a reservation (FLOW_RESERVATION): the flow-id mapping ahead of its state. Throws BlobError ('bad_field'). */
export function encodeFlowReservation(r: FlowReservation): Buffer {
  checkReservation(r);
  return frameFields([
    ...metaFields(r.migrationId, r.createdAtMs),
    [FIELD.FLOW_MAPPING, flowMappingValue(r.flow)],
    [FIELD.FLOW_RESERVATION, Buffer.alloc(0)],
  ]);
}
