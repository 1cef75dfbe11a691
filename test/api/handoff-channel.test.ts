/**
 * The local handoff channel (control/handoff/server.ts + control/sdk/handoff-channel.ts)
 * against a real SpliceService whose splicer is a stand-in (test/api/lib.ts):
 * real unix sockets, real SCM_RIGHTS, real peer credentials. The REST API
 * (control/api/app.ts) listens on a unix socket beside it with the same
 * service, so each refusal is compared with what REST answers.
 *
 *   - a splice: the same document as REST, the descriptors taken over;
 *   - a refusal: the same problem as REST, both sockets given back, no copy kept;
 *   - descriptors that are not TCP sockets (a pipe, a file, UDP, a listener);
 *   - malformed frames (bad type, lengths that lie, oversized, truncated,
 *     descriptors missing): an error frame, the connection closed, every
 *     descriptor received closed, the server still serving;
 *   - a front end killed mid-call: nothing left in the daemon;
 *   - peers as uid 65534 (setpriv): outside the socket's group (refused as
 *     REST refuses), in it (spliced as its own), and not dumpable
 *     (FORBIDDEN_PROCESS, as REST answers for its own pid);
 *   - MIGRATE (migrate mode): refusals as POST /v1/migrations answers them
 *     (no agents, an agent that is not the LB's, a descriptor that is not a
 *     TCP socket, a malformed body), the client socket given back usable
 *     and no copy kept. Migrations that succeed: test/e2e/migrate-lb.test.ts.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import readline from 'node:readline';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { listenOnSocket } from '../../control/daemon/api-socket.js';
import { BatonPath, LEG_PORT_KEEP_MS } from '../../control/dispatcher/baton-path.js';
import { BatonError } from '../../control/errors.js';
import { HandoffServer } from '../../control/handoff/server.js';
import {
  decodeHeader,
  decodeReplyBody,
  encodeHeader,
  FRAME_TYPE,
  FrameReader,
  MAX_REQUEST_BODY,
} from '../../control/handoff/wire.js';
import { encodeMigrate, encodeSplice } from '../../control/handoff/wire-requests.js';
import type { FlowIdSwitch } from '../../control/migrate/flow-switch.js';
import { type BatonClient, createClient } from '../../control/sdk/client.js';
import { BatonApiError } from '../../control/sdk/errors.js';
import { type HandoffChannel, openHandoffChannel } from '../../control/sdk/handoff-channel.js';
import { MigrateService } from '../../control/service/migrate-service.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { socketFd } from '../../control/sys/peercred.js';
import { sendWithFds } from '../../control/sys/scm-rights.js';
import { asUser } from '../lib/baton.js';
import { descriptorsOf, fakeRecord, fdOf, openFds, StubSplicer, type TcpPair, tcpPair } from './lib.js';

const NOBODY = 65534;
const ROOT_DIR = `/run/baton-hch-${process.pid}`;
const PEER = resolve(import.meta.dirname, 'programs/channel-peer.ts');

/** Waits until `cond` holds (bounded). */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(5);
  }
}

/** A raw peer: frames written with sendmsg (descriptors attached), replies read by Node. */
async function rawPeer(path: string) {
  const s = net.connect({ path });
  await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
  const reader = new FrameReader('reply');
  const frames: Array<{ type: number; id: number; doc: Record<string, unknown> }> = [];
  let ended = false;
  s.on('data', (d: Buffer) => {
    for (const f of reader.push(d))
      frames.push({ type: f.type, id: f.id, doc: decodeReplyBody(f.body) as Record<string, unknown> });
  });
  s.on('error', () => {});
  s.on('close', () => (ended = true));
  return {
    send(b: Buffer, fds: number[] = []) {
      assert.equal(sendWithFds(socketFd(s) as number, b, fds), b.length);
    },
    async next() {
      await until(() => frames.length > 0 || ended, 'a reply frame');
      const f = frames.shift();
      if (!f) throw new Error('the channel closed without a reply');
      return f;
    },
    get ended() {
      return ended;
    },
    close: () => s.destroy(),
  };
}

/** A front end in its own process (programs/channel-peer.ts), as `uid` or root. */
function peerProcess(uid: number | 'root', args: string[]) {
  const argv = [process.execPath, '--import', 'tsx', PEER, ...args];
  const [cmd, rest] = uid === 'root' ? [argv[0] as string, argv.slice(1)] : asUser(uid, argv);
  const proc: ChildProcess = spawn(cmd, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: resolve(import.meta.dirname, '../..'),
  });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    exited,
    async event(name: string): Promise<Record<string, unknown>> {
      await until(
        () => lines.some((l) => l.event === name) || proc.exitCode !== null,
        `"${name}" from the peer`,
        30_000,
      );
      const e = lines.find((l) => l.event === name);
      if (!e) throw new Error(`the peer exited without "${name}": ${JSON.stringify(lines)} ${stderr}`);
      return e;
    },
    async outcome(): Promise<Record<string, unknown>> {
      await exited;
      const e = lines.find((l) => l.event === 'spliced' || l.event === 'error');
      if (!e) throw new Error(`the peer said nothing: ${stderr}`);
      return e;
    },
  };
}

describe('the local handoff channel', () => {
  let stub: StubSplicer;
  let service: SpliceService;
  /** gid 0: root only; gid NOBODY: uid 65534 may connect. Each with a REST API beside it. */
  const beds: Record<'root' | 'nobody', { dir: string; handoff: HandoffServer; api: FastifyInstance }> = {} as never;
  let channel: HandoffChannel;
  let restClient: BatonClient;
  let pair: TcpPair;
  let nextId = 100n;
  const protocolErrors: BatonError[] = [];

  /** POST /v1/splices over the REST API's unix socket, as a root front end makes it: status and body. */
  const rest = async (client: number, backend: number) => {
    try {
      const r = await restClient.request('POST', '/v1/splices', {
        client: { pid: process.pid, fd: client },
        backend: { pid: process.pid, fd: backend },
      });
      return { status: r.status, body: r.body as Record<string, unknown> };
    } catch (e) {
      if (!(e instanceof BatonApiError)) throw e;
      return { status: e.status, body: e.toJSON() as unknown as Record<string, unknown> };
    }
  };

  beforeEach(() => {
    stub.spliceImpl = async (_c, _b, o) => stub.add(fakeRecord(nextId++, { ownerUid: o.ownerUid ?? 0 }));
  });

  before(async () => {
    stub = new StubSplicer();
    service = new SpliceService({ splicer: stub });
    for (const [name, gid] of [
      ['root', 0],
      ['nobody', NOBODY],
    ] as const) {
      const dir = `${ROOT_DIR}-${name}`;
      const handoff = await HandoffServer.listen({
        service,
        path: `${dir}/handoff.sock`,
        gid,
        onProtocolError: (e) => protocolErrors.push(e),
      });
      const api = await buildApi({ service });
      await listenOnSocket(`${dir}/api.sock`, gid, () => api.listen({ path: `${dir}/api.sock` }));
      beds[name] = { dir, handoff, api };
    }
    channel = await openHandoffChannel(beds.root.handoff.path);
    restClient = createClient({ socketPath: `${beds.root.dir}/api.sock` });
  });
  after(async () => {
    channel?.close();
    restClient?.close();
    await pair?.close();
    for (const b of Object.values(beds)) {
      await b.handoff.close();
      await b.api.close();
      rmSync(b.dir, { recursive: true, force: true });
    }
  });

  test('a splice: the descriptors themselves go over, the answer is what REST answers', async () => {
    pair = await tcpPair();
    const before = stub.calls.length;
    const prefix = Buffer.from('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
    let seenPrefix: Buffer | undefined;
    stub.spliceImpl = async (_c, _b, o) => {
      seenPrefix = o.prefix;
      return stub.add(fakeRecord(7n, { ownerUid: o.ownerUid ?? 0 }));
    };
    const s = await channel.splice(pair.accepted, pair.connected, { prefix, quiesceTimeoutMs: 123 });
    assert.equal(stub.calls.length, before + 1);
    assert.deepEqual(seenPrefix, prefix, 'the prefix arrives byte for byte');
    assert.ok(pair.accepted.destroyed && pair.connected.destroyed, 'both sockets are the daemon’s now');
    // REST, for a record of the same shape: the same document.
    const other = await tcpPair();
    const res = await rest(fdOf(other.accepted), fdOf(other.connected));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(s, res.body);
    assert.equal(s.id, '7');
    await other.close();
  });

  test('requests of one tick leave together and each gets its own answer', async () => {
    const pairs = await Promise.all(Array.from({ length: 11 }, () => tcpPair()));
    const got = await Promise.all(pairs.map((p) => channel.splice(p.accepted, p.connected)));
    assert.equal(new Set(got.map((s) => s.id)).size, 11, 'eleven distinct splices');
    for (const p of pairs) await p.close();
  });

  test('a refusal: the same problem as REST, both sockets given back, no copy kept', async () => {
    const refusal = () => new BatonError('SPLICE_REFUSED', 'the client has unacknowledged data', 'unacked_data');
    stub.spliceImpl = async () => {
      throw refusal();
    };
    const p = await tcpPair();
    const err = await channel.splice(p.accepted, p.connected).then(
      () => assert.fail('spliced'),
      (e: unknown) => e as BatonApiError,
    );
    assert.ok(err instanceof BatonApiError);
    assert.deepEqual([err.code, err.status, err.reason], ['SPLICE_REFUSED', 409, 'unacked_data']);
    await until(() => descriptorsOf(p.accepted, p.connected) === 2, 'the daemon closed its copies');
    // Given back: the connection still carries bytes both ways.
    p.connected.write('ping');
    p.accepted.resume();
    const [d] = (await new Promise((r) => p.accepted.once('data', (x) => r([x])))) as [Buffer];
    assert.equal(d.toString(), 'ping');
    const problem = (await rest(fdOf(p.accepted), fdOf(p.connected))).body;
    assert.deepEqual(
      { code: err.code, status: err.status, title: err.title, detail: err.detail, reason: err.reason },
      {
        code: problem.code,
        status: problem.status,
        title: problem.title,
        detail: problem.detail,
        reason: problem.reason,
      },
    );
    await p.close();
  });

  test('descriptors that are not established TCP sockets: SOCKET_UNUSABLE that says which, as REST says', async () => {
    const fds: number[] = [];
    const [rd, wr] = await pipePair();
    fds.push(rd, wr);
    const file = openSync('/proc/self/status', 'r');
    fds.push(file);
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const p = await tcpPair();
    const udpFd = (udp as unknown as { _handle: { fd: number } })._handle.fd;
    const cases: Array<[string, number, number, string, RegExp]> = [
      ['a pipe', rd, fdOf(p.connected), 'not_a_socket', /the client descriptor is not a socket/],
      ['a file', fdOf(p.accepted), file, 'not_a_socket', /the back-end descriptor is not a socket/],
      ['a UDP socket', udpFd, fdOf(p.connected), 'not_tcp', /the client socket is not a TCP socket/],
      ['a listening socket', fdOf(p.accepted), fdOf(listener), 'not_established', /back-end socket is LISTEN/],
    ];
    const peer = await rawPeer(beds.root.handoff.path);
    const calls = stub.calls.length;
    for (const [what, c, b, reason, detail] of cases) {
      peer.send(encodeSplice({ id: 11 }), [c, b]);
      const f = await peer.next();
      assert.equal(f.type, FRAME_TYPE.ERROR, what);
      assert.equal(f.id, 11);
      assert.deepEqual([f.doc.code, f.doc.status, f.doc.reason], ['SOCKET_UNUSABLE', 409, reason], what);
      assert.match(String(f.doc.detail), detail, what);
      const r = (await rest(c, b)).body;
      assert.deepEqual([r.code, r.reason], [f.doc.code, f.doc.reason], `REST for ${what}`);
    }
    assert.equal(stub.calls.length, calls, 'none reached the splicer');
    assert.equal(peer.ended, false, 'a refused request does not end the connection');
    // Nothing kept: one copy of each descriptor (ours) remains.
    await until(
      () => descriptorsOf(p.accepted, p.connected, listener) === 3,
      'the daemon closed every descriptor it was given',
    );
    peer.close();
    for (const fd of fds) closeSync(fd);
    udp.close();
    listener.close();
    await p.close();
  });

  test('malformed frames: an error frame that says why, the connection closed, every descriptor closed', async () => {
    const p = await tcpPair();
    const good = encodeSplice({ id: 3, prefix: Buffer.from('abc') });
    const edit = (f: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      f(b);
      return b;
    };
    const cases: Array<[string, Buffer, number[], string]> = [
      ['a bad type', edit((b) => b.writeUInt8(0x42, 3)), [fdOf(p.accepted), fdOf(p.connected)], 'bad_type'],
      ['a bad magic', edit((b) => b.writeUInt16LE(0x4745, 0)), [fdOf(p.accepted)], 'bad_magic'],
      [
        'a prefix length that lies',
        edit((b) => b.writeUInt32LE(99, 20)),
        [fdOf(p.accepted), fdOf(p.connected)],
        'bad_length',
      ],
      [
        'an oversized body',
        encodeHeader({ type: FRAME_TYPE.SPLICE, id: 4, bodyLength: MAX_REQUEST_BODY + 1, fds: 2 }),
        [fdOf(p.accepted), fdOf(p.connected)],
        'too_large',
      ],
      ['descriptors missing', good, [fdOf(p.accepted)], 'bad_fds'],
      ['a descriptor count that lies', edit((b) => b.writeUInt8(5, 12)), [fdOf(p.accepted)], 'bad_fds'],
    ];
    for (const [what, frame, fds, reason] of cases) {
      protocolErrors.length = 0;
      const peer = await rawPeer(beds.root.handoff.path);
      peer.send(frame, fds);
      const f = await peer.next();
      assert.equal(f.type, FRAME_TYPE.ERROR, what);
      assert.deepEqual([f.doc.code, f.doc.status, f.doc.reason], ['BAD_REQUEST', 400, reason], what);
      assert.match(String(f.doc.detail), /the handoff channel closed this connection/, what);
      await until(() => peer.ended, `${what}: the daemon hangs up`);
      await until(() => descriptorsOf(p.accepted, p.connected) === 2, `${what}: every descriptor received is closed`);
      assert.equal(protocolErrors.length, 1, `${what}: reported to the daemon's log`);
    }
    // Truncated: half a frame, then the front end goes away. No answer to give, nothing kept.
    const peer = await rawPeer(beds.root.handoff.path);
    peer.send(good.subarray(0, 20), [fdOf(p.accepted), fdOf(p.connected)]);
    await until(() => descriptorsOf(p.accepted, p.connected) === 4, 'the daemon holds the two copies');
    peer.close();
    await until(() => descriptorsOf(p.accepted, p.connected) === 2, 'a truncated frame leaves nothing behind');
    // The server still serves.
    const s = await channel.splice(p.accepted, p.connected);
    assert.match(s.id, /^[0-9]+$/);
    await p.close();
    assert.equal(decodeHeader(good, 'request').id, 3);
  });

  describe('MIGRATE', () => {
    const AGENT = '198.18.3.2:7070';
    let migrating: {
      dir: string;
      handoff: HandoffServer;
      api: FastifyInstance;
      migrations: MigrateService;
      rest: BatonClient;
    };
    before(async () => {
      // Enabled (agents, a secret, a flow switch) so that every check before the agent's channel runs; the
      // stand-in switch is never reached by these requests, which are all refused before the capture.
      const migrations = new MigrateService({
        agents: [AGENT],
        secret: Buffer.alloc(32, 1),
        flowSwitch: { reclaim: () => 0, forwardedCount: 0 } as unknown as FlowIdSwitch,
        operations: service.operations,
      });
      const dir = `${ROOT_DIR}-migrate`;
      const handoff = await HandoffServer.listen({
        service,
        migrations,
        path: `${dir}/handoff.sock`,
        gid: 0,
        onProtocolError: (e) => protocolErrors.push(e),
      });
      const api = await buildApi({ service, migrations });
      await listenOnSocket(`${dir}/api.sock`, 0, () => api.listen({ path: `${dir}/api.sock` }));
      migrating = { dir, handoff, api, migrations, rest: createClient({ socketPath: `${dir}/api.sock` }) };
    });
    after(async () => {
      migrating.migrations.close();
      migrating.rest.close();
      await migrating.handoff.close();
      await migrating.api.close();
      rmSync(migrating.dir, { recursive: true, force: true });
    });
    const restMigrate = async (fd: number, agent: string) => {
      try {
        await migrating.rest.request('POST', '/v1/migrations', { client: { pid: process.pid, fd }, agent });
        return assert.fail('REST migrated');
      } catch (e) {
        if (!(e instanceof BatonApiError)) throw e;
        return e;
      }
    };
    const refusedBy = (ch: HandoffChannel, socket: net.Socket, agent: string) =>
      ch.migrate(socket, { agent, received: Buffer.from('GET / HTTP/1.1\r\n\r\n') }).then(
        () => assert.fail('migrated'),
        (e: unknown) => e as BatonApiError,
      );

    test('a daemon without agents, and an agent that is not the LB’s: refused as REST refuses, the socket given back', async () => {
      const p = await tcpPair();
      // The root bed's server has no migrate service at all; the migrating one has one agent.
      const err = await refusedBy(channel, p.accepted, AGENT);
      assert.deepEqual([err.code, err.reason], ['MIGRATE_DISABLED', 'no_agents']);
      const ch = await openHandoffChannel(migrating.handoff.path);
      try {
        const unknown = await refusedBy(ch, p.accepted, '198.18.9.9:7070');
        assert.deepEqual([unknown.code, unknown.status, unknown.reason], ['AGENT_UNKNOWN', 400, 'unknown_agent']);
        const viaRest = await restMigrate(fdOf(p.accepted), '198.18.9.9:7070');
        assert.deepEqual(
          [unknown.code, unknown.detail],
          [viaRest.code, viaRest.detail],
          'the same problem as POST /v1/migrations',
        );
      } finally {
        ch.close();
      }
      await until(() => descriptorsOf(p.accepted, p.connected) === 2, 'the daemon closed its copies');
      // Given back: the connection still carries bytes both ways (the first request was read back into Node).
      p.connected.write('ping');
      p.accepted.resume();
      const got = await new Promise<string>((r) => {
        let all = '';
        p.accepted.on('data', (x: Buffer) => {
          all += x.toString();
          if (all.endsWith('ping')) r(all);
        });
      });
      assert.ok(got.endsWith('ping'));
      await p.close();
    });

    test('a descriptor that is not an established TCP socket: SOCKET_UNUSABLE, as REST says; nothing kept', async () => {
      const [rd, wr] = await pipePair();
      const listener = net.createServer();
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
      const peer = await rawPeer(migrating.handoff.path);
      const cases: Array<[string, number, string]> = [
        ['a pipe', rd, 'not_a_socket'],
        ['a listening socket', fdOf(listener), 'not_established'],
      ];
      for (const [what, fd, reason] of cases) {
        peer.send(encodeMigrate({ id: 21, agent: AGENT }), [fd]);
        const f = await peer.next();
        assert.deepEqual([f.type, f.id], [FRAME_TYPE.ERROR, 21], what);
        assert.deepEqual([f.doc.code, f.doc.reason], ['SOCKET_UNUSABLE', reason], what);
        const r = await restMigrate(fd, AGENT);
        assert.deepEqual([r.code, r.reason], [f.doc.code, f.doc.reason], `REST for ${what}`);
      }
      assert.equal(peer.ended, false, 'a refused request does not end the connection');
      await until(() => descriptorsOf(listener) === 1, 'the daemon closed the descriptors it was given');
      peer.close();
      closeSync(rd);
      closeSync(wr);
      listener.close();
    });

    test('a malformed migrate body: the connection closed with the reason, the descriptor closed', async () => {
      const p = await tcpPair();
      const good = encodeMigrate({ id: 5, agent: AGENT, received: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
      const cases: Array<[string, Buffer, string]> = [
        ['received length that lies', Buffer.from(good), 'bad_length'],
        ['a newline in the agent', Buffer.from(good), 'bad_field'],
        ['reserved bytes set', Buffer.from(good), 'bad_reserved'],
      ];
      (cases[0] as [string, Buffer, string])[1].writeUInt32LE(999, 16 + 8);
      (cases[1] as [string, Buffer, string])[1][16 + 12] = 0x0a;
      (cases[2] as [string, Buffer, string])[1].writeUInt16LE(1, 16 + 6);
      for (const [what, frame, reason] of cases) {
        protocolErrors.length = 0;
        const peer = await rawPeer(migrating.handoff.path);
        peer.send(frame, [fdOf(p.accepted)]);
        const f = await peer.next();
        assert.deepEqual([f.type, f.doc.code, f.doc.reason], [FRAME_TYPE.ERROR, 'BAD_REQUEST', reason], what);
        await until(() => peer.ended, `${what}: the daemon hangs up`);
        await until(() => descriptorsOf(p.accepted, p.connected) === 2, `${what}: the descriptor is closed`);
        assert.equal(protocolErrors.length, 1, `${what}: reported to the daemon's log`);
      }
      await p.close();
    });
  });

  test('LEG_PORT: the port the splicer chose; without a leg range CONFIG_INVALID; bad addresses BAD_REQUEST; the channel stays up', async () => {
    stub.legPorts = Array.from({ length: 20 }, (_, i) => 61001 + i);
    assert.deepEqual(
      await channel.legPorts('198.18.2.1', '198.18.3.10:8080'),
      Array.from({ length: 16 }, (_, i) => 61001 + i),
      'a lease of 16',
    );
    assert.deepEqual(await channel.legPorts('198.18.2.1', '198.18.3.10:8080'), [61017, 61018, 61019, 61020]);
    assert.equal(stub.calls.at(-1), 'legPort 198.18.2.1 198.18.3.10:8080');
    const refused = (code: string, reason: string) => (e: unknown) =>
      e instanceof BatonApiError && e.code === code && e.reason === reason;
    await assert.rejects(channel.legPorts('198.18.2.1', '198.18.3.10:8080'), refused('CONFIG_INVALID', 'no_leg_ports'));
    const calls = stub.calls.length;
    await assert.rejects(channel.legPorts('lb.example', '198.18.3.10:8080'), refused('BAD_REQUEST', 'bad_address'));
    await assert.rejects(channel.legPorts('198.18.2.1', '198.18.3.10'), refused('BAD_REQUEST', 'bad_address'));
    await assert.rejects(
      channel.legPorts('2001:db8::1', '198.18.3.10:8080'),
      refused('BAD_REQUEST', 'family_mismatch'),
    );
    assert.equal(stub.calls.length, calls, 'refused before the splicer');
    assert.ok(channel.usable, 'refusals are answers: the channel stays up');
  });

  test("the dispatcher's leg ports: one lease at a time per back end, its ports shared, none used twice, none kept past LEG_PORT_KEEP_MS", async () => {
    const fdsBefore = openFds();
    const path = new BatonPath(restClient, beds.root.handoff.path);
    try {
      stub.legPorts = Array.from({ length: 40 }, (_, i) => 62001 + i);
      const leases = () => stub.calls.filter((c) => c.startsWith('legPort')).length;
      const before = leases();
      const ports = await Promise.all(Array.from({ length: 20 }, () => path.legPort('198.18.2.1', '198.18.3.10:8080')));
      assert.deepEqual(
        [...ports].sort((a, b) => (a ?? 0) - (b ?? 0)),
        Array.from({ length: 20 }, (_, i) => 62001 + i),
        '20 connections, 20 distinct ports, in lease order',
      );
      assert.equal(leases() - before, 2, 'two leases of up to 16 served 20 connections at once');
      await sleep(LEG_PORT_KEEP_MS + 50);
      // 12 of the second lease are left over, but stale now: a new lease.
      assert.equal(await path.legPort('198.18.2.1', '198.18.3.10:8080'), 62033);
      assert.equal(leases() - before, 3);
      stub.legPorts = [];
      assert.equal(await path.legPort('198.18.2.1', '198.18.3.9:8080'), undefined, 'no range: the kernel chooses');
    } finally {
      path.close();
    }
    // The next test counts descriptors: the path's channel must be gone first.
    await until(
      () => openFds() === fdsBefore,
      `the path's channel closed (${openFds()} descriptors, ${fdsBefore} before)`,
    );
  });

  test('a front end killed mid-call: the splice finishes (or is rolled back) and nothing is left in the daemon', async () => {
    for (const outcome of ['refused', 'spliced'] as const) {
      const baseline = openFds();
      const connections = beds.root.handoff.connections;
      let release: () => void = () => {};
      let called = false;
      stub.spliceImpl = async (_c, _b, o) => {
        called = true;
        await new Promise<void>((r) => (release = r));
        if (outcome === 'refused') throw new BatonError('NOT_QUIESCENT', 'kept moving data', 'timeout');
        return stub.add(fakeRecord(nextId++, { ownerUid: o.ownerUid ?? 0 }));
      };
      const fe = peerProcess('root', ['channel', beds.root.handoff.path]);
      await fe.event('asking');
      await until(() => called, 'the splice reached the splicer');
      assert.ok(openFds() >= baseline + 3, 'the daemon holds the connection and both sockets');
      fe.proc.kill('SIGKILL');
      await fe.exited;
      release();
      await until(() => service.inFlightCount === 0, 'the splice finished');
      await until(
        () => openFds() === baseline && beds.root.handoff.connections === connections,
        `${outcome}: back to ${baseline} sockets (now ${openFds()}), no connection left`,
      );
    }
  });

  test('uid 65534 outside the socket’s group: refused as the REST API refuses it', async () => {
    const viaChannel = await peerProcess(NOBODY, ['channel', beds.root.handoff.path]).outcome();
    const viaRest = await peerProcess(NOBODY, ['rest', `${beds.root.dir}/api.sock`]).outcome();
    assert.equal(viaChannel.code, 'API_UNREACHABLE', JSON.stringify(viaChannel));
    assert.match(String(viaChannel.detail), /EACCES|permission denied/i);
    assert.equal(viaRest.code, viaChannel.code, JSON.stringify(viaRest));
  });

  test('uid 65534 in the group: its own sockets are spliced as its own', async () => {
    const r = await peerProcess(NOBODY, ['channel', beds.nobody.handoff.path]).outcome();
    assert.equal(r.event, 'spliced', JSON.stringify(r));
    assert.equal((r.splice as { ownerUid: number }).ownerUid, NOBODY);
  });

  test('uid 65534 not dumpable (it could not ptrace itself): FORBIDDEN_PROCESS, as REST answers', async () => {
    const calls = stub.calls.length;
    const viaChannel = await peerProcess(NOBODY, ['channel', beds.nobody.handoff.path, 'undumpable']).outcome();
    const viaRest = await peerProcess(NOBODY, ['rest', `${beds.nobody.dir}/api.sock`, 'undumpable']).outcome();
    assert.deepEqual(
      [viaChannel.code, viaChannel.reason],
      ['FORBIDDEN_PROCESS', 'not_dumpable'],
      JSON.stringify(viaChannel),
    );
    assert.deepEqual([viaRest.code, viaRest.reason], [viaChannel.code, viaChannel.reason], JSON.stringify(viaRest));
    assert.equal(stub.calls.length, calls, 'refused before the splicer');
  });
});

/** A pipe's two ends (node has no pipe(2); a child's stdio pipe would do, but this is simpler). */
async function pipePair(): Promise<[number, number]> {
  const { bind, koffi } = await import('../../control/sys/koffi.js');
  const pipe = bind<[Int32Array], number>(koffi.load('libc.so.6'), 'int pipe(int *fds)');
  const fds = new Int32Array(2);
  assert.equal(pipe(fds), 0);
  return [fds[0] as number, fds[1] as number];
}
