/**
 * Splice end to end: real Linux stacks at both ends (curl in the client
 * namespace, nginx in a back-end namespace), the test front end in the LB
 * namespace, baton's XDP datapath on the LB's interfaces.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Datapath } from '../../control/datapath/datapath.js';
import { skipUnlessBpf } from '../lib/env.js';
import type { FrontendDriver } from '../lib/frontend-driver.js';
import type { NginxBackend } from '../lib/nginx.js';
import { type SpliceBed, startSpliceBed } from '../lib/splice-bed.js';
import { type Testbed, VIP4 } from '../lib/testbed.js';

const BIG = 64 * 1024 * 1024;

describe('splice end to end', { skip: skipUnlessBpf }, () => {
  let bed: SpliceBed;
  let tb: Testbed;
  let dp: Datapath;
  let nginx: NginxBackend;
  let fe: FrontendDriver;
  const rsts: string[] = [];

  before(async () => {
    bed = await startSpliceBed({ backends: 1, files: { 'big.bin': BIG, 'small.txt': 'x'.repeat(1024) } });
    ({ tb, dp, fe } = bed);
    nginx = bed.nginx.backend1!;
    // Every RST seen by the client or the back end, for (d).
    for (const node of ['client', 'backend1']) {
      const cap = tb.spawn(node, 'tcpdump', ['-i', 'any', '-nn', '-l', 'tcp[13] & 4 != 0'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      cap.stdout?.on('data', (d: Buffer) =>
        rsts.push(
          ...d
            .toString()
            .trim()
            .split('\n')
            .map((l) => `${node}: ${l}`),
        ),
      );
    }
  });

  after(async () => {
    await bed?.destroy();
  });

  test('(a) a 64 MiB download through a spliced connection matches its SHA-256', async () => {
    const out = join(tmpdir(), `baton-big-${process.pid}`);
    try {
      const r = await tb.exec(
        'client',
        'curl',
        ['-sS', '--max-time', '60', '-o', out, '-w', '%{http_code} %{size_download}', `http://${VIP4}/big.bin`],
        { timeoutMs: 70_000 },
      );
      assert.equal(r.stdout, `200 ${BIG}`);
      assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), nginx.sha256['/big.bin']);
      assert.equal(fe.failures.length, 0, fe.failures.join('; '));
      assert.equal(fe.fallbacks.length, 0, fe.fallbacks.join('; '));
      assert.ok(fe.splices.length >= 1, 'the connection was spliced');
      const forwarded = dp
        .readCounters()
        .filter((c) => c.action === 'forwarded')
        .reduce((a, c) => a + c.packets, 0n);
      assert.ok(forwarded > 1000n, `datapath forwarded ${forwarded} packets`);
    } finally {
      rmSync(out, { force: true });
    }
  });

  test('(b) one keep-alive connection carries 1,000 requests after the splice', async () => {
    const before = fe.splices.length;
    const urls = Array.from({ length: 1001 }, (_, i) => `http://${VIP4}/small.txt?${i}`);
    const r = await tb.exec(
      'client',
      'curl',
      [
        '-sS',
        '--max-time',
        '60',
        '-w',
        '%{http_code} %{num_connects}\n',
        '-o',
        '/dev/null',
        ...urls.flatMap((u) => [u, '-o', '/dev/null']),
      ],
      { timeoutMs: 70_000 },
    );
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1001);
    assert.ok(
      lines.every((l) => l.startsWith('200 ')),
      'every request answered 200',
    );
    const connects = lines.reduce((a, l) => a + Number(l.split(' ')[1]), 0);
    assert.equal(connects, 1, 'curl opened exactly one connection');
    assert.equal(fe.splices.length, before + 1, 'that connection was spliced once');
  });

  test('(c) (a) and (b) again with 3% random loss in both directions, byte-exact', async () => {
    // Loss at the receivers' INPUT: client->backend and backend->client segments.
    const rule = ['-m', 'statistic', '--mode', 'random', '--probability', '0.03', '-j', 'DROP'];
    for (const node of ['client', 'backend1']) await tb.exec(node, 'iptables', ['-A', 'INPUT', '-p', 'tcp', ...rule]);
    const out = join(tmpdir(), `baton-big-loss-${process.pid}`);
    try {
      const before = fe.splices.length;
      const r = await tb.exec(
        'client',
        'curl',
        ['-sS', '--max-time', '120', '-o', out, '-w', '%{http_code} %{size_download}', `http://${VIP4}/big.bin`],
        { timeoutMs: 130_000 },
      );
      assert.equal(r.stdout, `200 ${BIG}`);
      assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), nginx.sha256['/big.bin']);
      const urls = Array.from({ length: 1001 }, (_, i) => `http://${VIP4}/small.txt?loss${i}`);
      const k = await tb.exec(
        'client',
        'curl',
        [
          '-sS',
          '--max-time',
          '120',
          '-w',
          '%{http_code} %{num_connects} %{size_download}\n',
          ...urls.flatMap((u) => [u, '-o', '/dev/null']),
        ],
        { timeoutMs: 130_000 },
      );
      const lines = k.stdout.trim().split('\n');
      assert.equal(lines.length, 1001);
      assert.ok(
        lines.every((l) => l === '200 0 1024' || l === '200 1 1024'),
        `every answer 200 with 1024 bytes: ${lines
          .filter((l) => !l.startsWith('200'))
          .slice(0, 3)
          .join(' | ')}`,
      );
      assert.equal(fe.splices.length, before + 2, 'both connections were spliced');
      assert.equal(fe.failures.length, 0, fe.failures.join('; '));
    } finally {
      rmSync(out, { force: true });
      for (const node of ['client', 'backend1'])
        await tb.exec(node, 'iptables', ['-D', 'INPUT', '-p', 'tcp', ...rule], { check: false });
    }
  });

  test('(d) no RST on the wire and no socket left on the front end', async () => {
    // The front end holds nothing but its listener; toward the client the LB
    // has no socket at all. Toward the back end neither: the legs' ports come
    // from baton's leg range, whose tuples the back-end entries reserve
    // (control/splice/leg-ports.ts), so baton holds no socket either.
    const r = await tb.exec('lb', 'ss', ['-tanpH', `( sport = :80 or dport = :8080 )`]);
    const lines = r.stdout.split('\n').filter((l) => l.trim() && !l.startsWith('LISTEN'));
    assert.deepEqual(lines, [], `no socket left in the LB, baton's included: ${r.stdout}`);
    assert.deepEqual(rsts, [], 'no RST seen by client or back end');
  });
});
