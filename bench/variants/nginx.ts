/**
 * nginx (the Debian package) in the LB namespace as a reverse proxy:
 * proxy_pass to an upstream with a keep-alive pool, so back-end connections
 * are reused across client connections, the way it is deployed in front of
 * HTTP servers. Response buffering stays at its default (on).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Testbed, VIP4 } from '../../lab/testbed/index.js';
import { BACKEND_PORT } from '../profile.js';
import { PROXY_WORKERS, VARIANT_PORTS, type Variant, waitForHttp } from './variant.js';

/** Idle upstream connections each worker keeps (above the load's concurrency). */
const UPSTREAM_KEEPALIVE = 64;

export async function startNginxProxy(tb: Testbed): Promise<Variant> {
  const port = VARIANT_PORTS.nginx;
  const backend = `${tb.node('backend1').v4}:${BACKEND_PORT}`;
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-nginx-proxy-'));
  // Workers run unprivileged (nobody) and buffer large responses to files here.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'tmp'));
  chmodSync(join(dir, 'tmp'), 0o777);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes ${PROXY_WORKERS};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  upstream be {
    server ${backend};
    keepalive ${UPSTREAM_KEEPALIVE};
    keepalive_requests 100000;
  }
  server {
    listen ${VIP4}:${port} reuseport;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const proc = tb.spawn('lb', 'nginx', ['-c', conf, '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  const url = (path: string) => `http://${VIP4}:${port}${path}`;
  await waitForHttp(tb, url('/k1.bin'), 'nginx proxy', proc);
  return {
    id: 'nginx',
    title: 'nginx proxy_pass',
    describe: `nginx proxy_pass, ${PROXY_WORKERS} workers, upstream keepalive ${UPSTREAM_KEEPALIVE}, HTTP/1.1 to the back end, buffering on (default)`,
    url,
    async stop() {
      proc.kill('SIGTERM');
      await sleep(50);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
