/**
 * `baton agent` as a command: --help, refusals of a bad configuration or an
 * exposed/weak secret (exit 2, CONFIG_INVALID), and a start on loopback that
 * answers /healthz and /readyz and stops on SIGTERM. No namespaces.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { connectAgent } from '../../control/sdk/agent.js';
import { NODE_CLI } from '../../lab/launch/baton-cli.js';
import { baton } from './baton-proc.js';

const execFileP = promisify(execFile);

/** An app client in plain Node (no SDK: it only registers): for each VIP given, prints the agent's reply (u32 length + JSON). */
const REGISTER_JS = `
const net = require('node:net');
const [path, ...vips] = process.argv.slice(1);
const s = net.connect(path);
let buf = Buffer.alloc(0);
const want = vips.length;
let got = 0;
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
    const n = buf.readUInt32BE(0);
    console.log(buf.subarray(4, 4 + n).toString());
    buf = buf.subarray(4 + n);
    if (++got === want) s.end();
  }
});
for (const vip of vips) {
  const b = Buffer.from(JSON.stringify({ type: 'register', vip }));
  const h = Buffer.alloc(4);
  h.writeUInt32BE(b.length);
  s.write(Buffer.concat([h, b]));
}
`;

const dir = mkdtempSync(join(tmpdir(), 'baton-agent-cli-'));
const secret = join(dir, 'peer.secret');
writeFileSync(secret, 'a shared secret of enough bytes\n', { mode: 0o600 });

describe('baton agent', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--help lists every flag and the app rule', async () => {
    const r = await baton(['agent', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const f of [
      '--listen',
      '--peer-secret-file',
      '--app-socket',
      '--metrics',
      '--app',
      '--transparent',
      '--config',
    ])
      assert.ok(r.stdout.includes(f), `${f} in help`);
    assert.match(r.stdout, /root may register for any VIP/);
    assert.match(r.stdout, /baton doctor --role agent/);
    assert.match(r.stdout, /remove everything with baton agent down/);
  });

  test('agent down --help names the settings it reads; a bad flag is a usage error', async () => {
    const r = await baton(['agent', 'down', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: baton agent down /);
    for (const f of ['--pin-dir (BATON_AGENT_PIN_DIR; default /sys/fs/bpf/baton-agent)', '--app-socket', '--config'])
      assert.ok(r.stdout.includes(f), `${f} in help`);
    const bad = await baton(['agent', 'down', '--no-such-flag']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /CONFIG_INVALID/);
  });

  test('refuses to start without a secret, with a weak one, or with one others can read', async () => {
    const none = await baton(['agent']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no --peer-secret-file[\s\S]*CONFIG_INVALID/);
    const weak = join(dir, 'weak.secret');
    writeFileSync(weak, 'short\n', { mode: 0o600 });
    const w = await baton(['agent', '--peer-secret-file', weak]);
    assert.equal(w.code, 2);
    assert.match(w.stderr, /use at least 16/);
    const open = join(dir, 'open.secret');
    writeFileSync(open, 'a shared secret of enough bytes\n');
    chmodSync(open, 0o644);
    const o = await baton(['agent', '--peer-secret-file', open]);
    assert.equal(o.code, 2);
    assert.match(o.stderr, /open to group or others; chmod 600/);
  });

  test('starts on loopback, answers /healthz and /readyz, stops on SIGTERM', async () => {
    const child = spawn(
      NODE_CLI[0] as string,
      [
        ...NODE_CLI.slice(1),
        'agent',
        '--peer-secret-file',
        secret,
        '--listen',
        '127.0.0.1:0',
        '--metrics',
        '127.0.0.1:0',
        '--app-socket',
        join(dir, 'agent.sock'),
        '--app',
        '198.19.0.1:80=65534',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    const started = new Promise<{ port: number }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no agent_started: ${log}`)), 20_000);
      child.stderr?.on('data', (d: Buffer) => {
        log += d.toString();
        const line = log.split('\n').find((l) => l.includes('agent_started'));
        if (line) {
          clearTimeout(t);
          resolve(JSON.parse(line).metrics);
        }
      });
    });
    try {
      const { port } = await started;
      const h = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(h.status, 200);
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { ready: true, apps: [] });
      const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(m, /baton_agent_migrations_total\{outcome="restored"\} 0/);

      // SO_PEERCRED rule: uid 65534 (setpriv) may register only the VIP --app names it under; root any.
      chmodSync(dir, 0o755);
      const asNobody = await execFileP(
        'setpriv',
        [
          '--reuid',
          '65534',
          '--regid',
          '65534',
          '--clear-groups',
          process.execPath,
          '-e',
          REGISTER_JS,
          join(dir, 'agent.sock'),
          '198.19.0.1:80',
          '198.19.0.1:81',
        ],
        { timeout: 10_000 },
      );
      const [ok, refused] = asNobody.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.deepEqual(ok, { type: 'registered', vip: '198.19.0.1:80' });
      assert.equal(refused.type, 'refused');
      assert.equal(refused.code, 'forbidden');
      assert.match(refused.reason, /uid 65534 may not serve 198\.19\.0\.1:81/);
      const sdk = await connectAgent({ socketPath: join(dir, 'agent.sock') });
      await sdk.attach(new EventEmitter(), { vip: '198.19.0.1:81' });
      await sdk.close();
      assert.match(log, /"app_forbidden".*"uid":65534/);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, log);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
