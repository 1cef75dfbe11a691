/**
 * The metrics listener scraped over HTTP and parsed: datapath counters move
 * when the real XDP program sees packets (BPF_PROG_TEST_RUN, counted per CPU
 * like live traffic), handoff and API counters move with requests, table and
 * connection gauges follow the service. promtool lints the exposition when
 * installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../control/api/app.js';
import { testRun } from '../../control/bpf/index.js';
import { FlowKind, FlowState } from '../../control/datapath/abi.js';
import { Datapath } from '../../control/datapath/datapath.js';
import { BatonMetrics, HANDOFF_BUCKETS } from '../../control/metrics/metrics.js';
import { type MetricsServer, serveMetrics } from '../../control/metrics/server.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { skipUnlessBpf } from '../lib/env.js';
import { buildPacket } from '../lib/packet.js';
import { fakeRecord, fdOf, StubSplicer, tcpPair, traffic } from './lib.js';

/** name{labels} -> value, from the text exposition format. */
export function parseExposition(text: string): {
  samples: Map<string, number>;
  types: Map<string, string>;
  helps: Set<string>;
} {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') types.set(meta[2] as string, meta[3] as string);
      else helps.add(meta[2] as string);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `not an exposition line: ${line}`);
    samples.set(m[1] as string, Number(m[2]));
  }
  return { samples, types, helps };
}

describe('metrics', { skip: skipUnlessBpf }, () => {
  let dp: Datapath;
  let stub: StubSplicer;
  let service: SpliceService;
  let metrics: BatonMetrics;
  let server: MetricsServer;
  let app: FastifyInstance;

  const scrape = async () => {
    const r = await fetch(`http://${server.address}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await r.text());
  };
  const value = (s: Map<string, number>, key: string) => {
    const v = s.get(key);
    assert.ok(v !== undefined, `no sample ${key}`);
    return v;
  };

  before(async () => {
    dp = await Datapath.load({ flowsCapacity: 64 });
    stub = new StubSplicer();
    metrics = new BatonMetrics({ counters: () => dp.readCountersByDirection(), tableCapacity: 64 });
    service = new SpliceService({ splicer: stub, observer: metrics, tableCapacity: 64 });
    metrics.watch(service);
    app = await buildApi({ service, observer: metrics, insecureNoAuth: true }); // inject() is TCP-like: no token, so lab mode
    server = await serveMetrics(metrics, { host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await server?.close();
    await app?.close();
    dp?.close();
  });

  test('datapath packets and bytes by action and reason move with traffic through the XDP program', async () => {
    const key = 'baton_datapath_packets_total{direction="none",action="passed",reason="no_flow"}';
    const bkey = 'baton_datapath_bytes_total{direction="none",action="passed",reason="no_flow"}';
    const s0 = (await scrape()).samples;
    const pkt = buildPacket({
      ip: { version: 4, src: '198.18.1.1', dst: '198.19.0.1' },
      tcp: { sport: 40000, dport: 80, flags: 'A', seq: 1, ack: 1 },
      payload: 'x'.repeat(100),
    });
    const prog = dp.object.program('baton_xdp');
    for (let i = 0; i < 7; i++) testRun(prog, { packet: pkt });
    const s1 = (await scrape()).samples;
    assert.equal(value(s1, key) - value(s0, key), 7);
    assert.equal(value(s1, bkey) - value(s0, bkey), 7 * pkt.length);
    // Every reason of the ABI is exported, zero or not.
    assert.ok(value(s1, 'baton_datapath_packets_total{direction="none",action="dropped",reason="blocked"}') >= 0);
  });

  test('packets of a spliced connection are counted by direction: client entries to_backend, back-end entries to_client', async () => {
    const toward = (samples: Map<string, number>, direction: string) =>
      [...samples]
        .filter(([k]) => k.startsWith(`baton_datapath_packets_total{direction="${direction}",`))
        .reduce((a, [, v]) => a + v, 0);
    const x = { seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wscaleIn: 0, wscaleOut: 0, timestamps: false };
    const client = { src: '198.18.1.7', dst: '198.19.0.1', sport: 40007, dport: 80 };
    const back = { src: '198.18.2.7', dst: '198.18.2.1', sport: 8080, dport: 50007 };
    dp.table.insert(client, {
      connId: 77n,
      state: FlowState.FORWARD,
      kind: FlowKind.CLIENT,
      legs: [
        {
          seqStart: 0,
          ackFloor: 0,
          x: { ...x, out: { src: back.dst, dst: back.src, sport: back.dport, dport: back.sport } },
        },
      ],
    });
    dp.table.insert(back, {
      connId: 77n,
      state: FlowState.FORWARD,
      kind: FlowKind.BACKEND,
      legs: [
        {
          seqStart: 0,
          ackFloor: 0,
          x: { ...x, out: { src: client.dst, dst: client.src, sport: client.dport, dport: client.sport } },
        },
      ],
    });
    try {
      const s0 = (await scrape()).samples;
      const prog = dp.object.program('baton_xdp');
      const seg = (t: typeof client) =>
        buildPacket({
          ip: { version: 4, src: t.src, dst: t.dst },
          tcp: { sport: t.sport, dport: t.dport, flags: 'A', seq: 1, ack: 1 },
          payload: 'y',
        });
      for (let i = 0; i < 3; i++) testRun(prog, { packet: seg(client) });
      for (let i = 0; i < 5; i++) testRun(prog, { packet: seg(back) });
      const s1 = (await scrape()).samples;
      assert.equal(toward(s1, 'to_backend') - toward(s0, 'to_backend'), 3, 'client -> back end packets');
      assert.equal(toward(s1, 'to_client') - toward(s0, 'to_client'), 5, 'back end -> client packets');
    } finally {
      dp.table.remove(client);
      dp.table.remove(back);
    }
  });

  test('handoffs by mode and outcome; the duration histogram counts successes', async () => {
    const deadPid = spawnSync('true').pid as number;
    const a = await tcpPair();
    const b = await tcpPair();
    try {
      stub.spliceImpl = async () => stub.add(fakeRecord(1n));
      const ok = await app.inject({
        method: 'POST',
        url: '/v1/splices',
        payload: {
          client: { pid: process.pid, fd: fdOf(a.accepted) },
          backend: { pid: process.pid, fd: fdOf(b.connected) },
        },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      const bad = await app.inject({
        method: 'POST',
        url: '/v1/splices',
        payload: { client: { pid: deadPid, fd: 3 }, backend: { pid: deadPid, fd: 4 } },
      });
      assert.equal(bad.statusCode, 404);
    } finally {
      await a.close();
      await b.close();
    }
    const { samples, types } = await scrape();
    assert.equal(value(samples, 'baton_handoffs_total{mode="splice",outcome="ok"}'), 1);
    assert.equal(value(samples, 'baton_handoffs_total{mode="splice",outcome="socket_not_found"}'), 1);
    assert.equal(value(samples, 'baton_handoffs_total{mode="handoff",outcome="ok"}'), 0);
    assert.equal(types.get('baton_handoff_duration_seconds'), 'histogram');
    assert.equal(value(samples, 'baton_handoff_duration_seconds_count{mode="splice"}'), 1);
    assert.equal(value(samples, 'baton_handoff_duration_seconds_bucket{le="+Inf",mode="splice"}'), 1);
    assert.equal(HANDOFF_BUCKETS[0], 0.00005, 'buckets start at 50 µs');
    assert.ok(samples.has('baton_handoff_duration_seconds_bucket{le="0.00005",mode="splice"}'), 'a 50 µs bucket');
    const secs = value(samples, 'baton_handoff_duration_seconds_sum{mode="splice"}');
    assert.ok(secs > 0 && secs < 1, `sum ${secs}`);
  });

  test('API requests by method, route pattern and status; unknown routes are one series', async () => {
    for (let i = 0; i < 3; i++) await app.inject({ method: 'GET', url: `/v1/splices/${100 + i}` });
    await app.inject({ method: 'GET', url: '/a/b/c' });
    await app.inject({ method: 'GET', url: '/x/y' });
    const { samples } = await scrape();
    assert.equal(value(samples, 'baton_api_requests_total{method="GET",route="/v1/splices/:id",status="404"}'), 3);
    assert.equal(value(samples, 'baton_api_requests_total{method="GET",route="unmatched",status="404"}'), 2);
    assert.equal(value(samples, 'baton_api_requests_total{method="POST",route="/v1/splices",status="201"}'), 1);
    assert.ok(![...samples.keys()].some((k) => k.includes('/a/b/c')), 'no raw URL as a label');
  });

  test('connections by state, table entries, capacity and pressure', async () => {
    stub.records.clear();
    stub.add(fakeRecord(1n));
    stub.add(fakeRecord(2n, { legs: 2 })); // one retired leg: 2 entries
    stub.add(fakeRecord(3n), 'closing');
    const { samples } = await scrape();
    assert.equal(value(samples, 'baton_connections{state="forwarding"}'), 2);
    assert.equal(value(samples, 'baton_connections{state="closing"}'), 1);
    assert.equal(value(samples, 'baton_connections{state="blocked"}'), 0);
    assert.equal(value(samples, 'baton_table_entries'), 6);
    assert.equal(value(samples, 'baton_table_capacity_entries'), 64);
    assert.equal(value(samples, 'baton_table_pressure_ratio'), 6 / 64);
  });

  test('per-direction connection traffic never goes down when a connection is removed', async () => {
    const k = 'baton_connection_packets_total{direction="to_client"}';
    const base = value((await scrape()).samples, k);
    stub.add(fakeRecord(20n));
    stub.states.set(20n, { state: 'forwarding', toBackend: traffic(50), toClient: traffic(70) });
    const s0 = (await scrape()).samples;
    assert.equal(value(s0, k), base + 70, "the new connection's packets are added");
    stub.records.delete(20n);
    const s1 = (await scrape()).samples;
    assert.equal(value(s1, k), base + 70, "the removed connection's packets stay counted");
    assert.equal(
      value(s1, 'baton_connection_bytes_total{direction="to_backend"}') -
        value(s0, 'baton_connection_bytes_total{direction="to_backend"}'),
      0,
    );
  });

  test('names follow Prometheus conventions (promtool check metrics when installed), process metrics included', async () => {
    const r = await fetch(`http://${server.address}/metrics`);
    const text = await r.text();
    const { types, helps } = parseExposition(text);
    for (const [name, type] of types) {
      if (!name.startsWith('baton_')) continue;
      assert.ok(helps.has(name), `${name} has HELP`);
      if (type === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
      else assert.ok(!name.endsWith('_total'), `${type} ${name} does not end in _total`);
    }
    assert.ok(
      types.has('process_cpu_user_seconds_total') && types.has('nodejs_heap_size_total_bytes'),
      'process metrics',
    );
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (lint.error) return; // promtool not installed: the checks above stand alone
    const baton = `${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.startsWith('baton_'));
    assert.deepEqual(baton, [], `promtool: ${baton.join('; ')}`);
    assert.equal((await fetch(`http://${server.address}/other`)).status, 404);
  });
});
