/**
 * The operations routes through fastify's inject (issue 12): GET /v1/cluster
 * alone and in a cluster (the answer must fit its schema: fastify's
 * serializer would fail or drop fields otherwise), GET/POST/DELETE
 * /v1/drain, their validation, who may call them (rule 3 of
 * control/service/authorize.ts), and what a drain does to new splices
 * (refused with DRAINING before any descriptor is taken; handoffs are not).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { lbClusterStatus } from '../../control/owner/cluster-status.js';
import { encodePeerInfo } from '../../control/owner/peer-info.js';
import { Authorizer, procfs } from '../../control/service/authorize.js';
import { Drain } from '../../control/service/drain.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { MemoryStore } from '../../control/store/memory.js';
import type { PeerCred } from '../../control/sys/peercred.js';
import { assertProblem, descriptorsOf, fakeRecord, fdOf, StubSplicer, type TcpPair, tcpPair } from './lib.js';

const TOKEN = 'cluster-routes-test-token-0123';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const NOBODY: PeerCred = { pid: process.pid, uid: 65534, gid: 65534 };
const ROOT: PeerCred = { pid: process.pid, uid: 0, gid: 0 };

describe('operations routes: /v1/cluster and /v1/drain', () => {
  let stub: StubSplicer;
  let service: SpliceService;
  let drain: Drain;
  let pair: TcpPair;
  const apps: FastifyInstance[] = [];
  const build = async (extra: Partial<Parameters<typeof buildApi>[0]> = {}) => {
    const app = await buildApi({ service, token: TOKEN, drain, ...extra });
    apps.push(app);
    return app;
  };
  const asPeer = (cred: PeerCred) =>
    buildApi({ service, drain, transportOf: () => ({ kind: 'unix', cred }) }).then((a) => {
      apps.push(a);
      return a;
    });

  before(async () => {
    stub = new StubSplicer();
    service = new SpliceService({
      splicer: stub,
      authorizer: new Authorizer(procfs),
      admission: () => drain.refusal(),
    });
    drain = new Drain({ held: () => stub.records.size + service.inFlightCount });
    pair = await tcpPair();
  });
  after(async () => {
    for (const a of apps) await a.close();
    await pair.close();
  });

  test('alone: GET /v1/cluster says the LB runs alone, with its connections and drain state', async () => {
    const app = await build();
    stub.add(fakeRecord(1n));
    try {
      const r = await app.inject({ method: 'GET', url: '/v1/cluster', headers: AUTH });
      assert.equal(r.statusCode, 200, r.body);
      const c = r.json();
      assert.equal(c.mode, 'alone');
      assert.match(c.detail, /runs alone \(no --store\)/);
      assert.deepEqual([c.self, c.store, c.directory, c.peers], [null, null, null, []]);
      assert.deepEqual(c.connections, { owned: 1, published: 0, forwarded: 0, known: 0 });
      assert.deepEqual(c.drain, { state: 'serving', since: null, drainedAt: null, connectionsLeft: 1 });
    } finally {
      stub.records.delete(1n);
    }
  });

  test('validation: a query string is refused (400 BAD_REQUEST naming it), unknown methods 404/405', async () => {
    const app = await build();
    for (const [method, url] of [
      ['GET', '/v1/cluster?verbose=1'],
      ['GET', '/v1/drain?x=1'],
      ['POST', '/v1/drain?force=true'],
      ['DELETE', '/v1/drain?x=1'],
    ] as const) {
      const p = assertProblem(await app.inject({ method, url, headers: AUTH }), 400, 'BAD_REQUEST', 'schema');
      assert.match(String(p.detail), /querystring/, `${method} ${url}: ${p.detail}`);
    }
    assert.equal(drain.draining, false, 'a refused POST changed nothing');
    const put = await app.inject({ method: 'PUT', url: '/v1/drain', headers: AUTH, payload: {} });
    assert.ok(put.statusCode === 404 || put.statusCode === 405, `PUT: ${put.statusCode}`);
  });

  test('authorization: anyone reads; only the operator or root drains (403 FORBIDDEN_OPERATION); TCP without a token is refused', async () => {
    const nobody = await asPeer(NOBODY);
    for (const url of ['/v1/cluster', '/v1/drain']) {
      const r = await nobody.inject({ method: 'GET', url });
      assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
    }
    for (const method of ['POST', 'DELETE'] as const) {
      const p = assertProblem(
        await nobody.inject({ method, url: '/v1/drain' }),
        403,
        'FORBIDDEN_OPERATION',
        'not_operator',
      );
      assert.match(String(p.detail), /uid 65534/);
    }
    assert.equal(drain.draining, false, 'uid 65534 could not drain');

    const tcpNoToken = await buildApi({ service, drain, transportOf: () => ({ kind: 'tcp' }) });
    apps.push(tcpNoToken);
    for (const [method, url] of [
      ['GET', '/v1/cluster'],
      ['POST', '/v1/drain'],
    ] as const)
      assertProblem(await tcpNoToken.inject({ method, url }), 401, 'UNAUTHORIZED', 'no_token_configured');
    assert.equal(drain.draining, false);
    const token = await build();
    assertProblem(await token.inject({ method: 'POST', url: '/v1/drain' }), 401, 'UNAUTHORIZED', 'missing_token');

    const root = await asPeer(ROOT);
    const started = await root.inject({ method: 'POST', url: '/v1/drain' });
    assert.equal(started.statusCode, 200, started.body);
    assert.equal(started.json().state, 'drained', 'root drained it (nothing held)');
    const back = await root.inject({ method: 'DELETE', url: '/v1/drain' });
    assert.equal(back.json().state, 'serving');
  });

  test('drain: new splices refused with DRAINING before any descriptor is taken; handoffs still served; drained when nothing is left; cancel serves again', async () => {
    const app = await build();
    const rec = stub.add(fakeRecord(7n));
    const seen: string[] = [];
    const observed = await build({ onDrain: (what) => seen.push(what) });
    const start = await observed.inject({ method: 'POST', url: '/v1/drain', headers: AUTH });
    assert.equal(start.statusCode, 200, start.body);
    const d = start.json();
    assert.equal(d.state, 'draining');
    assert.equal(d.connectionsLeft, 1);
    assert.ok(Date.parse(d.since) <= Date.now() && d.drainedAt === null, start.body);
    assert.deepEqual(seen, ['start']);
    // Idempotent: the start time stays the first one.
    assert.equal((await app.inject({ method: 'POST', url: '/v1/drain', headers: AUTH })).json().since, d.since);

    const copies = descriptorsOf(pair.accepted, pair.connected, pair.server);
    const body = {
      client: { pid: process.pid, fd: fdOf(pair.accepted) },
      backend: { pid: process.pid, fd: fdOf(pair.connected) },
    };
    const p = assertProblem(
      await app.inject({ method: 'POST', url: '/v1/splices', headers: AUTH, payload: body }),
      503,
      'DRAINING',
      'draining',
    );
    assert.match(String(p.detail), /relay/);
    const batch = await app.inject({
      method: 'POST',
      url: '/v1/splices:batch',
      headers: AUTH,
      payload: { items: [body, body] },
    });
    assert.deepEqual(
      batch.json().results.map((x: { status: number; error?: { code: string } }) => [x.status, x.error?.code]),
      [
        [503, 'DRAINING'],
        [503, 'DRAINING'],
      ],
    );
    assert.equal(descriptorsOf(pair.accepted, pair.connected, pair.server), copies, 'no descriptor was taken');
    assert.deepEqual(
      stub.calls.filter((c) => c.startsWith('splice')),
      [],
      'the splicer was never asked',
    );
    // The connections it holds are still served: a handoff is not refused.
    const h = await app.inject({
      method: 'POST',
      url: `/v1/splices/${rec.id}/handoffs`,
      headers: AUTH,
      payload: { backend: '198.18.2.3:80' },
    });
    assert.equal(h.statusCode, 201, h.body);
    const status = (await app.inject({ method: 'GET', url: '/v1/cluster', headers: AUTH })).json();
    assert.equal(status.drain.state, 'draining');
    assert.equal(status.drain.connectionsLeft, 1);

    stub.records.delete(rec.id); // the connection ended and was reclaimed
    const done = (await app.inject({ method: 'GET', url: '/v1/drain', headers: AUTH })).json();
    assert.equal(done.state, 'drained');
    assert.equal(done.connectionsLeft, 0);
    assert.ok(Date.parse(done.drainedAt) >= Date.parse(done.since), JSON.stringify(done));

    const cancel = await observed.inject({ method: 'DELETE', url: '/v1/drain', headers: AUTH });
    assert.deepEqual(cancel.json(), { state: 'serving', since: null, drainedAt: null, connectionsLeft: 0 });
    assert.deepEqual(seen, ['start', 'cancel']);
    stub.spliceImpl = async () => stub.add(fakeRecord(8n));
    const again = await app.inject({ method: 'POST', url: '/v1/splices', headers: AUTH, payload: body });
    assert.equal(again.statusCode, 201, `serving again: ${again.body}`);
    stub.records.delete(8n);
  });

  test('cluster: GET /v1/cluster shows this LB, its live peers with TTL and forwarded packets, owned vs forwarded, directory lag', async () => {
    const store = new MemoryStore();
    try {
      await store.heartbeatPeer(
        { id: 'lb2', info: encodePeerInfo({ address: '198.18.5.2', ownerPort: 6181, version: '1.2.3', ttlMs: 3000 }) },
        3000,
      );
      const peers = new Map([['lb2', { address: '198.18.5.2', ownerPort: 6181, version: '1.2.3', ttlMs: 3000 }]]);
      const entries = new Map([
        ['a', { owner: 'lb2', conn: {} }],
        ['b', { owner: 'lb2', conn: {} }],
      ]);
      const status = lbClusterStatus({
        self: { id: 'lb1', address: '198.18.4.2', ownerPort: 6181 },
        lb: {
          store,
          cluster: { self: 'lb1', peers: () => peers, leave: async () => {} },
          directory: { peerEntries: () => entries, ownedCount: 3, pendingCount: 1 } as never,
          times: {
            lastPublishAtMs: Date.now() - 1000,
            lastInstallAtMs: Date.now() - 500,
            propagationsMs: [0.5, 1, 4],
          } as never,
        },
        forwarded: () => 2,
        traffic: () => new Map([['198.18.5.2', { packets: 1234n, bytes: 99_000n }]]),
        owned: () => 4,
        drain: () => drain.check(),
      });
      const app = await build({ clusterStatus: status });
      const r = await app.inject({ method: 'GET', url: '/v1/cluster', headers: AUTH });
      assert.equal(r.statusCode, 200, r.body);
      const c = r.json();
      assert.equal(c.mode, 'cluster');
      assert.deepEqual(c.self, { id: 'lb1', address: '198.18.4.2', ownerPort: 6181 });
      assert.deepEqual(c.store, { kind: 'memory', reachable: true });
      assert.equal(c.peers.length, 1);
      const p = c.peers[0];
      assert.deepEqual(
        [p.id, p.address, p.ownerPort, p.version, p.connections, p.forwardedPackets, p.forwardedBytes],
        ['lb2', '198.18.5.2', 6181, '1.2.3', 2, 1234, 99_000],
      );
      assert.ok(p.ttlLeftMs > 2000 && p.ttlLeftMs <= 3000, `ttl left ${p.ttlLeftMs}`);
      assert.equal(p.lastSeenMsAgo, 3000 - p.ttlLeftMs);
      assert.deepEqual(c.connections, { owned: 4, published: 3, forwarded: 2, known: 2 });
      assert.equal(c.directory.pending, 1);
      assert.deepEqual(
        [
          c.directory.lastPropagationMs,
          c.directory.propagationP50Ms,
          c.directory.propagationP99Ms,
          c.directory.samples,
        ],
        [4, 1, 4, 3],
      );
      assert.ok(Date.parse(c.directory.lastPublishAt) < Date.parse(c.directory.lastInstallAt));
      assert.equal(c.drain.state, 'serving');

      // The store away: the answer still comes (no TTLs), and says so.
      await store.close();
      const away = (await app.inject({ method: 'GET', url: '/v1/cluster', headers: AUTH })).json();
      assert.equal(away.store.reachable, false);
      assert.equal(typeof away.store.error, 'string');
      assert.deepEqual([away.peers[0].ttlLeftMs, away.peers[0].lastSeenMsAgo], [null, null]);
      assert.equal(away.peers[0].forwardedPackets, 1234, 'the datapath figures stay');
    } finally {
      await store.close().catch(() => {});
    }
  });
});
