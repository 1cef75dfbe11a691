/**
 * Descriptor passing through the koffi sendmsg/recvmsg binding on a real
 * unix socket (no privileges): a descriptor sent by one end names the same
 * open file at the other; several messages with descriptors arrive in order;
 * a plain message carries none.
 */
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { socketFd } from '../../control/sys/peercred.js';
import { closeFd, connectUnix, recvWithFds, sendWithFds } from '../../control/sys/scm-rights.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-scm-'));

async function pair(): Promise<{ server: net.Server; serverSide: net.Socket; client: number }> {
  const path = join(dir, `s${Math.random().toString(16).slice(2)}.sock`);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = connectUnix(path);
  return { server, serverSide: await accepted, client };
}

describe('SCM_RIGHTS', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a descriptor crosses and names the same file; messages keep their order', async () => {
    const { server, serverSide, client } = await pair();
    const files = [0, 1, 2].map((i) => {
      const p = join(dir, `f${i}`);
      writeFileSync(p, `file ${i}`);
      return openSync(p, 'r');
    });
    try {
      const sfd = socketFd(serverSide) as number;
      for (const [i, fd] of files.entries()) assert.equal(sendWithFds(sfd, Buffer.from(`m${i}`), [fd]), 2);
      assert.equal(sendWithFds(sfd, Buffer.from('plain')), 5);
      const got: number[] = [];
      let text = '';
      while (text.length < 11) {
        const r = recvWithFds(client, 64);
        assert.equal(r.truncated, false);
        got.push(...r.fds);
        text += r.data.toString();
      }
      assert.equal(text, 'm0m1m2plain');
      assert.equal(got.length, 3);
      for (const [i, fd] of got.entries()) {
        assert.equal(fstatSync(fd).ino, fstatSync(files[i] as number).ino);
        const b = Buffer.alloc(16);
        assert.equal(b.subarray(0, readSync(fd, b, 0, 16, 0)).toString(), `file ${i}`);
        closeSync(fd);
      }
    } finally {
      for (const fd of files) closeSync(fd);
      closeFd(client);
      serverSide.destroy();
      server.close();
    }
  });
});
