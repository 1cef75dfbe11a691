/**
 * The `baton` CLI as a user meets it: --help that teaches, errors that say
 * what to do, exit codes, --json shapes. The API commands run against the
 * real daemon (`baton lb` in a testbed namespace, API on a unix socket);
 * table rendering and paging also against a small contract-shaped server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PROFILE_TC_PROGRAM } from '../../control/datapath/profile-egress.js';
import { DEFAULT_PIN_DIR } from '../../control/doctor/index.js';
import { DEFAULT_API, DEFAULT_API_SOCKET, DEFAULT_METRICS_URL, parseEndpoint } from '../../control/sdk/endpoint.js';
import { type DaemonProc, startDaemon } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { createTestbed, starTopology, type Testbed } from '../lib/testbed.js';
import { spliceBody } from '../sdk/stand-in-api.js';
import { baton, batonIn } from './baton-proc.js';

describe('baton CLI without a daemon', () => {
  test('--help lists every command, what it talks to, and examples', async () => {
    const r = await baton(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of [
      'lb',
      'down',
      'doctor',
      'status',
      'splices ls',
      'splices show <id>',
      'splices rm <id>',
      'handoff <id> <ip:port>',
      'metrics',
      'lb drain',
    ]) {
      assert.ok(r.stdout.includes(`  ${cmd}`), `help lists ${cmd}`);
    }
    assert.match(r.stdout, /talk to the daemon's REST API/);
    assert.match(r.stdout, /Examples:\n {2}baton doctor --interface eth0/);
    assert.match(r.stdout, /--api <url\|path>/);
    assert.match(r.stdout, /Exit codes: 0 ok, 1 .*, 2 wrong usage, 3 daemon not reachable/);
  });

  test('each command has its own help, with the route it calls and examples', async () => {
    const routes: Record<string, RegExp> = {
      status: /GET \/healthz, \/readyz/,
      splices: /GET \/v1\/splices\/<id>/,
      handoff: /POST \/v1\/splices\/<id>\/handoffs/,
      metrics: /Prometheus/,
      doctor: /TCP_REPAIR/,
    };
    for (const [cmd, route] of Object.entries(routes)) {
      const r = await baton([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd} --help exits 0`);
      assert.match(r.stdout, route);
      assert.match(r.stdout, /Examples:/);
    }
    const drain = await baton(['lb', 'drain', '--help']);
    assert.equal(drain.code, 0);
    assert.match(drain.stdout, /POST \/v1\/drain/);
    assert.match(drain.stdout, /Examples:\n {2}baton lb drain/);
    const lb = await baton(['lb', '--help']);
    assert.equal(lb.code, 0);
    assert.match(lb.stdout, /--interface/);
    assert.match(lb.stdout, /baton doctor --interface eth0/);
  });

  test('usage mistakes exit 2 and point at the right help', async () => {
    const cases: [string[], RegExp][] = [
      [[], /no command given/],
      [['frobnicate'], /unknown command "frobnicate"; the commands are: lb, down, status/],
      [['splices'], /splices needs a subcommand: ls, show <id> or rm <id>/],
      [['splices', 'show'], /needs a connection id/],
      [['splices', 'show', 'abc'], /connection ids are decimal numbers/],
      [['handoff', '17'], /handoff needs exactly two arguments: <id> <backend ip:port>/],
      [['splices', 'ls', '--bogus'], /Unknown option '--bogus'/],
      [['status', '--api', 'ftp://x'], /not an API address/],
      [['lb', 'drain', 'now'], /lb drain takes no arguments \(got now\)/],
      [['lb', 'drain', '--cancel', '--wait'], /--wait waits for a drain to end; it cannot go with --cancel/],
      [['lb', 'drain', '--timeout', '5m'], /--timeout bounds --wait; give --wait too/],
      [['lb', 'drain', '--wait', '--timeout', 'soon'], /--timeout must be a duration like 90s/],
    ];
    for (const [args, msg] of cases) {
      const r = await baton(args);
      assert.equal(r.code, 2, `${args.join(' ')} exits 2`);
      assert.match(r.stderr, msg);
      assert.match(r.stderr, /Run `baton .*--help` for usage\./);
    }
  });

  test('no daemon: exit 3, says how to start it; --json gives the problem document', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
    try {
      const sock = join(dir, 'none.sock');
      const r = await baton(['status', '--api', sock]);
      assert.equal(r.code, 3);
      assert.match(
        r.stderr,
        /nothing listens on unix socket .*none\.sock.*Start it with `baton lb --interface <dev>`/s,
      );
      const j = await baton(['splices', 'ls', '--json'], { BATON_API: `unix:${sock}` });
      assert.equal(j.code, 3);
      const p = JSON.parse(j.stdout) as Record<string, unknown>;
      assert.equal(p.code, 'API_UNREACHABLE');
      assert.equal(p.type, 'https://baton.dev/problems/api-unreachable');
      const m = await baton(['metrics', '--metrics-url', 'http://127.0.0.1:1/metrics']);
      assert.equal(m.code, 3);
      assert.match(m.stderr, /could not scrape http:\/\/127\.0\.0\.1:1\/metrics/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('defaults match the daemon configuration they mirror', async () => {
    const { OPTIONS } = await import('../../control/daemon/config.js');
    const metrics = OPTIONS.metrics.default as { host: string; port: number };
    assert.deepEqual(
      OPTIONS.api.default,
      { path: DEFAULT_API_SOCKET },
      'the daemon listens on the unix socket by default',
    );
    assert.deepEqual(
      parseEndpoint(DEFAULT_API),
      { socketPath: DEFAULT_API_SOCKET },
      'and the CLI talks to it by default',
    );
    assert.equal(DEFAULT_METRICS_URL, `http://${metrics.host}:${metrics.port}/metrics`);
    assert.equal(DEFAULT_PIN_DIR, OPTIONS.pinDir.default);
  });

  test('splices ls renders a table and follows cursors with --all (contract-shaped server)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
    const sock = join(dir, 'api.sock');
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      const url = new URL(req.url ?? '/', 'http://x');
      const page =
        url.searchParams.get('cursor') === '2'
          ? { items: [spliceBody('3')], next: null }
          : { items: [spliceBody('1'), spliceBody('2')], next: '2' };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page));
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const one = await baton(['splices', 'ls', '--api', sock, '--state', 'forwarding']);
      assert.equal(one.code, 0, one.stderr);
      const lines = one.stdout.trim().split('\n');
      assert.match(lines[0]!, /^ID\s+STATE\s+CLIENT\s+VIP\s+BACKEND\s+HANDOFFS\s+AGE\s+TO-BACKEND\s+TO-CLIENT$/);
      assert.match(lines[1]!, /^1\s+forwarding\s+127\.0\.0\.1:1\s+127\.0\.0\.1:2\s+127\.0\.0\.1:3\s+1\s/);
      assert.match(one.stdout, /more: baton splices ls --cursor 2 --state forwarding/);
      assert.equal(seen.at(-1), '/v1/splices?state=forwarding');
      const all = await baton(['splices', 'ls', '--api', sock, '--all', '--json']);
      assert.deepEqual(
        (JSON.parse(all.stdout) as { items: { id: string }[] }).items.map((s) => s.id),
        ['1', '2', '3'],
      );
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('baton CLI against the real daemon', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let lb: DaemonProc;
  const TOKEN = 'cli-test-token-0123456789';

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
      ['--token', TOKEN, '--metrics', '127.0.0.1:9300'],
    );
  });

  after(async () => {
    await lb?.stop();
    await tb?.destroy();
  });

  const cli = (args: string[]) => baton([...args, '--api', lb.api], { BATON_TOKEN: TOKEN });

  test('status: running and ready, version, splice counts (text and --json)', async () => {
    const t = await cli(['status']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^daemon\s+unix socket .*api\.sock: running, ready$/m);
    assert.match(t.stdout, /^version\s+baton \d+\.\d+\.\d+ \(datapath ABI \d+\), kernel \S+, libbpf \S+$/m);
    assert.match(t.stdout, /^splices\s+0$/m);
    const j = JSON.parse((await cli(['status', '--json'])).stdout) as Record<string, unknown>;
    assert.equal(j.health, 'ok');
    assert.equal(j.ready, true);
    assert.deepEqual(Object.keys(j.version as object).sort(), ['abi', 'kernel', 'libbpf', 'version']);
    assert.deepEqual(j.splices, { total: 0, byState: {} });
  });

  test('status says the LB runs alone; lb drain (operator): drained at once with nothing held, status shows it, --cancel serves again', async () => {
    const t = await cli(['status']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^cluster\s+alone \(no --store\)/m);
    assert.match(t.stdout, /^drain\s+serving \(not draining\)$/m);
    const j = JSON.parse((await cli(['status', '--json'])).stdout) as { cluster: { mode: string; peers: unknown[] } };
    assert.deepEqual([j.cluster.mode, j.cluster.peers], ['alone', []]);
    try {
      const d = await cli(['lb', 'drain', '--wait', '--timeout', '5s']);
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /^drained: holds no connection/m);
      assert.match((await cli(['status'])).stdout, /^drain\s+drained: holds no connection/m);
    } finally {
      const c = await cli(['lb', 'drain', '--cancel', '--json']);
      assert.equal(c.code, 0, c.stderr);
      assert.equal((JSON.parse(c.stdout) as { state: string }).state, 'serving');
    }
  });

  test('splices ls on an empty table; show/rm/handoff of an unknown id say NOT_FOUND', async () => {
    const ls = await cli(['splices', 'ls']);
    assert.equal(ls.code, 0);
    assert.equal(ls.stdout.trim(), 'no spliced connections');
    assert.deepEqual(JSON.parse((await cli(['splices', 'ls', '--json'])).stdout), { items: [], next: null });
    for (const args of [
      ['splices', 'show', '999'],
      ['splices', 'rm', '999'],
      ['handoff', '999', '198.18.2.2:8080'],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 1, `${args.join(' ')} exits 1`);
      assert.match(
        r.stderr,
        /baton splices ls lists the connections baton holds\n {2}\(code NOT_FOUND, reason \w+, HTTP 404\)/,
      );
      const j = JSON.parse((await cli([...args, '--json'])).stdout) as Record<string, unknown>;
      assert.equal(j.code, 'NOT_FOUND');
      assert.equal(j.status, 404);
    }
  });

  test("a bad address is the daemon's 400 BAD_REQUEST, with its detail", async () => {
    const r = await cli(['handoff', '1', 'not-an-address']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /BAD_REQUEST/);
    const j = JSON.parse((await cli(['handoff', '1', 'not-an-address', '--json'])).stdout) as Record<string, unknown>;
    assert.equal(j.status, 400);
  });

  test('the token: without it UNAUTHORIZED, with --token or BATON_TOKEN accepted', async () => {
    const none = await baton(['splices', 'ls', '--api', lb.api]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /--token <token> or BATON_TOKEN\n {2}\(code UNAUTHORIZED, reason \w+, HTTP 401\)/);
    const flag = await baton(['splices', 'ls', '--api', lb.api, '--token', TOKEN, '--json']);
    assert.equal(flag.code, 0, flag.stderr);
  });

  test("metrics: summary and --json of the daemon's baton_* families (scraped inside the LB namespace)", async () => {
    const text = await batonIn(tb, 'lb', ['metrics']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^baton_\w+ \((counter|gauge|histogram)\)/m);
    const j = JSON.parse((await batonIn(tb, 'lb', ['metrics', '--json'])).stdout) as {
      url: string;
      families: { name: string; type: string }[];
    };
    assert.equal(j.url, 'http://127.0.0.1:9300/metrics');
    assert.ok(j.families.length > 3, `families: ${j.families.map((f) => f.name).join(', ')}`);
    assert.ok(j.families.every((f) => f.name.startsWith('baton_')));
    const raw = await batonIn(tb, 'lb', ['metrics', '--raw']);
    assert.match(raw.stdout, /^# TYPE baton_/m);
  });
  test('down: after the daemon stops (datapath left attached), detaches and unpins everything, the TC egress filter too; a second down finds nothing', async () => {
    await lb.stop();
    const attached = await tb.exec('lb', 'ip', ['-j', 'link', 'show', 'dev', 'to-client']);
    assert.match(attached.stdout, /"name":"baton_xdp"/, 'SIGTERM leaves the XDP program attached');
    // The client-profile egress program (issue 13) outlives the daemon the same way, on every LB interface.
    const egress = async (dev: string) => (await tb.exec('lb', 'tc', ['filter', 'show', 'dev', dev, 'egress'])).stdout;
    // The kernel keeps 15 characters of a program's name (BPF_OBJ_NAME_LEN 16): tc shows "baton_tc_profil".
    const shown = new RegExp(PROFILE_TC_PROGRAM.slice(0, 15));
    for (const i of tb.node('lb').ifaces) assert.match(await egress(i.name), shown, i.name);
    const r = await batonIn(tb, 'lb', ['down', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { pinDir: string; detached: number[]; unpinned: string[] };
    assert.equal(j.pinDir, '/sys/fs/bpf/baton');
    assert.equal(j.detached.length, tb.node('lb').ifaces.length);
    assert.ok(j.unpinned.length > 0);
    const detached = await tb.exec('lb', 'ip', ['-j', 'link', 'show', 'dev', 'to-client']);
    assert.doesNotMatch(detached.stdout, /baton_xdp/);
    for (const i of tb.node('lb').ifaces) assert.doesNotMatch(await egress(i.name), shown, i.name);
    const again = await batonIn(tb, 'lb', ['down']);
    assert.equal(again.stdout.trim(), 'nothing pinned under /sys/fs/bpf/baton: baton is not attached here');
  });
});
