/**
 * Two `baton lb` daemons joined through a real redis-server (--store): each
 * registers itself and sees the other as a peer; a connection spliced on
 * one LB is published in the owner directory and installed in the other's
 * datapath as an OWNER entry (baton_owner_connections{kind="forwarded"}
 * counts those), removed when it is aborted; a stopped LB's registration
 * expires after --peer-ttl. (Packets taking the detour: owner-forwarding
 * and owner-splice tests, with entries written by hand.)
 * Topology: client ⟷ lb ⟷ backend1, and lb ⟷ lb2 (the network between
 * LBs, where Redis listens on lb's address).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { type DaemonProc, type DispatcherProc, NODE_CLI, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, type Testbed, VIP4, VIP6 } from '../lib/testbed.js';

const REDIS_PORT = 6391;
const METRICS_PORT = 9311;

describe('a cluster of two LBs through Redis: registration and the owner directory', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let redis: ChildProcess | undefined;
  let lb1: DaemonProc;
  let lb2: DaemonProc | undefined;
  let nginx: NginxBackend;
  let fe: DispatcherProc;
  let client: KeepAliveClient | undefined;

  const metric = async (node: string, name: string, labels = ''): Promise<number | undefined> => {
    const r = await tb.exec(node, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  const eventually = async (what: string, check: () => Promise<boolean>, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
      await sleep(50);
    }
  };

  before(async () => {
    tb = await createTestbed(
      {
        name: 'cluster2',
        nodes: [
          { name: 'client', role: 'client' },
          { name: 'lb', role: 'lb', addresses: [`${VIP4}/32`, `${VIP6}/128`] },
          { name: 'backend1', role: 'backend' },
          { name: 'lb2', role: 'lb' },
        ],
        links: [
          { a: 'client', b: 'lb' },
          { a: 'lb', b: 'backend1' },
          { a: 'lb', b: 'lb2' },
        ],
      },
      { passXdp: (node) => node !== 'lb' && node !== 'lb2' },
    );
    const between = tb.node('lb').ifaces.find((i) => i.peer.node === 'lb2');
    const lb2If = tb.node('lb2').ifaces[0];
    assert.ok(between && lb2If, 'the link between the LBs');
    redis = tb.spawn(
      'lb',
      'redis-server',
      [
        '--port',
        String(REDIS_PORT),
        '--bind',
        between.v4,
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: 'ignore' },
    );
    const store = `redis://${between.v4}:${REDIS_PORT}`;
    await eventually('redis answers', async () => {
      const r = await tb.exec('lb2', 'bash', ['-c', `exec 3<>/dev/tcp/${between.v4}/${REDIS_PORT}`], { check: false });
      return r.code === 0;
    });
    const cluster = (id: string, address: string) => [
      '--store',
      store,
      '--cluster-id',
      id,
      '--cluster-address',
      address,
      '--peer-ttl',
      '600ms',
      '--vip',
      VIP4,
      '--metrics',
      `127.0.0.1:${METRICS_PORT}`,
    ];
    lb1 = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
      cluster('lb1', between.v4),
    );
    lb2 = await startDaemon(tb, 'lb2', [lb2If.name], cluster('lb2', lb2If.v4));
    nginx = await startNginx(tb, 'backend1', 8080, { 'small.txt': 'x'.repeat(1024) });
    fe = await startDispatcher(tb, {
      listen: `${VIP4}:80`,
      api: { socketPath: lb1.socketPath },
      pools: { one: { backends: [`${tb.node('backend1').v4}:8080`] } },
      routes: [{ pool: 'one' }],
    });
  });

  after(async () => {
    client?.send('QUIT');
    await fe?.stop();
    await nginx?.stop();
    await lb2?.stop();
    await lb1?.stop();
    if (redis?.pid) process.kill(-redis.pid, 'SIGTERM');
    await tb?.destroy();
  });

  test('each LB registers and sees the other as its one peer', async () => {
    await eventually('lb1 and lb2 each see one peer', async () => {
      const [a, b] = [await metric('lb', 'baton_cluster_peers'), await metric('lb2', 'baton_cluster_peers')];
      return a === 1 && b === 1;
    });
  });

  test('a splice on lb1 is installed at lb2 as forwarded to lb1; aborting it withdraws it', async () => {
    client = await KeepAliveClient.start(tb, VIP4, 80);
    assert.equal((await client.get('/small.txt')).status, 200);
    let spliced: Extract<DispatchEvent, { event: 'spliced' }> | undefined;
    await eventually('the dispatcher spliced it', async () => {
      spliced = fe.events.find((e): e is Extract<DispatchEvent, { event: 'spliced' }> => e.event === 'spliced');
      return spliced !== undefined;
    });
    await eventually('lb1 owns 1, lb2 forwards 1', async () => {
      const owned = await metric('lb', 'baton_owner_connections', '{kind="owned"}');
      const forwarded = await metric('lb2', 'baton_owner_connections', '{kind="forwarded"}');
      return owned === 1 && forwarded === 1;
    });
    const propagated = await metric('lb2', 'baton_owner_directory_propagation_seconds_count');
    assert.ok((propagated ?? 0) >= 1, 'the propagation was measured');
    assert.equal(await metric('lb2', 'baton_owner_directory_changes_total', '{change="refused"}'), 0);

    const rm = await tb.exec(
      'lb',
      NODE_CLI[0]!,
      [...NODE_CLI.slice(1), 'splices', 'rm', spliced!.id, '--api', lb1.api],
      {
        check: false,
      },
    );
    assert.equal(rm.code, 0, rm.stderr);
    await eventually('withdrawn: lb2 forwards nothing', async () => {
      return (await metric('lb2', 'baton_owner_connections', '{kind="forwarded"}')) === 0;
    });
    assert.equal(await metric('lb', 'baton_owner_connections', '{kind="owned"}'), 0);
  });

  test("a stopped LB is forgotten once its registration's TTL runs out", async () => {
    await lb2?.stop();
    lb2 = undefined;
    await eventually('lb1 sees no peer', async () => (await metric('lb', 'baton_cluster_peers')) === 0, 5000);
  });
});
