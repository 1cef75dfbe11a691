/**
 * TCP options: encode a list to the padded options area, decode an area
 * back (reporting malformed lengths instead of throwing), and the
 * badOptionLength corruption that makes a length overrun the header.
 */
import { Buffer } from 'node:buffer';
import { TCP_MAX_OPTIONS, u8, u16, u32wrap } from './layout.js';

export type SackBlock = [left: number, right: number];

export type TcpOption =
  | { kind: 'eol' }
  | { kind: 'nop' }
  | { kind: 'mss'; value: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sackPermitted' }
  | { kind: 'sack'; blocks: SackBlock[] }
  | { kind: 'timestamp'; tsval: number; tsecr: number }
  /** Anything else, or a known kind with a length the decoder does not accept. */
  | { kind: 'raw'; type: number; data: Buffer };

const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERM = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;

function encodeOption(o: TcpOption): number[] {
  const be32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  switch (o.kind) {
    case 'eol':
      return [OPT_EOL];
    case 'nop':
      return [OPT_NOP];
    case 'mss': {
      const v = u16(o.value, 'mss value');
      return [OPT_MSS, 4, v >> 8, v & 0xff];
    }
    case 'wscale':
      return [OPT_WSCALE, 3, u8(o.shift, 'wscale shift')];
    case 'sackPermitted':
      return [OPT_SACK_PERM, 2];
    case 'sack': {
      if (o.blocks.length < 1 || o.blocks.length > 4) {
        throw new Error(`sack option needs 1..4 blocks, got ${o.blocks.length}`);
      }
      const out = [OPT_SACK, 2 + 8 * o.blocks.length];
      for (const [l, r] of o.blocks) out.push(...be32(u32wrap(l, 'sack left')), ...be32(u32wrap(r, 'sack right')));
      return out;
    }
    case 'timestamp':
      return [OPT_TIMESTAMP, 10, ...be32(u32wrap(o.tsval, 'tsval')), ...be32(u32wrap(o.tsecr, 'tsecr'))];
    case 'raw':
      if (o.data.length > 253) throw new Error(`raw option data too long: ${o.data.length} bytes`);
      return [u8(o.type, 'raw option type'), 2 + o.data.length, ...o.data];
  }
}

/**
 * Encode options in the order given, then pad with zero bytes (EOL followed by
 * zeros) to a 4-byte multiple. Real stacks insert NOPs for alignment
 * themselves, so callers wanting Linux-identical bytes list the NOPs explicitly.
 */
export function encodeTcpOptions(options: readonly TcpOption[]): Buffer {
  const bytes = options.flatMap(encodeOption);
  const padded = Buffer.alloc(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  if (padded.length > TCP_MAX_OPTIONS) {
    throw new Error(`TCP options take ${padded.length} bytes after padding, max is ${TCP_MAX_OPTIONS}`);
  }
  return padded;
}

export interface DecodedTcpOptions {
  options: TcpOption[];
  /** Bytes after the last decoded option (alignment padding, or what follows an explicit EOL). */
  padding: Buffer;
  errors: string[];
}

/**
 * Decode an options area. An EOL that only starts the final alignment padding
 * (fewer than 4 bytes, all zero) is reported as padding rather than an option,
 * so `[mss, wscale]` round-trips as written instead of gaining an 'eol'.
 * Known kinds with a wrong length decode as 'raw' (stacks ignore them too).
 */
export function decodeTcpOptions(area: Uint8Array): DecodedTcpOptions {
  const buf = Buffer.from(area);
  const options: TcpOption[] = [];
  const errors: string[] = [];
  let i = 0;
  while (i < buf.length) {
    const kind = buf.readUInt8(i);
    if (kind === OPT_EOL) {
      const rest = buf.subarray(i);
      if (rest.length < 4 && rest.every((x) => x === 0)) return { options, padding: rest, errors };
      options.push({ kind: 'eol' });
      return { options, padding: buf.subarray(i + 1), errors };
    }
    if (kind === OPT_NOP) {
      options.push({ kind: 'nop' });
      i++;
      continue;
    }
    if (i + 1 >= buf.length) {
      errors.push(`tcp.options: option kind ${kind} at offset ${i} has no length byte before the header ends`);
      return { options, padding: buf.subarray(i), errors };
    }
    const len = buf.readUInt8(i + 1);
    if (len < 2) {
      errors.push(`tcp.options: option kind ${kind} at offset ${i} has invalid length ${len} (< 2)`);
      return { options, padding: buf.subarray(i), errors };
    }
    if (i + len > buf.length) {
      errors.push(
        `tcp.options: option kind ${kind} at offset ${i} has length ${len}, running past the end of the ` +
          `${buf.length}-byte options area by ${i + len - buf.length} bytes`,
      );
      return { options, padding: buf.subarray(i), errors };
    }
    options.push(decodeOption(kind, buf.subarray(i + 2, i + len)));
    i += len;
  }
  return { options, padding: Buffer.alloc(0), errors };
}

function decodeOption(kind: number, data: Buffer): TcpOption {
  const n = data.length;
  if (kind === OPT_MSS && n === 2) return { kind: 'mss', value: data.readUInt16BE(0) };
  if (kind === OPT_WSCALE && n === 1) return { kind: 'wscale', shift: data.readUInt8(0) };
  if (kind === OPT_SACK_PERM && n === 0) return { kind: 'sackPermitted' };
  if (kind === OPT_TIMESTAMP && n === 8) {
    return { kind: 'timestamp', tsval: data.readUInt32BE(0), tsecr: data.readUInt32BE(4) };
  }
  if (kind === OPT_SACK && n > 0 && n % 8 === 0 && n <= 32) {
    const blocks: SackBlock[] = [];
    for (let j = 0; j < n; j += 8) blocks.push([data.readUInt32BE(j), data.readUInt32BE(j + 4)]);
    return { kind: 'sack', blocks };
  }
  return { kind: 'raw', type: kind, data: Buffer.from(data) };
}

/**
 * For corrupt.badOptionLength: make the last length-carrying option claim
 * more bytes than remain in the header, the classic parser overrun case.
 */
export function overrunLastOption(opts: Buffer): void {
  let last = -1;
  for (let i = 0; i < opts.length; ) {
    const kind = opts.readUInt8(i);
    if (kind === OPT_EOL || kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= opts.length) break;
    last = i;
    i += Math.max(2, opts.readUInt8(i + 1));
  }
  if (last < 0) throw new Error('corrupt.badOptionLength needs at least one TCP option with a length byte');
  opts.writeUInt8(opts.length - last + 4, last + 1);
}
