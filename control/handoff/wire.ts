/**
 * The local handoff channel's wire format: the one place that says what a
 * frame is. The daemon (control/handoff/server.ts) and the SDK
 * (control/sdk/handoff-channel.ts) both encode and decode through here:
 * this file the header, the replies and the frame reader; wire-requests.ts
 * the request bodies laid out below.
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
 *   12 u8  descriptors that belong to this frame (SPLICE: 2, client then
 *          back end; MIGRATE: 1, the client; replies: 0)
 *   13 u8[3] reserved, zero
 * SPLICE body:
 *   0  u32 quiesce timeout (ms; NO_TIMEOUT: the daemon's default)
 *   4  u32 prefix length (client bytes read and not forwarded; = body length - 8)
 *   8  prefix bytes
 * MIGRATE body (migrate mode: POST /v1/migrations' fields):
 *   0  u32 agent timeout (ms; NO_TIMEOUT: the daemon's default)
 *   4  u8  agent length A (ASCII "ip:port", one of the LB's --agent)
 *   5  u8  app protocol length P (ASCII, 0: none)
 *   6  u16 reserved, zero
 *   8  u32 received length (client bytes the front end read; = body length - 12 - A - P)
 *   12 agent, then app protocol, then received bytes
 * LEG_PORT body (local ports for new back-end connections, whose legs then
 * hold no socket once spliced: control/splice/leg-ports.ts):
 *   0  u8  local address length L (ASCII IP: the source address toward the back end)
 *   1  u8  back end length B (ASCII "ip:port")
 *   2  u16 reserved, zero
 *   4  local address, then back end
 * SPLICED body:  the UTF-8 JSON of the Splice, as POST /v1/splices answers it.
 * LEG_PORT_CHOSEN body: the UTF-8 JSON {"port": n, "ports": [n, ...]}: the
 *                ports leased, `port` the first (a front end may use one).
 * MIGRATED body: the UTF-8 JSON of the Migration, as POST /v1/migrations answers it.
 * ERROR body:    the UTF-8 JSON of the problem document, as the REST route answers it.
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
  /** front end -> daemon: migrate the client socket attached to an agent (migrate mode) */
  MIGRATE: 0x02,
  /** daemon -> front end: the splice was made; body: Splice JSON */
  SPLICED: 0x81,
  /** daemon -> front end: refused or failed; body: problem JSON */
  ERROR: 0x82,
  /** front end -> daemon: a local port of the leg range for a new back-end connection */
  LEG_PORT: 0x03,
  /** daemon -> front end: the connection lives on the back end now; body: Migration JSON */
  MIGRATED: 0x83,
  /** daemon -> front end: the port to bind; body: {"port": n} */
  LEG_PORT_CHOSEN: 0x84,
} as const;
export type FrameType = (typeof FRAME_TYPE)[keyof typeof FRAME_TYPE];
export type ReplyType =
  | typeof FRAME_TYPE.SPLICED
  | typeof FRAME_TYPE.MIGRATED
  | typeof FRAME_TYPE.LEG_PORT_CHOSEN
  | typeof FRAME_TYPE.ERROR;

const REQUEST_TYPES: ReadonlySet<number> = new Set([FRAME_TYPE.SPLICE, FRAME_TYPE.MIGRATE, FRAME_TYPE.LEG_PORT]);
const REPLY_TYPES: ReadonlySet<number> = new Set([
  FRAME_TYPE.SPLICED,
  FRAME_TYPE.MIGRATED,
  FRAME_TYPE.LEG_PORT_CHOSEN,
  FRAME_TYPE.ERROR,
]);

/** Descriptors a SPLICE frame carries: the client socket, then the back-end socket. */
export const SPLICE_FDS = 2;
/** Descriptors a MIGRATE frame carries: the client socket. */
export const MIGRATE_FDS = 1;
/** The fixed part of a SPLICE body, before the prefix. */
export const SPLICE_FIXED_BYTES = 8;
/** The fixed part of a MIGRATE body, before the agent, the app protocol and the received bytes. */
export const MIGRATE_FIXED_BYTES = 12;
/** The fixed part of a LEG_PORT body, before the two addresses. */
export const LEG_PORT_FIXED_BYTES = 4;
/** A timeout field's "not set": the daemon's default applies. */
export const NO_TIMEOUT = 0xffff_ffff;
/** Longest address ("ip" or "ip:port", IPv6 in brackets) a frame carries: a MIGRATE's agent, a LEG_PORT's two. */
export const MAX_ENDPOINT_BYTES = 64;
/** Longest agent address and app protocol of a MIGRATE frame (as POST /v1/migrations accepts them). */
export const MAX_AGENT_BYTES = MAX_ENDPOINT_BYTES;
export const MAX_APP_PROTOCOL_BYTES = 32;

/** What each request type carries: its descriptors and the fixed part of its body. */
const REQUEST_SHAPE: Record<number, { name: string; fds: number; fixed: number }> = {
  [FRAME_TYPE.SPLICE]: { name: 'splice', fds: SPLICE_FDS, fixed: SPLICE_FIXED_BYTES },
  [FRAME_TYPE.MIGRATE]: { name: 'migrate', fds: MIGRATE_FDS, fixed: MIGRATE_FIXED_BYTES },
  [FRAME_TYPE.LEG_PORT]: { name: 'leg port', fds: 0, fixed: LEG_PORT_FIXED_BYTES },
};
/** Descriptors a frame of `type` carries (replies: none). */
export const fdsOf = (type: number): number => REQUEST_SHAPE[type]?.fds ?? 0;
/** A request type's name in messages ("splice", "migrate"). */
export const requestName = (type: number): string => REQUEST_SHAPE[type]?.name ?? `0x${type.toString(16)}`;

/** Largest request body: a MIGRATE's fixed part, longest names and the largest prefix the REST API accepts (a LEG_PORT's is far smaller). */
export const MAX_REQUEST_BODY = MIGRATE_FIXED_BYTES + MAX_AGENT_BYTES + MAX_APP_PROTOCOL_BYTES + MAX_PREFIX_BYTES;
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
  | 'bad_field'
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
  const wantFds = fdsOf(type);
  if (fds !== wantFds)
    throw new WireError(
      'bad_fds',
      `a frame of type 0x${type.toString(16)} carries ${wantFds} descriptors, this one says ${fds}`,
    );
  const fixed = REQUEST_SHAPE[type]?.fixed ?? 0;
  if (bodyLength < fixed)
    throw new WireError(
      'bad_length',
      `a ${requestName(type)} body is at least ${fixed} bytes, this one says ${bodyLength}`,
    );
  return { type: type as FrameType, id, bodyLength, fds };
}

/** A whole frame: the header (its descriptor count the type's) and `body`. */
export function frameOf(type: FrameType, id: number, body: Buffer): Buffer {
  return Buffer.concat([encodeHeader({ type, id, bodyLength: body.length, fds: fdsOf(type) }), body]);
}

/** A reply frame: SPLICED with the Splice, MIGRATED with the Migration, ERROR with the problem document. */
export function encodeReply(type: ReplyType, id: number, doc: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(doc), 'utf8');
  if (body.length > MAX_REPLY_BODY) throw new RangeError(`a reply of ${body.length} bytes is over ${MAX_REPLY_BODY}`);
  return frameOf(type, id, body);
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
