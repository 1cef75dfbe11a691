/**
 * Migrate mode end to end on the real datapath, on real kernels in a netns
 * testbed:
 *
 *   client ──link1── lb ──link3── backend      VIP 198.19.0.1 on lo of lb AND backend
 *      └──────────link2──────────────┘
 *
 * The client reaches the VIP through the LB only (its route); the LB runs
 * baton's XDP program (Datapath, this process) on its interfaces, a front
 * end in its namespace reads the first request and migrates the socket with
 * migrateSocket({ datapath }): MIGRATED entry in BLOCK, capture, blob with
 * the flow-id mapping to `baton agent` on the back end, which runs its own
 * XDP program (--interface), installs the mapping in HOLD, restores, hands
 * the socket to an http.Server behind the SDK, switches to RESTORE and
 * confirms; then the entry forwards. From then on the client's segments go
 * client -> LB -> (flow id in the ports) -> back end, and the replies go
 * from the VIP on the back end straight to the client over link2.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openPinnedMap } from '../../control/bpf/index.js';
import { applyHostSettingsUnrecorded } from '../../control/daemon/host-settings.js';
import { ABI_VERSION, FlowKind, FlowState } from '../../control/datapath/abi.js';
import { Datapath, readCounters } from '../../control/datapath/datapath.js';
import { AgentChannel } from '../../control/migrate/channel.js';
import { FlowIdSwitch } from '../../control/migrate/flow-switch.js';
import { type MigrateResult, migrateSocket } from '../../control/migrate/migrate.js';
import { withNetns } from '../../control/net/netns.js';
import { type AgentConnection, connectAgent, type MigratedSocket } from '../../control/sdk/agent.js';
import { libc } from '../../control/sys/libc.js';
import { socketFd } from '../../control/sys/peercred.js';
import { encodeFlowReservation, encodeStateBlob } from '../../control/tcp/blob/index.js';
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
import { migrateV4 } from '../lib/blob-fixtures.js';
import {
  AGENT_ADDR,
  AGENT_ADDR6,
  AGENT_PORT,
  directReturnTopology,
  KEEPALIVE_CLIENT,
  LB_ADDR,
  SERVED_PORT,
  UNSERVED_PORT,
} from '../lib/migrate-bed.js';

const priv = canRunPrivileged();
const skip = !priv.ok
  ? priv.reason
  : !existsSync(DEFAULT_XDP_PASS_OBJ) && 'run make bpf first (the testbed needs xdp_pass.o)';

const LINGER_MS = 300;
const BIG = randomBytes(32 * 1024 * 1024);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

describe('migrate on the flow-id datapath: client -> LB (XDP) -> agent (XDP) -> app, replies straight back', {
  skip,
  timeout: 120_000,
}, () => {
  let tb: Testbed;
  let dir: string;
  let dp: Datapath;
  let sw: FlowIdSwitch;
  let agentProc: ChildProcess;
  const agentLog: string[] = [];
  /** Migrated connections the app got (the SDK emits each as the server's 'connection'). */
  let sdkConnections = 0;
  /** RSTs at any host, and segments from the VIP's served port arriving at the LB (they must go straight to the client). */
  const rsts: string[] = [];
  const leaks: string[] = [];
  /** The same segments arriving at the client over link2: proves the filter matches and the replies' path. */
  const direct: string[] = [];
  let sdk: AgentConnection;
  let app: http.Server;
  let channel: AgentChannel;
  const lbServers: net.Server[] = [];
  const results: MigrateResult[] = [];
  let nextId = 1n;

  const migrationsSince = async (from: number, n: number): Promise<MigrateResult[]> => {
    const deadline = Date.now() + 5000;
    while (results.length < from + n && Date.now() < deadline) await sleep(10);
    return results.slice(from);
  };

  const lbSocketToAgent = (): net.Socket =>
    new net.Socket({
      fd: withNetns(tb.ns('lb'), () => {
        const fd = openTcpSocket(4);
        connectTo(fd, { ip: AGENT_ADDR, port: AGENT_PORT }, 4);
        return fd;
      }),
    });

  /** The LB's front end: read the first request, migrate on the datapath; answer itself when that fails. */
  function frontEnd(s: net.Socket): void {
    let got = Buffer.alloc(0);
    const onData = async (d: Buffer): Promise<void> => {
      got = Buffer.concat([got, d]);
      if (!got.includes('\r\n\r\n')) return;
      s.off('data', onData);
      s.pause();
      const fd = takeSocket(process.pid, socketFd(s) as number);
      const r = await migrateSocket(fd, {
        channel,
        receivedData: got,
        migrationId: nextId++,
        appProtocol: 'http/1.1',
        datapath: { switch: sw, backend: s.remoteFamily === 'IPv6' ? AGENT_ADDR6 : AGENT_ADDR },
      });
      results.push(r);
      if (r.migrated) {
        s.destroy(); // released in repair mode: closing sends nothing
        return;
      }
      libc.close(fd);
      s.resume();
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nrelayed\n');
    };
    s.on('data', onData);
    s.on('error', () => {});
  }

  const capture = (node: string, filter: string, into: string[]): Promise<void> => {
    const cap = tb.spawn(node, 'tcpdump', ['-i', 'any', '-nn', '-l', filter]);
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

  /** The migrated connections' LB entries (kind MIGRATED), by state. */
  const migratedEntries = () => {
    const out: { state: number; packets: bigint }[] = [];
    for (const { flow } of dp.table.entries())
      if (flow.kind === FlowKind.MIGRATED) out.push({ state: flow.state, packets: flow.track.packets });
    return out;
  };

  const replyFilter = `inbound and tcp and (src host ${VIP4} or src host ${VIP6}) and src port ${SERVED_PORT}`;

  /** How many flow-id mappings the agent's pinned table holds. */
  const agentMappings = (): number => {
    const m = openPinnedMap(join(tb.bpffsPath('backend'), 'baton-agent', `agent_baton_fids_v${ABI_VERSION}`));
    try {
      return [...m.keys()].length;
    } finally {
      libc.close(m.fd);
    }
  };

  /** The agent's datapath counters, from its pinned map (the agent's own bpffs in the back end's node). */
  const agentCounters = (): Map<string, bigint> => {
    const m = openPinnedMap(join(tb.bpffsPath('backend'), 'baton-agent', `agent_baton_counters_v${ABI_VERSION}`));
    try {
      return new Map(readCounters(m).map((c) => [c.reason, c.packets]));
    } finally {
      libc.close(m.fd); // the fd obj_get opened: BpfMap does not own it
    }
  };

  const secret = randomBytes(32).toString('hex');
  const appSocket = (): string => join(dir, 'agent.sock');

  /** Starts `baton agent` on the back end with its datapath on every interface; resolves once it listens. */
  const startAgent = async (): Promise<ChildProcess> => {
    const from = agentLog.length;
    const backendIfaces = tb.node('backend').ifaces.flatMap((i) => ['--interface', i.name]);
    const proc = tb.spawn(
      'backend',
      NODE_CLI[0] as string,
      [
        ...NODE_CLI.slice(1),
        'agent',
        '--listen',
        `${AGENT_ADDR}:${AGENT_PORT}`,
        '--peer-secret-file',
        join(dir, 'peer.secret'),
        '--app-socket',
        appSocket(),
        '--metrics',
        '127.0.0.1:9400',
        ...backendIfaces,
        '--pin-dir',
        '/sys/fs/bpf/baton-agent',
        // Short, so the reclaim test need not wait a TIME_WAIT.
        '--reclaim-linger',
        `${LINGER_MS}ms`,
      ],
      { bpffs: true },
    );
    proc.stderr?.on('data', (d: Buffer) => agentLog.push(...d.toString().trim().split('\n')));
    proc.stdout?.resume();
    const deadline = Date.now() + 20_000;
    while (!agentLog.slice(from).some((l) => l.includes('agent_started'))) {
      if (Date.now() > deadline || proc.exitCode !== null) assert.fail(`agent did not start: ${agentLog.join('\n')}`);
      await sleep(50);
    }
    return proc;
  };

  /** The app registers with the (running) agent; the LB opens its blob channel to it. */
  const connectApp = async (): Promise<void> => {
    sdk = await connectAgent({ socketPath: appSocket() });
    await sdk.attach(app, { vip: `${VIP4}:${SERVED_PORT}` });
    await sdk.attach(app, { vip: `[${VIP6}]:${SERVED_PORT}` });
    channel = await AgentChannel.connect({ secret: Buffer.from(secret), socket: lbSocketToAgent() });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-migrate-e2e-'));
    writeFileSync(join(dir, 'peer.secret'), `${secret}\n`, { mode: 0o600 });
    tb = await createTestbed(
      directReturnTopology('migrate'),
      // The LB and the back end get baton's programs; the client's end of each link a pass program.
      { passXdp: (node) => node === 'client' },
    );
    // Asymmetric paths: the client's segments reach the back end from the LB (link3), the replies reach the
    // client from the back end (link2). Strict reverse-path filtering would drop both.
    for (const node of ['client', 'backend']) {
      const names = ['all', 'default', ...tb.node(node).ifaces.map((i) => i.name)];
      await tb.exec(node, 'sysctl', ['-qw', ...names.map((n) => `net.ipv4.conf.${n}.rp_filter=0`)]);
    }
    dp = await Datapath.load({ flowsCapacity: 1024 });
    const lb = tb.node('lb');
    withNetns(lb.ns, () => {
      for (const i of lb.ifaces) dp.attach(i.ifindex);
      applyHostSettingsUnrecorded(lb.ifaces.map((i) => i.name));
    });
    sw = new FlowIdSwitch(dp.table, LB_ADDR);

    await Promise.all([
      ...['client', 'lb', 'backend'].map((n) => capture(n, 'tcp[13] & 4 != 0', rsts)),
      capture('lb', replyFilter, leaks),
      capture('client', replyFilter, direct),
    ]);

    agentProc = await startAgent();
    assert.equal(agentLog.filter((l) => l.includes('agent_xdp_attached')).length, tb.node('backend').ifaces.length);

    app = http.createServer((req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-length': BIG.length });
        res.end(BIG);
        return;
      }
      const mid = (req.socket as MigratedSocket).baton?.migrationId ?? '?';
      res.end(`app ${req.url} migration ${mid}\n`);
    });
    app.on('connection', () => sdkConnections++);
    await connectApp();
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
    // The LB's FIB lookup toward the back end needs its neighbour entries (IPv6 too).
    await tb.exec('lb', 'ping', ['-6', '-c', '1', '-W', '2', AGENT_ADDR6], { timeoutMs: 5000 });
  });

  after(async () => {
    channel?.close();
    for (const s of lbServers) s.close();
    await sdk?.close();
    app?.close();
    await tb?.destroy();
    dp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('first request and two keep-alive requests answered by the app; the LB forwards, never sees a reply; no RST', async (t) => {
    const before = results.length;
    const urls = ['/one', '/two', '/three'].map((p) => `http://${VIP4}:${SERVED_PORT}${p}`);
    const r = await tb.exec(
      'client',
      'curl',
      ['-sS', '--max-time', '10', '-w', '[%{http_code} %{num_connects}]\n', ...urls],
      { timeoutMs: 15_000 },
    );
    const m = (await migrationsSince(before, 1))[0] as MigrateResult;
    assert.ok(m?.migrated, `migrated: ${m && !m.migrated ? m.error.message : 'none'}\n${agentLog.join('\n')}`);
    assert.ok(m.flowId !== undefined && m.flowId >>> 16 !== 0 && (m.flowId & 0xffff) !== 0, `flow id ${m.flowId}`);
    const id = m.migrationId.toString();
    assert.equal(
      r.stdout,
      `app /one migration ${id}\n[200 1]\napp /two migration ${id}\n[200 0]\napp /three migration ${id}\n[200 0]\n`,
    );
    const ss = await tb.exec('lb', 'ss', ['-Htn', `( sport = :${SERVED_PORT} )`]);
    assert.equal(ss.stdout.trim(), '', `LB sockets left: ${ss.stdout}`);
    // The client's segments after the migration went through the MIGRATED entry (FORWARD), to the back end.
    const entries = migratedEntries();
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.state, FlowState.FORWARD);
    assert.ok((entries[0]?.packets ?? 0n) >= 2n, `segments forwarded: ${entries[0]?.packets}`);
    const toBackend = dp
      .readCountersByDirection()
      .filter((c) => c.reason === 'redirect' && c.direction === 'to_backend')
      .reduce((a, c) => a + c.packets, 0n);
    assert.ok(toBackend >= 2n, `redirected to the back end: ${toBackend}`);
    // The agent restored the tuple of the forwarded segments.
    const restored = agentCounters().get('flow_id_restored') ?? 0n;
    assert.ok(restored >= 2n, `flow_id_restored ${restored}`);
    t.diagnostic(`agent: flow_id_restored ${restored}, flow_id_held ${agentCounters().get('flow_id_held') ?? 0n}`);
    // The same counters on the agent's /metrics, and the mapping counted as served here.
    const metrics = (await tb.exec('backend', 'curl', ['-sS', 'http://127.0.0.1:9400/metrics'])).stdout;
    const scraped = Number(
      /baton_agent_datapath_packets_total\{action="[a-z]+",reason="flow_id_restored"\} (\d+)/.exec(metrics)?.[1],
    );
    assert.ok(scraped >= Number(restored), `scraped flow_id_restored ${scraped} >= ${restored}`);
    assert.match(metrics, /baton_agent_flow_id_mappings\{state="restore"\} [1-9]/);
    assert.match(metrics, /baton_agent_reservations_total\{outcome="held"\} [1-9]/);
    await sleep(300);
    assert.deepEqual(leaks, [], 'no back-end -> client segment reached the LB');
    assert.ok(
      direct.some((l) => l.includes('link2') || l.includes(`${VIP4}.${SERVED_PORT} >`)),
      `the replies reached the client directly: ${direct.slice(0, 3).join('\n')}`,
    );
    assert.deepEqual(rsts, []);
  });

  test('a 32 MiB download over a migrated connection is byte-exact (SHA-256)', async (t) => {
    const before = results.length;
    const out = join(dir, 'big.bin');
    const t0 = Date.now();
    const r = await tb.exec(
      'client',
      'curl',
      [
        '-sS',
        '--max-time',
        '40',
        '-o',
        out,
        '-w',
        '%{http_code} %{size_download}',
        `http://${VIP4}:${SERVED_PORT}/big`,
      ],
      { timeoutMs: 45_000 },
    );
    const secs = (Date.now() - t0) / 1000;
    const m = (await migrationsSince(before, 1))[0] as MigrateResult;
    assert.ok(m?.migrated);
    assert.equal(r.stdout, `200 ${BIG.length}`);
    assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), BIG_SHA);
    t.diagnostic(
      `32 MiB in ${secs.toFixed(2)} s (${((BIG.length * 8) / secs / 1e9).toFixed(2)} Gbit/s incl. curl start)`,
    );
    await sleep(300);
    assert.deepEqual(leaks, []);
    assert.deepEqual(rsts, []);
  });

  test('IPv6: a migrated connection answered by the app, with a keep-alive request', async () => {
    const before = results.length;
    const urls = ['/v6a', '/v6b'].map((p) => `http://[${VIP6}]:${SERVED_PORT}${p}`);
    const r = await tb.exec(
      'client',
      'curl',
      ['-sS', '-g', '--max-time', '10', '-w', '[%{http_code} %{num_connects}]\n', ...urls],
      { timeoutMs: 15_000 },
    );
    const m = (await migrationsSince(before, 1))[0] as MigrateResult;
    assert.ok(m?.migrated, `migrated: ${m && !m.migrated ? m.error.message : 'none'}`);
    assert.equal(m.state.family, 6);
    const id = m.migrationId.toString();
    assert.equal(r.stdout, `app /v6a migration ${id}\n[200 1]\napp /v6b migration ${id}\n[200 0]\n`);
    await sleep(300);
    assert.deepEqual(leaks, []);
    assert.deepEqual(rsts, []);
  });

  test('an agent that refuses (no app): the LB entry is removed, the flow id freed, the LB answers', async () => {
    const before = results.length;
    const entriesBefore = migratedEntries().length;
    const live = sw.ids.liveCount(AGENT_ADDR);
    const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${UNSERVED_PORT}/x`], {
      timeoutMs: 15_000,
    });
    assert.equal(r.stdout, 'relayed\n');
    const m = results.slice(before)[0] as MigrateResult;
    assert.equal(m.migrated, false);
    if (!m.migrated) assert.equal(m.error.reason, 'no_app');
    assert.equal(migratedEntries().length, entriesBefore);
    assert.equal(sw.ids.liveCount(AGENT_ADDR), live);
    await sleep(300);
    assert.deepEqual(rsts, []);
  });

  test('a reservation holds its mapping until the state comes; a state naming another mapping, or a channel that closes first, removes it', async () => {
    const before = agentMappings();
    const side = await AgentChannel.connect({ secret: Buffer.from(secret), socket: lbSocketToAgent() });
    const flow = {
      lb: LB_ADDR,
      flowId: 0x7ff00001,
      client: { ip: '198.18.1.1', port: 40000 },
      vip: { ip: VIP4, port: SERVED_PORT },
    };
    try {
      const held = await side.reserve(
        901n,
        encodeFlowReservation({ migrationId: 901n, createdAtMs: Date.now(), flow }),
      );
      assert.deepEqual(held, { migrationId: '901', ok: true, held: true });
      assert.equal(agentMappings(), before + 1, 'the mapping is in HOLD before any state exists');
      // The same flow id again, while held: refused, nothing added.
      const dup = await side.reserve(902n, encodeFlowReservation({ migrationId: 902n, createdAtMs: Date.now(), flow }));
      assert.equal(dup.ok, false);
      if (!dup.ok) assert.equal(dup.code, 'flow_id_in_use');
      // A VIP no app serves: refused at the reservation, before the LB captured anything.
      const noApp = await side.reserve(
        903n,
        encodeFlowReservation({
          migrationId: 903n,
          createdAtMs: Date.now(),
          flow: { ...flow, flowId: 0x7ff00002, vip: { ip: VIP4, port: UNSERVED_PORT } },
        }),
      );
      assert.equal(noApp.ok, false);
      if (!noApp.ok) assert.equal(noApp.code, 'no_app');
      // The state of 901 names another mapping: refused, and the reservation's mapping goes with it.
      const state = { ...migrateV4(), migrationId: 901n };
      const wrong = await side.send(901n, encodeStateBlob(state));
      assert.equal(wrong.ok, false);
      if (!wrong.ok) {
        assert.equal(wrong.code, 'blob_invalid');
        assert.match(wrong.reason, /another flow-id mapping than its reservation/);
      }
      assert.equal(agentMappings(), before);
      // A reservation whose state never comes: gone once its channel closes.
      const again = await side.reserve(
        904n,
        encodeFlowReservation({ migrationId: 904n, createdAtMs: Date.now(), flow }),
      );
      assert.equal(again.ok, true);
      assert.equal(agentMappings(), before + 1);
    } finally {
      side.close();
    }
    const deadline = Date.now() + 5000;
    while (agentMappings() !== before && Date.now() < deadline) await sleep(20);
    assert.equal(agentMappings(), before, 'the abandoned reservation was removed');
    assert.ok(agentLog.some((l) => l.includes('reservation_dropped') && l.includes('abandoned')));
  });

  test('a state that arrives after its LB stopped waiting (REPLY_BY) is refused too_late: no copy reaches the app', async () => {
    const before = agentMappings();
    const handed = sdkConnections;
    const side = await AgentChannel.connect({ secret: Buffer.from(secret), socket: lbSocketToAgent() });
    try {
      // A consistent state for VIP:80 (the app's), as an LB that gave up a second ago would have sent it.
      const state = { ...migrateV4(), migrationId: 905n, replyByMs: Date.now() - 1000 };
      state.tcp = { ...state.tcp, local: { ip: VIP4, port: SERVED_PORT } };
      state.flow = { lb: LB_ADDR, flowId: 0x7ff00003, client: state.tcp.remote, vip: state.tcp.local };
      const r = await side.send(905n, encodeStateBlob(state));
      assert.equal(r.ok, false, JSON.stringify(r));
      if (!r.ok) {
        assert.equal(r.code, 'too_late', r.reason);
        assert.match(r.reason, /stops waiting/);
      }
    } finally {
      side.close();
    }
    assert.equal(agentMappings(), before, 'its mapping is gone');
    assert.equal(sdkConnections, handed, 'the app got no socket');
  });

  test('four migrations in flight on the one channel, each with its own flow id and entry', async () => {
    const before = results.length;
    const outs = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${SERVED_PORT}/p${i}`], {
          timeoutMs: 15_000,
        }),
      ),
    );
    const mine = await migrationsSince(before, 4);
    assert.equal(mine.length, 4);
    assert.ok(
      mine.every((m) => m.migrated),
      JSON.stringify(mine.map((m) => (m.migrated ? 'ok' : m.error.message))),
    );
    const flowIds = new Set(mine.map((m) => (m.migrated ? m.flowId : undefined)));
    assert.equal(flowIds.size, 4, 'distinct flow ids');
    const ids = new Set(mine.map((m) => (m.migrated ? m.migrationId.toString() : '')));
    for (const [i, o] of outs.entries()) assert.match(o.stdout, new RegExp(`^app /p${i + 1} migration (\\d+)\n$`));
    assert.deepEqual(new Set(outs.map((o) => /migration (\d+)/.exec(o.stdout)?.[1])), ids);
    await sleep(300);
    assert.deepEqual(leaks, []);
    assert.deepEqual(rsts, []);
  });

  test('1,000 keep-alive requests on one migrated connection, every response byte-exact', async (t) => {
    const before = results.length;
    const t0 = Date.now();
    const r = await tb.exec(
      'client',
      'curl',
      ['-sS', '--max-time', '30', '-w', '[%{num_connects}]', `http://${VIP4}:${SERVED_PORT}/k[1-1000]`],
      { timeoutMs: 35_000 },
    );
    const secs = (Date.now() - t0) / 1000;
    const mine = await migrationsSince(before, 1);
    assert.equal(mine.length, 1, 'one connection, one migration');
    const m = mine[0] as MigrateResult;
    assert.ok(m.migrated);
    let want = '';
    for (let i = 1; i <= 1000; i++) want += `app /k${i} migration ${m.migrationId}\n[${i === 1 ? 1 : 0}]`;
    assert.equal(r.stdout, want);
    t.diagnostic(`1,000 keep-alive requests in ${secs.toFixed(2)} s`);
    await sleep(300);
    assert.deepEqual(leaks, []);
    assert.deepEqual(rsts, []);
  });

  test('ended connections are reclaimed on both hosts after the linger: LB entry and flow id, agent mapping', async () => {
    const before = results.length;
    const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${SERVED_PORT}/bye`], {
      timeoutMs: 15_000,
    });
    const m = (await migrationsSince(before, 1))[0] as MigrateResult;
    assert.ok(m?.migrated);
    assert.equal(r.stdout, `app /bye migration ${m.migrationId}\n`);
    // curl closed the connection (its FIN, the app's FIN, its last ACK): every migration so far has ended.
    const deadline = Date.now() + 10_000;
    let reclaimed = 0;
    while ((sw.forwardedCount > 0 || agentMappings() > 0) && Date.now() < deadline) {
      await sleep(200);
      reclaimed += sw.reclaim(LINGER_MS);
    }
    assert.ok(reclaimed >= 1, `reclaimed ${reclaimed}`);
    assert.equal(sw.forwardedCount, 0, 'every forwarded migration reclaimed at the LB');
    assert.equal(migratedEntries().length, 0, 'no MIGRATED entry left');
    assert.equal(sw.ids.liveCount(AGENT_ADDR), 0);
    assert.equal(agentMappings(), 0, "the agent's mappings reclaimed");
    assert.ok(agentLog.some((l) => l.includes('agent_fids_reclaimed')));
    await sleep(300);
    assert.deepEqual(rsts, [], 'the last ACKs crossed before the reclaim: no RST');
  });

  // Stops and restarts the agent: last.
  test('agent SIGTERM keeps a migrated connection served (pinned program and mapping); a restarted agent reuses them and migrates again', async () => {
    const before = results.length;
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
      const from = agentLog.length;
      agentProc.kill('SIGTERM');
      const [code] = (await once(agentProc, 'exit')) as [number | null];
      assert.equal(code, 0, agentLog.join('\n'));
      channel.close();
      await sdk.close();
      // The agent is gone; its XDP program and the connection's mapping are not.
      client.stdin?.write('next\n');
      await waitFor(/app \/r2 migration \d+/, 'answer after the agent stopped');
      assert.equal(/app \/r2 migration (\d+)/.exec(out)?.[1], m.migrationId.toString());
      agentProc = await startAgent();
      const attached = agentLog.slice(from).filter((l) => l.includes('agent_xdp_attached'));
      assert.equal(attached.length, tb.node('backend').ifaces.length);
      for (const l of attached) {
        const e = JSON.parse(l) as { reused: boolean; mappings: number };
        assert.equal(e.reused, true, l);
        assert.ok(e.mappings >= 1, l);
      }
      await connectApp();
      const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '10', `http://${VIP4}:${SERVED_PORT}/again`], {
        timeoutMs: 15_000,
      });
      const again = results.at(-1) as MigrateResult;
      assert.ok(again.migrated, `after the restart: ${!again.migrated ? again.error.message : ''}`);
      assert.equal(r.stdout, `app /again migration ${again.migrationId}\n`);
      await sleep(300);
      assert.deepEqual(leaks, []);
      assert.deepEqual(rsts, []);
    } finally {
      client.kill('SIGKILL');
    }
  });
});
