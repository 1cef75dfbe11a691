/**
 * Authentication of an LB on the agent's blob channel: an HMAC-SHA256
 * challenge/response with a shared secret (--peer-secret-file on both
 * hosts). The secret never crosses the wire; a recorded exchange cannot be
 * replayed because every connection gets a fresh 32-byte nonce from the
 * agent, and the LB's answer binds that nonce and the protocol label.
 *
 *   agent -> LB   CHALLENGE: "BTAC" | u16 version | nonce (32 bytes)        38 bytes
 *   LB -> agent   RESPONSE:  "BTAR" | u16 version | HMAC(secret, label|nonce) 38 bytes
 *   agent -> LB   VERDICT:   "BTAV" | u8 1 (accepted) or 0 (refused)         5 bytes
 *
 * After an accepted VERDICT the LB sends state blobs back to back (the blob
 * framing of control/tcp/blob) and the agent answers each with a reply
 * (reply.ts). A refused LB gets VERDICT 0 and the connection is closed.
 * Pure functions only: the sockets are in channel.ts and agent-client.ts.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { BatonError } from '../errors.js';

export const HANDSHAKE_VERSION = 1;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
const LABEL = Buffer.from('baton-agent-channel-v1\0', 'latin1');
const CHALLENGE_MAGIC = Buffer.from('BTAC', 'latin1');
const RESPONSE_MAGIC = Buffer.from('BTAR', 'latin1');
const VERDICT_MAGIC = Buffer.from('BTAV', 'latin1');
export const CHALLENGE_BYTES = 4 + 2 + NONCE_BYTES;
export const RESPONSE_BYTES = 4 + 2 + MAC_BYTES;
export const VERDICT_BYTES = 5;
/** A secret shorter than this is refused at start-up: it could be guessed offline from one exchange. */
export const MIN_SECRET_BYTES = 16;

export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function encodeChallenge(nonce: Buffer): Buffer {
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  const b = Buffer.alloc(CHALLENGE_BYTES);
  CHALLENGE_MAGIC.copy(b, 0);
  b.writeUInt16BE(HANDSHAKE_VERSION, 4);
  nonce.copy(b, 6);
  return b;
}

function checkHead(b: Buffer, magic: Buffer, size: number, what: string): void {
  if (b.length !== size) throw new HandshakeError(`${what} must be ${size} bytes, got ${b.length}`);
  if (!b.subarray(0, 4).equals(magic))
    throw new HandshakeError(`${what} has the wrong magic: the peer does not speak baton's agent channel`);
  const v = b.readUInt16BE(4);
  if (v !== HANDSHAKE_VERSION)
    throw new HandshakeError(`${what} is version ${v}; this baton speaks version ${HANDSHAKE_VERSION}`);
}

export function decodeChallenge(b: Buffer): Buffer {
  checkHead(b, CHALLENGE_MAGIC, CHALLENGE_BYTES, 'challenge');
  return Buffer.from(b.subarray(6));
}

export function mac(secret: Buffer, nonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(LABEL).update(nonce).digest();
}

export function encodeResponse(secret: Buffer, nonce: Buffer): Buffer {
  const b = Buffer.alloc(RESPONSE_BYTES);
  RESPONSE_MAGIC.copy(b, 0);
  b.writeUInt16BE(HANDSHAKE_VERSION, 4);
  mac(secret, nonce).copy(b, 6);
  return b;
}

/** True when `response` proves knowledge of `secret` for this `nonce` (constant-time compare); throws HandshakeError when it is malformed. */
export function verifyResponse(secret: Buffer, nonce: Buffer, response: Buffer): boolean {
  checkHead(response, RESPONSE_MAGIC, RESPONSE_BYTES, 'response');
  return timingSafeEqual(response.subarray(6), mac(secret, nonce));
}

export function encodeVerdict(accepted: boolean): Buffer {
  const b = Buffer.alloc(VERDICT_BYTES);
  VERDICT_MAGIC.copy(b, 0);
  b.writeUInt8(accepted ? 1 : 0, 4);
  return b;
}

export function decodeVerdict(b: Buffer): boolean {
  if (b.length !== VERDICT_BYTES || !b.subarray(0, 4).equals(VERDICT_MAGIC))
    throw new HandshakeError('malformed verdict');
  const v = b.readUInt8(4);
  if (v > 1) throw new HandshakeError(`unknown verdict ${v}`);
  return v === 1;
}

/**
 * The secret from a file's contents: surrounding whitespace trimmed (files
 * end with a newline), at least MIN_SECRET_BYTES bytes.
 */
export function parseSecret(text: Buffer, path: string): Buffer {
  const s = Buffer.from(text.toString('utf8').trim(), 'utf8');
  if (s.length < MIN_SECRET_BYTES)
    throw new HandshakeError(
      `the peer secret in ${path} is ${s.length} bytes; use at least ${MIN_SECRET_BYTES} (e.g. openssl rand -hex 32 > ${path})`,
    );
  return s;
}

/**
 * The shared secret of an LB and its agents, from its file (`baton agent
 * --peer-secret-file`, `baton lb --agent-secret-file`): the file must be
 * readable by its owner only, because whoever holds the secret can deliver
 * live connections into the back end's apps. CONFIG_INVALID otherwise.
 */
export function readSecretFile(path: string, flag: string): Buffer {
  try {
    if ((statSync(path).mode & 0o077) !== 0)
      throw new BatonError(
        'CONFIG_INVALID',
        `the peer secret ${path} (${flag}) is open to group or others; chmod 600 ${path} (and chown it to the daemon's user)`,
        'secret_exposed',
      );
    return parseSecret(readFileSync(path), path);
  } catch (e) {
    if (e instanceof BatonError) throw e;
    if (e instanceof HandshakeError) throw new BatonError('CONFIG_INVALID', e.message, 'weak_secret');
    throw new BatonError(
      'CONFIG_INVALID',
      `cannot read the peer secret ${path} (${flag}): ${(e as Error).message}`,
      'no_secret',
    );
  }
}
