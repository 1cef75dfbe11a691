/** verifyChecksums: whether a frame's IPv4 and TCP/UDP checksums are right, and if not, what is wrong. */
import { hex16 } from './hex.js';
import { parsePacket } from './parse.js';
import type { ChecksumCheck } from './parsed.js';

/** One line for a checksum that failed or could not be checked. */
export function describeCheck(c: ChecksumCheck): string {
  if (c.expected === undefined) return `${c.layer} checksum cannot be verified: ${c.note ?? 'unknown reason'}`;
  const msg = `${c.layer} checksum 0x${hex16(c.found ?? 0)} is wrong, expected 0x${hex16(c.expected)}`;
  return c.note ? `${msg} (${c.note})` : msg;
}

/**
 * Check the IPv4 header checksum and the TCP/UDP checksum. A checksum that
 * cannot be checked (truncated frame, unknown header extent) counts as an
 * error, and so does a frame with no IP layer at all.
 */
export function verifyChecksums(frame: Uint8Array): { ok: boolean; errors: string[] } {
  const pkt = parsePacket(frame);
  const errors = pkt.checksums.filter((c) => !c.ok).map(describeCheck);
  if (!pkt.ip || pkt.checksums.length === 0) {
    // Parsing stopped before any checksum could be located; say why.
    errors.push(...pkt.errors.map((e) => `cannot verify checksums: ${e}`));
  }
  return { ok: errors.length === 0 && pkt.ip !== undefined, errors };
}
