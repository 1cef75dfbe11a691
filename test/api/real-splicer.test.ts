/**
 * The API over the real Splicer and a real (loaded, unattached) datapath:
 * the failures that come from the kernel and the table, with real loopback
 * sockets of this process standing in for a front end's. Each failure must
 * leave the table as it was and the sockets working (nothing half-made).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { FlowKind, FlowState } from '../../control/datapath/abi.js';
import { Datapath } from '../../control/datapath/datapath.js';
import { formatKey } from '../../control/datapath/flow-table.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { Splicer } from '../../control/splice/splicer.js';
import { createSocketOps } from '../../control/tcp/socket-ops.js';
import { closeSharedSocketProbe } from '../../control/tcp/socket-probe.js';
import { skipUnlessBpf } from '../lib/env.js';
import { assertProblem, fdOf, openFds, type TcpPair, tcpPair } from './lib.js';

const clientKeyOf = (p: TcpPair) => ({
  src: '127.0.0.1',
  dst: '127.0.0.1',
  sport: p.connected.localPort as number,
  dport: p.accepted.localPort as number,
});

/** Bytes still flow both ways on the pair (the failed splice left it in normal operation). */
async function assertWorks(p: TcpPair): Promise<void> {
  for (const [from, to] of [
    [p.connected, p.accepted],
    [p.accepted, p.connected],
  ] as const) {
    to.resume();
    const got = new Promise<Buffer>((r) => to.once('data', r));
    from.write('ping');
    assert.equal((await got).toString(), 'ping');
    to.pause();
  }
}

describe('API over the real splicer', { skip: skipUnlessBpf }, () => {
  let dp: Datapath;
  let app: FastifyInstance;
  let a: TcpPair; // its accepted end plays the front end's client socket
  let b: TcpPair; // its connected end plays the front end's back-end socket
  const tableKeys = () => [...dp.table.entries()].map((e) => formatKey(e.key)).sort();

  before(async () => {
    dp = await Datapath.load({ flowsCapacity: 2 });
    const service = new SpliceService({ splicer: new Splicer(dp, createSocketOps()), tableCapacity: 2 });
    app = await buildApi({ service, insecureNoAuth: true }); // inject() is TCP-like: no token, so lab mode
  });
  // Fresh connections for every test: a failed assertion must not leave the next test a socket in repair mode.
  beforeEach(async () => {
    a = await tcpPair();
    b = await tcpPair();
  });
  after(async () => {
    await app?.close();
    dp?.close();
    await closeSharedSocketProbe();
  });
  afterEach(async () => {
    dp.table.clear();
    await a.close();
    await b.close();
  });

  const post = (body: object) => app.inject({ method: 'POST', url: '/v1/splices', payload: body });
  const byFd = (client: net.Socket, backend: net.Socket, extra: object = {}) => ({
    client: { pid: process.pid, fd: fdOf(client) },
    backend: { pid: process.pid, fd: fdOf(backend) },
    ...extra,
  });

  test('table full: 507 TABLE_FULL, the table untouched, the sockets still work', async () => {
    const filler = (i: number) => ({ src: '198.18.9.9', dst: '198.19.0.1', sport: 1000 + i, dport: 80 });
    for (let i = 0; i < 2; i++)
      dp.table.insert(filler(i), { connId: 900n + BigInt(i), state: FlowState.BLOCK, kind: FlowKind.CLIENT, legs: [] });
    const before = tableKeys();
    const fds = openFds();
    assertProblem(await post(byFd(a.accepted, b.connected)), 507, 'TABLE_FULL', 'table_full');
    assert.deepEqual(tableKeys(), before);
    assert.equal(openFds(), fds, 'the copies of the sockets were closed');
    await assertWorks(a);
    await assertWorks(b);
  });

  test('already in the table: 409 ALREADY_SPLICED', async () => {
    dp.table.insert(clientKeyOf(a), { connId: 77n, state: FlowState.FORWARD, kind: FlowKind.CLIENT, legs: [] });
    const before = tableKeys();
    assertProblem(await post(byFd(a.accepted, b.connected)), 409, 'ALREADY_SPLICED', 'duplicate');
    assert.deepEqual(tableKeys(), before);
    await assertWorks(a);
  });

  test('a back-end socket holding unread response bytes: 409 NOT_QUIESCENT after the timeout, block entries removed', async () => {
    // b.accepted (paused since accept: Node reads nothing) plays the back-end socket here.
    b.connected.write('unread response');
    await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    assertProblem(await post(byFd(a.accepted, b.accepted, { quiesceTimeoutMs: 30 })), 409, 'NOT_QUIESCENT', 'busy');
    assert.ok(performance.now() - t0 >= 30, 'waited for the timeout');
    assert.deepEqual(tableKeys(), []);
    b.accepted.resume();
    assert.equal((await new Promise<Buffer>((r) => b.accepted.once('data', r))).toString(), 'unread response');
    b.accepted.pause();
    await assertWorks(b);
  });

  test('legs that cannot be joined (IPv4 client, IPv6 back end): 409 SPLICE_REFUSED, sockets back out of repair mode', async () => {
    const v6 = await tcpPair('::1');
    try {
      assertProblem(await post(byFd(a.accepted, v6.connected)), 409, 'SPLICE_REFUSED', 'family_mismatch');
      assert.deepEqual(tableKeys(), []);
      await assertWorks(a);
      await assertWorks(v6);
    } finally {
      await v6.close();
    }
  });

  test('not an established TCP socket: UDP, listening, a file: 409 SOCKET_UNUSABLE', async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const listening = net.createServer();
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    const file = openSync('/proc/self/status', 'r');
    try {
      const udpFd = (udp as unknown as { _handle: { fd: number } })._handle.fd;
      assertProblem(
        await post({ client: { pid: process.pid, fd: udpFd }, backend: { pid: process.pid, fd: fdOf(b.connected) } }),
        409,
        'SOCKET_UNUSABLE',
        'not_tcp',
      );
      assertProblem(
        await post({
          client: { pid: process.pid, fd: fdOf(listening) },
          backend: { pid: process.pid, fd: fdOf(b.connected) },
        }),
        409,
        'SOCKET_UNUSABLE',
        'not_established',
      );
      assertProblem(
        await post({ client: { pid: process.pid, fd: fdOf(a.accepted) }, backend: { pid: process.pid, fd: file } }),
        409,
        'SOCKET_UNUSABLE',
        'not_a_socket',
      );
      assert.deepEqual(tableKeys(), []);
    } finally {
      udp.close();
      listening.close();
      closeSync(file);
    }
  });

  test('by address: the sockets are found, then the table answers (507 with a full table)', async () => {
    for (let i = 0; i < 2; i++)
      dp.table.insert(
        { src: '198.18.9.9', dst: '198.19.0.1', sport: 2000 + i, dport: 80 },
        { connId: 1n, state: FlowState.BLOCK, kind: FlowKind.CLIENT, legs: [] },
      );
    const fds = openFds();
    const r = await post({
      pid: process.pid,
      client: `127.0.0.1:${a.connected.localPort}`,
      vip: `127.0.0.1:${a.accepted.localPort}`,
      backend: `127.0.0.1:${b.connected.remotePort}`,
    });
    assertProblem(r, 507, 'TABLE_FULL');
    assert.equal(openFds(), fds, 'every descriptor taken during the scan was closed');
  });
});
