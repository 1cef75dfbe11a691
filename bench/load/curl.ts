/** Single-connection downloads with curl in the client namespace, each bounded in time and checked for length. */
import type { Testbed } from '../../lab/testbed/index.js';
import { cpuSince, sampleCpu } from '../cpu.js';
import { type LoadResult, percentile } from './result.js';

/** A 64 MiB download through the slowest variant takes well under this on a loaded 2-core machine. */
const DOWNLOAD_TIMEOUT_S = 60;

export async function runDownloads(
  tb: Testbed,
  url: string,
  opts: { count: number; expectBytes: number },
): Promise<LoadResult> {
  const times: number[] = [];
  let bytes = 0;
  let short = 0;
  let status = 0;
  const before = sampleCpu();
  for (let i = 0; i < opts.count; i++) {
    const r = await tb.exec(
      'client',
      'curl',
      [
        '-sS',
        '-o',
        '/dev/null',
        '--max-time',
        String(DOWNLOAD_TIMEOUT_S),
        '-w',
        '%{http_code} %{size_download} %{time_total}',
        url,
      ],
      {
        timeoutMs: (DOWNLOAD_TIMEOUT_S + 10) * 1000,
        check: false,
      },
    );
    const [code = '', size = '0', total = '0'] = r.stdout.trim().split(' ');
    if (code !== '200') status++;
    else if (Number(size) !== opts.expectBytes) short++;
    bytes += Number(size);
    times.push(Number(total) * 1e6);
  }
  const cpu = cpuSince(before);
  const sorted = [...times].sort((a, b) => a - b);
  const ok = opts.count - status - short;
  return {
    requests: ok,
    bytes,
    durationUs: times.reduce((a, b) => a + b, 0),
    p50Us: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
    errors: status + short,
    errorDetail: { status, short },
    cpu,
  };
}
