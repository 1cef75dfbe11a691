/**
 * diffPackets: a field-level diff of two frames (expected vs actual) for
 * fixture failures, with a marked hex dump when the fields do not explain
 * the difference.
 */
import { Buffer } from 'node:buffer';
import { markedHexDump } from './hex.js';
import { parsePacket } from './parse.js';
import type { ParsedPacket } from './parsed.js';
import { describeCheck } from './verify.js';

type Leaf = number | string | boolean | Buffer;

/** Flatten a parse into `path -> value` leaves, in header order. */
function flatten(pkt: ParsedPacket): Map<string, Leaf> {
  const out = new Map<string, Leaf>();
  const walk = (prefix: string, v: unknown): void => {
    if (v === undefined) return;
    if (Buffer.isBuffer(v) || typeof v !== 'object' || v === null) {
      out.set(prefix, v as Leaf);
      return;
    }
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        walk(`${prefix}[${i}]`, x);
      });
      return;
    }
    for (const [k, x] of Object.entries(v)) walk(`${prefix}.${k}`, x);
  };
  walk('eth', pkt.eth);
  walk('ip', pkt.ip);
  walk('tcp', pkt.tcp);
  if (pkt.tcp) out.set('tcp.options.count', pkt.tcp.options.length);
  walk('udp', pkt.udp);
  out.set('payload', pkt.payload);
  out.set('trailer', pkt.trailer);
  for (const c of pkt.checksums) out.set(`valid.${c.layer}`, c.ok ? 'ok' : describeCheck(c));
  if (pkt.errors.length) out.set('errors', pkt.errors.join('; '));
  return out;
}

function showLeaf(v: Leaf | undefined): string {
  if (v === undefined) return '(absent)';
  if (typeof v === 'number') return `${v} (0x${v.toString(16)})`;
  if (Buffer.isBuffer(v)) {
    const shown = v.subarray(0, 32).toString('hex');
    return `${v.length} bytes [${shown}${v.length > 32 ? '…' : ''}]`;
  }
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function sameLeaf(a: Leaf | undefined, b: Leaf | undefined): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a.readUInt8(i) !== b.readUInt8(i)) return i;
  return n;
}

/**
 * Field-level diff of two frames, or null when they are byte-identical.
 * Lines look like `tcp.seq: expected 1000 (0x3e8) got 1001 (0x3e9)`. A marked
 * hex dump is appended when the structure differs (length, layers, option
 * layout, parse errors) or when no decoded field explains the difference.
 */
export function diffPackets(expected: Uint8Array, actual: Uint8Array): string | null {
  const exp = Buffer.from(expected);
  const act = Buffer.from(actual);
  if (exp.equals(act)) return null;
  const pe = parsePacket(exp);
  const pa = parsePacket(act);
  const fe = flatten(pe);
  const fa = flatten(pa);
  const lines: string[] = [];
  const keys = [...fe.keys(), ...[...fa.keys()].filter((k) => !fe.has(k))];
  // A layer missing on one side is one line, not one line per field.
  const missing = new Set<string>();
  for (const layer of ['eth', 'ip', 'tcp', 'udp'] as const) {
    if ((pe[layer] === undefined) === (pa[layer] === undefined)) continue;
    missing.add(layer);
    lines.push(`${layer}: expected ${pe[layer] ? 'present' : '(absent)'} got ${pa[layer] ? 'present' : '(absent)'}`);
  }
  for (const k of keys) {
    if (missing.has(k.split(/[.[]/)[0] ?? '')) continue;
    const a = fe.get(k);
    const b = fa.get(k);
    if (sameLeaf(a, b)) continue;
    let line = `${k}: expected ${showLeaf(a)} got ${showLeaf(b)}`;
    if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) line += ` (first difference at offset ${firstDiff(a, b)})`;
    lines.push(line);
  }
  const sameShape = keys.every((k) => fe.has(k) && fa.has(k));
  const structural =
    exp.length !== act.length || !sameShape || pe.errors.length > 0 || pa.errors.length > 0 || lines.length === 0;
  const out = ['packets differ:', ...lines.map((l) => `  ${l}`)];
  if (structural) out.push(markedHexDump(exp, act));
  return out.join('\n');
}
