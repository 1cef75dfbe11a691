/**
 * TCP_REPAIR capture, silent release and restore on real kernel sockets.
 * Most connections live on loopback inside a private network namespace
 * (sockets created there through the FFI, so the probe's netns handling is
 * exercised too); the Node-socket case uses 127.0.0.1 of this process's
 * namespace, since Node creates its sockets where the process is.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { objectCandidates } from '../../control/bpf/objects.js';
import type { Family } from '../../control/net/addr.js';
import { withNetns } from '../../control/net/netns.js';
import { errno } from '../../control/sys/errno.js';
import { libc } from '../../control/sys/libc.js';
import { captureSockets, captureTcp, leaveRepair, releaseSilently } from '../../control/tcp/capture.js';
import { SocketError } from '../../control/tcp/errors.js';
import {
  MSG_DONTWAIT,
  MSG_PEEK,
  SOL_TCP,
  TCP_ESTABLISHED,
  TCP_INFO,
  TCP_REPAIR,
  TCP_TIMESTAMP,
} from '../../control/tcp/kernel.js';
import { takeSocket } from '../../control/tcp/pidfd.js';
import { restoreTcp } from '../../control/tcp/restore.js';
import {
  acceptFrom,
  bindTo,
  connectTo,
  EAGAIN,
  getInt,
  getOpt,
  getU32,
  listenOn,
  localAddress,
  openTcpSocket,
  sendSome,
} from '../../control/tcp/socket.js';
import { closeSharedSocketProbe, sharedSocketProbe } from '../../control/tcp/socket-probe.js';
import { type TcpState, u32 } from '../../control/tcp/state.js';
import { skipUnlessBpf } from '../lib/env.js';

const PROBE_OBJECT = objectCandidates('probe')[0] ?? 'build/bpf/tcp_probe.o';
const skip = skipUnlessBpf || (!existsSync(PROBE_OBJECT) && `probe not built (${PROBE_OBJECT} missing): run make bpf`);
const NS = `bt-tr-${randomBytes(3).toString('hex')}`;
const HOST = { 4: '127.0.0.1', 6: '::1' } as const;

/** Every fd a test opened and still owns, closed in after() (closing a live socket just sends a FIN). */
const owned = new Set<number>();
const own = (fd: number): number => {
  owned.add(fd);
  return fd;
};
const disown = (fd: number): void => void owned.delete(fd);

interface Pair {
  listener: number;
  client: number;
  peer: number;
}

/** A connected pair on loopback (in `ns`, or here): client -> listener, peer = accepted end. */
function openPair(family: Family, ns?: string): Pair {
  const make = (): Pair => {
    const listener = own(openTcpSocket(family));
    bindTo(listener, { ip: HOST[family], port: 0 }, family);
    listenOn(listener);
    const client = own(openTcpSocket(family));
    connectTo(client, { ip: HOST[family], port: localAddress(listener).port }, family);
    return { listener, client, peer: own(acceptFrom(listener)) };
  };
  return ns ? withNetns(ns, make) : make();
}

/** Hands all of `data` to the kernel now (the test sizes stay well within socket buffers). */
function sendAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) {
    const r = sendSome(fd, data.subarray(off), 'send');
    assert.ok(r.sent > 0, `fd ${fd}: kernel took ${off} of ${data.length} bytes (errno ${r.errno})`);
    off += r.sent;
  }
}

/** Reads exactly n bytes, polling; fails on FIN, RST or timeout. */
async function readExactly(fd: number, n: number, timeoutMs = 5000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  const deadline = Date.now() + timeoutMs;
  const buf = Buffer.alloc(256 << 10);
  while (got < n) {
    const r = libc.recv(fd, buf, Math.min(buf.length, n - got), MSG_DONTWAIT);
    if (r > 0) {
      chunks.push(Buffer.from(buf.subarray(0, r)));
      got += r;
      continue;
    }
    if (r === 0) assert.fail(`fd ${fd}: FIN after ${got} of ${n} bytes`);
    const e = errno();
    if (e !== EAGAIN) throw new SocketError('recv', e, `of fd ${fd}`);
    if (Date.now() > deadline) assert.fail(`fd ${fd}: ${got} of ${n} bytes within ${timeoutMs} ms`);
    await sleep(5);
  }
  return Buffer.concat(chunks);
}

/** Nothing to read, no FIN, no RST, still ESTABLISHED. */
function assertQuiet(fd: number, what: string): void {
  const b = Buffer.alloc(1);
  const r = libc.recv(fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
  const e = errno();
  assert.ok(
    r < 0 && e === EAGAIN,
    `${what}: expected nothing to read, got ${r < 0 ? `errno ${e}` : r === 0 ? 'FIN' : 'data'}`,
  );
  assert.equal(tcpState(fd), TCP_ESTABLISHED, `${what}: still ESTABLISHED`);
}

const tcpState = (fd: number): number => getOpt(fd, SOL_TCP, TCP_INFO, 8, 'tcp_info').readUInt8(0);
/** a - b on the u32 circle. */
const diff = (a: number, b: number): number => (a - b) | 0;

function nft(ns: string, script: string): void {
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

/**
 * The probe's capture (captureSockets) reads what the socket options say
 * (captureTcp, on the socket still in repair mode): every field, byte for
 * byte, but the clock, which moved on by at most a tick or two.
 */
function assertOptionsAgree(fd: number, probed: TcpState): void {
  const byOptions = captureTcp(fd);
  const { tsRecent, tsNow, ...rest } = probed;
  const { tsNow: optionsNow, ...options } = byOptions;
  assert.deepEqual(rest, options, 'probe and socket options agree');
  const tick = diff(optionsNow, tsNow);
  assert.ok(tick >= 0 && tick <= 4, `TCP_TIMESTAMP ${optionsNow} is ${tick} past the probe's clock ${tsNow}`);
  assert.equal(tsRecent !== undefined, probed.timestamps);
}

/** How far the peer's TSval clock is past the captured tsRecent (ms; -1 allowed: TCP_TIMESTAMP clears bit 0). */
function tsLag(peerFd: number, s: TcpState): number {
  assert.ok(s.tsRecent !== undefined, 'tsRecent filled');
  return diff(getU32(peerFd, SOL_TCP, TCP_TIMESTAMP, 'timestamp'), s.tsRecent);
}

describe('TCP_REPAIR capture, release and restore', { skip }, () => {
  before(() => {
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  });

  after(async () => {
    for (const fd of owned) libc.close(fd);
    owned.clear();
    await closeSharedSocketProbe();
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {
      /* never created */
    }
  });

  for (const family of [4, 6] as const) {
    test(`IPv${family}: captures both ends with unread data each way; values agree with what was sent`, async () => {
      const { client: c, peer: p } = openPair(family, NS);
      const toClient = randomBytes(3000);
      const toPeer = randomBytes(2000);
      sendAll(p, toClient);
      sendAll(c, toPeer);
      await sleep(20);

      const [cs, ps] = (await captureSockets([c, p])) as [TcpState, TcpState];
      assert.equal(getInt(c, SOL_TCP, TCP_REPAIR, 'repair'), 1, 'left in repair mode');
      assertOptionsAgree(c, cs);
      assertOptionsAgree(p, ps);
      assert.equal(cs.family, family);
      assert.deepEqual(cs.local, ps.remote);
      assert.deepEqual(cs.remote, ps.local);
      assert.equal(cs.local.ip, HOST[family]);
      // Unread bytes, exactly as sent; nothing unacknowledged on loopback.
      assert.ok(cs.recvQueue.equals(toClient), 'client receive queue = bytes the peer sent');
      assert.ok(ps.recvQueue.equals(toPeer), 'peer receive queue = bytes the client sent');
      assert.equal(cs.sendQueue.length, 0);
      assert.equal(cs.sndUna, cs.sndNxt);
      // Each end's sequence numbers are the other's.
      assert.equal(cs.rcvNxt, ps.sndNxt);
      assert.equal(cs.sndNxt, ps.rcvNxt);
      assert.equal(cs.window.rcvWup, cs.rcvNxt, 'everything received was acknowledged');
      const wl1 = diff(cs.rcvNxt, cs.window.sndWl1);
      assert.ok(
        wl1 >= 0 && wl1 <= toClient.length,
        `window last updated by a segment of the peer's data or after (${wl1})`,
      );
      assert.ok(cs.window.maxWindow >= cs.window.sndWnd && cs.window.sndWnd > 0);
      assert.ok(cs.timestamps && cs.sackPermitted, 'Linux loopback negotiates timestamps and SACK');
      assert.ok(cs.sndWscale > 0 && cs.rcvWscale > 0, 'and window scaling');
      assert.equal(cs.sndWscale, ps.rcvWscale);
      assert.ok(cs.mssClamp > 1000 && cs.advMss > 1000 && cs.advMss <= cs.mssClamp, `mss ${cs.mssClamp}/${cs.advMss}`);
      assert.equal(cs.usecTs, false);
      // ts_recent is the peer's TSval of its last segment: just behind the peer's clock.
      const lag = tsLag(p, cs);
      assert.ok(lag >= -1 && lag < 2000, `client's tsRecent is ${lag} ms behind the peer's clock`);
      assert.ok(diff(ps.tsNow, cs.tsRecent as number) >= -1);
      const lag2 = tsLag(c, ps);
      assert.ok(lag2 >= -1 && lag2 < 2000, `peer's tsRecent is ${lag2} ms behind the client's clock`);

      // An aborted capture: repair off, and the connection goes on.
      leaveRepair(c);
      leaveRepair(p);
      assert.equal(getInt(c, SOL_TCP, TCP_REPAIR, 'repair'), 0);
      const more = randomBytes(1234);
      sendAll(p, more);
      await sleep(20);
      const [cs2] = (await captureSockets([c])) as [TcpState];
      leaveRepair(c);
      assert.equal(u32(cs2.rcvNxt - cs.rcvNxt), more.length, 'rcvNxt advanced by the bytes received');
      assert.ok(cs2.recvQueue.equals(Buffer.concat([toClient, more])));
      assert.ok(diff(cs2.tsRecent as number, cs.tsRecent as number) >= 0, 'tsRecent moves forward');
      const lag3 = tsLag(p, cs2);
      assert.ok(lag3 >= -1 && lag3 < 2000, `tsRecent ${lag3} ms behind after new data`);

      assert.ok((await readExactly(c, toClient.length + more.length)).equals(Buffer.concat([toClient, more])));
      assert.ok((await readExactly(p, toPeer.length)).equals(toPeer));
      sendAll(c, Buffer.from('still alive'));
      assert.equal((await readExactly(p, 11)).toString(), 'still alive');
    });

    test(`IPv${family}: restore continues the stream byte-exact (unread, in-flight and unsent bytes)`, async () => {
      const { client: c, peer: p } = openPair(family, NS);
      const cPort = localAddress(c).port;
      const pPort = localAddress(p).port;
      const toClient = randomBytes(5000);
      sendAll(p, toClient);
      await sleep(10);

      // Lose everything the client sends: its next bytes stay unacknowledged,
      // and Nagle holds the write after them (unacked small segment in flight).
      const table = `bt_tr_${family}`;
      nft(
        NS,
        `table inet ${table} {\n chain in {\n type filter hook input priority 0;\n tcp sport ${cPort} tcp dport ${pPort} drop\n }\n}\n`,
      );
      const inflight = randomBytes(4000);
      const unsent = randomBytes(3000);
      let cs: TcpState;
      try {
        sendAll(c, inflight);
        sendAll(c, unsent);
        [cs] = (await captureSockets([c])) as [TcpState];
        assert.equal(u32(cs.sndNxt - cs.sndUna), inflight.length, 'sent, not acknowledged');
        assert.ok(cs.sendQueue.equals(Buffer.concat([inflight, unsent])), 'send queue = in-flight then unsent bytes');
        assert.ok(cs.recvQueue.equals(toClient));
        assertOptionsAgree(c, cs);
        releaseSilently(c);
        disown(c);
      } finally {
        nft(NS, `delete table inet ${table}`);
      }

      const c2 = own(withNetns(NS, () => restoreTcp(cs)));
      assert.equal(getInt(c2, SOL_TCP, TCP_REPAIR, 'repair'), 0, 'restored socket is out of repair mode');
      assert.deepEqual(localAddress(c2), { family, mapped: false, ip: HOST[family], port: cPort });
      // The restored receive queue reads first, as if nothing happened.
      assert.ok((await readExactly(c2, toClient.length)).equals(toClient));
      // The in-flight bytes come by retransmission (RTO), the unsent ones after them.
      assert.ok(
        (await readExactly(p, inflight.length + unsent.length, 8000)).equals(Buffer.concat([inflight, unsent])),
      );
      // Both directions go on.
      const down = randomBytes(100_000);
      sendAll(p, down);
      assert.ok((await readExactly(c2, down.length)).equals(down));
      const up = randomBytes(50_000);
      sendAll(c2, up);
      assert.ok((await readExactly(p, up.length)).equals(up));
      // And the two ends agree again.
      await sleep(20);
      const [s2, sp] = (await captureSockets([c2, p])) as [TcpState, TcpState];
      leaveRepair(c2);
      leaveRepair(p);
      assert.equal(s2.rcvNxt, sp.sndNxt);
      assert.equal(s2.sndNxt, sp.rcvNxt);
      assert.equal(u32(s2.sndNxt - cs.sndUna), inflight.length + unsent.length + up.length);
      assert.equal(u32(s2.rcvNxt - cs.rcvNxt), down.length);
      assert.equal(s2.sndWscale, cs.sndWscale);
      assert.equal(s2.rcvWscale, cs.rcvWscale);
      assert.equal(s2.mssClamp, cs.mssClamp);
      assert.ok(s2.timestamps && s2.sackPermitted);
    });
  }

  test('restores the accepted side (its port still listening) with megabytes queued against a zero window', async () => {
    const { listener, client: c, peer: p } = openPair(4, NS);
    // The peer writes until its send buffer is full; the client reads nothing, so its window closes.
    const chunk = randomBytes(64 << 10);
    const written: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = sendSome(p, chunk, 'send');
      if (r.sent === 0) break;
      written.push(chunk.subarray(0, r.sent));
    }
    const all = Buffer.concat(written);
    await sleep(50);
    const [cs, ps] = (await captureSockets([c, p])) as [TcpState, TcpState];
    assert.equal(ps.recvQueue.length, 0);
    assert.ok(ps.sendQueue.length > 1 << 20, `peer holds ${ps.sendQueue.length} bytes`);
    assert.ok(ps.window.sndWnd < ps.mssClamp, `the client's window (${ps.window.sndWnd}) is closed to the peer`);
    assert.ok(u32(ps.sndNxt - ps.sndUna) < ps.sendQueue.length, 'most of it was never sent');
    assert.equal(cs.recvQueue.length + ps.sendQueue.length, all.length, 'every byte is in one of the two queues');
    assert.ok(Buffer.concat([cs.recvQueue, ps.sendQueue]).equals(all));
    leaveRepair(c);
    releaseSilently(p);
    disown(p);

    const p2 = own(withNetns(NS, () => restoreTcp(ps)));
    assert.equal(localAddress(p2).port, localAddress(listener).port, 'bound to the listening port');
    assert.ok((await readExactly(c, all.length, 10_000)).equals(all), 'the client reads the whole stream in order');
    sendAll(c, Buffer.from('thanks'));
    assert.equal((await readExactly(p2, 6)).toString(), 'thanks');
  });

  test('a Node socket taken with takeSocket is released without FIN or RST and continues on a restored socket', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    // With `onread`, pause() stops libuv reading (readStop), so what arrives
    // stays in the kernel's receive queue for the capture.
    const client = net.connect({
      port: (server.address() as net.AddressInfo).port,
      host: '127.0.0.1',
      onread: { buffer: Buffer.alloc(4096), callback: () => true },
    });
    client.on('error', () => {}); // its socket is disconnected under it (ECONNABORTED)
    await once(client, 'connect');
    client.pause();
    const [peer] = await accepted;
    const events: string[] = [];
    const fromClient: Buffer[] = [];
    peer.on('data', (d: Buffer) => fromClient.push(d));
    peer.on('end', () => events.push('end'));
    peer.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
    peer.on('close', () => events.push('close'));
    let restored: net.Socket | undefined;
    try {
      const hello = randomBytes(700);
      peer.write(hello);
      client.write('request');
      await sleep(50);
      assert.equal(Buffer.concat(fromClient).toString(), 'request');

      const clientFd = (client as unknown as { _handle: { fd: number } })._handle.fd;
      const fd = takeSocket(process.pid, clientFd);
      assert.notEqual(fd, clientFd);
      assert.deepEqual(localAddress(fd), localAddress(clientFd), 'the same socket');
      const [st] = (await captureSockets([fd])) as [TcpState];
      assert.ok(st.recvQueue.equals(hello));
      assert.ok(st.tsRecent !== undefined);

      releaseSilently(fd);
      client.destroy(); // closes the Node side's fd: the socket is already closed, nothing is sent
      await sleep(300);
      assert.deepEqual(events, [], 'the peer saw no FIN (end) and no RST (error)');
      assertQuiet((peer as unknown as { _handle: { fd: number } })._handle.fd, 'peer');

      restored = new net.Socket({ fd: restoreTcp(st), readable: true, writable: true });
      const got: Buffer[] = [];
      restored.on('data', (d: Buffer) => got.push(d));
      const more = randomBytes(300);
      peer.write(more);
      restored.write(' and more');
      const deadline = Date.now() + 3000;
      while (Buffer.concat(got).length < hello.length + more.length || Buffer.concat(fromClient).length < 16) {
        assert.ok(
          Date.now() < deadline,
          `restored got ${Buffer.concat(got).length} bytes, peer ${Buffer.concat(fromClient).length}`,
        );
        await sleep(10);
      }
      assert.ok(
        Buffer.concat(got).equals(Buffer.concat([hello, more])),
        'restored socket reads the unread bytes, then new ones',
      );
      assert.equal(Buffer.concat(fromClient).toString(), 'request and more');
      assert.deepEqual(events, []);
    } finally {
      restored?.destroy();
      client.destroy();
      peer.destroy();
      server.close();
    }
  });

  test('many sockets are probed in one pass per namespace; the probe sees only the namespace it runs in', async () => {
    const pairs = [...Array.from({ length: 12 }, (_, i) => openPair(i % 2 ? 6 : 4, NS)), openPair(4), openPair(6)];
    for (const pr of pairs) sendAll(pr.peer, Buffer.from('x'));
    await sleep(10);
    const fds = pairs.map((pr) => pr.client);
    const states = await captureSockets(fds);
    try {
      states.forEach((s, i) => {
        const lag = tsLag((pairs[i] as Pair).peer, s);
        assert.ok(lag >= -1 && lag < 2000, `socket ${i}: tsRecent ${lag} ms behind its peer`);
      });
      // From this namespace, the private one's sockets are invisible.
      const probe = await sharedSocketProbe();
      const rows = probe.read(states);
      assert.deepEqual(
        rows.map((r) => r !== undefined),
        states.map((_, i) => i >= 12),
      );
      const here = rows[12];
      assert.ok(here?.repair && here.timestamps, 'probe reports repair mode and timestamps');
      assert.equal(here.rcvNxt, states[12]?.rcvNxt);
      assert.equal(here.tsRecent, states[12]?.tsRecent);
      // From inside it, they are found.
      const ns = openSync(`/run/netns/${NS}`, 'r');
      try {
        assert.equal(probe.read(states.slice(0, 12), { netnsFd: ns }).filter(Boolean).length, 12);
      } finally {
        closeSync(ns);
      }
    } finally {
      for (const fd of fds) leaveRepair(fd);
    }
  });

  test('errors name the problem: non-TCP, listening, not a socket, not in repair mode, tuple in use', async () => {
    const udp = own(libc.socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0));
    assert.throws(
      () => captureTcp(udp),
      (e: unknown) => e instanceof SocketError && e.code === 'EPROTOTYPE' && /UDP socket, not TCP/.test(e.message),
    );

    const { listener, client, peer } = openPair(4, NS);
    assert.throws(
      () => captureTcp(listener),
      (e: unknown) => e instanceof SocketError && e.code === 'ENOTCONN' && /listening socket/.test(e.message),
    );
    assert.equal(getInt(listener, SOL_TCP, TCP_REPAIR, 'repair'), 0);

    const file = openSync('/dev/null', 'r');
    try {
      assert.throws(
        () => captureTcp(file),
        (e: unknown) => e instanceof SocketError && e.code === 'ENOTSOCK' && /not a socket/.test(e.message),
      );
      assert.throws(
        () => takeSocket(process.pid, file),
        (e: unknown) => e instanceof SocketError && e.code === 'ENOTSOCK',
      );
    } finally {
      closeSync(file);
    }

    assert.throws(
      () => releaseSilently(client),
      (e: unknown) => e instanceof SocketError && e.code === 'EINVAL' && /not in repair mode/.test(e.message),
    );

    // Restoring while the original still holds the 4-tuple.
    const st = captureTcp(client);
    assert.throws(
      () => withNetns(NS, () => restoreTcp(st)),
      (e: unknown) => e instanceof SocketError && e.code === 'EADDRNOTAVAIL' && /releaseSilently/.test(e.message),
    );
    leaveRepair(client);
    sendAll(client, Buffer.from('ok'));
    assert.equal((await readExactly(peer, 2)).toString(), 'ok', 'the original is untouched by the failed attempts');

    // pidfd errors.
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    assert.throws(
      () => takeSocket(pidMax + 1, 0),
      (e: unknown) =>
        e instanceof SocketError && e.code === 'ESRCH' && /no process with this pid exists/.test(e.message),
    );
    assert.throws(
      () => takeSocket(process.pid, 1_000_000),
      (e: unknown) => e instanceof SocketError && e.code === 'EBADF' && /no open file descriptor/.test(e.message),
    );
    const dup = takeSocket(process.pid, client);
    libc.close(dup); // closing a copy does not close the socket
    sendAll(client, Buffer.from('still'));
    assert.equal((await readExactly(peer, 5)).toString(), 'still');
  });
});
