/**
 * Bearer-token authentication. The comparison is constant-time: both sides
 * are hashed to a fixed length first, so neither the content nor the length
 * of the configured token leaks through response timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BatonError } from '../errors.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** A checker for `Authorization` headers against `token`. */
export function bearerChecker(token: string): (header: string | undefined) => void {
  if (token.length === 0)
    throw new BatonError(
      'CONFIG_INVALID',
      'the API token must not be empty; leave it unset to disable authentication',
      'empty_token',
    );
  const expected = digest(token);
  return (header) => {
    if (header === undefined) {
      throw new BatonError(
        'UNAUTHORIZED',
        'this baton requires a bearer token: send "Authorization: Bearer <token>" (the token is in the daemon\'s configuration, BATON_TOKEN)',
        'missing_token',
      );
    }
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m || !timingSafeEqual(digest(m[1] as string), expected)) {
      throw new BatonError(
        'UNAUTHORIZED',
        'the bearer token is wrong: send "Authorization: Bearer <token>" with the daemon\'s token',
        'bad_token',
      );
    }
  };
}
