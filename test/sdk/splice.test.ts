/**
 * SDK splice(): what happens to the front end's sockets around the API call,
 * with real TCP sockets on loopback and a stand-in API (the real daemon's
 * side is covered by test/e2e/dispatcher.test.ts). The property that matters:
 * from the moment splice() is called, no client byte is read into Node (they
 * stay in the kernel for baton); bytes Node had already buffered go in the
 * prefix; on refusal everything is given back in order.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../control/sdk/client.js';
import { BatonApiError } from '../../control/sdk/errors.js';
import { splice } from '../../control/sdk/splice.js';
import { SIOCINQ } from '../../control/tcp/kernel.js';
import { ioctlInt } from '../../control/tcp/socket.js';
import { problem, type StandIn, spliceBody, startStandIn } from './stand-in-api.js';

const fdOf = (s: net.Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;

/** A connected pair on loopback: `front` is the accepted side (what a front end holds), `peer` the other end. */
async function pair(): Promise<{ front: net.Socket; peer: net.Socket; close(): void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const peer = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => peer.once('connect', r));
  const front = await accepted;
  server.close();
  peer.on('error', () => {});
  front.on('error', () => {});
  return {
    front,
    peer,
    close: () => {
      front.destroy();
      peer.destroy();
    },
  };
}

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('SDK splice()', () => {
  let api: StandIn;
  before(async () => {
    api = await startStandIn();
  });
  after(async () => {
    await api.close();
  });

  test('refused: no byte read into Node during the call; buffered bytes sent as prefix; all given back in order', async () => {
    const c = await pair();
    const b = await pair();
    try {
      const seen: Buffer[] = [];
      c.front.on('data', (d: Buffer) => seen.push(d));
      c.peer.write('GET / HTTP/1.1\r\n\r\n');
      await until(() => seen.length > 0, 'the request');
      c.front.pause(); // Node keeps reading into its buffer: the SDK must take these
      c.peer.write('BUF1');
      await until(() => c.front.readableLength === 4, 'Node to buffer 4 bytes');
      let duringCall: { nodeBuffered: number; kernelQueued: number } | undefined;
      api.next = {
        status: 409,
        body: problem(409, 'SPLICE_REFUSED', 'the two connections cannot be joined', 'unacked_data'),
        during: async () => {
          c.peer.write('LATE');
          await sleep(100);
          duringCall = {
            nodeBuffered: c.front.readableLength,
            kernelQueued: ioctlInt(fdOf(c.front), SIOCINQ, 'siocinq'),
          };
        },
      };
      const client = createClient({ socketPath: api.socketPath });
      const err = await splice(c.front, b.front, { prefix: Buffer.from('HEAD'), client }).then(
        () => undefined,
        (e: unknown) => e,
      );
      client.close();
      assert.ok(err instanceof BatonApiError, `a BatonApiError, got ${String(err)}`);
      assert.equal(err.code, 'SPLICE_REFUSED');
      assert.equal(err.status, 409);
      assert.equal(err.reason, 'unacked_data');
      const call = api.calls.at(-1)!;
      assert.deepEqual(call.body, {
        client: { pid: process.pid, fd: fdOf(c.front) },
        backend: { pid: process.pid, fd: fdOf(b.front) },
        prefix: Buffer.from('HEADBUF1').toString('base64'),
      });
      assert.deepEqual(duringCall, { nodeBuffered: 0, kernelQueued: 4 }, 'LATE stayed in the kernel, nothing in Node');
      // Given back: the buffered bytes first, then what the kernel held.
      seen.length = 0;
      c.front.resume();
      await until(() => Buffer.concat(seen).length >= 8, 'the given-back bytes');
      assert.equal(Buffer.concat(seen).toString(), 'BUF1LATE');
      assert.equal(c.front.destroyed, false);
      assert.equal(b.front.destroyed, false);
    } finally {
      c.close();
      b.close();
    }
  });

  test('201: both sockets are destroyed and the splice is returned', async () => {
    const c = await pair();
    const b = await pair();
    try {
      api.next = { status: 201, body: spliceBody('42') };
      const client = createClient({ socketPath: api.socketPath });
      const s = await splice(c.front, b.front, { client, quiesceTimeoutMs: 250 });
      client.close();
      assert.equal(s.id, '42');
      assert.equal((api.calls.at(-1)!.body as { quiesceTimeoutMs: number }).quiesceTimeoutMs, 250);
      assert.equal('prefix' in (api.calls.at(-1)!.body as object), false, 'no empty prefix sent');
      assert.equal(c.front.destroyed, true);
      assert.equal(b.front.destroyed, true);
    } finally {
      c.close();
      b.close();
    }
  });

  test('a back-end socket with unconsumed response bytes is refused before asking baton', async () => {
    const c = await pair();
    const b = await pair();
    try {
      b.front.pause();
      b.peer.write('HTTP/1.1 200 OK\r\n');
      await until(() => b.front.readableLength > 0, 'the stray response');
      const calls = api.calls.length;
      const client = createClient({ socketPath: api.socketPath });
      const err = await splice(c.front, b.front, { client }).then(
        () => undefined,
        (e: unknown) => e,
      );
      client.close();
      assert.ok(err instanceof BatonApiError);
      assert.equal(err.code, 'SPLICE_REFUSED');
      assert.equal(err.reason, 'backend_unread');
      assert.equal(api.calls.length, calls, 'the API was not called');
      assert.equal(b.front.read()?.toString(), 'HTTP/1.1 200 OK\r\n', 'the bytes are still there');
    } finally {
      c.close();
      b.close();
    }
  });

  test('daemon not running: API_UNREACHABLE says how to start it; a flowing socket keeps flowing', async () => {
    const c = await pair();
    const b = await pair();
    try {
      const got: Buffer[] = [];
      c.front.on('data', (d: Buffer) => got.push(d));
      const client = createClient({ socketPath: '/nonexistent/baton.sock' });
      const err = await splice(c.front, b.front, { client }).then(
        () => undefined,
        (e: unknown) => e,
      );
      client.close();
      assert.ok(err instanceof BatonApiError);
      assert.equal(err.code, 'API_UNREACHABLE');
      assert.match(err.detail, /baton lb --interface/);
      c.peer.write('after');
      await until(() => got.length > 0, 'data after the failed call');
      assert.equal(Buffer.concat(got).toString(), 'after');
    } finally {
      c.close();
      b.close();
    }
  });

  test('usage errors: the same socket twice, a socket still connecting', async () => {
    const c = await pair();
    try {
      await assert.rejects(splice(c.front, c.front), TypeError);
      const connecting = net.connect(9, '127.0.0.1');
      connecting.on('error', () => {});
      await assert.rejects(splice(c.front, connecting), /still connecting/);
      connecting.destroy();
      // c.front was given back untouched by the failed calls
      const got: Buffer[] = [];
      c.front.on('data', (d: Buffer) => got.push(d));
      c.peer.write('ok');
      await until(() => got.length > 0, 'data');
    } finally {
      c.close();
    }
  });
});
