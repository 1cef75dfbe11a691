/** The per-connection queue: order, isolation between connections, preemption, and giving up a turn. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionQueue } from '../../control/splice/connection-queue.js';

describe('ConnectionQueue', () => {
  test('tasks of one connection run one at a time, in arrival order, whatever each one takes', async () => {
    const q = new ConnectionQueue<number>();
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`${name}+`);
      await sleep(ms);
      log.push(`${name}-`);
    };
    await Promise.all([q.run(1, task('a', 20)), q.run(1, task('b', 1)), q.run(1, task('c', 5))]);
    assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
    await q.idle();
    assert.equal(q.pending(1), 0);
  });
  test('a failing task does not stop the next one', async () => {
    const q = new ConnectionQueue<number>();
    const first = q.run(1, async () => {
      throw new Error('boom');
    });
    const second = q.run(1, async () => 'ran');
    await assert.rejects(first, /boom/);
    assert.equal(await second, 'ran');
  });
  test('different connections do not wait for each other', async () => {
    const q = new ConnectionQueue<number>();
    let release!: () => void;
    const slow = q.run(1, () => new Promise<void>((r) => (release = r)));
    assert.equal(await q.run(2, async () => 'other'), 'other');
    release();
    await slow;
  });
  test('preempt aborts the signal of the running task, which then winds down', async () => {
    const q = new ConnectionQueue<number>();
    const log: string[] = [];
    const waiting = q.run(1, async (signal) => {
      for (let i = 0; i < 1000 && !signal.aborted; i++) await sleep(1);
      log.push(signal.aborted ? 'preempted' : 'timed out');
    });
    await sleep(5);
    await q.run(1, async () => log.push('abort'), { preempt: true });
    await waiting;
    assert.deepEqual(log, ['preempted', 'abort']);
  });
  test('a caller whose signal aborts before its turn never runs, and the next task still waits for the running one', async () => {
    const q = new ConnectionQueue<number>();
    const log: string[] = [];
    let release!: () => void;
    const running = q.run(1, async () => {
      await new Promise<void>((r) => (release = r));
      log.push('first done');
    });
    const deadline = new AbortController();
    const gaveUp = q.run(1, async () => log.push('must not run'), { signal: deadline.signal });
    const third = q.run(1, async () => log.push('third'));
    setTimeout(() => deadline.abort(new Error('deadline')), 5);
    await assert.rejects(gaveUp, /deadline/);
    await sleep(5);
    assert.deepEqual(log, [], 'the third task waits for the first');
    release();
    await Promise.all([running, third]);
    assert.deepEqual(log, ['first done', 'third']);
  });
  test('idle() resolves once everything queued has finished', async () => {
    const q = new ConnectionQueue<number>();
    let done = 0;
    for (const id of [1, 1, 2])
      void q.run(id, async () => {
        await sleep(3);
        done++;
      });
    await q.idle();
    assert.equal(done, 3);
  });
});
