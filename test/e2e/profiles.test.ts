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
import {
  applyClientProfile,
  type ClientTcpProfile,
  outRsts,
  profileName,
  reducedMatrix,
  tcpCounter,
} from '../../lab/profiles/client-profiles.js';
import { type DaemonProc, type DispatcherProc, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4, VIP6 } from '../lib/testbed.js';

type Spliced = Extract<DispatchEvent, { event: 'spliced' }>;

/** The dispatcher's metrics listener, inside the LB namespace. */
const METRICS = '127.0.0.1:9301';

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
      metrics: METRICS,
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

  // 3% random loss at both receivers (client and back end INPUT), as in the splice suite. Per profile: five
  // pairs of a spliced 1 MiB download byte-exact and a plainly routed one (client -> back end through the LB's
  // forwarding, no baton in the path); the back end's retransmissions for the spliced ones must not exceed
  // twice those of plain routing (floor of 10 segments: at ~700 segments per MiB, 3% loss is ~20 losses per
  // download, and the floor keeps the ratio from judging a handful of random drops).
  const LOSSY_PAIRS = 5;
  const LOSSY: ClientTcpProfile[] = [
    { timestamps: false, sack: false, wscale: 'default', mss: 536, ecn: false },
    { timestamps: true, sack: true, wscale: 14, mss: 1460, ecn: true },
  ];
  for (const p of LOSSY) {
    test(`3% loss both ways, ${profileName(p)}: spliced, byte-exact, retransmissions within 2x of plain routing`, async (t) => {
      await applyClientProfile(tb, 'client', p, { v4: VIP4, v6: VIP6 });
      // The plainly routed downloads get the same profile (the route to the back end gets the advmss too).
      await applyClientProfile(tb, 'client', p, { v4: tb.node('backend1').v4, v6: tb.node('backend1').v6 });
      const rule = ['-p', 'tcp', '-m', 'statistic', '--mode', 'random', '--probability', '0.03', '-j', 'DROP'];
      for (const node of ['client', 'backend1']) await tb.exec(node, 'iptables', ['-A', 'INPUT', ...rule]);
      const out = join(tmpdir(), `baton-profiles-loss-${process.pid}`);
      const download = async (url: string, extra: string[] = []) => {
        const r = await tb.exec(
          'client',
          'curl',
          ['-sS', '--max-time', '180', ...extra, '-o', out, '-w', '%{http_code}', url],
          { timeoutMs: 185_000 },
        );
        assert.equal(r.stdout, '200', r.stderr);
        assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), nginx.sha256['/big.bin']);
      };
      try {
        // Interleaved pairs, so both paths see the same conditions; five pairs, because without SACK most
        // retransmissions come in bursts after a timeout (a whole flight each), and three downloads a side
        // measured from 0.8x to 2.4x between runs of the same code. Without SACK and timestamps a download can
        // also sit for tens of seconds in backed-off timeouts (Karn's rule takes no RTT sample from a
        // retransmission, so the backoff is not reset); 1 in 40 plainly routed downloads did, so the time limit
        // is generous for both paths alike.
        const splicedBefore = spliced().length;
        let [splicedRetrans, routedRetrans] = [0, 0];
        for (let i = 0; i < LOSSY_PAIRS; i++) {
          const r0 = await tcpCounter(tb, 'backend1', 'RetransSegs');
          await download(`http://${VIP4}/big.bin`);
          const r1 = await tcpCounter(tb, 'backend1', 'RetransSegs');
          await download(`http://${tb.node('backend1').v4}:8080/big.bin`);
          const r2 = await tcpCounter(tb, 'backend1', 'RetransSegs');
          splicedRetrans += r1 - r0;
          routedRetrans += r2 - r1;
        }
        for (let i = 0; spliced().length < splicedBefore + LOSSY_PAIRS && i < 100; i++) await sleep(10);
        assert.equal(spliced().length, splicedBefore + LOSSY_PAIRS, 'every download through the VIP was spliced');
        t.diagnostic(`retransmitted segments: spliced ${splicedRetrans}, plain routing ${routedRetrans}`);
        assert.ok(
          splicedRetrans <= 2 * Math.max(routedRetrans, 10),
          `spliced ${splicedRetrans} retransmissions vs ${routedRetrans} plainly routed`,
        );
      } finally {
        for (const node of ['client', 'backend1']) await tb.exec(node, 'iptables', ['-D', 'INPUT', ...rule]);
        rmSync(out, { force: true });
      }
    });
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
    assert.equal(s.spliced, reducedMatrix().length * 2 + LOSSY.length * LOSSY_PAIRS);
    const keys = Object.keys(s.byProfile);
    assert.ok(keys.some((k) => k.includes('no-ts')) && keys.some((k) => k.includes('no-sack')), keys.join(' | '));
    const takes = Object.values(s.byProfile).reduce((a, l) => a + l.hits + l.misses, 0);
    assert.equal(takes, reducedMatrix().length * 2 + LOSSY.length * LOSSY_PAIRS, 'one take per connection');

    // The same figures as Prometheus metrics (the relayed fraction among them).
    const text = (await tb.exec('lb', 'curl', ['-sS', '--max-time', '5', `http://${METRICS}/metrics`])).stdout;
    const value = (series: string) => {
      const l = text.split('\n').find((x) => x.startsWith(`${series} `));
      return l === undefined ? undefined : Number(l.slice(series.length + 1));
    };
    assert.equal(value('baton_dispatcher_relayed_ratio'), 0, text);
    assert.equal(value('baton_dispatcher_connections_total{outcome="spliced"}'), s.spliced);
    assert.equal(value('baton_dispatcher_connections_total{outcome="relayed"}'), 0);
    const legs = [
      ...text.matchAll(/^baton_dispatcher_profile_connections_total\{leg_profile="([^"]*)",outcome="(\w+)"\} (\S+)$/gm),
    ];
    assert.ok(
      legs.some(([, k, o, n]) => k?.includes('no-ts') && o === 'spliced' && Number(n) > 0),
      'a no-ts leg profile with spliced connections',
    );
    assert.ok(
      legs.filter(([, , o]) => o === 'relayed').every(([, , , n]) => Number(n) === 0),
      'nothing relayed',
    );
  });
});
