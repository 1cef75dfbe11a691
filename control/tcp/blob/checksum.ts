/** The blob's CRC-32C: every byte of the blob except the 4-byte CRC field itself. */
import { crc32c } from '../crc32c.js';
import { HEADER } from './format.js';

export function blobChecksum(blob: Uint8Array): number {
  return crc32c(blob.subarray(HEADER.crc + 4), crc32c(blob.subarray(0, HEADER.crc)));
}

/** (Re)writes the CRC field of a complete blob in place. */
export function sealBlob(blob: Buffer): void {
  blob.writeUInt32BE(blobChecksum(blob), HEADER.crc);
}
