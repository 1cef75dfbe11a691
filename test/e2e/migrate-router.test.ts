/**
 * Migrate mode on the routed bed of issue 11's "Done when" (test/lib/migrate-bed.ts routedTopology):
 *
 *   client ── router ── lb               VIP on lo of lb, backend1, backend2
 *               ├────── backend1         (baton agent + Node app behind the SDK + the Python example)
 *               └────── backend2         (baton agent + Node app behind the SDK)
 *
 * The LB (baton's XDP program, this process's Datapath) reads the first
 * request and migrates the socket to the back end the path names; from
 * then on the client's segments go client -> router -> LB -> (flow id in
 * the ports, XDP_TX) -> router -> back end, and the replies go back end ->
 * router -> client, never into the LB. Each case uses one connection:
 * (a) 64 MiB download, SHA-256; (b) 1,000 keep-alive requests; (c) both
 * under 3% random loss at the client's and both back ends' INPUT (both
 * directions); (e) the Python example (examples/python/migrated_server.py,
 * as uid 65534); (f) IPv4 and IPv6, and each back end. After every case
 * (d): no RST at any node, no socket left on the LB, no segment from the
 * VIP's served ports sent toward the LB by the router.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openPinnedMap } from '../../control/bpf/index.js';
import { applyHostSettingsUnrecorded } from '../../control/daemon/host-settings.js';
import { agentMapPin } from '../../control/datapath/agent-datapath.js';
import { Datapath, readCounters } from '../../control/datapath/datapath.js';
import { AgentChannel } from '../../control/migrate/channel.js';
import { FlowIdSwitch } from '../../control/migrate/flow-switch.js';
import { type MigrateResult, migrateSocket } from '../../control/migrate/migrate.js';
import { withNetns } from '../../control/net/netns.js';
import { type AgentConnection, connectAgent, type MigratedSocket } from '../../control/sdk/agent.js';
import { libc } from '../../control/sys/libc.js';
import { socketFd } from '../../control/sys/peercred.js';
import { SO_REUSEADDR, SOL_SOCKET } from '../../control/tcp/kernel.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { bindTo, connectTo, listenOn, openTcpSocket, setInt } from '../../control/tcp/socket.js';
import { NODE_CLI } from '../../lab/launch/baton-cli.js';
import { ROOT } from '../../lab/paths.js';
import {
  canRunPrivileged,
  createTestbed,
  DEFAULT_XDP_PASS_OBJ,
  type Testbed,
  VIP4,
  VIP6,
} from '../../lab/testbed/index.js';
import { AGENT_PORT, ROUTED_BACKENDS, ROUTED_LB_ADDR, routedTopology } from '../lib/migrate-bed.js';

const priv = canRunPrivileged();
const skip = !priv.ok
  ? priv.reason
  : !existsSync(DEFAULT_XDP_PASS_OBJ) && 'run make bpf first (the testbed needs xdp_pass.o)';

const NODE_PORT = 80; // the Node apps (SDK) on both back ends
const PY_PORT = 8080; // the Python example on backend1, as uid 65534
const PY_UID = 65534;
const PYTHON = '/usr/bin/python3';
const PY_APP = join(ROOT, 'examples/python/migrated_server.py');
const BIG = randomBytes(64 * 1024 * 1024);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');
const LOSS = '0.03';
const BACKENDS = ROUTED_BACKENDS.map((b) => b.node);
type Backend = (typeof BACKENDS)[number];

/** Which back end a first request goes to: the Python port to backend1, a path under /b2/ to backend2. */
const pickBackend = (port: number, head: Buffer): Backend =>
  port !== PY_PORT && / \/b2\//.test(head.subarray(0, 64).toString('latin1')) ? 'backend2' : 'backend1';

describe('migrate through a router: two back ends with agents, replies bypass the LB', {
  skip,
  timeout: 240_000,
}, () => {
  let tb: Testbed;
  let dir: string;
  let dp: Datapath;
  let sw: FlowIdSwitch;
  const agents: ChildProcess[] = [];
  const agentLog: string[] = [];
  const pyLog: string[] = [];
  const sdks: AgentConnection[] = [];
  const apps: http.Server[] = [];
  const channels = new Map<Backend, AgentChannel>();
  const lbServers: net.Server[] = [];
  const results: { backend: Backend; r: MigrateResult }[] = [];
  /** RSTs seen at any node; served-port segments the router sends to the LB; the same toward the client. */
  const rsts: string[] = [];
  const leaks: string[] = [];
  const direct: string[] = [];
  const toLb: string[] = [];
  let nextId = 1n;
  const secret = randomBytes(32).toString('hex');
  const appSocket = (b: Backend): string => join(dir, `${b}.sock`);

  function frontEnd(s: net.Socket): void {
    let got = Buffer.alloc(0);
    const onData = async (d: Buffer): Promise<void> => {
      got = Buffer.concat([got, d]);
      if (!got.includes('\r\n\r\n')) return;
      s.off('data', onData);
      s.pause();
      const backend = pickBackend(s.localPort as number, got);
      const addr = ROUTED_BACKENDS.find((b) => b.node === backend) as (typeof ROUTED_BACKENDS)[number];
      const fd = takeSocket(process.pid, socketFd(s) as number);
      const r = await migrateSocket(fd, {
        channel: channels.get(backend) as AgentChannel,
        receivedData: got,
        migrationId: nextId++,
        appProtocol: 'http/1.1',
        datapath: { switch: sw, backend: s.remoteFamily === 'IPv6' ? addr.ip6 : addr.ip },
      });
      results.push({ backend, r });
      if (r.migrated) return void s.destroy(); // released in repair mode: closing sends nothing
      libc.close(fd);
      s.resume();
      s.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 12\r\nconnection: close\r\n\r\nnot migrated');
    };
    s.on('data', onData);
    s.on('error', () => {});
  }

  const capture = (node: string, args: string[], into: string[]): Promise<void> => {
    const cap = tb.spawn(node, 'tcpdump', ['-nn', '-l', ...args]);
    cap.stdout?.on('data', (d: Buffer) =>
      into.push(
        ...d
          .toString()
          .trim()
          .split('\n')
          .map((l) => `${node}: ${l}`),
      ),
    );
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`tcpdump in ${node} did not start`)), 10_000);
      cap.stderr?.on('data', (d: Buffer) => {
        if (d.toString().includes('listening on')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
  };

  const agentCounter = (b: Backend, reason: string): bigint => {
    const m = openPinnedMap(agentMapPin(join(tb.bpffsPath(b), 'baton-agent'), 'baton_counters'));
    try {
      return readCounters(m).find((c) => c.reason === reason)?.packets ?? 0n;
    } finally {
      libc.close(m.fd);
    }
  };

  const startAgent = async (b: Backend): Promise<void> => {
    const addr = ROUTED_BACKENDS.find((x) => x.node === b) as (typeof ROUTED_BACKENDS)[number];
    // The Python example's uid may serve the VIP's PY_PORT on backend1 (authorization by SO_PEERCRED).
    const pyRules =
      b === 'backend1' ? ['--app', `${VIP4}:${PY_PORT}=${PY_UID}`, '--app', `[${VIP6}]:${PY_PORT}=${PY_UID}`] : [];
    const proc = tb.spawn(
      b,
      NODE_CLI[0] as string,
      [
        ...NODE_CLI.slice(1),
        'agent',
        '--listen',
        `${addr.ip}:${AGENT_PORT}`,
        '--peer-secret-file',
        join(dir, 'peer.secret'),
        '--app-socket',
        appSocket(b),
        ...tb.node(b).ifaces.flatMap((i) => ['--interface', i.name]),
        '--pin-dir',
        '/sys/fs/bpf/baton-agent',
        ...pyRules,
      ],
      { bpffs: true },
    );
    agents.push(proc);
    let started = false;
    proc.stderr?.on('data', (d: Buffer) => {
      const lines = d.toString().trim().split('\n');
      agentLog.push(...lines.map((l) => `${b}: ${l}`));
      if (lines.some((l) => l.includes('agent_started'))) started = true;
    });
    proc.stdout?.resume();
    const deadline = Date.now() + 20_000;
    while (!started) {
      if (Date.now() > deadline || proc.exitCode !== null)
        assert.fail(`agent on ${b} did not start: ${agentLog.join('\n')}`);
      await sleep(50);
    }
  };

  const startPython = async (): Promise<void> => {
    const proc = tb.spawn('backend1', 'setpriv', [
      `--reuid=${PY_UID}`,
      `--regid=${PY_UID}`,
      '--clear-groups',
      PYTHON,
      PY_APP,
      '--socket',
      appSocket('backend1'),
      '--vip',
      `${VIP4}:${PY_PORT}`,
      '--vip',
      `[${VIP6}]:${PY_PORT}`,
    ]);
    proc.stderr?.on('data', (d: Buffer) => pyLog.push(...d.toString().trim().split('\n')));
    proc.stdout?.resume();
    const deadline = Date.now() + 10_000;
    while (pyLog.filter((l) => l.includes('"registered"')).length < 2) {
      if (Date.now() > deadline || proc.exitCode !== null)
        assert.fail(`python app did not register: ${pyLog.join('\n')}`);
      await sleep(50);
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-migrate-router-'));
    chmodSync(dir, 0o755); // the Python app (uid 65534) reaches its agent's socket in here
    writeFileSync(join(dir, 'peer.secret'), `${secret}\n`, { mode: 0o600 });
    tb = await createTestbed(routedTopology('migrtr'), {
      // The LB and the back ends get baton's programs; the router's ends need one for the LB's XDP_TX frames.
      passXdp: (node) => node === 'client' || node === 'router',
    });
    dp = await Datapath.load({ flowsCapacity: 1024 });
    const lb = tb.node('lb');
    withNetns(lb.ns, () => {
      for (const i of lb.ifaces) dp.attach(i.ifindex);
      applyHostSettingsUnrecorded(lb.ifaces.map((i) => i.name));
    });
    sw = new FlowIdSwitch(dp.table, ROUTED_LB_ADDR);

    const served = `tcp and (src host ${VIP4} or src host ${VIP6}) and (src port ${NODE_PORT} or src port ${PY_PORT})`;
    // tcp[] offsets are IPv4 only in pcap filters: IPv6's TCP flags are at ip6[40 + 13] (no extension headers here).
    const rst = '(ip and tcp[13] & 4 != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 4 != 0)';
    await Promise.all([
      ...['client', 'router', 'lb', ...BACKENDS].map((n) => capture(n, ['-i', 'any', rst], rsts)),
      // What the router sends toward the LB (the LB's XDP would forward such a segment before tcpdump there saw it).
      capture('router', ['-i', tb.iface('router', 'lb').name, '-Q', 'out', served], leaks),
      capture('lb', ['-i', 'any', `inbound and ${served}`], leaks),
      capture('router', ['-c', '4', '-i', tb.iface('router', 'client').name, '-Q', 'out', served], direct),
      // The leak capture's vantage point works: it sees the client's segments toward the VIP.
      capture('router', ['-c', '2', '-i', tb.iface('router', 'lb').name, '-Q', 'out', 'tcp and dst port 80'], toLb),
    ]);

    for (const b of BACKENDS) await startAgent(b);
    for (const b of BACKENDS) {
      const app = http.createServer((req, res) => {
        if (req.url?.endsWith('/big')) return void res.writeHead(200, { 'content-length': BIG.length }).end(BIG);
        res.end(`${b} ${req.url} migration ${(req.socket as MigratedSocket).baton?.migrationId ?? '?'}\n`);
      });
      apps.push(app);
      const sdk = await connectAgent({ socketPath: appSocket(b) });
      sdks.push(sdk);
      await sdk.attach(app, { vip: `${VIP4}:${NODE_PORT}` });
      await sdk.attach(app, { vip: `[${VIP6}]:${NODE_PORT}` });
      const addr = ROUTED_BACKENDS.find((x) => x.node === b) as (typeof ROUTED_BACKENDS)[number];
      const sock = new net.Socket({
        fd: withNetns(tb.ns('lb'), () => {
          const fd = openTcpSocket(4);
          connectTo(fd, { ip: addr.ip, port: AGENT_PORT }, 4);
          return fd;
        }),
      });
      channels.set(b, await AgentChannel.connect({ secret: Buffer.from(secret), socket: sock }));
      // The LB's FIB lookups toward the back end need the router's neighbour entries (both families).
      await tb.exec('lb', 'ping', ['-6', '-c', '1', '-W', '2', addr.ip6], { timeoutMs: 5000 });
    }
    await startPython();
    for (const [ip, family, port] of [
      [VIP4, 4, NODE_PORT],
      [VIP6, 6, NODE_PORT],
      [VIP4, 4, PY_PORT],
      [VIP6, 6, PY_PORT],
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
    for (const c of channels.values()) c.close();
    for (const s of lbServers) s.close();
    for (const s of sdks) await s.close();
    for (const a of apps) a.close();
    await tb?.destroy();
    dp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The one migration since `from`: migrated, to `backend`. */
  const oneMigration = async (from: number, backend: Backend): Promise<MigrateResult & { migrated: true }> => {
    const deadline = Date.now() + 5000;
    while (results.length <= from && Date.now() < deadline) await sleep(10);
    const mine = results.slice(from);
    assert.equal(mine.length, 1, 'one connection, one migration');
    const { backend: to, r } = mine[0] as { backend: Backend; r: MigrateResult };
    assert.ok(r.migrated, `migrated: ${!r.migrated ? r.error.message : ''}\n${agentLog.slice(-20).join('\n')}`);
    assert.equal(to, backend);
    return r;
  };

  /** (d) after each case: no RST anywhere, nothing left on the LB, no served-port segment toward the LB. */
  const assertClean = async (): Promise<void> => {
    await sleep(300);
    const ss = await tb.exec('lb', 'ss', ['-Htn', `( sport = :${NODE_PORT} or sport = :${PY_PORT} )`]);
    assert.equal(ss.stdout.trim(), '', `LB sockets left: ${ss.stdout}`);
    assert.deepEqual(leaks, [], 'no back-end -> client segment went toward the LB');
    assert.deepEqual(rsts, [], 'no RST on the wire');
  };

  const download = async (url: string, ipv6: boolean): Promise<{ secs: number; sha: string; out: string }> => {
    const file = join(dir, 'big.bin');
    const t0 = Date.now();
    const r = await tb.exec(
      'client',
      'curl',
      [...(ipv6 ? ['-g'] : []), '-sS', '--max-time', '60', '-o', file, '-w', '%{http_code} %{size_download}', url],
      { timeoutMs: 65_000 },
    );
    const secs = (Date.now() - t0) / 1000;
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    rmSync(file);
    return { secs, sha, out: r.stdout };
  };

  /** 1,000 requests on one connection (curl reuses it); every answer checked. */
  const keepAlive = async (base: string, backend: Backend, from: number): Promise<number> => {
    const urls = Array.from({ length: 1000 }, (_, i) => `${base}/k${i + 1}`);
    const t0 = Date.now();
    const r = await tb.exec('client', 'curl', ['-g', '-sS', '--max-time', '60', '-w', '[%{num_connects}]', ...urls], {
      timeoutMs: 65_000,
    });
    const secs = (Date.now() - t0) / 1000;
    const m = await oneMigration(from, backend);
    const path = new URL(base).pathname;
    let want = '';
    for (let i = 1; i <= 1000; i++) want += `${backend} ${path}/k${i} migration ${m.migrationId}\n[${i === 1 ? 1 : 0}]`;
    assert.equal(r.stdout, want);
    return secs;
  };

  test('(a) a 64 MiB download over a connection migrated to backend1 (IPv4) matches its SHA-256', async (t) => {
    const from = results.length;
    const restored = agentCounter('backend1', 'flow_id_restored');
    const d = await download(`http://${VIP4}:${NODE_PORT}/b1/big`, false);
    await oneMigration(from, 'backend1');
    assert.equal(d.out, `200 ${BIG.length}`);
    assert.equal(d.sha, BIG_SHA);
    // The client's ACKs reached backend1 by the flow-id path (LB -> router -> agent's XDP).
    assert.ok(agentCounter('backend1', 'flow_id_restored') - restored > 100n);
    t.diagnostic(
      `64 MiB in ${d.secs.toFixed(2)} s (${((BIG.length * 8) / d.secs / 1e9).toFixed(2)} Gbit/s incl. curl)`,
    );
    await assertClean();
    assert.ok(direct.length > 0, 'the replies left the router toward the client');
    assert.ok(toLb.length > 0, 'the router -> LB capture sees the client -> VIP segments');
  });

  test('(b, f) 1,000 keep-alive requests on one connection migrated to backend2 (IPv6)', async (t) => {
    const secs = await keepAlive(`http://[${VIP6}]:${NODE_PORT}/b2`, 'backend2', results.length);
    t.diagnostic(`1,000 keep-alive requests in ${secs.toFixed(2)} s`);
    await assertClean();
  });

  test('(e, f) the Python example (uid 65534) serves migrated connections, IPv4 and IPv6, keep-alive', async () => {
    for (const [host, v6] of [
      [VIP4, false],
      [`[${VIP6}]`, true],
    ] as const) {
      const from = results.length;
      const urls = ['/py1', '/py2', '/size/70000'].map((p) => `http://${host}:${PY_PORT}${p}`);
      const r = await tb.exec(
        'client',
        'curl',
        ['-g', '-sS', '--max-time', '10', '-w', '[%{http_code} %{num_connects} %{size_download}]\n', ...urls],
        { timeoutMs: 15_000 },
      );
      const m = await oneMigration(from, 'backend1');
      assert.equal(m.state.family, v6 ? 6 : 4);
      const id = m.migrationId;
      assert.equal(
        r.stdout,
        `python /py1 migration ${id}\n[200 1 ${`python /py1 migration ${id}\n`.length}]\n` +
          `python /py2 migration ${id}\n[200 0 ${`python /py2 migration ${id}\n`.length}]\n` +
          `${'x'.repeat(70000)}[200 0 70000]\n`,
      );
      assert.ok(
        pyLog.some((l) => l.includes('"connection"') && l.includes(`"migrationId": "${id}"`)),
        pyLog.join('\n'),
      );
    }
    await assertClean();
  });

  describe('(c) with 3% loss in both directions (client and back-end INPUT)', () => {
    const v4v6 = ['iptables', 'ip6tables'];
    const rule = ['INPUT', '-p', 'tcp', '-m', 'statistic', '--mode', 'random', '--probability', LOSS, '-j', 'DROP'];
    const dropped = async (node: string): Promise<number> => {
      let n = 0;
      for (const cmd of v4v6) {
        const out = (await tb.exec(node, cmd, ['-nvxL', 'INPUT'])).stdout;
        n += Number(/^\s*(\d+)\s+\d+\s+DROP\b/m.exec(out)?.[1] ?? 0);
      }
      return n;
    };
    before(async () => {
      for (const node of ['client', ...BACKENDS]) for (const cmd of v4v6) await tb.exec(node, cmd, ['-A', ...rule]);
    });
    after(async () => {
      for (const node of ['client', ...BACKENDS])
        for (const cmd of v4v6) await tb.exec(node, cmd, ['-D', ...rule], { check: false });
    });

    test('a 64 MiB download migrated to backend2 (IPv4) still matches its SHA-256', async (t) => {
      const from = results.length;
      const [client0, backend0] = [await dropped('client'), await dropped('backend2')];
      const d = await download(`http://${VIP4}:${NODE_PORT}/b2/big`, false);
      await oneMigration(from, 'backend2');
      assert.equal(d.out, `200 ${BIG.length}`);
      assert.equal(d.sha, BIG_SHA);
      const drops = [(await dropped('client')) - client0, (await dropped('backend2')) - backend0] as const;
      assert.ok(drops[0] > 100 && drops[1] > 10, `segments dropped at client, backend2: ${drops}`);
      t.diagnostic(
        `64 MiB under ${LOSS} loss in ${d.secs.toFixed(2)} s; dropped client ${drops[0]}, backend2 ${drops[1]}`,
      );
      await assertClean();
    });

    test('1,000 keep-alive requests on one connection migrated to backend1 (IPv6)', async (t) => {
      const [client0, backend0] = [await dropped('client'), await dropped('backend1')];
      const secs = await keepAlive(`http://[${VIP6}]:${NODE_PORT}/b1`, 'backend1', results.length);
      const drops = [(await dropped('client')) - client0, (await dropped('backend1')) - backend0] as const;
      assert.ok(drops[0] > 0 && drops[1] > 0, `segments dropped at client, backend1: ${drops}`);
      t.diagnostic(`1,000 keep-alive requests under ${LOSS} loss in ${secs.toFixed(2)} s; dropped ${drops}`);
      await assertClean();
    });
  });
});
