/**
 * A real Prometheus server (Debian's package) scrapes baton's metrics
 * listener on loopback, and its query API returns baton's series: the
 * exposition is not only parseable by our own parser but ingested by the
 * real thing, histogram and all.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatonMetrics } from '../../control/metrics/metrics.js';
import { type MetricsServer, serveMetrics } from '../../control/metrics/server.js';
import { SpliceService } from '../../control/service/splice-service.js';
import { fakeRecord, StubSplicer } from './lib.js';

const haveProm = !spawnSync('prometheus', ['--version']).error;
const skip = haveProm
  ? false
  : "Debian's prometheus package is not installed (apt-get install prometheus; scripts/setup installs it)";
/** How long Prometheus may take to start and scrape twice. */
const DEADLINE_MS = 60_000;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('a real Prometheus scrapes baton', { skip }, () => {
  let server: MetricsServer;
  let prom: ChildProcess | undefined;
  let dir: string;
  let promUrl: string;
  let log = '';

  before(async () => {
    const stub = new StubSplicer();
    stub.add(fakeRecord(1n));
    stub.add(fakeRecord(2n), 'closing');
    const metrics = new BatonMetrics({ tableCapacity: 4096 });
    metrics.watch(new SpliceService({ splicer: stub, observer: metrics }));
    for (const s of [0.00007, 0.00012, 0.00015, 0.0004]) metrics.handoff('splice', 'ok', s);
    metrics.handoff('splice', 'TABLE_FULL', 0.0001);
    server = await serveMetrics(metrics, { host: '127.0.0.1', port: 0 });

    dir = mkdtempSync(join(tmpdir(), 'baton-prom-'));
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: baton\n    static_configs:\n      - targets: ['${server.address}']\n`,
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prom.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  });

  after(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await Promise.race([new Promise((r) => prom?.once('exit', r)), sleep(5000)]);
      if (prom.exitCode === null) prom.kill('SIGKILL');
    }
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Polls an instant query until it has a result (or the deadline passes). */
  async function query(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      try {
        const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
        if (r.ok) {
          const body = (await r.json()) as {
            status: string;
            data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
          };
          if (body.status === 'success' && body.data.result.length > 0) return body.data.result;
        }
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline)
        throw new Error(`no result for ${q} within ${DEADLINE_MS} ms; prometheus said: ${log.slice(-2000)}`);
      if (prom?.exitCode !== null) throw new Error(`prometheus exited (${prom?.exitCode}): ${log.slice(-2000)}`);
      await sleep(250);
    }
  }

  test("the target is up and baton's gauges, counters and histogram are queryable", async () => {
    const up = await query('up{job="baton"} == 1');
    assert.equal(up.length, 1);
    const cap = await query('baton_table_capacity_entries');
    assert.equal(cap[0]?.value[1], '4096');
    const ok = await query('baton_handoffs_total{mode="splice",outcome="ok"}');
    assert.equal(ok[0]?.value[1], '4');
    const full = await query('baton_handoffs_total{outcome="table_full"}');
    assert.equal(full[0]?.value[1], '1');
    const closing = await query('baton_connections{state="closing"}');
    assert.equal(closing[0]?.value[1], '1');
    // The median of 70, 120, 150, 400 µs falls in the (100, 200] µs bucket.
    const p50 = await query(
      'histogram_quantile(0.5, sum by (le) (baton_handoff_duration_seconds_bucket{mode="splice"}))',
    );
    const v = Number(p50[0]?.value[1]);
    assert.ok(v > 0.0001 && v <= 0.0002, `p50 ${v}`);
  });
});
