/**
 * Migrate mode as users deploy it (issue 11, the LB side): `baton lb` with
 * --agent for two back ends, the dispatcher with a migrate pool on the VIP,
 * `baton agent` on each back end and a Node app behind the SDK there; the
 * routed bed (test/lib/migrate-bed.ts), so replies bypass the LB.
 *
 *   curl -> VIP:80 -> dispatcher reads the request -> a MIGRATE frame on the
 *   daemon's local handoff channel with the socket passed (or POST
 *   /v1/migrations, the socket taken with pidfd_getfd)
 *   (the daemon blocks the flow, captures, sends the blob
 *   over its channel to the agent) -> the app holds the socket and answers
 *   the client directly; the LB forwards the client's segments with the
 *   flow id in the ports.
 *
 * Cases: round robin over both back ends (over the channel); the same over
 * REST; a 64 MiB download byte-exact and
 * 1,000 keep-alive requests on migrated connections; the agent stopped: the
 * request is still answered (relayed to the same back end's app) and the
 * LB keeps no entry; the daemon restarted: an already migrated connection
 * keeps working. No RST at any node; no LB socket left.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import type { MigratedSocket } from '../../control/sdk/agent.js';
import type { AgentProc } from '../../lab/launch/agent.js';
import { type MigrateStack, startMigrateStack } from '../../lab/launch/migrate-stack.js';
import {
  canRunPrivileged,
  createTestbed,
  DEFAULT_XDP_PASS_OBJ,
  ROUTED_BACKENDS,
  routedTopology,
  type Testbed,
  VIP4,
} from '../../lab/testbed/index.js';
import { KEEPALIVE_CLIENT } from '../lib/migrate-bed.js';

const priv = canRunPrivileged();
const skip = !priv.ok
  ? priv.reason
  : !existsSync(DEFAULT_XDP_PASS_OBJ) && 'run make bpf first (the testbed needs xdp_pass.o)';

const PORT = 80;
const BIG = randomBytes(64 * 1024 * 1024);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');
const BACKENDS = ROUTED_BACKENDS.map((b) => b.node);

describe('migrate mode through baton lb and the dispatcher: two back ends with agents', {
  skip,
  timeout: 240_000,
}, () => {
  let tb: Testbed;
  let dir: string;
  let stack: MigrateStack;
  const rsts: string[] = [];
  const events = (): DispatchEvent[] => stack.dispatcher.events;

  const curl = async (args: string[], timeoutMs = 30_000): Promise<string> => {
    const r = await tb.exec('client', 'curl', ['-sS', '--max-time', String(timeoutMs / 1000), ...args], {
      timeoutMs: timeoutMs + 5000,
    });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  /** The dispatcher's events about connections since `from`, once `n` of them have an outcome. */
  const outcomes = async (from: number, n: number): Promise<DispatchEvent[]> => {
    const done = (): DispatchEvent[] =>
      events()
        .slice(from)
        .filter((e) => e.event === 'migrated' || e.event === 'relayed' || e.event === 'rejected');
    for (let i = 0; done().length < n && i < 500; i++) await sleep(10);
    return done();
  };

  const daemonMetric = async (series: string): Promise<number> => {
    const text = (await tb.exec('lb', 'curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9300/metrics'])).stdout;
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  };

  const assertClean = async (): Promise<void> => {
    await sleep(300);
    const ss = await tb.exec('lb', 'ss', ['-Htn', 'state', 'established', `( sport = :${PORT} )`]);
    assert.equal(ss.stdout.trim(), '', `LB sockets left: ${ss.stdout}`);
    assert.deepEqual(rsts, [], 'no RST on the wire');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-migrate-lb-'));
    tb = await createTestbed(routedTopology('miglb'), {
      passXdp: (node) => node === 'client' || node === 'router',
    });
    // RSTs of the served connections (the LB's channel to a stopped agent is refused with one, by design).
    const rst = `tcp port ${PORT} and tcp[13] & 4 != 0`;
    await Promise.all(
      ['client', 'router', 'lb', ...BACKENDS].map(
        (n) =>
          new Promise<void>((resolve, reject) => {
            const cap = tb.spawn(n, 'tcpdump', ['-nn', '-l', '-i', 'any', rst]);
            cap.stdout?.on('data', (d: Buffer) => rsts.push(`${n}: ${d.toString().trim()}`));
            const t = setTimeout(() => reject(new Error(`tcpdump in ${n} did not start`)), 10_000);
            cap.stderr?.on('data', (d: Buffer) => {
              if (d.toString().includes('listening on')) {
                clearTimeout(t);
                resolve();
              }
            });
          }),
      ),
    );
    stack = await startMigrateStack(tb, dir, {
      port: PORT,
      serve: (b) => (req, res) => {
        if (req.url === '/big') return void res.writeHead(200, { 'content-length': BIG.length }).end(BIG);
        const m = (req.socket as MigratedSocket).baton?.migrationId;
        res.end(`${b} ${req.url} ${m === undefined ? 'relayed' : `migration ${m}`}\n`);
      },
    });
  });

  after(async () => {
    await stack?.close();
    await tb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('requests are migrated round robin to both back ends and answered by their apps', async () => {
    const from = events().length;
    const bodies = [await curl([`http://${VIP4}/a`]), await curl([`http://${VIP4}/b`])];
    const got = await outcomes(from, 2);
    assert.deepEqual(
      got.map((e) => e.event),
      ['migrated', 'migrated'],
      JSON.stringify(events().slice(from)),
    );
    // The dispatcher's default: the client socket passed over the daemon's local handoff channel (MIGRATE frame).
    assert.deepEqual(
      got.map((e) => (e.event === 'migrated' ? e.via : undefined)),
      ['channel', 'channel'],
    );
    assert.deepEqual(bodies.map((b) => b.split(' ')[0]).sort(), ['backend1', 'backend2']);
    for (const b of bodies) assert.match(b, / \/[ab] migration \d+\n$/);
    assert.equal(await daemonMetric('baton_handoffs_total{mode="migrate",outcome="ok"}'), 2);
    await assertClean();
  });

  test('a dispatcher that asks over REST (POST /v1/migrations) migrates the same way', async () => {
    await stack.restartDispatcher('rest');
    try {
      const from = events().length;
      const body = await curl([`http://${VIP4}/r`]);
      const [e] = await outcomes(from, 1);
      assert.equal(e?.event, 'migrated', JSON.stringify(events().slice(from)));
      if (e?.event === 'migrated') assert.equal(e.via, 'rest');
      assert.match(body, / \/r migration \d+\n$/);
      await assertClean();
    } finally {
      await stack.restartDispatcher('channel');
    }
  });

  test('a 64 MiB download and 1,000 keep-alive requests on migrated connections, byte-exact', async () => {
    const from = events().length;
    const out = join(dir, 'big.bin');
    await curl(['-o', out, `http://${VIP4}/big`], 60_000);
    assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), BIG_SHA);
    const urls = Array.from({ length: 1000 }, (_, i) => `http://${VIP4}/k${i}`);
    const text = await curl(urls, 60_000);
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 1000);
    // One connection (curl reuses it): one migration, every answer from the same back end and migration.
    const first = lines[0] as string;
    const [backend, , , id] = first.split(' ');
    for (const [i, l] of lines.entries()) assert.equal(l, `${backend} /k${i} migration ${id}`);
    const got = await outcomes(from, 2);
    assert.deepEqual(
      got.map((e) => e.event),
      ['migrated', 'migrated'],
    );
    await assertClean();
  });

  test('an agent that is down: the request is still answered (relayed), and the LB keeps no entry', async () => {
    await (stack.agents.get('backend2') as AgentProc).stop();
    const entriesBefore = await daemonMetric('baton_table_entries');
    const from = events().length;
    const bodies = [await curl([`http://${VIP4}/c`]), await curl([`http://${VIP4}/d`])];
    const got = await outcomes(from, 2);
    const relayed = got.find((e) => e.event === 'relayed');
    assert.ok(relayed && relayed.event === 'relayed', JSON.stringify(got));
    assert.equal(relayed.backend, `${ROUTED_BACKENDS[1].ip}:${PORT}`);
    assert.equal(relayed.code, 'AGENT_UNREACHABLE');
    assert.ok(bodies.includes(`backend2 /${relayed.path.slice(1)} relayed\n`), bodies.join(''));
    assert.ok(
      got.some((e) => e.event === 'migrated'),
      'the other back end still migrates',
    );
    // The migrated one adds its entry; the failed one left none.
    assert.equal(await daemonMetric('baton_table_entries'), entriesBefore + 1);
    assert.equal(await daemonMetric('baton_migrated_connections'), entriesBefore + 1);
    assert.ok((await daemonMetric('baton_handoffs_total{mode="migrate",outcome="agent_unreachable"}')) >= 1);
    await stack.startAgent('backend2');
    await assertClean();
  });

  test('a daemon restart keeps an already migrated connection working', async () => {
    const client = tb.spawn('client', process.execPath, ['-e', KEEPALIVE_CLIENT, VIP4, String(PORT)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: string[] = [];
    client.stdout?.on('data', (d: Buffer) => out.push(d.toString()));
    const waitFor = async (what: string): Promise<void> => {
      for (let i = 0; !out.join('').includes(what) && i < 500; i++) await sleep(10);
      assert.ok(out.join('').includes(what), `got ${out.join('')}`);
    };
    try {
      await waitFor('/r1 migration');
      await stack.restartLb();
      // The restarted daemon took the migration over: it tracks (and will reclaim) its entry.
      assert.ok((await daemonMetric('baton_migrated_connections')) >= 1);
      client.stdin?.write('\n');
      await waitFor('/r2 migration');
    } finally {
      try {
        process.kill(-(client.pid as number), 'SIGTERM');
      } catch {} // already gone
    }
    await assertClean();
  });
});
