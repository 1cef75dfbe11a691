/**
 * IP and MAC addresses as text and as header bytes. IP addresses have one
 * implementation, the control plane's (control/net/addr.ts); this module
 * only gives it the names and offset-taking forms the fixtures use.
 */
import { Buffer } from 'node:buffer';
import { bytesToIp, ipv4Bytes, ipv6Bytes } from '../../../control/net/addr.js';

export const ipv4ToBytes = ipv4Bytes;
export const ipv6ToBytes = ipv6Bytes;

export function bytesToIpv4(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 4) throw new Error('bytesToIpv4: need 4 bytes');
  return bytesToIp(bytes.subarray(offset, offset + 4), 4);
}

/** RFC 5952 canonical text: lowercase, longest run (>= 2) of zero groups compressed. */
export function bytesToIpv6(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 16) throw new Error('bytesToIpv6: need 16 bytes');
  return bytesToIp(bytes.subarray(offset, offset + 16), 6);
}

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`invalid MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 6) throw new Error('bytesToMac: need 6 bytes');
  return Array.from(bytes.subarray(offset, offset + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}
