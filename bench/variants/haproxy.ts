/**
 * HAProxy (the Debian package) in the LB namespace, one process per
 * variant: mode http (parses every request; keeps server connections alive
 * and reuses them across client connections) or mode tcp with
 * `option splice-auto` (relays bytes, moving them socket to socket with
 * splice(2) when the kernel buffers fill).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Testbed, VIP4 } from '../../lab/testbed/index.js';
import { BACKEND_PORT } from '../profile.js';
import { PROXY_WORKERS, VARIANT_PORTS, type Variant, waitForHttp } from './variant.js';

/** Far above the load's concurrency; HAProxy needs about two descriptors per connection within the testbed's open-file limit. */
const MAXCONN = 4096;

/** `backend`: "ip:port" of the server (default backend1's nginx; the migrate bench names its app). */
export async function startHaproxy(
  tb: Testbed,
  mode: 'http' | 'tcp',
  opts: { backend?: string } = {},
): Promise<Variant> {
  const port = mode === 'http' ? VARIANT_PORTS['haproxy-http'] : VARIANT_PORTS['haproxy-tcp'];
  const backend = opts.backend ?? `${tb.node('backend1').v4}:${BACKEND_PORT}`;
  const dir = mkdtempSync(join(tmpdir(), `baton-bench-haproxy-${mode}-`));
  const cfg = join(dir, 'haproxy.cfg');
  const splice = mode === 'tcp' ? '  option splice-auto\n' : '';
  writeFileSync(
    cfg,
    `global
  nbthread ${PROXY_WORKERS}
  maxconn ${MAXCONN}
  pidfile ${dir}/haproxy.pid

defaults
  mode ${mode}
  timeout connect 5s
  timeout client 30s
  timeout server 30s

frontend fe
  bind ${VIP4}:${port}
${splice}  default_backend be

backend be
${splice}  server b1 ${backend}
`,
  );
  // -db: stay in the foreground (the testbed owns and kills the process).
  const proc = tb.spawn('lb', 'haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = (path: string) => `http://${VIP4}:${port}${path}`;
  const id = mode === 'http' ? 'haproxy-http' : 'haproxy-tcp';
  await waitForHttp(tb, url('/k1.bin'), `haproxy (${mode})`, proc);
  return {
    id,
    title: mode === 'http' ? 'HAProxy http' : 'HAProxy tcp+splice',
    describe:
      mode === 'http'
        ? `haproxy mode http, ${PROXY_WORKERS} threads, server connections kept alive and reused (defaults)`
        : `haproxy mode tcp, option splice-auto, ${PROXY_WORKERS} threads`,
    url,
    async stop() {
      proc.kill('SIGTERM');
      await sleep(50);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
