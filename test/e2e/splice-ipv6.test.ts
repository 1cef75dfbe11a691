/**
 * Splice over IPv6 end to end: the client reaches the VIP's IPv6 address,
 * the front end connects to the back end over IPv6, and baton splices the
 * two (the fixtures cover every IPv6 translation; this is the real thing,
 * with Linux stacks at both ends and nginx listening on IPv6).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { skipUnlessBpf } from '../lib/env.js';
import { type SpliceBed, startSpliceBed } from '../lib/splice-bed.js';
import { VIP6 } from '../lib/testbed.js';

const BIG = 16 * 1024 * 1024;

describe('splice over IPv6', { skip: skipUnlessBpf }, () => {
  let bed: SpliceBed;

  before(async () => {
    bed = await startSpliceBed({ backends: 1, family: 6, files: { 'big.bin': BIG, 'small.txt': 'six\n' } });
  });
  after(async () => {
    await bed?.destroy();
  });

  test('a 16 MiB download and 200 keep-alive requests through spliced IPv6 connections, byte-exact', async () => {
    const { tb, fe, dp } = bed;
    const out = join(tmpdir(), `baton-v6-${process.pid}`);
    try {
      const r = await tb.exec(
        'client',
        'curl',
        ['-sS', '-g', '--max-time', '30', '-o', out, '-w', '%{http_code} %{size_download}', `http://[${VIP6}]/big.bin`],
        { timeoutMs: 40_000 },
      );
      assert.equal(r.stdout, `200 ${BIG}`);
      assert.equal(
        createHash('sha256').update(readFileSync(out)).digest('hex'),
        bed.nginx.backend1!.sha256['/big.bin'],
      );
    } finally {
      rmSync(out, { force: true });
    }
    const urls = Array.from({ length: 200 }, (_, i) => `http://[${VIP6}]/small.txt?${i}`);
    const k = await tb.exec(
      'client',
      'curl',
      [
        '-sS',
        '-g',
        '--max-time',
        '30',
        '-w',
        '%{http_code} %{num_connects}\n',
        ...urls.flatMap((u) => [u, '-o', '/dev/null']),
      ],
      { timeoutMs: 40_000 },
    );
    const lines = k.stdout.trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('200 ')).length, 200, 'every request answered 200');
    assert.equal(
      lines.reduce((a, l) => a + Number(l.split(' ')[1]), 0),
      1,
      'one connection for the 200 requests',
    );
    assert.equal(fe.splices.length, 2, `both connections spliced: ${fe.failures.join('; ')}`);
    assert.deepEqual(fe.fallbacks, [], 'no userspace relay');
    assert.ok(
      fe.splices.every((s) => s.family === 6),
      'IPv6 splices',
    );
    const forwarded = dp
      .readCounters()
      .filter((c) => c.action === 'forwarded')
      .reduce((a, c) => a + c.packets, 0n);
    assert.ok(forwarded > 1000n, `the datapath forwarded them (${forwarded} packets)`);
  });
});
