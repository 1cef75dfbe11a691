/**
 * Property: whatever a client sends (bodies of any JSON shape, valid bodies
 * with one field broken, raw bytes, odd content types, any id, any query),
 * every route answers below 500, and every 4xx is an RFC 9457 problem whose
 * code is in the catalogue with that status. The process never crashes.
 *
 * The splicer is the recording stand-in (a generated input that happens to
 * name two live sockets must not splice anything real); the service's own
 * work (parsing, pidfd lookups, address scans) is real.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { BatonError, ERRORS, type ErrorCode } from '../../control/errors.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { fakeRecord, StubSplicer } from './lib.js';

const TOKEN = 'property-token-0123456789';
const RUNS = 250;

function checkAnswer(r: LightMyRequestResponse, what: string): void {
  assert.ok(r.statusCode < 500, `${what} -> ${r.statusCode} ${r.body.slice(0, 300)}`);
  if (r.statusCode < 400) return;
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/, what);
  const p = JSON.parse(r.body) as { status: number; code: ErrorCode; type: string; title: string; detail: string };
  assert.ok(p.code in ERRORS, `${what}: unknown code ${p.code}`);
  assert.equal(p.status, r.statusCode, what);
  assert.equal(ERRORS[p.code].status, r.statusCode, `${what}: ${p.code} is a ${ERRORS[p.code].status}`);
  assert.equal(typeof p.detail, 'string', what);
  assert.ok(p.type.startsWith('https://baton.dev/problems/'), `${what}: type ${p.type}`);
}

/** Valid bodies of each form, to be broken one field at a time. */
const SPLICE_BY_FD = {
  client: { pid: 4_000_000, fd: 3 },
  backend: { pid: 4_000_000, fd: 4 },
  prefix: 'R0VUIC8gSFRUUC8xLjENCg0K',
  quiesceTimeoutMs: 10,
};
const SPLICE_BY_ADDR = {
  pid: 4_000_000,
  client: '198.18.1.1:40000',
  vip: '198.19.0.1:80',
  backend: '198.18.2.2:80',
  local: '198.18.2.1:50000',
};
const HANDOFF = { backend: '198.18.3.2:80', quiesceTimeoutMs: 10 };

/** A valid body with one (possibly nested) field replaced, removed or added. */
function broken(valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid);
  return fc.oneof(
    fc.record({ k: fc.constantFrom(...keys), v: fc.anything() }).map(({ k, v }) => ({ ...valid, [k]: v })),
    fc.constantFrom(...keys).map((k) => Object.fromEntries(Object.entries(valid).filter(([kk]) => kk !== k))),
    fc.record({ k: fc.string({ maxLength: 8 }), v: fc.jsonValue() }).map(({ k, v }) => ({ ...valid, [k]: v })),
    fc
      .record({
        k: fc.constantFrom(...keys),
        sub: fc.constantFrom('pid', 'fd'),
        v: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
      })
      .map(({ k, sub, v }) => {
        const inner = valid[k];
        return { ...valid, [k]: inner && typeof inner === 'object' ? { ...inner, [sub]: v } : v };
      }),
    fc
      .record({
        k: fc.constantFrom(...keys),
        v: fc.oneof(
          fc.string(),
          fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 70_000 })).map(([ip, port]) => `${ip}:${port}`),
          fc.ipV6(),
          fc.ipV6().map((ip) => `[${ip}]:80`),
        ),
      })
      .map(({ k, v }) => ({ ...valid, [k]: v })),
  );
}

const anyBody = fc.oneof(fc.jsonValue(), broken(SPLICE_BY_FD), broken(SPLICE_BY_ADDR), broken(HANDOFF));
/** Raw payloads with a content type: what a confused client could put on the wire. */
const rawPayload = fc.record({
  payload: fc.oneof(
    fc.string(),
    fc.json(),
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')),
  ),
  type: fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'application/octet-stream',
    'application/x-www-form-urlencoded',
    'multipart/form-data',
    'application/problem+json',
    '',
  ),
});
const anyId = fc.oneof(
  fc.string(),
  fc.bigInt({ min: 0n, max: 1n << 70n }).map(String),
  fc.constantFrom('1', '2', '3', '0', '-1', '1e3', '%zz', '%00', '..', '1/handoffs'),
);
const anyQuery = fc.dictionary(
  fc.constantFrom('limit', 'cursor', 'state', 'backend', 'x', 'limit[]'),
  fc.oneof(fc.string(), fc.integer().map(String), fc.constantFrom('forwarding', 'held', '198.18.2.2:80')),
  { maxKeys: 4 },
);

describe('property: malformed input never yields a 5xx', () => {
  let app: FastifyInstance;
  let stub: StubSplicer;

  before(async () => {
    stub = new StubSplicer();
    for (let i = 1n; i <= 3n; i++) stub.add(fakeRecord(i));
    // A splice or handoff the stand-in is asked for answers like the splicer does when it refuses.
    stub.spliceImpl = async () => {
      throw new BatonError('SPLICE_REFUSED', 'the stand-in splicer refuses', 'stub');
    };
    stub.handoffImpl = async () => {
      throw new BatonError('NOT_QUIESCENT', 'the stand-in splicer finds no boundary', 'busy');
    };
    // Aborts must not empty the table the other routes are probed against.
    stub.abort = async (id) => stub.records.has(id);
    app = await buildApi({ service: new SpliceService({ splicer: stub }), token: TOKEN });
  });
  after(async () => app?.close());

  const H = { authorization: `Bearer ${TOKEN}` };
  const inject = (method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method: method as 'POST',
      url,
      headers: { ...H, ...headers },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });

  test('POST /v1/splices and /v1/splices:batch with any JSON body', async () => {
    await fc.assert(
      fc.asyncProperty(anyBody, fc.array(anyBody, { maxLength: 4 }), async (body, items) => {
        checkAnswer(
          await inject('POST', '/v1/splices', JSON.stringify(body), { 'content-type': 'application/json' }),
          `POST /v1/splices ${JSON.stringify(body)}`,
        );
        const r = await inject('POST', '/v1/splices:batch', { items });
        checkAnswer(r, `batch ${JSON.stringify(items)}`);
        if (r.statusCode === 200) {
          for (const res of r.json().results as Array<{ status: number; error?: { code: ErrorCode } }>) {
            assert.ok(res.status < 500, JSON.stringify(res));
            if (res.error) assert.equal(ERRORS[res.error.code].status, res.status);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('raw payloads and content types on every POST route', async () => {
    await fc.assert(
      fc.asyncProperty(
        rawPayload,
        fc.constantFrom('/v1/splices', '/v1/splices:batch', '/v1/splices/1/handoffs', '/v1/splices/99/handoffs'),
        async ({ payload, type }, url) => {
          checkAnswer(
            await inject('POST', url, payload, type ? { 'content-type': type } : {}),
            `POST ${url} ${type} ${JSON.stringify(payload)}`,
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('any id on GET, DELETE and POST .../handoffs', async () => {
    await fc.assert(
      fc.asyncProperty(anyId, broken(HANDOFF), async (id, body) => {
        const path = `/v1/splices/${encodeURIComponent(id)}`;
        checkAnswer(await inject('GET', path), `GET ${path}`);
        checkAnswer(await inject('DELETE', path), `DELETE ${path}`);
        checkAnswer(
          await inject('POST', `${path}/handoffs`, body as object),
          `POST ${path}/handoffs ${JSON.stringify(body)}`,
        );
        // Unencoded too: fastify must turn a bad URL into a 4xx, not a crash.
        checkAnswer(await inject('GET', `/v1/splices/${id.replace(/[\s?#]/g, '')}`), `GET raw ${id}`);
      }),
      { numRuns: RUNS },
    );
  });

  test('any query on GET /v1/splices, and query strings on the other GET routes', async () => {
    await fc.assert(
      fc.asyncProperty(anyQuery, async (q) => {
        const qs = new URLSearchParams(q).toString();
        checkAnswer(await inject('GET', `/v1/splices?${qs}`), `GET /v1/splices?${qs}`);
        for (const u of ['/healthz', '/readyz', '/v1/version', '/openapi.json'])
          checkAnswer(await inject('GET', `${u}?${qs}`), `GET ${u}?${qs}`);
      }),
      { numRuns: RUNS },
    );
  });

  test('the process still answers afterwards', async () => {
    const r = await inject('GET', '/healthz');
    assert.equal(r.statusCode, 200);
    assert.equal(stub.records.size, 3);
  });
});
