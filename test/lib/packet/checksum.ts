/**
 * The Internet checksum (RFC 1071), the TCP/UDP pseudo-header it covers,
 * and the deliberate corruption fixtures use to make a checksum wrong.
 */
import { Buffer } from 'node:buffer';

/** Folded 16-bit one's complement sum of the concatenation of `parts`. */
export function onesSum(parts: Uint8Array[]): number {
  // Concatenate first so an odd-length part does not shift the byte pairing.
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length & 1) sum += data.readUInt8(data.length - 1) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum (one's complement of the one's complement sum). */
export function internetChecksum(...parts: Uint8Array[]): number {
  return ~onesSum(parts) & 0xffff;
}

export function pseudoHeader(version: 4 | 6, src: Uint8Array, dst: Uint8Array, proto: number, l4len: number): Buffer {
  if (version === 4) {
    const p = Buffer.alloc(12);
    p.set(src, 0);
    p.set(dst, 4);
    p.writeUInt8(proto, 9);
    p.writeUInt16BE(l4len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  p.set(src, 0);
  p.set(dst, 16);
  p.writeUInt32BE(l4len, 32);
  p.writeUInt8(proto, 39);
  return p;
}

/**
 * Flip bits so the value is wrong even under one's complement equivalence
 * (0x0000 == 0xffff) and never becomes 0, which for UDP/IPv4 would mean
 * "no checksum" and pass verification.
 */
export function corruptedChecksum(c: number): number {
  const x = c ^ 0x0101;
  return x === 0 ? c ^ 0x0202 : x;
}
