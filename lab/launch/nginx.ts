/** A real nginx back end inside a testbed namespace, with its own config and content. */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Testbed } from '../testbed/index.js';

export interface NginxBackend {
  dir: string;
  url(path: string): string;
  /** SHA-256 of each file served, by path. */
  sha256: Record<string, string>;
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** Connections the worker may hold at once (default 1024); benchmarks that keep thousands open raise it. */
  workerConnections?: number;
}

/** Files: name -> size in bytes (random content) or a string. */
export async function startNginx(
  tb: Testbed,
  node: string,
  port: number,
  files: Record<string, number | string>,
  opts: NginxOptions = {},
): Promise<NginxBackend> {
  const workerConnections = opts.workerConnections ?? 1024;
  const dir = mkdtempSync(join(tmpdir(), `baton-nginx-${node}-`));
  chmodSync(dir, 0o755); // nginx workers run unprivileged and must read the content
  const www = join(dir, 'www');
  mkdirSync(www, { mode: 0o755 });
  const sha256: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    const data = typeof content === 'number' ? randomBytes(content) : Buffer.from(content);
    writeFileSync(join(www, name), data);
    sha256[`/${name}`] = createHash('sha256').update(data).digest('hex');
  }
  const ip = tb.node(node).v4;
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;${opts.workerConnections ? `\nworker_rlimit_nofile ${2 * workerConnections + 64};` : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections ${workerConnections}; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  default_type application/octet-stream;
  server {
    listen ${ip}:${port} reuseport;
    listen [${tb.node(node).v6}]:${port} reuseport;
    root ${www};
    add_header X-Backend ${node};
  }
}
`,
  );
  mkdirSync(join(dir, 'tmp'));
  const proc = tb.spawn(node, 'nginx', ['-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    stdio: 'ignore',
  });
  // Ready when it answers.
  for (let i = 0; i < 100; i++) {
    const r = await tb.exec(
      node,
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', `http://${ip}:${port}/`],
      { check: false },
    );
    if (r.code === 0) break;
    await sleep(50);
  }
  return {
    dir,
    url: (path) => `http://${ip}:${port}${path}`,
    sha256,
    async stop() {
      proc.kill('SIGTERM');
      await sleep(50);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
