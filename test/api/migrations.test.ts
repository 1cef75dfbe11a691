/**
 * POST /v1/migrations through the routes (fastify inject): off without
 * agents, schema and agent checks before any descriptor is taken, the
 * caller authorized as for splices, and every failure before the agent's
 * confirmation leaving the client's connection as it was (a real loopback
 * pair, captured in repair mode and given back on a refusal). The agent's
 * channel is a stand-in here; test/e2e/migrate-lb.test.ts runs the real one.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Reply } from '../../control/agent/reply.js';
import { buildApi } from '../../control/api/app.js';
import type { FlowKey } from '../../control/datapath/abi.js';
import { BatonError } from '../../control/errors.js';
import type { AgentChannel } from '../../control/migrate/channel.js';
import type { FlowIdSwitch } from '../../control/migrate/flow-switch.js';
import { Authorizer, type ProcSource, procfs } from '../../control/service/authorize.js';
import { MigrateService } from '../../control/service/migrate-service.js';
import { SpliceService } from '../../control/service/splice-service.js';
import type { PeerCred } from '../../control/sys/peercred.js';
import { assertProblem, descriptorsOf, fdOf, StubSplicer, type TcpPair, tcpPair } from './lib.js';

const ROOT: PeerCred = { pid: process.pid, uid: 0, gid: 0 };
const NOBODY: PeerCred = { pid: process.pid, uid: 65534, gid: 65534 };
const AGENT = '198.18.3.2:7400';

/** A FlowIdSwitch that records what the migration did to the LB's table. */
function fakeSwitch() {
  const log: string[] = [];
  const sw = {
    begin(_id: bigint, client: FlowKey, backend: string) {
      log.push(`begin ${client.dst}:${client.dport} -> ${backend}`);
      return {
        flowId: 0x00010001,
        key: client,
        mapping: {
          lb: '198.18.2.2',
          flowId: 0x00010001,
          client: { ip: client.src, port: client.sport },
          vip: { ip: client.dst, port: client.dport },
        },
        forward: () => log.push('forward'),
        confirm: () => log.push('confirm'),
        abort: () => log.push('abort'),
      };
    },
    reclaim: () => 0,
    forwardedCount: 0,
  };
  return { sw: sw as unknown as FlowIdSwitch, log };
}

/** A channel whose agent answers the state with `reply`, and the reservation with `held` (default: held). */
const channelAnswering = (
  reply: (id: bigint) => Reply,
  held: (id: bigint) => Reply = (id) => ({ migrationId: id.toString(), ok: true, held: true }),
): AgentChannel =>
  ({
    open: true,
    send: async (id: bigint) => reply(id),
    reserve: async (id: bigint) => held(id),
    close: () => {},
  }) as unknown as AgentChannel;

describe('POST /v1/migrations', () => {
  let pair: TcpPair;
  let splices: SpliceService;
  const apps: FastifyInstance[] = [];
  const services: MigrateService[] = [];
  const pretend = new Map<number, number>([[process.pid, 0]]);
  const proc: ProcSource = {
    status: (pid) => procfs.status(pid),
    procDirUid: (pid) => pretend.get(pid) ?? procfs.procDirUid(pid),
  };
  const appWith = async (migrations: MigrateService | undefined, cred: PeerCred = ROOT) => {
    const app = await buildApi({
      service: splices,
      ...(migrations ? { migrations } : {}),
      transportOf: () => ({ kind: 'unix', cred }),
    });
    apps.push(app);
    return app;
  };
  const serviceWith = (
    channel: Partial<{ connect: () => Promise<AgentChannel>; admission: () => BatonError | undefined }> = {},
  ): { svc: MigrateService; log: string[] } => {
    const { sw, log } = fakeSwitch();
    const svc = new MigrateService({
      flowSwitch: sw,
      agents: [AGENT],
      secret: Buffer.alloc(32, 1),
      operations: splices.operations,
      authorizer: new Authorizer(proc),
      ...(channel.admission ? { admission: channel.admission } : {}),
      connect:
        channel.connect ??
        (async () => {
          throw new BatonError('AGENT_UNREACHABLE', 'no agent in this test', 'connect_failed');
        }),
    });
    services.push(svc);
    return { svc, log };
  };
  const body = (extra: Record<string, unknown> = {}) => ({
    client: { pid: process.pid, fd: fdOf(pair.accepted) },
    agent: AGENT,
    received: Buffer.from('GET / HTTP/1.1\r\n\r\n').toString('base64'),
    ...extra,
  });
  /** The pair still carries bytes both ways: nothing of the connection was lost or left in repair mode. */
  const assertPairWorks = async () => {
    pair.connected.write('ping');
    const got = once(pair.accepted, 'data');
    pair.accepted.resume(); // accepted with pauseOnConnect
    const [a] = (await got) as [Buffer];
    pair.accepted.pause();
    assert.equal(a.toString(), 'ping');
    pair.accepted.write('pong');
    const [b] = (await once(pair.connected, 'data')) as [Buffer];
    assert.equal(b.toString(), 'pong');
  };

  before(async () => {
    splices = new SpliceService({ splicer: new StubSplicer() });
    pair = await tcpPair();
  });
  after(async () => {
    for (const a of apps) await a.close();
    for (const s of services) s.close();
    await pair.close();
  });

  test('503 MIGRATE_DISABLED on an LB started without agents, naming the flags', async () => {
    const app = await appWith(undefined);
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    const p = assertProblem(res, 503, 'MIGRATE_DISABLED', 'no_agents');
    assert.match(p.detail as string, /--agent .*--agent-secret-file/);
  });

  test('400 BAD_REQUEST for malformed bodies, before any descriptor is taken', async () => {
    const { svc, log } = serviceWith();
    const app = await appWith(svc);
    const copies = descriptorsOf(pair.accepted);
    for (const payload of [
      { client: body().client },
      body({ received: 'not base64!' }),
      body({ agent: 12 }),
      body({ extra: true }),
      body({ timeoutMs: 0 }),
      body({ appProtocol: 'has space' }),
    ]) {
      const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload });
      assertProblem(res, 400, 'BAD_REQUEST');
    }
    assert.deepEqual(log, []);
    assert.equal(descriptorsOf(pair.accepted), copies, 'no descriptor taken');
  });

  test('400 AGENT_UNKNOWN for an agent the operator did not name (the LB proves its secret only to its own)', async () => {
    const { svc, log } = serviceWith();
    const app = await appWith(svc);
    const res = await app.inject({
      method: 'POST',
      url: '/v1/migrations',
      payload: body({ agent: '198.18.9.9:7400' }),
    });
    const p = assertProblem(res, 400, 'AGENT_UNKNOWN', 'unknown_agent');
    assert.match(p.detail as string, /--agent 198\.18\.9\.9:7400/);
    assert.deepEqual(log, []);
  });

  test("403 FORBIDDEN_PROCESS when a caller names a root process's socket; nothing taken", async () => {
    const { svc, log } = serviceWith();
    const app = await appWith(svc, NOBODY);
    const copies = descriptorsOf(pair.accepted);
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    assertProblem(res, 403, 'FORBIDDEN_PROCESS');
    assert.deepEqual(log, []);
    assert.equal(descriptorsOf(pair.accepted), copies);
  });

  test('503 AGENT_UNREACHABLE when the agent cannot be reached: the connection is untouched', async () => {
    const { svc, log } = serviceWith();
    const app = await appWith(svc);
    const copies = descriptorsOf(pair.accepted);
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    assertProblem(res, 503, 'AGENT_UNREACHABLE');
    assert.deepEqual(log, [], 'no entry was made');
    assert.equal(descriptorsOf(pair.accepted), copies, "the service's duplicate is closed");
    await assertPairWorks();
  });

  test('502 AGENT_REFUSED after capture: the entry is removed, the socket out of repair mode and working', async () => {
    const sent: bigint[] = [];
    const { svc, log } = serviceWith({
      connect: async () =>
        channelAnswering((id) => {
          sent.push(id);
          return { migrationId: id.toString(), ok: false, code: 'no_app', reason: 'no app registered for the VIP' };
        }),
    });
    const app = await appWith(svc);
    const copies = descriptorsOf(pair.accepted);
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    const p = assertProblem(res, 502, 'AGENT_REFUSED', 'no_app');
    assert.match(p.detail as string, /no app registered/);
    assert.equal(sent.length, 1, 'one blob sent');
    assert.equal(log.length, 3);
    assert.match(log[0] as string, /^begin 127\.0\.0\.1:\d+ -> 198\.18\.3\.2$/);
    assert.deepEqual(log.slice(1), ['forward', 'abort'], 'forwarding once held, the entry removed on the refusal');
    assert.equal(descriptorsOf(pair.accepted), copies);
    await assertPairWorks();
    // A second migration reuses the channel (one per agent) and gets a new id.
    await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    assert.equal(sent.length, 2);
    assert.ok((sent[1] as bigint) > (sent[0] as bigint));
  });

  test('502 AGENT_REFUSED on the reservation: no forwarding, no state sent, the socket working', async () => {
    const sent: bigint[] = [];
    const { svc, log } = serviceWith({
      connect: async () =>
        channelAnswering(
          (id) => {
            sent.push(id);
            return { migrationId: id.toString(), ok: true, queuedBytes: 0 };
          },
          (id) => ({ migrationId: id.toString(), ok: false, code: 'flow_id_in_use', reason: 'mapped already' }),
        ),
    });
    const app = await appWith(svc);
    const copies = descriptorsOf(pair.accepted);
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    assertProblem(res, 502, 'AGENT_REFUSED', 'flow_id_in_use');
    assert.equal(sent.length, 0, 'the state is not sent after a refused reservation');
    assert.equal(log.length, 2);
    assert.equal(log[1], 'abort');
    assert.equal(descriptorsOf(pair.accepted), copies);
    await assertPairWorks();
  });

  test('503 DRAINING while the LB drains: refused before any descriptor is taken', async () => {
    const { svc, log } = serviceWith({
      admission: () => new BatonError('DRAINING', 'this LB is draining: no new migrations', 'draining'),
    });
    const app = await appWith(svc);
    const copies = descriptorsOf(pair.accepted);
    const res = await app.inject({ method: 'POST', url: '/v1/migrations', payload: body() });
    assertProblem(res, 503, 'DRAINING', 'draining');
    assert.deepEqual(log, []);
    assert.equal(descriptorsOf(pair.accepted), copies);
  });

  test('the route is in the OpenAPI document', async () => {
    const app = await appWith(undefined);
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, unknown>;
    };
    assert.ok('/v1/migrations' in doc.paths);
  });
});
