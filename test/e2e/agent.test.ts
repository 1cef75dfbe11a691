/**
 * Migrate mode's control plane end to end, on real kernels in a netns
 * testbed, without XDP (test/e2e/migrate.test.ts runs the same flow on the
 * LB's and the agent's flow-id datapath):
 *
 *   client ──link1── lb ──link3── backend      VIP 198.19.0.1 on lo of lb AND backend
 *      └──────────link2──────────────┘
 *
 * The client reaches the VIP through the LB first. A front end in the LB's
 * namespace (this test process, its sockets made in that namespace) accepts,
 * reads the first request and migrates the socket to `baton agent` on the
 * back end over the authenticated blob channel. The agent restores it and
 * hands it (SCM_RIGHTS) to a Node http.Server behind the SDK (this process:
 * a passed descriptor works whatever namespace its receiver is in). Then the
 * switch-over seam re-routes the VIP at the client toward the back end: A
 * PLAIN ROUTE CHANGE STANDS IN FOR THE FLOW-ID DATAPATH here. Replies go
 * straight from the back end to the client (link2).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatonError } from '../../control/errors.js';
import { AgentChannel } from '../../control/migrate/channel.js';
import { type MigrateResult, migrateSocket } from '../../control/migrate/migrate.js';
import { withNetns } from '../../control/net/netns.js';
import { type AgentConnection, connectAgent, type MigratedSocket } from '../../control/sdk/agent.js';
import { libc } from '../../control/sys/libc.js';
import { socketFd } from '../../control/sys/peercred.js';
import { SO_REUSEADDR, SOL_SOCKET } from '../../control/tcp/kernel.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { bindTo, connectTo, listenOn, openTcpSocket, setInt } from '../../control/tcp/socket.js';
import { NODE_CLI } from '../../lab/launch/baton-cli.js';
import {
  canRunPrivileged,
  createTestbed,
  DEFAULT_XDP_PASS_OBJ,
  type Testbed,
  VIP4,
  VIP6,
} from '../../lab/testbed/index.js';
import {
  AGENT_ADDR,
  AGENT_PORT,
  directReturnTopology,
  KEEPALIVE_CLIENT,
  SERVED_PORT,
  UNSERVED_PORT,
} from '../lib/migrate-bed.js';

const priv = canRunPrivileged();
const skip = !priv.ok
  ? priv.reason
  : !existsSync(DEFAULT_XDP_PASS_OBJ) && 'run make bpf first (the testbed needs xdp_pass.o)';

describe('migrate: LB -> baton agent -> app behind the SDK', { skip }, () => {
  let tb: Testbed;
  let dir: string;
  let agentProc: ChildProcess;
  const agentLog: string[] = [];
  const rsts: string[] = [];
  let sdk: AgentConnection;
  let app: http.Server;
  let channel: AgentChannel;
  const lbServers: net.Server[] = [];
  const results: MigrateResult[] = [];
  let nextId = 1n;
  /** Capture start -> the agent's confirmation, per migration (the switch-over excluded). */
  const toConfirmationMs: number[] = [];
  const secret = randomBytes(32).toString('hex');

  const routeVipVia = (node: 'lb' | 'backend', family: 4 | 6 = 4) =>
    family === 4
      ? tb.ip('client', ['route', 'replace', `${VIP4}/32`, 'via', node === 'lb' ? '198.18.1.2' : '198.18.2.2'])
      : tb.ip('client', [
          '-6',
          'route',
          'replace',
          `${VIP6}/128`,
          'via',
          node === 'lb' ? '2001:db8:1::2' : '2001:db8:2::2',
        ]);

  /** A TCP socket made in the LB's namespace and connected to the agent, as a net.Socket. */
  const lbSocketToAgent = (): net.Socket =>
    new net.Socket({
      fd: withNetns(tb.ns('lb'), () => {
        const fd = openTcpSocket(4);
        connectTo(fd, { ip: AGENT_ADDR, port: AGENT_PORT }, 4);
        return fd;
      }),
    });

  /** The migrations since index `from`, once there are `n` (a reply can reach the client before migrateSocket returns). */
  const migrationsSince = async (from: number, n: number): Promise<MigrateResult[]> => {
    const deadline = Date.now() + 5000;
    while (results.length < from + n && Date.now() < deadline) await sleep(10);
    return results.slice(from);
  };

  /** When set, switch-overs wait until `n` migrations are confirmed (the route is one for all connections). */
  let barrier: { arrive: () => Promise<void> } | undefined;
  const makeBarrier = (n: number) => {
    let count = 0;
    let open!: () => void;
    const opened = new Promise<void>((r) => {
      open = r;
    });
    return {
      arrive: () => {
        if (++count >= n) open();
        return opened;
      },
    };
  };

  /** The LB's front end: read the first request, migrate; relay (answer itself) when the migration fails. */
  function frontEnd(s: net.Socket): void {
    let got = Buffer.alloc(0);
    const onData = async (d: Buffer): Promise<void> => {
      got = Buffer.concat([got, d]);
      if (!got.includes('\r\n\r\n')) return;
      s.off('data', onData);
      s.pause();
      // Our own descriptor of the socket (as baton takes a front end's): release closes it, Node's stays inert.
      const fd = takeSocket(process.pid, socketFd(s) as number);
      const t0 = performance.now();
      const r = await migrateSocket(fd, {
        channel,
        receivedData: got,
        migrationId: nextId++,
        appProtocol: 'http/1.1',
        switchOver: async (state) => {
          toConfirmationMs.push(performance.now() - t0);
          await barrier?.arrive();
          await routeVipVia('backend', state.family);
        },
      });
      results.push(r);
      if (r.migrated) {
        s.destroy(); // the socket was released in repair mode: closing sends nothing
        return;
      }
      libc.close(fd);
      s.resume();
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nrelayed\n');
    };
    s.on('data', onData);
    s.on('error', () => {});
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-agent-e2e-'));
    writeFileSync(join(dir, 'peer.secret'), `${secret}\n`, { mode: 0o600 });
    tb = await createTestbed(directReturnTopology('agent'), { passXdp: () => false });
    // Every RST on any host; the check is only as good as the capture, so wait until each tcpdump listens.
    const listening: Promise<void>[] = [];
    for (const node of ['client', 'lb', 'backend']) {
      const cap = tb.spawn(node, 'tcpdump', ['-i', 'any', '-nn', '-l', 'tcp[13] & 4 != 0']);
      cap.stdout?.on('data', (d: Buffer) =>
        rsts.push(
          ...d
            .toString()
            .trim()
            .split('\n')
            .map((l) => `${node}: ${l}`),
        ),
      );
      listening.push(
        new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`tcpdump in ${node} did not start`)), 10_000);
          cap.stderr?.on('data', (d: Buffer) => {
            if (d.toString().includes('listening on')) {
              clearTimeout(t);
              resolve();
            }
          });
        }),
      );
    }
    await Promise.all(listening);
    const appSocket = join(dir, 'agent.sock');
    agentProc = tb.spawn('backend', NODE_CLI[0] as string, [
      ...NODE_CLI.slice(1),
      'agent',
      '--listen',
      `${AGENT_ADDR}:${AGENT_PORT}`,
      '--peer-secret-file',
      join(dir, 'peer.secret'),
      '--app-socket',
      appSocket,
      '--metrics',
      '127.0.0.1:9400',
    ]);
    agentProc.stderr?.on('data', (d: Buffer) => agentLog.push(...d.toString().trim().split('\n')));
    agentProc.stdout?.resume();
    const deadline = Date.now() + 20_000;
    while (!agentLog.some((l) => l.includes('agent_started'))) {
      if (Date.now() > deadline || agentProc.exitCode !== null)
        assert.fail(`agent did not start: ${agentLog.join('\n')}`);
      await sleep(50);
    }

    // The app: an http.Server that never listens; the SDK feeds it migrated connections.
    app = http.createServer((req, res) => {
      const mid = (req.socket as MigratedSocket).baton?.migrationId ?? '?';
      res.end(`app ${req.url} migration ${mid}\n`);
    });
    sdk = await connectAgent({ socketPath: appSocket });
    await sdk.attach(app, { vip: `${VIP4}:${SERVED_PORT}` });
    await sdk.attach(app, { vip: `[${VIP6}]:${SERVED_PORT}` });

    channel = await AgentChannel.connect({ secret: Buffer.from(secret), socket: lbSocketToAgent() });
    for (const [ip, family, port] of [
      [VIP4, 4, SERVED_PORT],
      [VIP4, 4, UNSERVED_PORT],
      [VIP6, 6, SERVED_PORT],
    ] as const) {
      const fd = withNetns(tb.ns('lb'), () => {
        const l = openTcpSocket(family);
        setInt(l, SOL_SOCKET, SO_REUSEADDR, 1, 'listen');
        bindTo(l, { ip, port }, family);
        listenOn(l, 64);
        return l;
      });
      const srv = net.createServer(frontEnd);
      await new Promise<void>((r) => srv.listen({ fd }, r));
      lbServers.push(srv);
    }
  });

  after(async () => {
    channel?.close();
    for (const s of lbServers) s.close();
    await sdk?.close();
    app?.close();
    await tb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a migrated connection is answered by the app, first request and two keep-alive requests, no RST', async (t) => {
    await routeVipVia('lb');
    const before = results.length;
    const urls = ['/one', '/two', '/three'].map((p) => `http://${VIP4}:${SERVED_PORT}${p}`);
    const r = await tb.exec(
      'client',
      'curl',
      ['-sS', '--max-time', '10', '-w', '[%{http_code} %{num_connects}]\n', ...urls],
      {
        timeoutMs: 15_000,
      },
    );
    const mine = await migrationsSince(before, 1);
    assert.equal(mine.length, 1, 'one migration for one connection');
    const m = mine[0] as MigrateResult;
    assert.ok(m.migrated, `migrated: ${!m.migrated ? m.error.message : ''}`);
    const id = m.migrationId.toString();
    assert.equal(
      r.stdout,
      `app /one migration ${id}\n[200 1]\napp /two migration ${id}\n[200 0]\napp /three migration ${id}\n[200 0]\n`,
    );
    assert.ok(m.queuedBytes > 0 && m.queuedBytes < 200, `the first request was queued (${m.queuedBytes} bytes)`);
    // No socket of that connection left on the LB.
    const ss = await tb.exec('lb', 'ss', ['-Htn', `( sport = :${SERVED_PORT} )`]);
    assert.equal(ss.stdout.trim(), '', `LB sockets left: ${ss.stdout}`);
    await sleep(300);
    assert.deepEqual(rsts, []);
    const metrics = await tb.exec('backend', 'curl', ['-sS', 'http://127.0.0.1:9400/metrics']);
    assert.match(metrics.stdout, /baton_agent_migrations_total\{outcome="restored"\} 1\b/);
    assert.match(metrics.stdout, /baton_agent_restore_duration_seconds_count 1\b/);
    const sum = Number(/baton_agent_restore_duration_seconds_sum (\S+)/.exec(metrics.stdout)?.[1]);
    t.diagnostic(
      `agent restore + hand-off ${(sum * 1e6).toFixed(0)} us; LB capture -> confirmation ${((toConfirmationMs[0] ?? 0) * 1000).toFixed(0)} us`,
    );
    const ready = await tb.exec('backend', 'curl', ['-sS', '-w', ' %{http_code}', 'http://127.0.0.1:9400/readyz']);
    assert.match(ready.stdout, /"ready":true.* 200$/s);
  });

  test('several migrations in flight on the one channel, each confirmed by its own id', async (t) => {
    await routeVipVia('lb');
    const before = results.length;
    // Connections opened together: their blobs share the channel. The route stand-in is one for all connections,
    // so the switch-overs wait until all four are confirmed (the flow-id datapath switches per connection).
    barrier = makeBarrier(4);
    const outs = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${SERVED_PORT}/p${i}`], {
          timeoutMs: 15_000,
        }),
      ),
    );
    barrier = undefined;
    await migrationsSince(before, 4);
    t.diagnostic(
      `LB capture -> confirmation (us): ${toConfirmationMs
        .slice(-4)
        .map((ms) => (ms * 1000).toFixed(0))
        .join(' ')}`,
    );
    const mine = results.slice(before);
    assert.equal(mine.length, 4);
    assert.ok(
      mine.every((m) => m.migrated),
      JSON.stringify(mine.map((m) => (m.migrated ? 'ok' : m.error.message))),
    );
    const ids = new Set(mine.map((m) => (m.migrated ? m.migrationId.toString() : '')));
    assert.equal(ids.size, 4);
    for (const [i, o] of outs.entries()) assert.match(o.stdout, new RegExp(`^app /p${i + 1} migration (\\d+)\n$`));
    assert.deepEqual(new Set(outs.map((o) => /migration (\d+)/.exec(o.stdout)?.[1])), ids);
    await sleep(300);
    assert.deepEqual(rsts, []);
  });

  test('IPv6: a migrated connection is answered by the app, with a keep-alive request', async () => {
    await routeVipVia('lb', 6);
    const before = results.length;
    const urls = ['/v6a', '/v6b'].map((p) => `http://[${VIP6}]:${SERVED_PORT}${p}`);
    const r = await tb.exec(
      'client',
      'curl',
      ['-sS', '-g', '--max-time', '10', '-w', '[%{http_code} %{num_connects}]\n', ...urls],
      {
        timeoutMs: 15_000,
      },
    );
    const m = (await migrationsSince(before, 1))[0] as MigrateResult;
    assert.ok(m?.migrated, `migrated: ${m && !m.migrated ? m.error.message : 'no migration'}`);
    assert.equal(m.state.family, 6);
    const id = m.migrationId.toString();
    assert.equal(r.stdout, `app /v6a migration ${id}\n[200 1]\napp /v6b migration ${id}\n[200 0]\n`);
    await sleep(300);
    assert.deepEqual(rsts, []);
  });

  test('an agent that refuses (no app for the VIP) leaves the LB socket usable: the LB answers', async () => {
    await routeVipVia('lb');
    const before = results.length;
    const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${UNSERVED_PORT}/x`], {
      timeoutMs: 15_000,
    });
    assert.equal(r.stdout, 'relayed\n');
    const m = results.slice(before)[0] as MigrateResult;
    assert.equal(m.migrated, false);
    if (!m.migrated) {
      assert.equal(m.error.code, 'AGENT_REFUSED');
      assert.equal(m.error.reason, 'no_app');
    }
    await sleep(300);
    assert.deepEqual(rsts, []);
  });

  test('a sender without the shared secret is refused and logged', async () => {
    await assert.rejects(
      AgentChannel.connect({ secret: Buffer.from('not the secret, but 32 bytes ..'), socket: lbSocketToAgent() }),
      (e: unknown) => e instanceof BatonError && e.code === 'AGENT_UNAUTHENTICATED',
    );
    await sleep(100);
    assert.ok(
      agentLog.some((l) => l.includes('"channel_refused"')),
      agentLog.join('\n'),
    );
    const metrics = await tb.exec('backend', 'curl', ['-sS', 'http://127.0.0.1:9400/metrics']);
    assert.match(metrics.stdout, /baton_agent_channel_refused_total 1\b/);
    // The authenticated channel is unaffected.
    assert.equal(channel.inFlight, 0);
  });

  // Stops the agent: after the tests that need it.
  test('SIGTERM stops the agent; connections it handed over keep working; new ones are relayed by the LB', async () => {
    await routeVipVia('lb');
    const before = results.length;
    // A client that sends its second request on the same connection only when told (a line on stdin).
    const client = tb.spawn('client', process.execPath, ['-e', KEEPALIVE_CLIENT, VIP4, String(SERVED_PORT)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    client.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const waitFor = async (re: RegExp, what: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!re.test(out)) {
        if (Date.now() > deadline) assert.fail(`${what}: client output ${JSON.stringify(out)}`);
        await sleep(20);
      }
    };
    try {
      await waitFor(/app \/r1 migration \d+/, 'first answer');
      const m = (await migrationsSince(before, 1))[0] as MigrateResult;
      assert.ok(m?.migrated);
      agentProc.kill('SIGTERM');
      const [code] = (await once(agentProc, 'exit')) as [number | null];
      assert.equal(code, 0, agentLog.join('\n'));
      client.stdin?.write('next\n');
      await waitFor(/app \/r2 migration \d+/, 'answer after the agent stopped');
      assert.equal(/app \/r2 migration (\d+)/.exec(out)?.[1], m.migrationId.toString());
      await sleep(300);
      assert.deepEqual(rsts, []);
    } finally {
      client.kill('SIGKILL');
    }
    // With the agent gone the channel has failed: a new connection is not migrated, the LB answers on its socket.
    await routeVipVia('lb');
    const from = results.length;
    const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${SERVED_PORT}/late`], {
      timeoutMs: 15_000,
    });
    assert.equal(r.stdout, 'relayed\n');
    const late = (await migrationsSince(from, 1))[0] as MigrateResult;
    assert.equal(late.migrated, false);
    if (!late.migrated) assert.equal(late.error.code, 'AGENT_UNREACHABLE');
  });

  // Last: it adds RSTs. Proves the capture the no-RST checks above rely on sees one.
  test('the RST capture works: a connection to a closed port is seen being reset', async () => {
    const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '5', `http://${VIP4}:82/`], { check: false });
    assert.notEqual(r.code, 0);
    const deadline = Date.now() + 3000;
    while (!rsts.some((l) => l.startsWith('client:')) && Date.now() < deadline) await sleep(50);
    assert.ok(
      rsts.some((l) => l.startsWith('client:')),
      'tcpdump at the client saw the RST',
    );
  });
});
