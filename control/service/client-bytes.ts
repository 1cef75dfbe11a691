/**
 * Client bytes a front end read and hands over with a request (a splice's
 * `prefix`, a migration's `received`): standard base64, at most
 * MAX_PREFIX_BYTES. BAD_REQUEST names the field (reasons bad_<field>,
 * <field>_too_large).
 */
import { BatonError } from '../errors.js';
import { MAX_PREFIX_BYTES } from './limits.js';

type Field = 'prefix' | 'received';

export function decodeClientBytes(text: string | undefined, field: Field): Buffer | undefined {
  if (text === undefined || text === '') return undefined;
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text))
    throw new BatonError('BAD_REQUEST', `${field} must be standard base64 (RFC 4648, padded)`, `bad_${field}`);
  return checkedClientBytes(Buffer.from(text, 'base64'), field);
}

/** Client bytes as the local handoff channel carries them (raw), within the same limit; undefined when empty. */
export function checkedClientBytes(bytes: Buffer | undefined, field: Field): Buffer | undefined {
  if (!bytes || bytes.length === 0) return undefined;
  if (bytes.length > MAX_PREFIX_BYTES)
    throw new BatonError(
      'BAD_REQUEST',
      `${field} holds ${bytes.length} bytes; at most ${MAX_PREFIX_BYTES} are accepted`,
      `${field}_too_large`,
    );
  return bytes;
}
