/**
 * The local handoff channel's wire format: the one place that says what a
 * frame is. The daemon (control/handoff/server.ts) and the SDK
 * (control/sdk/handoff-channel.ts) both encode and decode through here.
 *
 * A unix stream socket next to the API socket carries frames; a splice
 * request carries the front end's two sockets as SCM_RIGHTS descriptors,
 * sent with the first byte of the sendmsg that holds the frame (or of an
 * earlier one), so the receiver takes them from its queue in frame order.
 *
 * Every frame: a 16-byte header, then `bodyLength` bytes (little endian).
 *   0  u16 magic 0xBA70
 *   2  u8  version (1)
 *   3  u8  type (FRAME_TYPE)
 *   4  u32 request id (the front end's; a reply repeats it; 0: about the connection)
 *   8  u32 body length
 *   12 u8  descriptors that belong to this frame (SPLICE: 2, client then back end; replies: 0)
 *   13 u8[3] reserved, zero
 * SPLICE body:
 *   0  u32 quiesce timeout (ms; NO_QUIESCE_TIMEOUT: the daemon's default)
 *   4  u32 prefix length (client bytes read and not forwarded; = body length - 8)
 *   8  prefix bytes
 * SPLICED body: the UTF-8 JSON of the Splice, as POST /v1/splices answers it.
 * ERROR body:   the UTF-8 JSON of the problem document, as the REST route answers it.
 * Replies are JSON inside binary frames: they are the REST contract's own
 * documents, so both paths give a front end exactly the same result.
 *
 * Every function here is pure. Malformed input is a WireError with a stable
 * reason; a malformed frame ends the connection (its boundaries cannot be
 * trusted any more), a well-formed request with a bad value is answered.
 */
import { MAX_PREFIX_BYTES } from '../service/limits.js';

export const HANDOFF_MAGIC = 0xba70;
export const HANDOFF_VERSION = 1;
export const HEADER_BYTES = 16;

export const FRAME_TYPE = {
  /** front end -> daemon: splice the two descriptors attached */
  SPLICE: 0x01,
  /** daemon -> front end: the splice was made; body: Splice JSON */
  SPLICED: 0x81,
  /** daemon -> front end: refused or failed; body: problem JSON */
  ERROR: 0x82,
} as const;
export type FrameType = (typeof FRAME_TYPE)[keyof typeof FRAME_TYPE];

const REQUEST_TYPES: ReadonlySet<number> = new Set([FRAME_TYPE.SPLICE]);
const REPLY_TYPES: ReadonlySet<number> = new Set([FRAME_TYPE.SPLICED, FRAME_TYPE.ERROR]);

/** Descriptors a SPLICE frame carries: the client socket, then the back-end socket. */
export const SPLICE_FDS = 2;
/** The fixed part of a SPLICE body, before the prefix. */
export const SPLICE_FIXED_BYTES = 8;
/** The quiesce timeout field's "not set": the daemon's default applies. */
export const NO_QUIESCE_TIMEOUT = 0xffff_ffff;
/** Largest request body: the fixed part and the largest prefix the REST API accepts. */
export const MAX_REQUEST_BODY = SPLICE_FIXED_BYTES + MAX_PREFIX_BYTES;
/** Largest reply body (a Splice with every handoff, or a problem, is a few KiB). */
export const MAX_REPLY_BODY = 256 * 1024;
/** Request ids are u32; 0 is kept for errors about the connection itself. */
export const MAX_REQUEST_ID = 0xffff_ffff;
/**
 * Descriptors one sendmsg may carry: the receiver's control buffer holds
 * this many (control/sys/scm-rights.ts MAX_FDS_PER_RECV), so a batch of
 * splices goes out in sendmsg calls of at most this many descriptors.
 */
export const MAX_FDS_PER_MESSAGE = 16;

export type WireReason =
  | 'bad_magic'
  | 'bad_version'
  | 'bad_type'
  | 'bad_reserved'
  | 'bad_fds'
  | 'too_large'
  | 'bad_length'
  | 'bad_json';

export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(
    readonly reason: WireReason,
    message: string,
  ) {
    super(message);
  }
}

export interface FrameHeader {
  type: FrameType;
  id: number;
  bodyLength: number;
  fds: number;
}

export interface Frame extends FrameHeader {
  body: Buffer;
}

/** Which side reads: the daemon reads requests, the front end replies. */
export type Direction = 'request' | 'reply';

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt16LE(HANDOFF_MAGIC, 0);
  b.writeUInt8(HANDOFF_VERSION, 2);
  b.writeUInt8(h.type, 3);
  b.writeUInt32LE(h.id, 4);
  b.writeUInt32LE(h.bodyLength, 8);
  b.writeUInt8(h.fds, 12);
  return b;
}

/** The header at the start of `b` (at least HEADER_BYTES), checked for `dir`; throws WireError. */
export function decodeHeader(b: Buffer, dir: Direction): FrameHeader {
  if (b.length < HEADER_BYTES) throw new RangeError(`a header is ${HEADER_BYTES} bytes, got ${b.length}`);
  const magic = b.readUInt16LE(0);
  if (magic !== HANDOFF_MAGIC)
    throw new WireError(
      'bad_magic',
      `not a baton handoff frame (magic 0x${magic.toString(16)}, expected 0x${HANDOFF_MAGIC.toString(16)})`,
    );
  const version = b.readUInt8(2);
  if (version !== HANDOFF_VERSION)
    throw new WireError(
      'bad_version',
      `handoff frame version ${version}; this side speaks version ${HANDOFF_VERSION} (upgrade the front end's SDK and the daemon together)`,
    );
  const type = b.readUInt8(3);
  const allowed = dir === 'request' ? REQUEST_TYPES : REPLY_TYPES;
  if (!allowed.has(type))
    throw new WireError('bad_type', `frame type 0x${type.toString(16)} is not a handoff ${dir} type`);
  if (b.readUInt8(13) !== 0 || b.readUInt16LE(14) !== 0)
    throw new WireError('bad_reserved', 'the reserved header bytes must be zero');
  const id = b.readUInt32LE(4);
  const bodyLength = b.readUInt32LE(8);
  const fds = b.readUInt8(12);
  const max = dir === 'request' ? MAX_REQUEST_BODY : MAX_REPLY_BODY;
  if (bodyLength > max)
    throw new WireError('too_large', `a frame body of ${bodyLength} bytes; at most ${max} are accepted`);
  const wantFds = type === FRAME_TYPE.SPLICE ? SPLICE_FDS : 0;
  if (fds !== wantFds)
    throw new WireError(
      'bad_fds',
      `a frame of type 0x${type.toString(16)} carries ${wantFds} descriptors, this one says ${fds}`,
    );
  if (type === FRAME_TYPE.SPLICE && bodyLength < SPLICE_FIXED_BYTES)
    throw new WireError(
      'bad_length',
      `a splice body is at least ${SPLICE_FIXED_BYTES} bytes, this one says ${bodyLength}`,
    );
  return { type: type as FrameType, id, bodyLength, fds };
}

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
  const q = r.quiesceTimeoutMs ?? NO_QUIESCE_TIMEOUT;
  if (!Number.isInteger(q) || q < 0 || q > NO_QUIESCE_TIMEOUT)
    throw new RangeError(`quiesce timeout ${q} is not a u32`);
  const body = Buffer.alloc(SPLICE_FIXED_BYTES + prefix.length);
  body.writeUInt32LE(q, 0);
  body.writeUInt32LE(prefix.length, 4);
  prefix.copy(body, SPLICE_FIXED_BYTES);
  return Buffer.concat([
    encodeHeader({ type: FRAME_TYPE.SPLICE, id: r.id, bodyLength: body.length, fds: SPLICE_FDS }),
    body,
  ]);
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
    ...(q === NO_QUIESCE_TIMEOUT ? {} : { quiesceTimeoutMs: q }),
    ...(n > 0 ? { prefix: Buffer.from(body.subarray(SPLICE_FIXED_BYTES)) } : {}),
  };
}

/** A reply frame: SPLICED with the Splice, ERROR with the problem document. */
export function encodeReply(
  type: typeof FRAME_TYPE.SPLICED | typeof FRAME_TYPE.ERROR,
  id: number,
  doc: unknown,
): Buffer {
  const body = Buffer.from(JSON.stringify(doc), 'utf8');
  if (body.length > MAX_REPLY_BODY) throw new RangeError(`a reply of ${body.length} bytes is over ${MAX_REPLY_BODY}`);
  return Buffer.concat([encodeHeader({ type, id, bodyLength: body.length, fds: 0 }), body]);
}

/** A reply frame's JSON document; throws WireError when it is not JSON. */
export function decodeReplyBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new WireError('bad_json', `a reply body that is not JSON: ${(e as Error).message}`);
  }
}

/**
 * Frames out of a byte stream, in order. push() returns every frame
 * completed by the bytes given (a partial one waits for the rest) and
 * throws WireError on the first malformed header: the stream is unusable
 * after that.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private header: FrameHeader | undefined;

  constructor(private readonly dir: Direction) {}

  /** True while part of a frame has arrived and the rest has not (a stream cut here was truncated). */
  get midFrame(): boolean {
    return this.header !== undefined || this.buf.length > 0;
  }

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    for (;;) {
      if (!this.header) {
        if (this.buf.length < HEADER_BYTES) break;
        this.header = decodeHeader(this.buf, this.dir);
        this.buf = this.buf.subarray(HEADER_BYTES);
      }
      const h = this.header;
      if (this.buf.length < h.bodyLength) break;
      out.push({ ...h, body: Buffer.from(this.buf.subarray(0, h.bodyLength)) });
      this.buf = this.buf.subarray(h.bodyLength);
      this.header = undefined;
    }
    return out;
  }
}
