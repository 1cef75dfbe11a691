/**
 * A real redis-server for the store tests: on 127.0.0.1 at a free port, its
 * own temp dir, no persistence (--save '' --appendonly no), the default user
 * off and two ACL users: `baton` with only what the store needs, on keys
 * under its prefix (what an operator would grant), and `admin` for the test
 * itself (CLIENT KILL, FLUSHALL). Optionally TLS only, with a self-signed
 * certificate made by openssl. Killed on stop() and on every exit path of the
 * test process.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BATON_USER = 'baton';
export const BATON_PASSWORD = 'store-test-pw';
export const ADMIN_USER = 'admin';
export const ADMIN_PASSWORD = 'store-admin-pw';
/** The store's grants, as the RedisStore permission_denied message tells an operator. */
export const BATON_GRANTS = '+@read +@write +@stream +@sortedset +@hash +@scripting +@connection +time';

export interface RedisServer {
  port: number;
  dir: string;
  /** rediss: the certificate file (its own CA) */
  caFile?: string;
  url(options?: { user?: string; password?: string; prefix?: string }): string;
  stop(): Promise<void>;
}

export function haveRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const p of live) p.kill('SIGKILL');
    process.exit(130);
  });
}

/** A redis-server of the tests' own; `port` restarts one where a stopped one was. */
export async function startRedis(options: { prefix: string; tls?: boolean; port?: number }): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-'));
  let caFile: string | undefined;
  const port = options.port ?? (await freePort());
  const conf = [
    'bind 127.0.0.1',
    `dir ${dir}`,
    'save ""',
    'appendonly no',
    'logfile ""',
    'user default off',
    `user ${ADMIN_USER} on >${ADMIN_PASSWORD} ~* &* +@all`,
    `user ${BATON_USER} on >${BATON_PASSWORD} ~${options.prefix}* resetchannels -@all ${BATON_GRANTS}`,
  ];
  if (options.tls) {
    caFile = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        caFile,
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    conf.push(
      'port 0',
      `tls-port ${port}`,
      `tls-cert-file ${caFile}`,
      `tls-key-file ${key}`,
      `tls-ca-cert-file ${caFile}`,
      'tls-auth-clients no',
    );
  } else {
    conf.push(`port ${port}`);
  }
  writeFileSync(join(dir, 'redis.conf'), `${conf.join('\n')}\n`);
  const proc = spawn('redis-server', [join(dir, 'redis.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let log = '';
  const cleanup = () => {
    live.delete(proc);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not get ready in 10 s:\n${log}`)), 10_000);
      const onData = (b: Buffer) => {
        log += b.toString();
        if (log.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}) before it was ready:\n${log}`));
      });
    });
  } catch (err) {
    proc.kill('SIGKILL');
    cleanup();
    throw err;
  }
  const scheme = options.tls ? 'rediss' : 'redis';
  return {
    port,
    dir,
    ...(caFile && { caFile }),
    url(o = {}) {
      const q = new URLSearchParams({ prefix: o.prefix ?? options.prefix });
      if (caFile) q.set('ca', caFile);
      const cred = `${encodeURIComponent(o.user ?? BATON_USER)}:${encodeURIComponent(o.password ?? BATON_PASSWORD)}@`;
      return `${scheme}://${cred}127.0.0.1:${port}/0?${q}`;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      cleanup();
    },
  };
}
