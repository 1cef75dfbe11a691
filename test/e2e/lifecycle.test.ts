/**
 * Lifecycle of spliced connections end to end: the sweeper reclaims the
 * entries of connections that ended with FINs (after the grace period), with
 * a RST, or went idle; a new Splicer adopts the connections of a table it
 * finds (a restart) and drops what a crash left half-made.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlowKind, FlowState } from '../../control/datapath/abi.js';
import type { Datapath } from '../../control/datapath/datapath.js';
import { DEFAULT_LEG_PORTS, inRange } from '../../control/splice/leg-ports.js';
import { Splicer } from '../../control/splice/splicer.js';
import { type Sweeper, startSweeper } from '../../control/splice/sweeper.js';
import { releaseSilently } from '../../control/tcp/capture.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { sharedSocketProbe } from '../../control/tcp/socket-probe.js';
import { skipUnlessBpf } from '../lib/env.js';
import type { FrontendDriver } from '../lib/frontend-driver.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type SpliceBed, startSpliceBed } from '../lib/splice-bed.js';
import { type Testbed, VIP4 } from '../lib/testbed.js';

describe('connection lifecycle: sweeper and adoption', { skip: skipUnlessBpf }, () => {
  let bed: SpliceBed;
  let tb: Testbed;
  let dp: Datapath;
  let splicer: Splicer;
  let fe: FrontendDriver;
  const clients: KeepAliveClient[] = [];

  before(async () => {
    bed = await startSpliceBed({ backends: 1, files: { 'small.txt': 'hello' } });
    ({ tb, dp, splicer, fe } = bed);
  });

  after(async () => {
    for (const c of clients) c.proc.kill();
    await bed?.destroy();
  });

  /** A keep-alive client whose connection is spliced (first request answered). */
  async function splicedClient(): Promise<{ c: KeepAliveClient; id: bigint }> {
    const n = fe.splices.length;
    const c = await KeepAliveClient.start(tb, VIP4);
    clients.push(c);
    assert.equal((await c.get('/small.txt')).body, 'hello');
    assert.equal(fe.splices.length, n + 1, fe.failures.join('; '));
    return { c, id: fe.splices[n]!.id };
  }

  const manual = (opts: Parameters<typeof startSweeper>[1]): Sweeper => {
    const s = startSweeper(splicer, { intervalMs: 3_600_000, ...opts });
    s.stop(); // driven by hand
    return s;
  };

  test('both FINs acknowledged: closed, reclaimed only after the grace period', async () => {
    const { c, id } = await splicedClient();
    c.send('QUIT');
    for (let i = 0; i < 100 && splicer.status(id)?.state !== 'closed'; i++) await sleep(10);
    assert.equal(splicer.status(id)?.state, 'closed');
    assert.deepEqual((await manual({ graceMs: 60_000 }).sweepOnce()).reclaimed, [], 'kept during the grace period');
    const s = manual({ graceMs: 50 });
    await s.sweepOnce(); // first seen closed now
    await sleep(80);
    assert.deepEqual((await s.sweepOnce()).reclaimed, [{ id, reason: 'closed' }]);
    assert.equal(splicer.records.has(id), false);
  });

  test('a RST in either direction: reclaimed at the next sweep', async () => {
    const { c, id } = await splicedClient();
    c.send('RESET');
    for (let i = 0; i < 100 && !splicer.status(id)?.toBackend.rst; i++) await sleep(10);
    assert.deepEqual((await manual({}).sweepOnce()).reclaimed, [{ id, reason: 'reset' }]);
  });

  test('idle longer than idleMs: reclaimed; busy connections are not', async () => {
    const { id } = await splicedClient();
    assert.deepEqual((await manual({ idleMs: 60_000 }).sweepOnce()).reclaimed, []);
    await sleep(250);
    assert.deepEqual((await manual({ idleMs: 200 }).sweepOnce()).reclaimed, [{ id, reason: 'idle' }]);
    assert.equal(dp.table.size(), 0, 'no entry left');
  });

  test('a spliced connection keeps its back-end tuple: a new connection from the LB cannot take it', async () => {
    // One ephemeral port: the front end's back-end connection takes it, and
    // after the splice baton's silent placeholder must still own it.
    await tb.exec('lb', 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=40000 40000']);
    fe.legPorts = false; // the kernel chooses the port: the placeholder path
    try {
      const { id } = await splicedClient();
      await sleep(100); // the placeholder replaces the socket once the request is acknowledged
      const held = splicer.records.get(id)?.legs[0];
      assert.equal(held?.local.port, 40000);
      assert.ok(held?.heldFd !== undefined, 'placeholder held');
      const r = await tb.exec(
        'lb',
        'curl',
        ['-sS', '--max-time', '2', `http://${tb.node('backend1').v4}:8080/small.txt`],
        { check: false },
      );
      assert.notEqual(r.code, 0, 'the only port is taken: the new connection must fail, not reuse the spliced tuple');
      assert.match(r.stderr, /[Cc]ould not (connect|bind)|[Cc]annot assign|[Ff]ailed to connect/);
      assert.equal(await splicer.reclaim(id), true);
    } finally {
      fe.legPorts = true;
      await tb.exec('lb', 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=32768 60999']);
    }
  });

  test('a leg on a port of the leg range holds no socket, and the kernel still never hands its tuple out', async () => {
    const { id } = await splicedClient();
    await sleep(100); // the background step once the request is acknowledged
    const leg = splicer.records.get(id)?.legs[0];
    assert.ok(leg && inRange(DEFAULT_LEG_PORTS, leg.local.port), `leg port ${leg?.local.port} from the range`);
    assert.equal(leg.heldFd, undefined, 'no socket held');
    const held = await tb.exec('lb', 'ss', ['-tanH', `( sport = :${leg.local.port} )`]);
    assert.equal(held.stdout.trim(), '', `no socket on the leg's port in the LB: ${held.stdout}`);
    assert.equal(dp.table.ownerOf(leg.backendKey), id, 'the back-end entry reserves the tuple');
    // The ephemeral range narrowed to that port alone: it is reserved, so the kernel has no port to give.
    await tb.exec('lb', 'sysctl', ['-qw', `net.ipv4.ip_local_port_range=${leg.local.port} ${leg.local.port}`]);
    try {
      const r = await tb.exec(
        'lb',
        'curl',
        ['-sS', '--max-time', '2', `http://${tb.node('backend1').v4}:8080/small.txt`],
        { check: false },
      );
      assert.notEqual(r.code, 0, 'the reserved port must not be given to a new connection');
      assert.match(r.stderr, /[Cc]ould not (connect|bind)|[Cc]annot assign|[Ff]ailed to connect/);
    } finally {
      await tb.exec('lb', 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=32768 60999']);
    }
    // A port the splicer hands out next is never this tuple while the connection lives.
    const seen = new Set<number>();
    for (let i = 0; i < DEFAULT_LEG_PORTS.hi - DEFAULT_LEG_PORTS.lo + 1; i++)
      seen.add(splicer.legPort(leg.local.ip, leg.backend));
    assert.equal(seen.has(leg.local.port), false, 'legPort skips a tuple a spliced connection holds');
    assert.equal(await splicer.reclaim(id), true);
    assert.equal(dp.table.ownerOf(leg.backendKey), undefined);
  });

  test("a lease skips a port that a live socket holds toward the back end (another front end's pooled connection)", async () => {
    await sharedSocketProbe(); // the daemon loads it at start; leases look with it
    // In this process's own namespace, where the splicer's probe looks.
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const backend = { ip: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
    try {
      const after = (port: number) => (port >= DEFAULT_LEG_PORTS.hi ? DEFAULT_LEG_PORTS.lo : port + 1);
      const [p] = await splicer.leaseLegPorts('127.0.0.1', backend, 1);
      const taken = after(p as number);
      const pooled = net.connect({
        host: '127.0.0.1',
        port: backend.port,
        localAddress: '127.0.0.1',
        localPort: taken,
      });
      await once(pooled, 'connect');
      try {
        const next = await splicer.leaseLegPorts('127.0.0.1', backend, 4);
        assert.equal(next.includes(taken), false, `port ${taken} is in use: not leased (${next.join(', ')})`);
        const expected = [after(taken)];
        while (expected.length < 4) expected.push(after(expected.at(-1) as number));
        assert.deepEqual(next, expected, 'the ports after it are');
      } finally {
        pooled.destroy();
      }
    } finally {
      server.close();
    }
  });

  test('a restarted splicer adopts live connections and drops half-made entries', async () => {
    const { c, id } = await splicedClient();
    // What a crash between "block" and "forward" would leave.
    const stale = { src: '198.18.1.2', dst: VIP4, sport: 1, dport: 80 };
    dp.table.insert(stale, { connId: 999n, state: FlowState.BLOCK, kind: FlowKind.CLIENT, legs: [] });
    // A restart: the old process's sockets die with it (closed in repair mode: silently).
    for (const r of splicer.records.values())
      for (const h of r.legs) if (h.heldFd !== undefined) releaseSilently(h.heldFd);
    // The daemon runs in the LB namespace; this test process does not.
    const again = new Splicer(dp, createSocketOps(), { legPorts: DEFAULT_LEG_PORTS });
    const lbNs = openSync(`/run/netns/${tb.node('lb').ns}`, 'r');
    after(() => closeSync(lbNs));
    assert.equal(await again.adopt({ netns: lbNs }), 1);
    const rec = again.records.get(id);
    assert.ok(rec?.recovered);
    assert.equal(rec.client.ip, tb.node('client').v4);
    assert.deepEqual(
      rec.legs.map((h) => h.backend),
      [{ ip: tb.node('backend1').v4, port: 8080 }],
    );
    assert.equal(dp.table.track(stale), undefined, 'half-made entry deleted');
    assert.equal(again.status(id)?.state, 'forwarding');
    // The leg's port is in the leg range: its pinned entry still reserves the tuple, no socket is needed.
    const leg = rec.legs[0];
    assert.ok(leg && inRange(DEFAULT_LEG_PORTS, leg.local.port));
    assert.equal(leg.heldFd, undefined, 'no placeholder for a leg of the range');
    assert.equal(dp.table.ownerOf(leg.backendKey), id, 'the back-end tuple is reserved by its entry');
    // The connection keeps working, and the adopted record can be aborted.
    assert.equal((await c.get('/small.txt')).body, 'hello');
    await assert.rejects(
      again.handoff(id, { ip: tb.node('backend1').v4, port: 8080 }),
      (e: Error & { code?: string }) => e.code === 'SPLICE_REFUSED',
    );
    assert.equal(await again.abort(id), true);
    for (let i = 0; i < 50 && c.events.length === 0; i++) await sleep(20);
    assert.deepEqual(c.events, [{ event: 'error', code: 'ECONNRESET' }]);
  });
});
