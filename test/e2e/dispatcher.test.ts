/**
 * The dispatcher end to end: the real daemon (`baton lb`) and the dispatcher
 * (control/dispatcher/main.ts) in the LB namespace, two nginx back ends,
 * curl through the VIP. Checks that routing by path and Host picks the right
 * back end, that every client connection is spliced (the dispatcher holds
 * nothing afterwards), that spliced connections carry keep-alive requests and
 * a large download byte-exact, that the CLI sees the splices and their
 * metrics, and that with baton unreachable the dispatcher relays instead.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, type DispatcherConfig, validateConfig } from '../../control/dispatcher/config.js';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { HeadError, parseHead } from '../../control/dispatcher/request-head.js';
import { pickRoute } from '../../control/dispatcher/router.js';
import type { Check } from '../../control/doctor/index.js';
import { DEFAULT_LEG_PORTS, inRange } from '../../control/splice/leg-ports.js';
import { baton, batonIn } from '../cli/baton-proc.js';
import { type DaemonProc, type DispatcherProc, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lib/testbed.js';

describe('dispatcher pieces', () => {
  test('request head: path, Host without port, absolute-form target; bad lines refused', () => {
    const raw = Buffer.from('GET /two.txt?x=1 HTTP/1.1\r\nhost: Two.Example:8080\r\nAccept: */*\r\n\r\nBODY');
    const h = parseHead(raw, raw.indexOf('\r\n\r\n'));
    assert.deepEqual(
      { method: h.method, path: h.path, host: h.host, bytes: h.bytes.toString() },
      { method: 'GET', path: '/two.txt', host: 'two.example', bytes: raw.toString() },
    );
    const abs = Buffer.from('GET http://a.example/p HTTP/1.1\r\nHost: other\r\n\r\n');
    assert.deepEqual(
      [parseHead(abs, abs.indexOf('\r\n\r\n')).host, parseHead(abs, abs.indexOf('\r\n\r\n')).path],
      ['a.example', '/p'],
    );
    const bad = Buffer.from('HELLO\r\n\r\n');
    assert.throws(() => parseHead(bad, bad.indexOf('\r\n\r\n')), HeadError);
  });

  test('request head: keep-alive per RFC 9112 (HTTP/1.1 unless Connection: close; HTTP/1.0 only with keep-alive)', () => {
    const ka = (text: string) => {
      const b = Buffer.from(text);
      return parseHead(b, b.indexOf('\r\n\r\n')).keepAlive;
    };
    assert.equal(ka('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), true);
    assert.equal(ka('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), false);
    assert.equal(ka('GET / HTTP/1.1\r\nconnection: Upgrade, Close\r\n\r\n'), false);
    assert.equal(ka('GET / HTTP/1.0\r\n\r\n'), false);
    assert.equal(ka('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'), true);
    assert.equal(ka('GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n'), true);
  });

  test('routes: first match of Host (exact or *.suffix) and path prefix', () => {
    const routes = [
      { host: '*.api.example', pool: 'api' },
      { host: 'two.example', pool: 'two' },
      { pathPrefix: '/one', pool: 'one' },
      { pool: 'both' },
    ];
    assert.equal(pickRoute(routes, 'x.api.example', '/one.txt')?.pool, 'api');
    assert.equal(pickRoute(routes, 'api.example', '/')?.pool, 'both');
    assert.equal(pickRoute(routes, 'two.example', '/one.txt')?.pool, 'two');
    assert.equal(pickRoute(routes, '198.19.0.1', '/one.txt')?.pool, 'one');
    assert.equal(pickRoute(routes, '', '/big.bin')?.pool, 'both');
    assert.equal(pickRoute(routes.slice(0, 3), '', '/zzz'), undefined);
  });

  test('configuration errors name the field', () => {
    const ok: DispatcherConfig = {
      listen: '198.19.0.1:80',
      pools: { a: { backends: ['198.18.2.2:8080'] } },
      routes: [{ pool: 'a' }],
    };
    assert.doesNotThrow(() => validateConfig(ok));
    assert.doesNotThrow(() => validateConfig({ ...ok, splice: 'keep-alive' }));
    const bad: [unknown, RegExp][] = [
      [{ ...ok, routes: [{ pool: 'b' }] }, /routes\[0\]\.pool: no pool named "b"/],
      [{ ...ok, pools: { a: { backends: ['nope'] } } }, /pools\.a\.backends\[0\]: "nope" is not "ip:port"/],
      [{ ...ok, listen: '198.19.0.1' }, /listen\[0\]/],
      [{ ...ok, colour: 'red' }, /unknown field "colour"/],
      [{ ...ok, splice: 'sometimes' }, /splice: expected true, false or "keep-alive"/],
      [{ ...ok, routes: [{ pathPrefix: 'x', pool: 'a' }] }, /pathPrefix: expected a path starting with "\/"/],
    ];
    for (const [cfg, msg] of bad)
      assert.throws(
        () => validateConfig(cfg),
        (e: unknown) => e instanceof ConfigError && msg.test(e.message),
      );
  });
});

const BIG = 16 * 1024 * 1024;

describe('dispatcher end to end (real daemon, nginx, curl)', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let lb: DaemonProc;
  let nginx: NginxBackend[];
  let fe: DispatcherProc;
  let b1: string;
  let b2: string;

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 2, vip: true }), { passXdp: (node) => node !== 'lb' });
    lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
      ['--metrics', '127.0.0.1:9300'],
    );
    nginx = await Promise.all(
      ['backend1', 'backend2'].map((b) =>
        startNginx(tb, b, 8080, { 'one.txt': `one from ${b}\n`, 'two.txt': `two from ${b}\n`, 'big.bin': BIG }),
      ),
    );
    b1 = `${tb.node('backend1').v4}:8080`;
    b2 = `${tb.node('backend2').v4}:8080`;
    fe = await startDispatcher(tb, {
      listen: `${VIP4}:80`,
      api: { socketPath: lb.socketPath },
      legPorts: true,
      pools: { one: { backends: [b1] }, two: { backends: [b2] }, both: { backends: [b1, b2] } },
      routes: [
        { host: 'two.example', pool: 'two' },
        { pathPrefix: '/one', pool: 'one' },
        { pathPrefix: '/two', pool: 'two' },
        { pool: 'both' },
      ],
    });
  });

  after(async () => {
    await fe?.stop();
    await Promise.all((nginx ?? []).map((n) => n.stop()));
    await lb?.stop();
    await tb?.destroy();
  });

  const curl = (args: string[], timeoutMs = 30_000) =>
    tb.exec('client', 'curl', ['-sS', '--max-time', String(timeoutMs / 1000), ...args], {
      timeoutMs: timeoutMs + 5000,
    });
  const spliced = () =>
    fe.events.filter((e): e is Extract<DispatchEvent, { event: 'spliced' }> => e.event === 'spliced');

  test('routes by path and Host; every connection is spliced to the back end its route names', async () => {
    const cases: [string[], string, string][] = [
      [[`http://${VIP4}/one.txt`], 'one from backend1', b1],
      [[`http://${VIP4}/two.txt`], 'two from backend2', b2],
      [['-H', 'Host: two.example', `http://${VIP4}/one.txt`], 'one from backend2', b2],
    ];
    for (const [args, body, backend] of cases) {
      const before = spliced().length;
      const r = await curl(args);
      assert.equal(r.stdout.trim(), body);
      for (let i = 0; spliced().length === before && i < 100; i++) await sleep(10);
      const e = spliced().at(-1)!;
      assert.equal(
        spliced().length,
        before + 1,
        `one splice for ${args.join(' ')}: ${JSON.stringify(fe.events.slice(-3))}`,
      );
      assert.equal(e.backend, backend);
      assert.match(e.id, /^\d+$/);
    }
    assert.deepEqual(
      fe.events.filter((e) => e.event === 'relayed'),
      [],
    );
  });

  test('one spliced keep-alive connection carries 50 requests; none passes through the dispatcher', async () => {
    const before = spliced().length;
    const urls = Array.from({ length: 50 }, (_, i) => `http://${VIP4}/one.txt?${i}`);
    const r = await curl(['-w', '%{http_code} %{num_connects}\\n', ...urls.flatMap((u) => [u, '-o', '/dev/null'])]);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 50);
    assert.ok(
      lines.every((l) => l.startsWith('200 ')),
      lines.join('|'),
    );
    assert.equal(
      lines.reduce((a, l) => a + Number(l.split(' ')[1]), 0),
      1,
      'one connection',
    );
    assert.equal(spliced().length, before + 1, 'spliced once, after its first request');
  });

  test('a 16 MiB download through a spliced connection matches its SHA-256', async () => {
    const out = join(tmpdir(), `baton-dispatch-big-${process.pid}`);
    try {
      const r = await curl(['-o', out, '-D', '-', `http://${VIP4}/big.bin`], 60_000);
      const served = /x-backend: (backend\d)/i.exec(r.stdout)?.[1];
      assert.ok(served, r.stdout);
      const n = nginx[served === 'backend1' ? 0 : 1]!;
      assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), n.sha256['/big.bin']);
      assert.equal(spliced().at(-1)!.backend, served === 'backend1' ? b1 : b2);
    } finally {
      rmSync(out, { force: true });
    }
  });

  test('30 connections in a row, each spliced: time per splice as the front end sees it (SDK call to sockets released)', async (t) => {
    const before = spliced().length;
    for (let i = 0; i < 30; i++) {
      const r = await curl([`http://${VIP4}/two.txt?c${i}`]);
      assert.equal(r.stdout.trim(), 'two from backend2');
    }
    for (let i = 0; spliced().length < before + 30 && i < 100; i++) await sleep(10);
    const ms = spliced()
      .slice(before)
      .map((e) => e.ms)
      .sort((a, b) => a - b);
    assert.equal(ms.length, 30, 'every connection spliced');
    const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!;
    t.diagnostic(
      `splice via SDK + daemon (front end's view): p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${ms.at(-1)} ms over ${ms.length}`,
    );
    const ids = new Set(
      spliced()
        .slice(before)
        .map((e) => e.id),
    );
    const ls = JSON.parse((await baton(['splices', 'ls', '--all', '--json', '--api', lb.api])).stdout) as {
      items: { id: string; durationUs: number | null }[];
    };
    const us = ls.items
      .filter((x) => ids.has(x.id) && x.durationUs !== null)
      .map((x) => x.durationUs!)
      .sort((a, b) => a - b);
    if (us.length)
      t.diagnostic(
        `the daemon's durationUs for the ${us.length} still listed: p50 ${us[Math.floor(us.length / 2)]} µs, max ${us.at(-1)} µs`,
      );
    assert.ok(q(0.5) < 1000, `p50 ${q(0.5)} ms`);
  });

  test("with legPorts, spliced legs take ports of the daemon's leg range (reserved in its namespace) and hold no socket in the daemon", async () => {
    const sockets = () => {
      const n = lb.socketCount();
      assert.ok(n !== undefined, 'the daemon process');
      return n;
    };
    const reserved = await tb.exec('lb', 'cat', ['/proc/sys/net/ipv4/ip_local_reserved_ports']);
    assert.match(reserved.stdout, new RegExp(`\\b${DEFAULT_LEG_PORTS.lo}-${DEFAULT_LEG_PORTS.hi}\\b`));
    const held = sockets();
    const before = spliced().length;
    for (let i = 0; i < 20; i++)
      assert.equal((await curl([`http://${VIP4}/one.txt?leg${i}`])).stdout.trim(), 'one from backend1');
    for (let i = 0; spliced().length < before + 20 && i < 100; i++) await sleep(10);
    const ids = new Set(
      spliced()
        .slice(before)
        .map((e) => e.id),
    );
    assert.equal(ids.size, 20, 'every connection spliced');
    // Their records stay for the sweeper's grace period after the clients closed: a leg
    // on a kernel-chosen port would keep a placeholder socket in the daemon all that time.
    const after = sockets();
    assert.ok(after - held < 5, `the daemon's sockets went from ${held} to ${after} over 20 splices`);
    const ls = JSON.parse((await baton(['splices', 'ls', '--all', '--json', '--api', lb.api])).stdout) as {
      items: { id: string; handoffs: { local: string }[] }[];
    };
    const ports = ls.items.filter((x) => ids.has(x.id)).map((x) => Number(x.handoffs[0]?.local.split(':').at(-1)));
    assert.ok(ports.length > 0, 'the splices are listed');
    for (const p of ports)
      assert.ok(inRange(DEFAULT_LEG_PORTS, p), `leg port ${p} in ${DEFAULT_LEG_PORTS.lo}-${DEFAULT_LEG_PORTS.hi}`);
  });

  test('the dispatcher holds no client socket; the CLI lists the splices and their metrics', async () => {
    const ss = await tb.exec('lb', 'ss', ['-tanH', 'state', 'established', '( sport = :80 )']);
    assert.equal(ss.stdout.trim(), '', `client sockets left on the LB: ${ss.stdout}`);
    const ls = await baton(['splices', 'ls', '--all', '--json', '--api', lb.api]);
    assert.equal(ls.code, 0, ls.stderr);
    const items = (JSON.parse(ls.stdout) as { items: { id: string; vip: string; handoffs: { backend: string }[] }[] })
      .items;
    for (const e of spliced()) {
      const s = items.find((x) => x.id === e.id);
      if (!s) continue; // reclaimed after the client closed
      assert.equal(s.vip, `${VIP4}:80`);
      assert.equal(s.handoffs[0]!.backend, e.backend);
    }
    const m = await batonIn(tb, 'lb', ['metrics', '--json']);
    const fams = (
      JSON.parse(m.stdout) as {
        families: {
          name: string;
          type: string;
          samples: { name: string; labels: Record<string, string>; value: number }[];
        }[];
      }
    ).families;
    const hist = fams.find((f) => f.type === 'histogram' && /handoff.*seconds/.test(f.name));
    assert.ok(hist, `a handoff duration histogram among ${fams.map((f) => f.name).join(', ')}`);
    const count = hist.samples.filter((s) => s.name.endsWith('_count')).reduce((a, s) => a + s.value, 0);
    assert.ok(count >= spliced().length, `histogram count ${count} >= ${spliced().length} splices`);
    const text = await batonIn(tb, 'lb', ['metrics']);
    assert.match(text.stdout, /p50 \d+(\.\d+)? (µs|ms), p99/);
  });

  test('doctor sees baton_xdp attached in native mode on the LB interfaces', async () => {
    const r = await batonIn(tb, 'lb', ['doctor', '--json', ...tb.node('lb').ifaces.flatMap((i) => ['-i', i.name])]);
    const checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks.filter((c) => c.id === 'xdp');
    assert.equal(checks.length, tb.node('lb').ifaces.length);
    for (const c of checks) {
      assert.equal(c.status, 'ok', c.detail);
      assert.match(c.detail, /baton_xdp attached, native/);
    }
  });

  test('splice: "keep-alive" relays one-shot requests (Connection: close) and splices connections that stay open', async () => {
    const fe2 = await startDispatcher(tb, {
      listen: `${VIP4}:8082`,
      api: { socketPath: lb.socketPath },
      pools: { one: { backends: [b1] } },
      routes: [{ pool: 'one' }],
      splice: 'keep-alive',
    });
    try {
      const oneShot = await curl(['-H', 'Connection: close', `http://${VIP4}:8082/one.txt`]);
      assert.equal(oneShot.stdout.trim(), 'one from backend1');
      const kept = await curl([`http://${VIP4}:8082/one.txt`, `http://${VIP4}:8082/two.txt`]);
      assert.equal(kept.stdout.trim(), 'one from backend1\ntwo from backend1');
      for (let i = 0; i < 100 && !fe2.events.some((e) => e.event === 'spliced'); i++) await sleep(10);
      const kinds = fe2.events
        .filter((e) => e.event === 'relayed' || e.event === 'spliced')
        .map((e) => (e.event === 'relayed' ? `relayed:${e.code}` : 'spliced'));
      assert.deepEqual(kinds, ['relayed:ONE_SHOT_REQUEST', 'spliced']);
    } finally {
      await fe2.stop();
    }
  });

  test('baton unreachable: a second dispatcher relays in userspace and still serves every request', async () => {
    const relay = await startDispatcher(tb, {
      listen: `${VIP4}:8081`,
      api: { socketPath: '/nonexistent/baton.sock' },
      pools: { both: { backends: [b1, b2] } },
      routes: [{ pool: 'both' }],
    });
    try {
      for (let i = 0; i < 4; i++) {
        const r = await curl([`http://${VIP4}:8081/two.txt`]);
        assert.match(r.stdout, /^two from backend[12]$/m);
      }
      const relayed = relay.events.filter(
        (e): e is Extract<DispatchEvent, { event: 'relayed' }> => e.event === 'relayed',
      );
      assert.equal(relayed.length, 4);
      assert.ok(relayed.every((e) => e.code === 'API_UNREACHABLE'));
      assert.deepEqual(new Set(relayed.map((e) => e.backend)), new Set([b1, b2]), 'round robin over the pool');
    } finally {
      await relay.stop();
    }
  });
});
