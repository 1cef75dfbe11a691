/**
 * The installed `baton` finds its datapath (issue 9: the built CLI looked
 * for dist/build/bpf/xdp_baton.o). `npm pack` the checkout (built by make
 * test's `make all`), install the tarball into a temporary prefix, and from
 * another directory run the installed `baton doctor`, then `baton lb` in a
 * testbed namespace until /healthz answers on its unix socket, then
 * `baton down`.
 *
 * Dependencies: npm install resolves the dependencies' version ranges, for
 * which it needs their registry metadata; npm ci caches only tarballs, so
 * `--offline` fails with ENOTCACHED on a machine that only ran npm ci.
 * `--prefer-offline` takes the tarballs from the cache and the metadata
 * from the registry (reachable wherever npm ci ran).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createClient } from '../../control/sdk/client.js';
import { ROOT, skipUnlessBpf } from '../lib/env.js';
import { canRunPrivileged, createTestbed, starTopology, type Testbed } from '../lib/testbed.js';

const run = promisify(execFile);
const built = ['dist/control/cli.js', 'build/bpf/xdp_baton.o', 'build/bpf/tcp_probe.o'].filter(
  (f) => !existsSync(join(ROOT, f)),
);
const skipBuild = spawnSync('npm', ['--version']).error
  ? 'no npm'
  : built.length
    ? `not built (${built.join(', ')} missing): run make all`
    : false;
const priv = canRunPrivileged();

describe('installed package', { skip: skipBuild, timeout: 120_000 }, () => {
  let tmp: string;
  let bin: string;
  let elsewhere: string;
  let files: string[];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'baton-install-'));
    elsewhere = join(tmp, 'elsewhere');
    mkdirSync(elsewhere);
    // The build is make test's (make all); prepack would build it again.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
      cwd: ROOT,
      maxBuffer: 16 << 20,
    });
    const info = (JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[])[0]!;
    files = info.files.map((f) => f.path);
    const prefix = join(tmp, 'prefix');
    await run(
      'npm',
      [
        'install',
        '--prefix',
        prefix,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        join(tmp, info.filename),
      ],
      { cwd: elsewhere, timeout: 90_000 },
    );
    bin = join(prefix, 'node_modules', '.bin', 'baton');
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('the tarball holds the built CLI, the objects and the deploy files, and no tests', () => {
    for (const f of [
      'dist/control/cli.js',
      'build/bpf/xdp_baton.o',
      'build/bpf/tcp_probe.o',
      'deploy/systemd/baton-lb.service',
      'deploy/lb.example.json',
      'package.json',
    ]) {
      assert.ok(
        files.includes(f),
        `${f} in the package (has: ${files.filter((x) => !x.startsWith('dist/')).join(' ')})`,
      );
    }
    assert.deepEqual(
      files.filter((f) => /^(test|dist\/test|dist\/bench|dist\/scripts|control|bpf)\//.test(f)),
      [],
    );
  });

  test('the installed baton doctor finds the installed objects, from another directory', async () => {
    const r = spawnSync(bin, ['doctor', '--json'], { cwd: elsewhere, encoding: 'utf8', timeout: 60_000 });
    const objects = (JSON.parse(r.stdout) as { checks: { id: string; status: string; detail: string }[] }).checks.find(
      (c) => c.id === 'objects',
    );
    assert.equal(objects?.status, 'ok', objects?.detail ?? r.stderr);
    const installed = join(tmp, 'prefix', 'node_modules', 'baton', 'build', 'bpf');
    assert.ok(
      objects.detail.includes(join(installed, 'xdp_baton.o')) &&
        objects.detail.includes(join(installed, 'tcp_probe.o')),
      objects.detail,
    );
  });

  test('an object that is not there: the error names where it looked and how to fix it', async () => {
    const r = spawnSync(bin, ['doctor', '--json'], {
      cwd: elsewhere,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, BATON_BPF_DIR: join(tmp, 'none') },
    });
    const objects = (
      JSON.parse(r.stdout) as { checks: { id: string; status: string; detail: string; fix?: string }[] }
    ).checks.find((c) => c.id === 'objects');
    assert.equal(objects?.status, 'fail');
    assert.match(objects.detail, new RegExp(`looked at ${join(tmp, 'none', 'xdp_baton.o')}`));
    assert.match(objects.fix ?? '', /make bpf.*--bpf-dir/);
  });

  describe('in a testbed', { skip: skipUnlessBpf || (priv.ok ? false : priv.reason) }, () => {
    let tb: Testbed | undefined;
    after(async () => {
      await tb?.destroy();
    });

    test('the installed baton lb answers /healthz, baton down removes it', async () => {
      tb = await createTestbed(starTopology({ backends: 1 }), { passXdp: (node) => node !== 'lb' });
      const socketPath = join(tmp, 'api.sock');
      const ifaces = tb.node('lb').ifaces.map((i) => i.name);
      const proc = tb.spawn(
        'lb',
        bin,
        [
          'lb',
          ...ifaces.flatMap((i) => ['--interface', i]),
          '--api',
          `unix:${socketPath}`,
          '--metrics',
          'off',
          '--log-level',
          'warn',
        ],
        { bpffs: true, cwd: elsewhere },
      );
      const log: string[] = [];
      proc.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
      proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
      let exited = false;
      proc.once('exit', () => (exited = true));
      const client = createClient({ socketPath, timeoutMs: 1000 });
      try {
        const t0 = Date.now();
        for (;;) {
          assert.ok(!exited, `the installed baton lb exited at start: ${log.join('').slice(-2000)}`);
          assert.ok(Date.now() - t0 < 20_000, `no /healthz within 20 s: ${log.join('').slice(-2000)}`);
          try {
            await client.health();
            break;
          } catch {
            await sleep(100);
          }
        }
      } finally {
        client.close();
      }
      const gone = new Promise((r) => proc.once('exit', r));
      process.kill(-proc.pid!, 'SIGTERM');
      await Promise.race([gone, sleep(15_000)]);
      assert.ok(exited, 'baton lb stopped on SIGTERM');
      const down = await tb.exec('lb', bin, ['down', '--json'], {
        bpffs: true,
        env: { ...process.env, BATON_API: '', BATON_TOKEN: '' },
      });
      const r = JSON.parse(down.stdout) as { detached: number[]; unpinned: string[] };
      assert.equal(r.detached.length, ifaces.length, down.stdout);
      assert.ok(r.unpinned.length > 0, down.stdout);
      assert.deepEqual(
        readdirSync(tb.bpffsPath('lb')).filter((n) => n.startsWith('baton')),
        [],
        'nothing left pinned',
      );
    });
  });
});
