/**
 * Every client TCP profile is spliced (issue 13), end to end: the real
 * daemon (`baton lb`, with its TC egress program) and the dispatcher in the
 * LB namespace, nginx on the back end, curl in a client namespace whose
 * stack is given one profile after another (timestamps, SACK, window
 * scaling, ECN sysctls and the route's advmss: lab/profiles). The reduced
 * matrix holds every value of every axis, over IPv4 and IPv6. Per
 * connection: spliced, not relayed (the dispatcher's event, and its stats);
 * a 1 MiB download and a second keep-alive request byte-exact (SHA-256);
 * no RST sent by the client or the back end. The full matrix:
 * scripts/profile-matrix.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { applyClientProfile, outRsts, profileName, reducedMatrix } from '../../lab/profiles/client-profiles.js';
import { type DaemonProc, type DispatcherProc, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4, VIP6 } from '../lib/testbed.js';

type Spliced = Extract<DispatchEvent, { event: 'spliced' }>;

describe('every client TCP profile is spliced (reduced matrix, IPv4 and IPv6)', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let lb: DaemonProc;
  let nginx: NginxBackend;
  let fe: DispatcherProc;

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
    );
    nginx = await startNginx(tb, 'backend1', 8080, { 'big.bin': 1 << 20, 'small.txt': 'small\n' });
    fe = await startDispatcher(tb, {
      listen: [`${VIP4}:80`, `[${VIP6}]:80`],
      api: { socketPath: lb.socketPath },
      pools: {
        v4: { backends: [`${tb.node('backend1').v4}:8080`] },
        v6: { backends: [`[${tb.node('backend1').v6}]:8080`] },
      },
      routes: [{ host: 'v6.example', pool: 'v6' }, { pool: 'v4' }],
    });
  });

  after(async () => {
    await fe?.stop();
    await nginx?.stop();
    await lb?.stop();
    await tb?.destroy();
  });

  const spliced = () => fe.events.filter((e): e is Spliced => e.event === 'spliced');

  for (const p of reducedMatrix()) {
    for (const fam of [4, 6] as const) {
      test(`IPv${fam}: ${profileName(p)}`, async () => {
        await applyClientProfile(tb, 'client', p, { v4: VIP4, v6: VIP6 });
        const rsts = [await outRsts(tb, 'client'), await outRsts(tb, 'backend1')];
        const before = spliced().length;
        const out = join(tmpdir(), `baton-profiles-${process.pid}-${fam}`);
        try {
          const host = fam === 4 ? 'v4.example' : 'v6.example';
          const base = fam === 4 ? `http://${VIP4}` : `http://[${VIP6}]`;
          const r = await tb.exec(
            'client',
            'curl',
            [
              '-sS',
              '-g',
              '--max-time',
              '20',
              '-H',
              `Host: ${host}`,
              '-w',
              '%{http_code} %{num_connects}\\n',
              `${base}/big.bin`,
              '-o',
              out,
              `${base}/small.txt`,
            ],
            { timeoutMs: 25_000 },
          );
          const lines = r.stdout.trim().split('\n');
          // big.bin to the file; small.txt body then its -w line on stdout
          assert.deepEqual(lines, ['200 1', 'small', '200 0'], `curl: ${r.stdout} ${r.stderr}`);
          assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), nginx.sha256['/big.bin']);
        } finally {
          rmSync(out, { force: true });
        }
        for (let i = 0; spliced().length === before && i < 100; i++) await sleep(10);
        const relayed = fe.events.filter((e) => e.event === 'relayed');
        assert.deepEqual(relayed, [], 'nothing relayed');
        assert.equal(spliced().length, before + 1, 'the connection was spliced');
        const e = spliced().at(-1) as Spliced;
        const want = [...(p.timestamps ? [] : ['no-ts']), ...(p.sack ? [] : ['no-sack'])];
        for (const w of want) assert.ok(e.profile.split(',').includes(w), `leg profile ${e.profile} has ${w}`);
        // ECN and window scaling need no leg of their own.
        assert.equal(e.profile.includes('ecn') || e.profile.includes('wscale'), false);
        assert.deepEqual([await outRsts(tb, 'client'), await outRsts(tb, 'backend1')], rsts, 'no RST sent');
      });
    }
  }

  test('the dispatcher reports per-profile pool hits and misses and a relayed fraction of 0', async () => {
    const stats = new Promise<Record<string, unknown>>((resolve) => {
      const t = setInterval(() => {
        const s = fe.events.find((e) => (e as { event: string }).event === 'stats');
        if (s) {
          clearInterval(t);
          resolve(s as unknown as Record<string, unknown>);
        }
      }, 20);
    });
    process.kill(fe.proc.pid as number, 'SIGUSR2');
    const s = (await Promise.race([stats, sleep(5000).then(() => undefined)])) as
      | { relayedFraction: number; spliced: number; byProfile: Record<string, { hits: number; misses: number }> }
      | undefined;
    assert.ok(s, 'stats event');
    assert.equal(s.relayedFraction, 0);
    assert.equal(s.spliced, reducedMatrix().length * 2);
    const keys = Object.keys(s.byProfile);
    assert.ok(keys.some((k) => k.includes('no-ts')) && keys.some((k) => k.includes('no-sack')), keys.join(' | '));
    const takes = Object.values(s.byProfile).reduce((a, l) => a + l.hits + l.misses, 0);
    assert.equal(takes, reducedMatrix().length * 2, 'one take per connection');
  });
});
