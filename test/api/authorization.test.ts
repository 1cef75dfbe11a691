/**
 * Authorization through the routes (fastify inject). inject() has no real
 * socket, so each app is given the credentials its requests carry
 * (buildApi's transportOf), as SO_PEERCRED would give them on the unix
 * socket. The descriptors named are real ones of this (root) process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { Authorizer, type ProcSource, procfs } from '../../control/service/authorize.js';
import { SpliceService } from '../../control/service/splice-service.js';
import type { PeerCred } from '../../control/sys/peercred.js';
import { assertProblem, descriptorsOf, fakeRecord, fdOf, StubSplicer, type TcpPair, tcpPair } from './lib.js';

const NOBODY: PeerCred = { pid: process.pid, uid: 65534, gid: 65534 };
const TOKEN = 'authorization-test-token-0123';

describe('authorization through the routes', () => {
  let stub: StubSplicer;
  let service: SpliceService;
  let pair: TcpPair;
  /** Processes whose credentials the test says it owns (the rest: the real /proc). */
  const pretend = new Map<number, number>();
  const proc: ProcSource = {
    status: (pid) => {
      const uid = pretend.get(pid);
      if (uid === undefined) return procfs.status(pid);
      return { uids: [uid, uid, uid, uid], gids: [uid, uid, uid, uid], capEff: 0n };
    },
    procDirUid: (pid) => pretend.get(pid) ?? procfs.procDirUid(pid),
  };
  const apps: FastifyInstance[] = [];
  const appAs = async (cred: PeerCred | 'tcp', extra: Partial<Parameters<typeof buildApi>[0]> = {}) => {
    const app = await buildApi({
      service,
      transportOf: () => (cred === 'tcp' ? { kind: 'tcp' } : { kind: 'unix', cred }),
      ...extra,
    });
    apps.push(app);
    return app;
  };
  const byFd = () => ({
    client: { pid: process.pid, fd: fdOf(pair.accepted) },
    backend: { pid: process.pid, fd: fdOf(pair.connected) },
  });

  before(async () => {
    stub = new StubSplicer();
    service = new SpliceService({ splicer: stub, authorizer: new Authorizer(proc) });
    pair = await tcpPair();
  });
  after(async () => {
    for (const a of apps) await a.close();
    await pair.close();
  });

  test("403 FORBIDDEN_PROCESS for a root-owned pid's descriptors, before any is taken (both forms, every batch item)", async () => {
    const app = await appAs(NOBODY);
    const copies = descriptorsOf(pair.accepted, pair.connected, pair.server);
    const p = assertProblem(
      await app.inject({ method: 'POST', url: '/v1/splices', payload: byFd() }),
      403,
      'FORBIDDEN_PROCESS',
      'other_uid',
    );
    assert.match(
      p.detail as string,
      new RegExp(
        `you \\(uid 65534\\) may not use the sockets of pid ${process.pid} \\(uid 0\\): a caller may only name processes it could ptrace`,
      ),
    );
    const byAddr = {
      pid: process.pid,
      client: `127.0.0.1:${pair.connected.localPort}`,
      vip: `127.0.0.1:${pair.accepted.localPort}`,
      backend: `127.0.0.1:${pair.accepted.localPort}`,
    };
    assertProblem(
      await app.inject({ method: 'POST', url: '/v1/splices', payload: byAddr }),
      403,
      'FORBIDDEN_PROCESS',
      'other_uid',
    );
    const batch = await app.inject({ method: 'POST', url: '/v1/splices:batch', payload: { items: [byFd(), byAddr] } });
    assert.equal(batch.statusCode, 200);
    const results = (batch.json() as { results: Array<{ status: number; error?: { code: string } }> }).results;
    assert.deepEqual(
      results.map((r) => [r.status, r.error?.code]),
      [
        [403, 'FORBIDDEN_PROCESS'],
        [403, 'FORBIDDEN_PROCESS'],
      ],
    );
    assert.deepEqual(stub.calls, [], 'nothing reached the splicer');
    assert.equal(
      descriptorsOf(pair.accepted, pair.connected, pair.server),
      copies,
      'no descriptor of the named sockets was taken (or leaked)',
    );
    assertProblem(
      await app.inject({
        method: 'POST',
        url: '/v1/splices',
        payload: { client: { pid: 4_194_000, fd: 3 }, backend: { pid: 4_194_000, fd: 4 } },
      }),
      404,
      'SOCKET_NOT_FOUND',
    );
  });

  test('a caller names its own process: the splice is made and owned by its uid', async () => {
    pretend.set(process.pid, 65534);
    stub.spliceImpl = async (_c, _b, opts) => fakeRecord(50n, { ownerUid: opts.ownerUid ?? -1 });
    try {
      const app = await appAs(NOBODY);
      const r = await app.inject({ method: 'POST', url: '/v1/splices', payload: byFd() });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal((r.json() as { ownerUid: number }).ownerUid, 65534);
      assert.equal(stub.calls.length, 1);
    } finally {
      pretend.delete(process.pid);
      stub.records.delete(50n);
    }
  });

  test("connections: list shows only the caller's own; show, hand off, abort another uid's: 403; privileged callers: all", async () => {
    stub.calls.length = 0;
    stub.add(fakeRecord(1n, { ownerUid: 0 }));
    stub.add(fakeRecord(2n, { ownerUid: 65534 }));
    stub.add(fakeRecord(3n, { ownerUid: 1000 }));
    const nobody = await appAs(NOBODY);
    const ids = async (app: FastifyInstance, headers: Record<string, string> = {}) =>
      (
        (await app.inject({ method: 'GET', url: '/v1/splices', headers })).json() as { items: { id: string }[] }
      ).items.map((s) => s.id);
    assert.deepEqual(await ids(nobody), ['2']);
    const paged = (await nobody.inject({ method: 'GET', url: '/v1/splices?limit=1' })).json() as {
      items: { id: string }[];
      next: string | null;
    };
    assert.deepEqual(
      paged.items.map((s) => s.id),
      ['2'],
      'pages count only what the caller sees',
    );
    const rest = (await nobody.inject({ method: 'GET', url: `/v1/splices?limit=1&cursor=${paged.next}` })).json() as {
      items: unknown[];
      next: string | null;
    };
    assert.deepEqual(rest, { items: [], next: null }, 'and the later page has nothing of another uid');
    for (const [method, url, payload] of [
      ['GET', '/v1/splices/1', undefined],
      ['DELETE', '/v1/splices/1', undefined],
      ['POST', '/v1/splices/3/handoffs', { backend: '198.18.2.9:80' }],
    ] as const) {
      const p = assertProblem(
        await nobody.inject({ method, url, ...(payload ? { payload } : {}) }),
        403,
        'FORBIDDEN_CONNECTION',
        'other_owner',
      );
      assert.match(p.detail as string, /is not yours/);
    }
    assert.ok(stub.records.has(1n), 'not aborted');
    assert.deepEqual(stub.calls, [], 'no handoff, no abort reached the splicer');
    assertProblem(await nobody.inject({ method: 'GET', url: '/v1/splices/99' }), 404, 'NOT_FOUND');
    assert.equal((await nobody.inject({ method: 'GET', url: '/v1/splices/2' })).statusCode, 200);
    assert.equal(
      (await nobody.inject({ method: 'POST', url: '/v1/splices/2/handoffs', payload: { backend: '198.18.2.9:80' } }))
        .statusCode,
      201,
    );
    assert.equal((await nobody.inject({ method: 'DELETE', url: '/v1/splices/2' })).statusCode, 204);
    assert.deepEqual(stub.calls, ['handoff 2 198.18.2.9:80', 'abort 2']);

    const root = await appAs({ pid: process.pid, uid: 0, gid: 0 });
    assert.deepEqual(await ids(root), ['1', '3']);
    const operator = await appAs('tcp', { token: TOKEN });
    assert.deepEqual(
      await ids(operator, { authorization: `Bearer ${TOKEN}` }),
      ['1', '3'],
      'a token holder on TCP is root-equivalent',
    );
    assert.equal(
      (await operator.inject({ method: 'DELETE', url: '/v1/splices/3', headers: { authorization: `Bearer ${TOKEN}` } }))
        .statusCode,
      204,
    );
  });

  test('TCP without a token (and without --insecure-no-auth): every splice route refused; health, version and the schema stay open', async () => {
    const app = await appAs('tcp');
    for (const [method, url] of [
      ['GET', '/v1/splices'],
      ['GET', '/v1/splices/1'],
      ['DELETE', '/v1/splices/1'],
      ['POST', '/v1/splices'],
      ['POST', '/v1/splices:batch'],
      ['POST', '/v1/splices/1/handoffs'],
    ] as const) {
      assertProblem(
        await app.inject({ method, url, ...(method === 'POST' ? { payload: {} } : {}) }),
        401,
        'UNAUTHORIZED',
        'no_token_configured',
      );
    }
    for (const url of ['/healthz', '/readyz', '/v1/version', '/openapi.json'])
      assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ok' });
  });

  test('--insecure-no-auth: TCP callers act as root, and /readyz says so', async () => {
    stub.add(fakeRecord(4n, { ownerUid: 1000 }));
    const app = await appAs('tcp', { insecureNoAuth: true });
    const ready = (await app.inject({ method: 'GET', url: '/readyz' })).json() as {
      status: string;
      insecureNoAuth?: boolean;
      warnings?: string[];
    };
    assert.equal(ready.insecureNoAuth, true);
    assert.match(ready.warnings?.[0] ?? '', /without authentication.*anyone who can reach it acts as root/);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/splices/4' })).statusCode, 200);
  });
});
