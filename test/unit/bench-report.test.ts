/**
 * The benchmark suite's arithmetic and rendering (no privileges, no loads):
 * summaries over rounds, ratios, the report's tables, the README block and
 * the charts, from a small synthetic results object.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chartSpecs, renderSvg } from '../../bench/charts.js';
import { type CpuSample, cpuSince } from '../../bench/cpu.js';
import { HANDOFF_API_TARGETS, summarizePhase } from '../../bench/handoff-api-results.js';
import { type LoadResult, percentile } from '../../bench/load/result.js';
import { MIGRATE_TARGETS, type MigrateBenchResults, summarizeLatency } from '../../bench/migrate-results.js';
import { PROFILES, WORKLOADS } from '../../bench/profile.js';
import { BEGIN, END, readmeBlock, replaceBlock } from '../../bench/readme.js';
import { renderReport } from '../../bench/report.js';
import { RESULTS_SCHEMA, type Results, ratio } from '../../bench/results.js';
import { median, summarize } from '../../bench/throughput.js';
import { VARIANT_ORDER } from '../../bench/variants/variant.js';

const cpu = (busyUs: number) => ({ busyUs, wallUs: 1e6, utilisation: 0.5 });
const load = (
  requests: number,
  bytes: number,
  seconds: number,
  p50Us: number,
  p99Us: number,
  busyUs: number,
): LoadResult => ({
  requests,
  bytes,
  durationUs: seconds * 1e6,
  p50Us,
  p99Us,
  errors: 0,
  errorDetail: {},
  cpu: cpu(busyUs),
});

/** Every variant serves `base * factor` requests/s on every workload. */
function syntheticResults(): Results {
  const factor: Record<string, number> = { plain: 1, 'haproxy-http': 0.5, 'haproxy-tcp': 0.8, nginx: 0.6, baton: 1.2 };
  return {
    schema: RESULTS_SCHEMA,
    mode: 'quick',
    date: '2026-01-02',
    startedAt: '2026-01-02T03:04:05.000Z',
    durationS: 42,
    profile: PROFILES.quick,
    machine: {
      cpu: 'test cpu',
      cores: 2,
      memoryGiB: 4,
      kernel: '6.0.0',
      virtualization: 'none',
      versions: { node: 'v20', haproxy: '2.6', nginx: '1.22', clang: '14', wrk: '4.1', curl: '7.88', libbpf: '1.1' },
      baton: { commit: 'abc', dirty: false },
    },
    idleUtilisation: 0.01,
    testbed: 'synthetic',
    batonFrontEnd: 'dispatcher',
    variants: VARIANT_ORDER.map((id) => ({ id, title: `T-${id}`, describe: id })),
    workloads: WORKLOADS.map((w) => ({ id: w.id, title: w.title, short: w.short })),
    throughput: WORKLOADS.flatMap((w) =>
      VARIANT_ORDER.map((id) => {
        const rounds = [load(1000 * factor[id]!, 1e6 * factor[id]!, 1, 300, 900, 2e5)];
        return { workload: w.id, variant: id, rounds, summary: summarize(rounds) };
      }),
    ),
    batonStats: { splices: 10, refused: 1 },
    batonRefusals: { 'SOCKET_UNUSABLE (not_established): the client socket is CLOSE_WAIT': 1 },
    handoff: [
      {
        concurrency: 1,
        handoffs: 10,
        refused: 0,
        seconds: 1,
        handoffsPerS: 10,
        p50Ms: 1,
        p90Ms: 2,
        p99Ms: 3,
        maxMs: 4,
        quiesceP50Ms: Number.NaN,
        frontEndP50Ms: 2,
        frontEndP99Ms: 5,
        histogram: [
          { le: 1, count: 6 },
          { le: null, count: 4 },
        ],
      },
    ],
    handoffApi: {
      pairs: 4,
      targets: HANDOFF_API_TARGETS,
      batchConcurrency: 8,
      floor: { p50Us: 90, p99Us: 300 },
      phases: [
        {
          ...summarizePhase(
            { kind: 'single', title: 'single', itemsPerCall: 1, inFlight: 1 },
            [
              { us: 400, items: 1 },
              { us: 600, items: 1 },
            ],
            [
              { ok: true, durationUs: 150 },
              { ok: false, why: 'NOT_QUIESCENT (busy)' },
            ],
            0.001,
          ),
          firstAnswered: { ok: 1, of: 1 },
          secondAnswered: { ok: 1, of: 1 },
          checkFailures: [],
        },
        {
          ...summarizePhase(
            { kind: 'batch', title: 'batch of 2', itemsPerCall: 2, inFlight: 1 },
            [{ us: 500, items: 2 }],
            [
              { ok: true, durationUs: 180 },
              { ok: true, durationUs: 220 },
            ],
            0.0002,
          ),
          firstAnswered: { ok: 2, of: 2 },
          secondAnswered: { ok: 1, of: 2 },
          checkFailures: ['client port 40000: no answer to the second request'],
        },
      ],
    },
    datapath: {
      repeat: 1000,
      rows: [1000, 100_000].flatMap((n) =>
        (
          [
            'unknown flow (passed)',
            'rewrite, no options',
            'rewrite + timestamps + SACK(3)',
            'blocked (dropped)',
          ] as const
        ).map((path, i) => ({ connections: n, path, verdict: 'PASS', reasons: 'x', nsPerPacket: 60 + 40 * i })),
      ),
      memory: {
        capacity: 1000,
        entriesFilled: 1000,
        keyBytes: 40,
        valueBytes: 568,
        mapBytes: 700_000,
        bytesPerEntry: 700,
        bytesPerConnection: 1400,
        kernelGrowthBytes: 720_000,
        proxySocketBytes: { tcpSock: 2368, sockInode: 832, perConnection: 6400 },
      },
    },
  };
}

describe('bench arithmetic', () => {
  it('percentile is nearest-rank and median averages the middle pair', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert.equal(percentile(xs, 50), 5);
    assert.equal(percentile(xs, 99), 10);
    assert.equal(percentile([], 50), Number.NaN);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });

  it('summarize sums rounds before dividing (a long round weighs more than a short one)', () => {
    const s = summarize([load(1000, 2e6, 1, 100, 500, 1e5), load(3000, 6e6, 2, 300, 700, 3e5)]);
    assert.equal(s.requestsPerS, 4000 / 3);
    assert.equal(s.mbPerS, 8 / 3);
    assert.equal(s.cpuUsPerRequest, 4e5 / 4000);
    assert.equal(s.cpuUsPerMB, 4e5 / 8);
    assert.equal(s.p50Us, 200);
    assert.equal(s.p99Us, 600);
  });

  it("a handoff API phase: rate over wall time, per-splice time is the call's share, refusals by reason", () => {
    const p = summarizePhase(
      { kind: 'batch', title: 'batch of 4', itemsPerCall: 4, inFlight: 1 },
      [
        { us: 800, items: 4 },
        { us: 100, items: 1 },
      ],
      [
        { ok: true, durationUs: 300 },
        { ok: true, durationUs: 100 },
        { ok: true, durationUs: null },
        { ok: false, why: 'SPLICE_REFUSED (unacked_data)' },
        { ok: false, why: 'SPLICE_REFUSED (unacked_data)' },
      ],
      0.5,
    );
    assert.equal(p.calls, 2);
    assert.equal(p.requested, 5);
    assert.equal(p.handoffs, 3);
    assert.equal(p.refused, 2);
    assert.deepEqual(p.refusals, { 'SPLICE_REFUSED (unacked_data)': 2 });
    assert.equal(p.handoffsPerS, 6);
    assert.equal(p.callP50Us, 100);
    assert.equal(p.callP99Us, 800);
    assert.equal(p.itemP50Us, 200); // four items at 200 µs each, one at 100
    assert.equal(p.itemP99Us, 200);
    assert.equal(p.daemonP50Us, 100); // a null durationUs (recovered) is no sample
    assert.equal(p.daemonP99Us, 300);
  });

  it('CPU deltas: busy jiffies at 100 Hz become microseconds', () => {
    const a: CpuSample = { busy: 100, idle: 100, atMs: 0 };
    const b: CpuSample = { busy: 150, idle: 150, atMs: 1000 };
    const d = cpuSince(a, b);
    assert.equal(d.busyUs, 500_000);
    assert.equal(d.wallUs, 1_000_000);
    assert.equal(d.utilisation, 0.5);
  });
});

describe('bench report', () => {
  const r = syntheticResults();

  it('ratios are against plain routing and HAProxy http', () => {
    assert.ok(Math.abs(ratio(r, 'keepalive-1k', 'baton', 'plain') - 1.2) < 1e-9);
    assert.ok(Math.abs(ratio(r, 'close-64k', 'baton', 'haproxy-http') - 2.4) < 1e-9);
  });

  it('results.md has the machine, both ratio tables and the targets', () => {
    const md = renderReport(r);
    assert.match(md, /test cpu, 2 cores/);
    assert.match(md, /haproxy 2\.6, nginx 1\.22/);
    assert.match(md, /\| keep-alive, 1 KiB responses \| 0\.50x \| 0\.80x \| 0\.60x \| 1\.20x \|/);
    assert.match(md, /\| keep-alive 1 KiB, baton vs HAProxy \| ≥ 1\.6x \| 2\.40x \| met \|/);
    assert.match(md, /rewrite path, worst case over table sizes \| ≤ 100 ns \| 140 ns \| \*\*not met\*\*/);
    assert.match(md, /load generator closed/);
  });

  it("issue 14's goals: each reported met or not from what the run measured, RSS unmeasured without a sustained run", () => {
    const md = renderReport(r);
    // The sequential handoff row: p50 1 ms in the daemon, 2 ms at the front end; 10 splices/s at best.
    assert.match(md, /in the daemon \(block to release\) \(issue 14\) \| ≤ 50 µs \| 1,000 µs \| \*\*not met\*\* \|/);
    assert.match(md, /as the front end sees it \(issue 14\) \| ≤ 100 µs \| 2,000 µs \| \*\*not met\*\* \|/);
    assert.match(md, /best row \(issue 14\) \| ≥ 10,000 \| 10 \| \*\*not met\*\* \|/);
    assert.match(
      md,
      /per spliced connection \(table entries[^|]*\(issue 14\) \| ≤ 256 B \| 1,400 B \| \*\*not met\*\* \|/,
    );
    assert.match(md, /daemon RSS after 100,000 splices[^|]*\| ≤ 1\.1x \| not measured[^|]*\| \*\*not measured\*\* \|/);
  });

  it("issue 14's RSS goal from the sustained run: its last mark over its first, a mark not reached said so", () => {
    const sustained = (hi?: number) => ({
      concurrency: 32,
      connections: 100_500,
      refused: 100,
      seconds: 60,
      samples: [],
      marks: [
        { connections: 10_000, rssBytes: 100 * 2 ** 20 },
        { connections: 100_000, ...(hi === undefined ? {} : { rssBytes: hi }) },
      ],
    });
    const flat = renderReport({ ...r, handoffRss: sustained(105 * 2 ** 20) });
    assert.match(
      flat,
      /daemon RSS after 100,000 splices[^|]*\| ≤ 1\.1x \| 1\.05x \(100\.0 MiB → 105\.0 MiB\) \| met \|/,
    );
    const grew = renderReport({ ...r, handoffRss: sustained(150 * 2 ** 20) });
    assert.match(grew, /\| 1\.50x \(100\.0 MiB → 150\.0 MiB\) \| \*\*not met\*\* \|/);
    const short = renderReport({ ...r, handoffRss: sustained() });
    assert.match(short, /\| – \(100\.0 MiB → not reached\) \| \*\*not reached\*\* \|/);
  });

  it('results.md has the handoff API table, its refusals and failed checks, and its targets', () => {
    const md = renderReport(r);
    assert.match(md, /## Control plane: handoff API, single vs batched/);
    assert.match(
      md,
      /\| single \| 1 \| 1 \| 2 \| 1\/2 \| 1 \| 1,000 \| 400 \| 600 \| 400 \| 600 \| 150 \| 150 \| 1\/1 \| 1\/1 \|/,
    );
    assert.match(
      md,
      /\| batch of 2 \| 2 \| 1 \| 1 \| 2\/2 \| 0 \| 10,000 \| 500 \| 500 \| 250 \| 250 \| 180 \| 220 \| 2\/2 \| 1\/2 \|/,
    );
    assert.match(md, /- single: refused 1x NOT_QUIESCENT \(busy\)/);
    assert.match(md, /- batch of 2: check failed, client port 40000/);
    assert.match(md, /HTTP round trip alone \(GET \/healthz, same client\): p50 90 µs/);
    assert.match(md, /one POST at a time, in the daemon \(block to release\) \| ≤ 200 µs \| 150 µs \| met \|/);
    assert.match(md, /best phase \(batch of 2\) \| ≤ 200 µs \| 250 µs \| \*\*not met\*\* \|/);
    assert.match(md, /handoffs per second, best phase \(batch of 2\) \| ≥ 10,000 \| 10,000 \| met \|/);
    const older = renderReport({ ...r, handoffApi: undefined });
    assert.doesNotMatch(older, /handoff API/);
  });

  it('the README block replaces only what lies between the markers', () => {
    const readme = `# x\n\n## Benchmarks\nintro\n\n${BEGIN}\nold\n${END}\n\nafter\n`;
    const out = replaceBlock(readme, readmeBlock(r, 'bench/results/2026-01-02'));
    assert.ok(out.startsWith('# x\n\n## Benchmarks\nintro\n\n<!-- bench:begin'));
    assert.ok(out.endsWith(`${END}\n\nafter\n`));
    assert.doesNotMatch(out, /\nold\n/);
    assert.match(out, /\(bench\/results\/2026-01-02\/throughput\.svg\)/);
    assert.throws(() => replaceBlock('# no markers', 'x'), /bench:begin/);
  });

  it('migrate: latency figures from per-connection samples, the section and its target verdicts', () => {
    const phases = { take: 5, block: 10, capture: 10, blob: 5, agent: 50, release: 10 };
    const seq = summarizeLatency(
      { title: 'sequential', via: 'channel', concurrency: 1, connections: 3, relayed: 0, failed: 1, seconds: 0.01 },
      [
        { heldUs: 80, firstByteUs: 120, frontEndUs: 150, phasesUs: phases },
        { heldUs: 200, firstByteUs: 260, frontEndUs: 300, phasesUs: { ...phases, agent: 150 } },
      ],
    );
    assert.equal(seq.migrated, 2);
    assert.equal(seq.migrationsPerS, 200);
    assert.equal(seq.heldP50Us, 80);
    assert.equal(seq.heldP99Us, 200);
    assert.equal(seq.daemonP50Us, 90); // the sum of the phases
    assert.equal(seq.daemonP99Us, 190);
    assert.equal(seq.phasesP50Us.agent, 50);
    const cellOf = (
      workload: 'close-64k' | 'download-64m',
      variant: 'plain' | 'haproxy-http' | 'baton-migrate',
      n: number,
    ) => {
      const rounds = [load(n, n * 1e3, 1, 300, 900, 2e5)];
      return { workload, variant, rounds, summary: summarize(rounds) };
    };
    const migrate: MigrateBenchResults = {
      testbed: 'routed synthetic',
      variants: [
        { id: 'plain', title: 'plain routing', describe: 'p' },
        { id: 'haproxy-http', title: 'HAProxy http', describe: 'h' },
        { id: 'baton-migrate', title: 'baton migrate', describe: 'm' },
      ],
      workloads: ['close-64k', 'download-64m'],
      throughput: [
        cellOf('close-64k', 'plain', 1000),
        cellOf('close-64k', 'haproxy-http', 500),
        cellOf('close-64k', 'baton-migrate', 600),
        cellOf('download-64m', 'plain', 10),
        cellOf('download-64m', 'haproxy-http', 5),
        cellOf('download-64m', 'baton-migrate', 9),
      ],
      loadOutcomes: { migrated: 600, relayed: 2, rejected: 0, lbBlockedDrops: 7, agentHeldDrops: 3 },
      plainFirstByte: { connections: 3, p50Us: 100, p99Us: 150 },
      // REST first: the targets still take the channel's (the dispatcher's default path).
      latency: [
        summarizeLatency(
          { title: 'sequential', via: 'rest', concurrency: 1, connections: 1, relayed: 0, failed: 0, seconds: 0.01 },
          [{ heldUs: 500, firstByteUs: 600, frontEndUs: 700, phasesUs: phases }],
        ),
        seq,
      ],
      agentRestore: { count: 2, meanUs: 40 },
      targets: MIGRATE_TARGETS,
    };
    const md = renderReport({ ...r, migrate });
    assert.match(md, /## Migrate mode \(issue 11\)/);
    assert.match(md, /\| close-64k \| baton migrate \| 600 \| 0\.6 \| 0\.30 \| 0\.90 \| 0\.60x \| 1\.20x \| 0 \|/);
    assert.match(
      md,
      /\| handoff channel \| sequential \| 2\/3 \| 0 \| 1 \| 200 \| 80 \| 200 \| 120 \| 260 \| 150 \| 300 \| 90 \| 190 \|/,
    );
    assert.match(md, /\| REST \| sequential \| 1\/1 \| 0 \| 0 \| 100 \| 500 \|/);
    assert.match(md, /the front end asking over the local handoff channel\)/);
    assert.match(md, /the app holds the socket\), one at a time \| ≤ 100 µs \| 80 µs \| met \|/);
    assert.match(md, /64 KiB, baton migrate vs HAProxy \(migrate bed\) \| ≥ 1\.0x \| 1\.20x \| met \|/);
    assert.match(
      md,
      /64 MiB download, baton migrate vs plain routing \(migrate bed\) \| ≥ 1\.0x \| 0\.90x \| \*\*not met\*\* \|/,
    );
    assert.match(
      md,
      /dropped while a migration was under way: by the LB \(entry in BLOCK[^)]*\) 7, by the agent \(mapping in HOLD[^)]*\) 3\./,
    );
    assert.match(md, /migration adds ≈ 20 µs to a new connection's first byte/);
    assert.doesNotMatch(renderReport(r), /Migrate mode/);
    assert.match(readmeBlock({ ...r, migrate }, 'bench/results/x'), /Migrate mode \(issue 11\)/);
  });

  it('charts render to SVG headless', async () => {
    const svg = await renderSvg(chartSpecs(r).throughput);
    assert.match(svg, /^<svg [^>]*width="\d+"/);
    assert.match(svg, /T-baton/);
  });
});
