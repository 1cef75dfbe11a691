/**
 * Where the daemon's API and metrics are, and how a user names them:
 * `--api /run/baton/api.sock` (or `unix:/run/baton/api.sock`, the default),
 * `--api http://127.0.0.1:7300` (a TCP listener, which needs the token), or
 * the BATON_API / BATON_TOKEN / BATON_METRICS_URL environment variables.
 */

/** The daemon's default API listener, a unix socket (docs/api.md); the daemon's configuration takes it from here. */
export const DEFAULT_API_SOCKET = '/run/baton/api.sock';
/** The local handoff channel's socket, in the API socket's directory (control/handoff/wire.ts). */
export const HANDOFF_SOCKET_NAME = 'handoff.sock';
/** The same as an API address for --api / BATON_API. */
export const DEFAULT_API = `unix:${DEFAULT_API_SOCKET}`;
/** The daemon's default metrics listener (docs/api.md). */
export const DEFAULT_METRICS_URL = 'http://127.0.0.1:9300/metrics';

export const ENV_API = 'BATON_API';
export const ENV_TOKEN = 'BATON_TOKEN';
export const ENV_METRICS_URL = 'BATON_METRICS_URL';
/** The daemon's own metrics listen setting (host:port or off); read when BATON_METRICS_URL is unset. */
export const ENV_METRICS = 'BATON_METRICS';

export type Endpoint = { url: string; socketPath?: undefined } | { socketPath: string; url?: undefined };

/** "http(s)://host:port[/base]" is a URL; "unix:/path", "/path" or "./path" a unix socket. */
export function parseEndpoint(s: string): Endpoint {
  const v = s.trim();
  if (v.startsWith('unix:')) return { socketPath: v.slice('unix:'.length) };
  if (v.startsWith('/') || v.startsWith('./') || v.startsWith('../')) return { socketPath: v };
  if (/^https?:\/\//i.test(v)) {
    try {
      new URL(v);
    } catch {
      throw new TypeError(
        `not a valid API URL: ${JSON.stringify(s)} (expected e.g. ${DEFAULT_API} or /run/baton/api.sock)`,
      );
    }
    return { url: v.replace(/\/+$/, '') };
  }
  // "127.0.0.1:7300", "[::1]:7300", "localhost:7300": a bare address means http.
  if (/^(\[[^\]]+\]|[A-Za-z0-9.-]+):\d+$/.test(v)) return { url: `http://${v}` };
  throw new TypeError(
    `not an API address: ${JSON.stringify(s)} (expected e.g. ${DEFAULT_API}, 127.0.0.1:7300 or /run/baton/api.sock)`,
  );
}

/** How to show an endpoint in messages. */
export function describeEndpoint(e: Endpoint): string {
  return e.socketPath !== undefined ? `unix socket ${e.socketPath}` : e.url;
}
