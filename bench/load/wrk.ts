/** wrk in the client namespace, bounded by its duration, with exact figures from a Lua summary. */
import { resolve } from 'node:path';
import type { Testbed } from '../../lab/testbed/index.js';
import { cpuSince, sampleCpu } from '../cpu.js';
import type { LoadResult } from './result.js';

const REPORT_LUA = resolve(import.meta.dirname, 'wrk-report.lua');
/** A request wrk has not finished after this long counts as a timeout. */
const WRK_REQUEST_TIMEOUT_S = 5;

interface WrkSummary {
  requests: number;
  bytes: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  errors: Record<string, number>;
}

/**
 * The load client's own sockets must not be what limits a new-connection
 * row. wrk closes first after each response, so every connection leaves a
 * TIME_WAIT in the client (60 s); one destination gets one ephemeral port
 * range (~28,000 ports), so the fastest variant ran its destination out of
 * ports after a round or two and its later rounds crawled (measured on the
 * migrate bed: plain routing 7,132 req/s in round 1, 262 in round 2, with
 * 22,000 TIME_WAITs in the client). tcp_tw_reuse=1 lets connect() reuse a
 * TIME_WAIT tuple (safe with timestamps: PAWS tells the connections apart),
 * as any load generator host is tuned. Once per testbed.
 */
const preparedClients = new WeakSet<Testbed>();
async function prepareLoadClient(tb: Testbed): Promise<void> {
  if (preparedClients.has(tb)) return;
  await tb.exec('client', 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse']);
  preparedClients.add(tb);
}

export async function runWrk(
  tb: Testbed,
  url: string,
  opts: { seconds: number; connections: number; newConnectionPerRequest: boolean },
): Promise<LoadResult> {
  const args = [
    '-t',
    '1',
    '-c',
    String(opts.connections),
    '-d',
    `${opts.seconds}s`,
    '--timeout',
    `${WRK_REQUEST_TIMEOUT_S}s`,
    '-s',
    REPORT_LUA,
  ];
  // wrk reconnects after every response that says it closes the connection.
  if (opts.newConnectionPerRequest) args.push('-H', 'Connection: close');
  args.push(url);
  await prepareLoadClient(tb);
  const before = sampleCpu();
  const r = await tb.exec('client', 'wrk', args, { timeoutMs: (opts.seconds + WRK_REQUEST_TIMEOUT_S + 20) * 1000 });
  const cpu = cpuSince(before);
  const line = r.stdout.split('\n').find((l) => l.startsWith('BENCH_WRK '));
  if (!line) throw new Error(`wrk ${url}: no summary line in its output:\n${r.stdout}${r.stderr}`);
  const s = JSON.parse(line.slice('BENCH_WRK '.length)) as WrkSummary;
  const errors = Object.values(s.errors).reduce((a, b) => a + b, 0);
  return {
    requests: s.requests,
    bytes: s.bytes,
    durationUs: s.durationUs,
    p50Us: s.p50Us,
    p99Us: s.p99Us,
    errors,
    errorDetail: s.errors,
    cpu,
  };
}
