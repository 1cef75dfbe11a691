/**
 * Every route of docs/api.md through fastify's inject, against the real
 * service with a stand-in splicer (the service's own socket work, pidfd and
 * all, is real: the sockets are loopback connections of this process).
 * Real splices and the datapath's errors are in real-splicer.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { BatonError } from '../../control/errors.js';
import { BATCH_CONCURRENCY, MAX_BATCH_ITEMS } from '../../control/service/limits.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { assertProblem, fakeRecord, fdOf, openFds, StubSplicer, type TcpPair, tcpPair } from './lib.js';

const TOKEN = 'test-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** A pid that existed and is gone. */
const deadPid = spawnSync('true').pid as number;

describe('REST API routes', () => {
  let stub: StubSplicer;
  let service: SpliceService;
  let app: FastifyInstance;
  let notReady: string | undefined;

  const inject = (method: string, url: string, payload?: unknown, headers: Record<string, string> = AUTH) =>
    app.inject({
      method: method as 'GET',
      url,
      headers: { ...headers, ...(typeof payload === 'string' ? { 'content-type': 'application/json' } : {}) },
      ...(payload === undefined ? {} : { payload: payload as string }),
    });

  beforeEach(async () => {
    await app?.close();
    stub = new StubSplicer();
    notReady = undefined;
    service = new SpliceService({ splicer: stub, notReadyReason: () => notReady });
    app = await buildApi({ service, token: TOKEN });
  });
  after(async () => app?.close());

  describe('health, version, OpenAPI', () => {
    test('GET /healthz answers without a token', async () => {
      const r = await inject('GET', '/healthz', undefined, {});
      assert.equal(r.statusCode, 200);
      assert.deepEqual(r.json(), { status: 'ok' });
    });

    test('GET /readyz: 200 when ready, 503 NOT_READY with the reason, 503 SHUTTING_DOWN once draining', async () => {
      assert.equal((await inject('GET', '/readyz')).statusCode, 200);
      notReady = 'the datapath is detached';
      const p = assertProblem(await inject('GET', '/readyz'), 503, 'NOT_READY');
      assert.match(p.detail as string, /detached/);
      await service.drain();
      assertProblem(await inject('GET', '/readyz'), 503, 'SHUTTING_DOWN');
    });

    test('GET /v1/version names baton, the ABI, the kernel and libbpf', async () => {
      const v = (await inject('GET', '/v1/version')).json();
      assert.equal(v.version, '0.1.0');
      assert.ok(Number.isInteger(v.abi) && v.abi >= 1, `abi ${v.abi}`);
      assert.match(v.kernel, /^\d+\.\d+/);
      assert.match(v.libbpf, /^\d+\.\d+\.\d+$|^unknown$/);
    });

    test('GET /openapi.json documents every route, the Splice and Problem schemas and bearer auth', async () => {
      const doc = (await inject('GET', '/openapi.json')).json();
      assert.match(doc.openapi, /^3\./);
      assert.deepEqual(Object.keys(doc.paths).sort(), [
        '/healthz',
        '/readyz',
        '/v1/cluster',
        '/v1/drain',
        '/v1/migrations',
        '/v1/splices',
        '/v1/splices/{id}',
        '/v1/splices/{id}/handoffs',
        '/v1/splices:batch',
        '/v1/version',
      ]);
      assert.deepEqual(Object.keys(doc.paths['/v1/splices/{id}']).sort(), ['delete', 'get']);
      assert.deepEqual(Object.keys(doc.paths['/v1/drain']).sort(), ['delete', 'get', 'post']);
      assert.ok(doc.components.schemas.Splice && doc.components.schemas.Problem, 'Splice and Problem components');
      assert.ok(doc.components.schemas.Migration, 'Migration component');
      assert.deepEqual(doc.security, [{ bearer: [] }]);
      const post = doc.paths['/v1/splices'].post;
      assert.ok(post.requestBody.content['application/json'].schema, 'POST /v1/splices has a body schema');
      assert.ok(post.responses['201'] && post.responses['4XX'], JSON.stringify(Object.keys(post.responses)));
    });
  });

  describe('authentication', () => {
    test('no token: 401 UNAUTHORIZED with WWW-Authenticate, on every route but /healthz', async () => {
      for (const [m, u] of [
        ['GET', '/readyz'],
        ['GET', '/v1/version'],
        ['GET', '/v1/splices'],
        ['GET', '/v1/splices/1'],
        ['DELETE', '/v1/splices/1'],
        ['POST', '/v1/splices'],
        ['POST', '/v1/splices:batch'],
        ['POST', '/v1/splices/1/handoffs'],
        ['GET', '/v1/cluster'],
        ['GET', '/v1/drain'],
        ['POST', '/v1/drain'],
        ['DELETE', '/v1/drain'],
        ['GET', '/openapi.json'],
        ['GET', '/no/such/route'],
      ] as const) {
        const r = await inject(m, u, m === 'POST' ? {} : undefined, {});
        assertProblem(r, 401, 'UNAUTHORIZED', 'missing_token');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="baton"', `${m} ${u}`);
      }
    });

    test('a wrong token, another scheme or a token with a suffix is refused', async () => {
      for (const authorization of [
        `Bearer ${TOKEN}x`,
        `Bearer ${TOKEN.slice(0, -1)}`,
        `Basic ${TOKEN}`,
        'Bearer',
        `Bearer  `,
        TOKEN,
      ]) {
        assertProblem(await inject('GET', '/v1/splices', undefined, { authorization }), 401, 'UNAUTHORIZED');
      }
      assert.equal(
        (await inject('GET', '/v1/splices', undefined, { authorization: `bearer ${TOKEN}` })).statusCode,
        200,
        'the scheme is case-insensitive',
      );
    });

    test('an empty token is a configuration error, not "no authentication"', async () => {
      await assert.rejects(
        buildApi({ service, token: '' }),
        (e: unknown) => e instanceof BatonError && e.code === 'CONFIG_INVALID',
      );
    });
  });

  describe('errors fastify raises are problems too', () => {
    test('unknown route: 404 ROUTE_NOT_FOUND', async () => {
      assertProblem(await inject('GET', '/v2/splices'), 404, 'ROUTE_NOT_FOUND');
      assertProblem(await inject('PUT', '/v1/splices/1'), 404, 'ROUTE_NOT_FOUND');
    });

    test('invalid JSON: 400; not JSON: 415; too large: 413', async () => {
      assertProblem(
        await app.inject({
          method: 'POST',
          url: '/v1/splices',
          headers: { ...AUTH, 'content-type': 'application/json' },
          payload: '{"client":',
        }),
        400,
        'BAD_REQUEST',
      );
      assertProblem(
        await app.inject({
          method: 'POST',
          url: '/v1/splices',
          headers: { ...AUTH, 'content-type': 'application/xml' },
          payload: '<a/>',
        }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      );
      const big = { client: { pid: 1, fd: 1 }, backend: { pid: 1, fd: 2 }, prefix: 'A'.repeat(200_000) };
      assertProblem(await inject('POST', '/v1/splices', big), 413, 'PAYLOAD_TOO_LARGE');
    });

    test('over a unix socket (no client IP) the rate limit works too', async () => {
      const limited = await buildApi({ service, rateLimit: { max: 2, timeWindowMs: 60_000 } });
      const path = join(tmpdir(), `baton-api-${process.pid}.sock`);
      await limited.listen({ path });
      const get = () =>
        new Promise<number>((resolve, reject) => {
          const r = http.request({ socketPath: path, path: '/v1/splices' }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          r.on('error', reject);
          r.end();
        });
      try {
        assert.deepEqual([await get(), await get(), await get()], [200, 200, 429]);
      } finally {
        await limited.close();
      }
    });

    test('rate limit: 429 RATE_LIMITED past the limit; /healthz is never limited', async () => {
      const limited = await buildApi({ service, rateLimit: { max: 3, timeWindowMs: 60_000 }, insecureNoAuth: true });
      try {
        for (let i = 0; i < 3; i++)
          assert.equal((await limited.inject({ method: 'GET', url: '/v1/splices' })).statusCode, 200);
        const r = await limited.inject({ method: 'GET', url: '/v1/splices' });
        assertProblem(r, 429, 'RATE_LIMITED');
        assert.ok(Number(r.headers['retry-after']) > 0, 'Retry-After says when');
        for (let i = 0; i < 5; i++)
          assert.equal((await limited.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      } finally {
        await limited.close();
      }
    });
  });

  describe('GET /v1/splices', () => {
    beforeEach(() => {
      for (let i = 1n; i <= 5n; i++)
        stub.add(fakeRecord(i, { backend: i % 2n ? '198.18.2.2' : '198.18.3.2' }), i === 4n ? 'closing' : 'forwarding');
      stub.add(fakeRecord(7n, { client: '2001:db8:1::1', recovered: true }));
    });

    test('pages by id with limit and cursor', async () => {
      const p1 = (await inject('GET', '/v1/splices?limit=2')).json();
      assert.deepEqual(
        p1.items.map((s: { id: string }) => s.id),
        ['1', '2'],
      );
      assert.equal(p1.next, '2');
      const p2 = (await inject('GET', `/v1/splices?limit=2&cursor=${p1.next}`)).json();
      assert.deepEqual(
        p2.items.map((s: { id: string }) => s.id),
        ['3', '4'],
      );
      const p3 = (await inject('GET', `/v1/splices?limit=2&cursor=${p2.next}`)).json();
      assert.deepEqual(
        p3.items.map((s: { id: string }) => s.id),
        ['5', '7'],
      );
      assert.equal(p3.next, null);
      assert.deepEqual((await inject('GET', '/v1/splices?cursor=7')).json(), { items: [], next: null });
    });

    test('orders by id even when records were adopted out of order', async () => {
      stub.add(fakeRecord(6n, { recovered: true }));
      const ids = (await inject('GET', '/v1/splices')).json().items.map((s: { id: string }) => s.id);
      assert.deepEqual(ids, ['1', '2', '3', '4', '5', '6', '7']);
    });

    test('filters by state and by current back end', async () => {
      assert.deepEqual(
        (await inject('GET', '/v1/splices?state=closing')).json().items.map((s: { id: string }) => s.id),
        ['4'],
      );
      assert.deepEqual(
        (await inject('GET', '/v1/splices?backend=198.18.3.2:80')).json().items.map((s: { id: string }) => s.id),
        ['2', '4'],
      );
      assert.deepEqual((await inject('GET', '/v1/splices?state=held')).json().items, []);
    });

    test('bad queries: 400 BAD_REQUEST naming the field', async () => {
      for (const q of [
        'limit=0',
        'limit=1001',
        'limit=x',
        'cursor=-1',
        'cursor=abc',
        'state=open',
        'backend=nope',
        'backend=1.2.3.4:99999',
        'other=1',
      ]) {
        const p = assertProblem(await inject('GET', `/v1/splices?${q}`), 400, 'BAD_REQUEST');
        assert.match(p.detail as string, new RegExp(q.split('=')[0] as string), q);
      }
    });
  });

  describe('GET and DELETE /v1/splices/:id', () => {
    test('GET: the JSON view of docs/api.md', async () => {
      stub.add(fakeRecord(17n, { legs: 2 }));
      const s = (await inject('GET', '/v1/splices/17')).json();
      assert.equal(s.id, '17');
      assert.equal(s.state, 'forwarding');
      assert.equal(s.family, 4);
      assert.equal(s.client, '198.18.1.1:40017');
      assert.equal(s.vip, '198.19.0.1:80');
      assert.equal(s.createdAt, '2026-01-02T03:04:05.000Z');
      assert.equal(s.durationUs, 250);
      assert.equal(s.recovered, false);
      assert.equal(s.handoffs.length, 2);
      assert.deepEqual(s.handoffs[1], {
        index: 1,
        backend: '198.18.2.2:80',
        local: '198.18.2.1:50001',
        seqStart: 1000,
        seqDelta: 1,
        ackDelta: 2,
        tsvalDelta: 3,
        tsecrDelta: 4,
        wscaleIn: 7,
        wscaleOut: 7,
        timestamps: true,
        retired: false,
      });
      assert.equal(s.handoffs[0].retired, true);
      assert.deepEqual(s.traffic.toClient, { packets: 12, bytes: 1200, fin: false, rst: false, lastSeenMs: null });
      assert.ok(
        s.traffic.toBackend.lastSeenMs >= 5 && s.traffic.toBackend.lastSeenMs < 5000,
        `lastSeenMs ${s.traffic.toBackend.lastSeenMs}`,
      );
    });

    test('IPv6 addresses are bracketed; recovered connections have no duration', async () => {
      stub.add(fakeRecord(3n, { client: '2001:db8:1::1', backend: '2001:db8:2::2', recovered: true }));
      const s = (await inject('GET', '/v1/splices/3')).json();
      assert.equal(s.family, 6);
      assert.equal(s.client, '[2001:db8:1::1]:40003');
      assert.equal(s.handoffs[0].backend, '[2001:db8:2::2]:80');
      assert.equal(s.recovered, true);
      assert.equal(s.durationUs, null);
    });

    test('unknown id: 404 NOT_FOUND; malformed id: 400', async () => {
      assertProblem(await inject('GET', '/v1/splices/99'), 404, 'NOT_FOUND', 'unknown_id');
      assertProblem(await inject('GET', '/v1/splices/99999999999999999999'), 404, 'NOT_FOUND');
      assertProblem(await inject('GET', '/v1/splices/1x'), 400, 'BAD_REQUEST');
      assertProblem(await inject('GET', '/v1/splices/123456789012345678901'), 400, 'BAD_REQUEST');
    });

    test('DELETE aborts (204), then the id is unknown (404)', async () => {
      stub.add(fakeRecord(5n));
      const r = await inject('DELETE', '/v1/splices/5');
      assert.equal(r.statusCode, 204);
      assert.equal(r.body, '');
      assert.deepEqual(stub.calls, ['abort 5']);
      assertProblem(await inject('DELETE', '/v1/splices/5'), 404, 'NOT_FOUND');
      assertProblem(await inject('DELETE', '/v1/splices/x'), 400, 'BAD_REQUEST');
    });
  });

  describe('POST /v1/splices/:id/handoffs', () => {
    test('201 with the connection after the handoff', async () => {
      stub.add(fakeRecord(8n));
      stub.handoffImpl = async () => {
        const next = fakeRecord(8n, { legs: 2, backend: '198.18.3.2' });
        stub.records.set(8n, next);
        return next;
      };
      const r = await inject('POST', '/v1/splices/8/handoffs', { backend: '198.18.3.2:80', quiesceTimeoutMs: 100 });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.json().handoffs.length, 2);
      assert.deepEqual(stub.calls, ['handoff 8 198.18.3.2:80']);
    });

    test("the splicer's refusals keep their codes: 409 HANDOFFS_EXHAUSTED, NOT_QUIESCENT, SPLICE_REFUSED; 502 BACKEND_UNREACHABLE", async () => {
      stub.add(fakeRecord(9n));
      const cases: Array<[BatonError, number]> = [
        [new BatonError('HANDOFFS_EXHAUSTED', 'connection 9 already holds 8 handoffs', 'handoffs_exhausted'), 409],
        [new BatonError('NOT_QUIESCENT', 'no request boundary', 'busy'), 409],
        [new BatonError('SPLICE_REFUSED', 'recovered after a restart', 'state_unknown'), 409],
        [
          new BatonError('BACKEND_UNREACHABLE', 'could not connect to 198.18.3.2:81: ECONNREFUSED', 'connect_failed'),
          502,
        ],
      ];
      for (const [err, status] of cases) {
        stub.handoffImpl = async () => {
          throw err;
        };
        assertProblem(
          await inject('POST', '/v1/splices/9/handoffs', { backend: '198.18.3.2:81' }),
          status,
          err.code,
          err.reason,
        );
      }
    });

    test('unknown id 404; IPv6 back end for an IPv4 connection 409; malformed back end 400; nothing reaches the splicer', async () => {
      stub.add(fakeRecord(10n));
      assertProblem(await inject('POST', '/v1/splices/11/handoffs', { backend: '198.18.3.2:80' }), 404, 'NOT_FOUND');
      assertProblem(
        await inject('POST', '/v1/splices/10/handoffs', { backend: '[2001:db8:3::2]:80' }),
        409,
        'SPLICE_REFUSED',
        'family_mismatch',
      );
      for (const backend of [
        '198.18.3.2',
        '198.18.3.2:',
        '198.18.3.2:65536',
        'host:80',
        '2001:db8::1:80',
        '[2001:db8::1]80',
        '[fe80::1%eth0]:80',
      ]) {
        assertProblem(await inject('POST', '/v1/splices/10/handoffs', { backend }), 400, 'BAD_REQUEST');
      }
      assertProblem(
        await inject('POST', '/v1/splices/10/handoffs', { backend: '198.18.3.2:80', extra: 1 }),
        400,
        'BAD_REQUEST',
      );
      assertProblem(
        await inject('POST', '/v1/splices/10/handoffs', { backend: '198.18.3.2:80', quiesceTimeoutMs: -1 }),
        400,
        'BAD_REQUEST',
      );
      assert.deepEqual(stub.calls, []);
    });
  });

  describe('POST /v1/splices', () => {
    let pair: TcpPair;
    let other: TcpPair;
    before(async () => {
      pair = await tcpPair();
      other = await tcpPair();
    });
    after(async () => {
      await pair.close();
      await other.close();
    });

    test("by descriptor: the splicer gets this process's copies of the two sockets; 201 with Location; every copy closed after", async () => {
      const fds0 = openFds();
      let seen: number[] = [];
      stub.spliceImpl = async (c, b) => {
        seen = [c, b];
        assert.notEqual(c, fdOf(pair.accepted), "a copy, not the front end's descriptor");
        return stub.add(fakeRecord(21n));
      };
      const r = await inject('POST', '/v1/splices', {
        client: { pid: process.pid, fd: fdOf(pair.accepted) },
        backend: { pid: process.pid, fd: fdOf(other.connected) },
        prefix: Buffer.from('GET / HTTP/1.1\r\n\r\n').toString('base64'),
      });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.headers.location, '/v1/splices/21');
      assert.equal(r.json().id, '21');
      assert.equal(seen.length, 2);
      assert.equal(openFds(), fds0, 'no descriptor left open');
    });

    test('a splicer failure closes the copies too, and its error is a problem; a bug is a 500 INTERNAL problem', async () => {
      const fds0 = openFds();
      stub.spliceImpl = async () => {
        throw new BatonError('NOT_QUIESCENT', 'sockets did not become quiet', 'busy');
      };
      const body = {
        client: { pid: process.pid, fd: fdOf(pair.accepted) },
        backend: { pid: process.pid, fd: fdOf(other.connected) },
      };
      assertProblem(await inject('POST', '/v1/splices', body), 409, 'NOT_QUIESCENT');
      stub.spliceImpl = async () => {
        throw new TypeError('boom');
      };
      const p = assertProblem(await inject('POST', '/v1/splices', body), 500, 'INTERNAL');
      assert.match(p.detail as string, /boom.*bug/);
      assert.equal(openFds(), fds0);
    });

    test('sockets that cannot be had: dead pid 404, closed fd 404, same socket twice 400', async () => {
      const fd = fdOf(pair.accepted);
      assertProblem(
        await inject('POST', '/v1/splices', { client: { pid: deadPid, fd }, backend: { pid: process.pid, fd } }),
        404,
        'SOCKET_NOT_FOUND',
        'no_process',
      );
      assertProblem(
        await inject('POST', '/v1/splices', {
          client: { pid: process.pid, fd },
          backend: { pid: process.pid, fd: 1_000_000 },
        }),
        404,
        'SOCKET_NOT_FOUND',
        'no_descriptor',
      );
      assertProblem(
        await inject('POST', '/v1/splices', { client: { pid: process.pid, fd }, backend: { pid: process.pid, fd } }),
        400,
        'BAD_REQUEST',
        'same_socket',
      );
      assert.deepEqual(stub.calls, []);
    });

    test('schema: 400 for each malformed field, naming it', async () => {
      const ok = { client: { pid: process.pid, fd: 3 }, backend: { pid: process.pid, fd: 4 } };
      const bad: Array<[unknown, RegExp]> = [
        [{ ...ok, client: { pid: 0, fd: 3 } }, /client\/pid/],
        [{ ...ok, client: { pid: 1.5, fd: 3 } }, /client\/pid/],
        [{ ...ok, backend: { pid: 1, fd: -1 } }, /backend\/fd/],
        [{ ...ok, backend: { pid: '1', fd: 3 } }, /backend\/pid/],
        [{ ...ok, prefix: '***' }, /prefix/],
        [{ ...ok, quiesceTimeoutMs: 10_000_000 }, /quiesceTimeoutMs/],
        [{ ...ok, extra: true }, /extra|additional/i],
        [{ client: ok.client }, /backend/],
        [{ pid: 1, client: '198.18.1.1:1', vip: '198.19.0.1:80' }, /backend/],
        [[], /body/],
        ['"x"', /body/],
      ];
      for (const [body, field] of bad) {
        const p = assertProblem(await inject('POST', '/v1/splices', body as object), 400, 'BAD_REQUEST', 'schema');
        assert.match(p.detail as string, field, JSON.stringify(body));
        assert.ok(Array.isArray(p.errors) && p.errors.length > 0, 'errors lists the fields');
      }
      // Base64 that passes the pattern but is not padded.
      assertProblem(await inject('POST', '/v1/splices', { ...ok, prefix: 'abc' }), 400, 'BAD_REQUEST', 'bad_prefix');
    });

    test("by address: the pid's sockets are found by their addresses (ambiguous 409, absent 404)", async () => {
      const srvAddr = pair.server.address() as { port: number };
      const client = `127.0.0.1:${pair.connected.localPort}`;
      const vip = `127.0.0.1:${srvAddr.port}`;
      const otherServer = other.server.address() as { port: number };
      let got: number[] = [];
      stub.spliceImpl = async (c, b) => {
        got = [c, b];
        return stub.add(fakeRecord(30n));
      };
      // One connection to `other`'s server: found.
      const r = await inject('POST', '/v1/splices', {
        pid: process.pid,
        client,
        vip,
        backend: `127.0.0.1:${otherServer.port}`,
      });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(got.length, 2);
      // A second connection to the same back end: ambiguous, unless `local` names one.
      const second = await tcpPair('127.0.0.1', other.server);
      try {
        assertProblem(
          await inject('POST', '/v1/splices', {
            pid: process.pid,
            client,
            vip,
            backend: `127.0.0.1:${otherServer.port}`,
          }),
          409,
          'SOCKET_AMBIGUOUS',
        );
        const r2 = await inject('POST', '/v1/splices', {
          pid: process.pid,
          client,
          vip,
          backend: `127.0.0.1:${otherServer.port}`,
          local: `127.0.0.1:${second.connected.localPort}`,
        });
        assert.equal(r2.statusCode, 201, r2.body);
      } finally {
        second.accepted.destroy();
        second.connected.destroy();
      }
      assertProblem(
        await inject('POST', '/v1/splices', {
          pid: process.pid,
          client,
          vip: '127.0.0.1:1',
          backend: `127.0.0.1:${otherServer.port}`,
        }),
        404,
        'SOCKET_NOT_FOUND',
        'no_client_socket',
      );
      assertProblem(
        await inject('POST', '/v1/splices', { pid: process.pid, client, vip, backend: '127.0.0.1:1' }),
        404,
        'SOCKET_NOT_FOUND',
        'no_backend_socket',
      );
      assertProblem(
        await inject('POST', '/v1/splices', { pid: deadPid, client, vip, backend: '127.0.0.1:1' }),
        404,
        'SOCKET_NOT_FOUND',
        'no_process',
      );
      assertProblem(
        await inject('POST', '/v1/splices', { pid: process.pid, client: 'x:1', vip, backend: '127.0.0.1:1' }),
        400,
        'BAD_REQUEST',
        'bad_address',
      );
    });
  });

  describe('POST /v1/splices:batch', () => {
    test('items are independent: 201, 400 (schema) and 404 side by side, in order', async () => {
      const pair = await tcpPair();
      const other = await tcpPair();
      try {
        let n = 40n;
        stub.spliceImpl = async () => stub.add(fakeRecord(n++));
        const good = {
          client: { pid: process.pid, fd: fdOf(pair.accepted) },
          backend: { pid: process.pid, fd: fdOf(other.connected) },
        };
        const r = await inject('POST', '/v1/splices:batch', {
          items: [good, { client: 1 }, { client: { pid: deadPid, fd: 3 }, backend: { pid: deadPid, fd: 4 } }, good],
        });
        assert.equal(r.statusCode, 200, r.body);
        const { results } = r.json();
        assert.deepEqual(
          results.map((x: { status: number }) => x.status),
          [201, 400, 404, 201],
        );
        assert.equal(results[0].splice.id, '40');
        assert.equal(results[1].error.code, 'BAD_REQUEST');
        assert.equal(results[1].error.instance, '/v1/splices:batch/items/1');
        assert.equal(results[2].error.code, 'SOCKET_NOT_FOUND');
        assert.equal(results[3].splice.id, '41');
      } finally {
        await pair.close();
        await other.close();
      }
    });

    test(`items run ${BATCH_CONCURRENCY} at a time: the others go on while one waits, results stay in item order`, async () => {
      const pair = await tcpPair();
      const other = await tcpPair();
      try {
        let n = 100n;
        let inFlight = 0;
        let most = 0;
        const order: bigint[] = [];
        stub.spliceImpl = async () => {
          const id = n++;
          most = Math.max(most, ++inFlight);
          // The first item is slow (sockets slow to go quiet); the rest are not held up behind it.
          await sleep(id === 100n ? 100 : 1);
          inFlight--;
          order.push(id);
          return stub.add(fakeRecord(id));
        };
        const good = {
          client: { pid: process.pid, fd: fdOf(pair.accepted) },
          backend: { pid: process.pid, fd: fdOf(other.connected) },
        };
        const items = new Array(3 * BATCH_CONCURRENCY).fill(good);
        const r = await inject('POST', '/v1/splices:batch', { items });
        assert.equal(r.statusCode, 200, r.body);
        const { results } = r.json();
        assert.deepEqual(
          results.map((x: { splice: { id: string } }) => x.splice.id),
          items.map((_, i) => String(100 + i)),
        );
        assert.equal(most, BATCH_CONCURRENCY, 'concurrent, and bounded');
        assert.equal(order.at(-1), 100n, 'the slow first item finished last');
      } finally {
        await pair.close();
        await other.close();
      }
    });

    test(`1..${MAX_BATCH_ITEMS} items, else 400`, async () => {
      assertProblem(await inject('POST', '/v1/splices:batch', { items: [] }), 400, 'BAD_REQUEST');
      assertProblem(
        await inject('POST', '/v1/splices:batch', { items: new Array(MAX_BATCH_ITEMS + 1).fill({}) }),
        400,
        'BAD_REQUEST',
      );
      assertProblem(await inject('POST', '/v1/splices:batch', { items: {} }), 400, 'BAD_REQUEST');
      assertProblem(await inject('POST', '/v1/splices:batch', [{}]), 400, 'BAD_REQUEST');
      const r = await inject('POST', '/v1/splices:batch', { items: new Array(MAX_BATCH_ITEMS).fill({}) });
      assert.equal(r.statusCode, 200);
      assert.equal(r.json().results.length, MAX_BATCH_ITEMS);
    });

    test('a draining service answers 503 SHUTTING_DOWN per item and per request', async () => {
      await service.drain();
      const pair = await tcpPair();
      try {
        const body = {
          client: { pid: process.pid, fd: fdOf(pair.accepted) },
          backend: { pid: process.pid, fd: fdOf(pair.connected) },
        };
        assertProblem(await inject('POST', '/v1/splices', body), 503, 'SHUTTING_DOWN');
        const r = await inject('POST', '/v1/splices:batch', { items: [body] });
        assert.equal(r.json().results[0].error.code, 'SHUTTING_DOWN');
      } finally {
        await pair.close();
      }
    });
  });
});
