/**
 * control/sys/poll.ts: a uv_poll_t on the main loop per watched descriptor
 * (a dup of it). Readable and hung-up descriptors call back on the main
 * thread, nothing reads the data for the caller, remove() stops the
 * callbacks at once, and close() leaves no descriptor behind.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { socketFd } from '../../control/sys/peercred.js';
import { ReadPoller } from '../../control/sys/poll.js';
import { MSG_DONTWAIT, recvWithFds } from '../../control/sys/scm-rights.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** A connected unix stream pair: `peer` is a Node socket, `fd` the other end, never read by Node. */
async function unixPair(path: string) {
  const server = net.createServer({ pauseOnConnect: true });
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  await new Promise<void>((r) => server.listen(path, r));
  const peer = net.connect(path);
  const mine = await accepted;
  server.close();
  return { peer, mine, fd: socketFd(mine) as number };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(5);
  assert.ok(cond(), what);
}

describe('ReadPoller (uv_poll_t on the main loop)', () => {
  test('a readable descriptor calls back; the data is left for the caller to read; remove() stops it', async () => {
    const before = openFds();
    const p = new ReadPoller();
    const { peer, mine, fd } = await unixPair(`/tmp/baton-poll-${process.pid}-a.sock`);
    const got: string[] = [];
    let calls = 0;
    p.add(fd, () => {
      calls++;
      for (;;) {
        try {
          got.push(recvWithFds(fd, 64, MSG_DONTWAIT).data.toString());
        } catch {
          return; // EAGAIN: drained
        }
      }
    });
    assert.equal(openFds(), before + 3, 'two socket ends and the dup libuv watches');
    peer.write('one');
    await until(() => got.join('') === 'one', 'the first bytes, read by the callback');
    peer.write('two');
    await until(() => got.join('') === 'onetwo', 'the next bytes');
    const seen = calls;
    p.remove(fd);
    peer.write('three');
    await sleep(50);
    assert.equal(calls, seen, 'no callback after remove()');
    assert.equal(recvWithFds(fd, 64, MSG_DONTWAIT).data.toString(), 'three', 'unread: still in the socket');
    await p.close();
    await until(() => openFds() === before + 2, 'the dup is closed');
    peer.destroy();
    mine.destroy();
  });

  test('a hang-up is reported as readable; close() releases every watch and its dup', async () => {
    const before = openFds();
    const p = new ReadPoller();
    const pairs = await Promise.all([0, 1, 2].map((i) => unixPair(`/tmp/baton-poll-${process.pid}-b${i}.sock`)));
    let hangups = 0;
    for (const { fd } of pairs)
      p.add(fd, () => {
        try {
          if (recvWithFds(fd, 64, MSG_DONTWAIT).eof) hangups++;
        } catch {}
      });
    assert.equal(openFds(), before + 9);
    (pairs[0] as { peer: net.Socket }).peer.end();
    await until(() => hangups >= 1, 'the peer that ended is seen');
    await p.close();
    assert.equal(openFds(), before + 6, 'three dups closed by the time close() resolves');
    assert.throws(() => p.add(pairs[1]?.fd as number, () => {}), /closed/);
    for (const { peer, mine } of pairs) {
      peer.destroy();
      mine.destroy();
    }
  });
});
