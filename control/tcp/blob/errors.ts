/**
 * The one error a state blob is refused with. It is a BatonError with the
 * catalogue code BLOB_INVALID (status 400), so the agent's endpoint and the
 * REST layer answer it like any other catalogued error, and `reason` says
 * which check failed (stable: what scripts and metrics match on).
 */
import { BatonError } from '../../errors.js';

export const BLOB_REFUSAL_REASONS = [
  /** Fewer bytes than the header or the declared total length. */
  'truncated',
  /** The first bytes are not "BTSB": not a blob, or a stream out of step. */
  'bad_magic',
  /** A format version this reader does not know. */
  'unsupported_version',
  /** The CRC-32C does not match: corrupted in transit or in storage. */
  'checksum',
  /** Declared or actual size above MAX_BLOB_BYTES, or a field above its bound. */
  'oversized',
  /** Header length or total length inconsistent, or bytes after the blob. */
  'bad_header',
  /** A required field is absent. */
  'missing_field',
  /** A known field with a wrong length, an out-of-range value, a duplicate, or a state that contradicts itself. */
  'bad_field',
  /** An unknown field marked critical: the writer says this reader cannot restore the blob correctly. */
  'unsupported_field',
] as const;

export type BlobRefusalReason = (typeof BLOB_REFUSAL_REASONS)[number];

export class BlobError extends BatonError {
  declare readonly reason: BlobRefusalReason;
  constructor(reason: BlobRefusalReason, message: string) {
    super('BLOB_INVALID', message, reason);
  }
}
