/** `baton lb`'s API listener and its authentication, checked together (config.ts re-exports it). */
import { BatonError } from '../errors.js';
import { DEFAULT_API_SOCKET } from '../sdk/endpoint.js';
import type { DaemonConfig } from './config.js';

/**
 * The API's listener and its authentication must fit: on a unix socket the
 * kernel names every caller (SO_PEERCRED); on TCP only a token can, so a TCP
 * listener without one is refused unless --insecure-no-auth says so.
 */
export function checkApiAuth(cfg: Pick<DaemonConfig, 'api' | 'token' | 'insecureNoAuth' | 'apiGroup'>): void {
  if ('path' in cfg.api) {
    if (cfg.insecureNoAuth) {
      throw new BatonError(
        'CONFIG_INVALID',
        '--insecure-no-auth applies to a TCP --api only; on the unix socket callers are known by their uid: drop it',
        'insecure_on_unix',
      );
    }
    return;
  }
  const where = `${cfg.api.host.includes(':') ? `[${cfg.api.host}]` : cfg.api.host}:${cfg.api.port}`;
  if (cfg.apiGroup !== undefined) {
    throw new BatonError(
      'CONFIG_INVALID',
      `--api-group applies to a unix socket API, but --api is TCP (${where}): drop --api-group, or listen on unix:/run/baton/api.sock`,
      'group_on_tcp',
    );
  }
  if (cfg.token === undefined && !cfg.insecureNoAuth) {
    throw new BatonError(
      'CONFIG_INVALID',
      `the API would listen on TCP ${where} without a token, and anyone who reaches it could take over every connection: set a token (BATON_TOKEN=$(openssl rand -hex 32), or --token), or listen on the unix socket (--api unix:${DEFAULT_API_SOCKET}, the default); for a lab only, --insecure-no-auth`,
      'tcp_without_token',
    );
  }
  if (cfg.token !== undefined && cfg.insecureNoAuth) {
    throw new BatonError(
      'CONFIG_INVALID',
      '--insecure-no-auth and a token contradict each other: drop --insecure-no-auth (the token authenticates TCP callers)',
      'insecure_with_token',
    );
  }
}
