/**
 * Where the Redis store is and what went wrong there: the --store URL
 * (redis://, rediss://, unix://, ACL user and password, ?prefix=, TLS
 * options) parsed and redacted, and the client's and server's errors
 * classified into catalogue errors that say what to do. Pure.
 */
import { BatonError } from '../errors.js';
import { closedError } from './store.js';
// ---------------------------------------------------------------------------
// The URL: pure.

export interface RedisTarget {
  tls: boolean;
  /** TCP host and port, or a unix socket path */
  host?: string;
  port?: number;
  path?: string;
  username?: string;
  password?: string;
  database: number;
  /** rediss: a CA file (PEM) to trust instead of the system's, e.g. for a self-signed server */
  caFile?: string;
  /** rediss: the name the certificate must carry when it is not the host */
  servername?: string;
  prefix: string;
  /** the URL with the password replaced by "***": what messages and logs show */
  redacted: string;
}

const URL_FORMS =
  'redis://[user:password@]host[:port][/db], rediss://... (TLS; ?ca=/path/ca.pem&servername=name), or unix:///path/redis.sock[?db=N]; any of them ?prefix=name:';

function badUrl(url: string, why: string): BatonError {
  return new BatonError(
    'CONFIG_INVALID',
    `--store ${redactUrl(url)}: ${why}; expected ${URL_FORMS}`,
    'store_url_invalid',
  );
}

/** The URL with any password replaced, for messages (also for URLs that do not parse). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z+]+:\/\/[^:/@]*:)[^@/]*@/i, '$1***@');
}

export function parseStoreUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badUrl(url, 'not a URL');
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme !== 'redis' && scheme !== 'rediss' && scheme !== 'unix') throw badUrl(url, `unknown scheme ${scheme}`);
  const known = new Set(['prefix', 'db', 'ca', 'servername']);
  for (const k of u.searchParams.keys()) if (!known.has(k)) throw badUrl(url, `unknown parameter ${k}`);
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw badUrl(url, 'bad percent-encoding in the user or password');
    }
  };
  const username = u.username ? decode(u.username) : undefined;
  const password = u.password ? decode(u.password) : undefined;
  const prefix = u.searchParams.get('prefix') ?? 'baton:';
  if (!/^[\x21-\x7e]{1,64}$/.test(prefix)) throw badUrl(url, 'prefix must be 1-64 printable ASCII characters');
  const dbText = scheme === 'unix' ? (u.searchParams.get('db') ?? '0') : u.pathname.replace(/^\//, '') || '0';
  if (scheme !== 'unix' && u.searchParams.has('db')) throw badUrl(url, 'give the database as the path (/N), not ?db=');
  if (!/^\d{1,2}$/.test(dbText)) throw badUrl(url, `database ${JSON.stringify(dbText)} is not a number 0-99`);
  const tls = scheme === 'rediss';
  if (!tls && (u.searchParams.has('ca') || u.searchParams.has('servername'))) {
    throw badUrl(url, 'ca and servername apply to rediss:// only');
  }
  const target: RedisTarget = {
    tls,
    database: Number(dbText),
    prefix,
    redacted: redactUrl(url),
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
  };
  if (scheme === 'unix') {
    if (!u.pathname.startsWith('/') || u.pathname === '/') throw badUrl(url, 'a unix socket needs an absolute path');
    target.path = decode(u.pathname);
  } else {
    if (!u.hostname) throw badUrl(url, 'no host');
    target.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = u.port ? Number(u.port) : 6379;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw badUrl(url, `port ${u.port} is out of range`);
    target.port = port;
  }
  const ca = u.searchParams.get('ca');
  if (ca !== null) {
    if (!ca.startsWith('/')) throw badUrl(url, 'ca must be an absolute path to a PEM file');
    target.caFile = ca;
  }
  const sn = u.searchParams.get('servername');
  if (sn !== null) target.servername = sn;
  return target;
}

// ---------------------------------------------------------------------------
// Errors: pure classification of what the client or server said.

export function where(t: RedisTarget): string {
  return `the store ${t.redacted}`;
}

/** Turns a client or server error into a catalogue error saying what to do. */
export function storeError(t: RedisTarget, err: unknown, doing: string): BatonError {
  if (err instanceof BatonError) return err;
  const e = err as { code?: string; message?: string; name?: string };
  const msg = String(e?.message ?? err);
  const code = e?.code ?? '';
  const at = where(t);
  const mk = (reason: string, text: string) =>
    new BatonError('STORE_UNAVAILABLE', `${doing}: ${at} ${text}`, reason, { cause: err });
  if (/^(WRONGPASS|NOAUTH)/.test(msg) || /invalid username-password/i.test(msg)) {
    return mk(
      'auth_failed',
      `refused the credentials (${msg.split('\n')[0]}); check the user and password in --store against the server's ACL (ACL LIST), or add user:password@ if it requires one`,
    );
  }
  if (/^NOPERM/.test(msg)) {
    return mk(
      'permission_denied',
      `refused a command or key for this ACL user (${msg.split('\n')[0]}); grant it at least "~${t.prefix}* +@read +@write +@stream +@sortedset +@hash +@scripting +@connection +time" (ACL SETUSER)`,
    );
  }
  if (code === 'ECONNREFUSED') {
    return mk('connection_refused', 'refused the connection; is redis-server running and listening there?');
  }
  if (code === 'ENOENT' && t.path)
    return mk('connection_refused', `has no socket at ${t.path}; is redis-server running?`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return mk('connection_refused', 'names a host that does not resolve');
  if (code.startsWith('ERR_TLS') || /certificate|self[- ]signed|SSL|TLS/i.test(`${code} ${msg}`)) {
    return mk(
      'tls',
      `failed the TLS handshake (${code || msg}); trust the server's CA with ?ca=/path/ca.pem, set ?servername= when the certificate names another host, or use redis:// if the server has no TLS`,
    );
  }
  if (e?.name === 'ConnectionTimeoutError' || e?.name === 'TimeoutError' || /timeout/i.test(msg)) {
    return mk('timeout', 'did not answer in time; check the address, a firewall, or rediss:// vs redis://');
  }
  if (
    e?.name === 'ClientOfflineError' ||
    /client is offline|socket closed unexpectedly/i.test(msg) ||
    e?.name === 'SocketClosedUnexpectedlyError' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE'
  ) {
    return mk(
      'disconnected',
      'is not connected (baton reconnects with backoff); if it keeps failing, check redis-server, or whether it speaks TLS (rediss://)',
    );
  }
  if (e?.name === 'ClientClosedError') return closedError('redis');
  return mk('failed', `answered an error: ${msg}`);
}
