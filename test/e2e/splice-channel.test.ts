/**
 * Splices through the local handoff channel end to end: the real daemon
 * (`baton lb`, its channel beside the API socket by default) and three
 * dispatchers in the LB namespace on one nginx back end:
 *   port 80    the default: the channel (descriptors passed with SCM_RIGHTS);
 *   port 8081  "handoff": "rest" (POST /v1/splices with {pid, fd});
 *   port 8082  the channel configured at a path where nothing listens: REST instead.
 * A 16 MiB download through a channel splice is byte-exact, a spliced
 * keep-alive connection carries requests with nothing left in the
 * dispatcher, and the daemon lists the channel's splices like the others.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { baton } from '../cli/baton-proc.js';
import { type DaemonProc, type DispatcherProc, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lib/testbed.js';

const BIG = 16 * 1024 * 1024;
type Spliced = Extract<DispatchEvent, { event: 'spliced' }>;

describe('splices through the local handoff channel (real daemon, dispatcher, nginx)', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let lb: DaemonProc;
  let nginx: NginxBackend;
  const fes: Record<'channel' | 'rest' | 'absent', DispatcherProc> = {} as never;
  let backend: string;
  const clients: KeepAliveClient[] = [];

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
      ['--metrics', 'off'],
    );
    nginx = await startNginx(tb, 'backend1', 8080, { 'small.txt': 'x'.repeat(1024), 'big.bin': BIG });
    backend = `${tb.node('backend1').v4}:8080`;
    const cfg = (port: number, extra: object) => ({
      listen: `${VIP4}:${port}`,
      api: { socketPath: lb.socketPath },
      pools: { one: { backends: [backend] } },
      routes: [{ pool: 'one' }],
      ...extra,
    });
    fes.channel = await startDispatcher(tb, cfg(80, {}));
    fes.rest = await startDispatcher(tb, cfg(8081, { handoff: 'rest' }));
    fes.absent = await startDispatcher(tb, cfg(8082, { handoffSocket: '/nonexistent/baton/handoff.sock' }));
  });

  after(async () => {
    for (const c of clients) c.send('QUIT');
    for (const fe of Object.values(fes)) await fe?.stop();
    await nginx?.stop();
    await lb?.stop();
    await tb?.destroy();
  });

  const spliced = (fe: DispatcherProc) => fe.events.filter((e): e is Spliced => e.event === 'spliced');
  const nextSplice = async (fe: DispatcherProc, before: number): Promise<Spliced> => {
    for (let i = 0; i < 300 && spliced(fe).length <= before; i++) await sleep(10);
    const e = spliced(fe)[before];
    assert.ok(e, `no splice: ${JSON.stringify(fe.events.slice(-3))}`);
    return e;
  };

  test('the daemon serves the channel beside its API socket, with the API socket’s mode', () => {
    const path = join(dirname(lb.socketPath), 'handoff.sock');
    assert.ok(existsSync(path), path);
    const [api, ch] = [statSync(lb.socketPath), statSync(path)];
    assert.ok(ch.isSocket());
    assert.deepEqual([ch.mode & 0o7777, ch.uid, ch.gid], [api.mode & 0o7777, api.uid, api.gid]);
  });

  test('a 16 MiB download through a splice made over the channel matches its SHA-256', async () => {
    const out = join(tmpdir(), `baton-channel-big-${process.pid}`);
    const before = spliced(fes.channel).length;
    try {
      await tb.exec('client', 'curl', ['-sS', '--max-time', '60', '-o', out, `http://${VIP4}/big.bin`], {
        timeoutMs: 65_000,
      });
      const e = await nextSplice(fes.channel, before);
      assert.equal(e.via, 'channel');
      assert.equal(e.backend, backend);
      assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), nginx.sha256['/big.bin']);
      assert.deepEqual(
        fes.channel.events.filter((x) => x.event === 'relayed'),
        [],
        'spliced, never relayed',
      );
    } finally {
      rmSync(out, { force: true });
    }
  });

  test('a keep-alive connection spliced over the channel carries requests; the dispatcher holds nothing', async () => {
    const before = spliced(fes.channel).length;
    const c = await KeepAliveClient.start(tb, VIP4, 80);
    clients.push(c);
    assert.equal((await c.get('/small.txt')).status, 200);
    const e = await nextSplice(fes.channel, before);
    assert.equal(e.via, 'channel');
    for (let i = 0; i < 20; i++) {
      const a = await c.get(`/small.txt?${i}`);
      assert.equal(a.status, 200);
    }
    const ss = await tb.exec('lb', 'ss', ['-tanH', 'state', 'established', '( sport = :80 )']);
    assert.equal(ss.stdout.trim(), '', `client sockets left on the LB: ${ss.stdout}`);
    const ls = JSON.parse((await baton(['splices', 'ls', '--all', '--json', '--api', lb.api])).stdout) as {
      items: { id: string; ownerUid: number }[];
    };
    assert.ok(
      ls.items.some((s) => s.id === e.id && s.ownerUid === 0),
      `the daemon lists the channel's splice ${e.id}: ${JSON.stringify(ls.items.map((s) => s.id))}`,
    );
  });

  test('side by side: "handoff": "rest" splices over REST, and a channel that is not there falls back to REST', async () => {
    for (const [fe, port] of [
      [fes.rest, 8081],
      [fes.absent, 8082],
    ] as const) {
      const before = spliced(fe).length;
      const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '20', `http://${VIP4}:${port}/small.txt`], {
        timeoutMs: 25_000,
      });
      assert.equal(r.stdout, 'x'.repeat(1024));
      const e = await nextSplice(fe, before);
      assert.equal(e.via, 'rest', `port ${port}`);
    }
  });
});
