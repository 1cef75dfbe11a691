/**
 * A client that reuses its source port right after a spliced connection
 * closed (issue 9 part 5): its SYN must not take the old connection's entry
 * (bpf/lib/syn.h passes it to the stack), the front end must accept and
 * splice it on its own (the splicer reclaims the finished connection whose
 * key it needs at once), and it must outlive the sweeper's grace period:
 * before the fix, the reclaim of the old entries reset it mid-stream.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { REASONS } from '../../control/datapath/abi.js';
import { type Sweeper, startSweeper } from '../../control/splice/sweeper.js';
import { ROOT, skipUnlessBpf } from '../lib/env.js';
import { type SpliceBed, startSpliceBed } from '../lib/splice-bed.js';
import { VIP4 } from '../lib/testbed.js';

const GRACE_MS = 2_000;
const KEEP_MS = GRACE_MS + 2_000;
const EVERY_MS = 200;
const REUSE_AFTER_MS = 300;
const LOCAL_PORT = 45_678;

type Line = {
  conn?: number;
  status?: number;
  body?: string;
  event?: string;
  code?: string;
  answers?: number;
  ms?: number;
};

describe('a reused client port after a spliced connection closed', { skip: skipUnlessBpf }, () => {
  let bed: SpliceBed;
  let sweeper: Sweeper;
  const reclaimed: Array<{ id: bigint; reason: string; at: number }> = [];

  before(async () => {
    bed = await startSpliceBed({ backends: 1, files: { 'small.txt': 'hello' } });
    sweeper = startSweeper(bed.splicer, { graceMs: GRACE_MS, intervalMs: 200 });
    sweeper.onReclaim = (id, reason) => reclaimed.push({ id, reason, at: performance.now() });
  });
  after(async () => {
    sweeper?.stop();
    await bed?.destroy();
  });

  const count = (reason: string): bigint => {
    const i = REASONS.findIndex(([, r]) => r === reason);
    return bed.dp.readCounters()[i]?.packets ?? 0n;
  };

  test('the second connection reaches the front end, is spliced on its own, and lives past the grace period', {
    timeout: 30_000,
  }, async () => {
    const { tb, fe, splicer } = bed;
    const synPassed = count('syn_on_finished');
    const proc = tb.spawn(
      'client',
      process.execPath,
      [
        '--import',
        'tsx',
        resolve(ROOT, 'test/e2e/programs/port-reuse-client.ts'),
        VIP4,
        '80',
        String(LOCAL_PORT),
        String(REUSE_AFTER_MS),
        String(KEEP_MS),
        String(EVERY_MS),
        '/small.txt',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const lines: Line[] = [];
    let firstId: bigint | undefined;
    let firstClosedState: string | undefined;
    let firstClosedAt = 0;
    await new Promise<void>((done, fail) => {
      readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
        const o = JSON.parse(l) as Line;
        lines.push(o);
        // The moment the first connection closed: its entries are still there (grace period) and finished.
        if (o.conn === 1 && o.event === 'closed') {
          firstClosedAt = performance.now();
          firstId = fe.splices[0]?.id;
          if (firstId !== undefined) firstClosedState = splicer.status(firstId)?.state;
        }
      });
      proc.on('exit', () => done());
      proc.on('error', fail);
    });

    const first = lines.filter((l) => l.conn === 1 && l.status !== undefined);
    const second = lines.filter((l) => l.conn === 2 && l.status !== undefined);
    const errors = lines.filter((l) => l.event === 'error');
    const done = lines.find((l) => l.event === 'done');
    assert.deepEqual(
      errors,
      [],
      `no connection error (before the fix: ECONNRESET when the old entry was reclaimed): ${JSON.stringify(lines.slice(-5))}`,
    );
    assert.deepEqual(
      first.map((l) => [l.status, l.body]),
      [[200, 'hello']],
    );
    assert.ok(done && (done.ms ?? 0) >= KEEP_MS, `the second connection lived ${done?.ms} ms (>= ${KEEP_MS})`);
    assert.ok(
      second.length >= Math.floor(KEEP_MS / (EVERY_MS + 50)),
      `${second.length} answers on the second connection`,
    );
    assert.ok(
      second.every((l) => l.status === 200 && l.body === 'hello'),
      JSON.stringify(second.slice(0, 3)),
    );
    assert.equal(done?.answers, second.length);

    // Both connections went through the front end and were spliced, each on its own.
    assert.deepEqual(fe.failures, []);
    assert.deepEqual(fe.fallbacks, []);
    assert.equal(fe.splices.length, 2, 'two splices: the second connection reached the front end');
    const [a, b] = fe.splices as [(typeof fe.splices)[0], (typeof fe.splices)[0]];
    assert.equal(a.client.port, LOCAL_PORT);
    assert.equal(b.client.port, LOCAL_PORT);
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.legs[0]?.local.port, b.legs[0]?.local.port, 'the new leg has its own local port');
    assert.equal(
      firstClosedState,
      'closed',
      'the first connection was finished (and still in the table) when it closed',
    );
    // The first connection's SYN found no entry; the second one's found the finished entry and went to the stack.
    assert.ok(count('syn_on_finished') > synPassed, "the reused port's SYN was passed as syn_on_finished");
    // The finished connection was reclaimed when the new splice needed its key, not after the grace period.
    const r = reclaimed.filter((x) => x.id === a.id);
    assert.deepEqual(
      r.map((x) => x.reason),
      ['closed'],
    );
    assert.ok(
      r[0]!.at - firstClosedAt < GRACE_MS / 2,
      `reclaimed ${Math.round(r[0]!.at - firstClosedAt)} ms after it closed, by the second splice (grace: ${GRACE_MS} ms)`,
    );
    assert.equal(splicer.records.has(a.id), false);
  });
});
