/** Hex text for diagnostics: 16-bit fields, plain dumps, and dumps marking where two frames differ. */
import type { Buffer } from 'node:buffer';

export function hex16(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Plain 16-bytes-per-line hex dump. */
export function hexDump(buf: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < buf.length; off += 16) {
    const row = Array.from(buf.subarray(off, off + 16), (x) => x.toString(16).padStart(2, '0')).join(' ');
    lines.push(`${off.toString(16).padStart(4, '0')}  ${row}`);
  }
  return lines.join('\n');
}

/** Rows that differ, expected over actual, with a ^^ marker under each differing byte. */
export function markedHexDump(exp: Buffer, act: Buffer): string {
  const byte = (b: Buffer, i: number): string => (i < b.length ? b.readUInt8(i).toString(16).padStart(2, '0') : '--');
  const lines = [`hex dump (rows that differ; expected ${exp.length} bytes, actual ${act.length} bytes, -- = absent):`];
  const len = Math.max(exp.length, act.length);
  for (let off = 0; off < len; off += 16) {
    const idx = Array.from({ length: Math.min(16, len - off) }, (_, k) => off + k);
    const diffs = idx.map((i) => byte(exp, i) !== byte(act, i));
    if (!diffs.includes(true)) continue;
    const o = off.toString(16).padStart(4, '0');
    lines.push(`  ${o} expected ${idx.map((i) => byte(exp, i)).join(' ')}`);
    lines.push(`  ${o} actual   ${idx.map((i) => byte(act, i)).join(' ')}`);
    lines.push(`  ${' '.repeat(o.length)}          ${diffs.map((d) => (d ? '^^' : '  ')).join(' ')}`.trimEnd());
  }
  return lines.join('\n');
}
