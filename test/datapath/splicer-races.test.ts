/**
 * The three races issue 10 found, each reproduced with the real datapath
 * (loaded, unattached: packets go through BPF_PROG_TEST_RUN in the fixture
 * namespace, so the tracks are the kernel's) and a socket layer that models
 * what the kernel enforces of tuples: a socket cannot be recreated on a
 * 4-tuple that an open socket still holds (EADDRNOTAVAIL). Fault injection
 * goes through the SocketOps port.
 *
 *   1. a handoff or abort soon after a splice that carried a prefix must not
 *      recreate a socket on the leg-2 tuple before the background step has
 *      released the original;
 *   2. the sweeper reclaiming a connection during a handoff must wait for it
 *      (no half-appended leg, no leaked fd or entry);
 *   3. a failure after forwarding started must not leave entries no record owns.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { testRun } from '../../control/bpf/index.js';
import { Datapath } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { DEFAULT_LEG_PORTS } from '../../control/splice/leg-ports.js';
import type { SocketOps } from '../../control/splice/socket-port.js';
import { Splicer } from '../../control/splice/splicer.js';
import type { Endpoint, TcpState } from '../../control/tcp/state.js';
import { skipUnlessBpf } from '../lib/env.js';
import { FixtureNetns } from '../lib/fixture.js';
import { BACKEND, CLIENT, LB, leg1, leg2, VIP } from '../lib/legs.js';
import { buildPacket } from '../lib/packet.js';

const tuple = (local: Endpoint, remote: Endpoint) => `${local.ip}:${local.port}>${remote.ip}:${remote.port}`;
const L1 = leg1({ timestamps: false });
const L2 = leg2({ timestamps: false });
/** Leg 2 from a port of the splicer's leg range (control/splice/leg-ports.ts). */
const RANGE_LEG = leg2({ timestamps: false, local: { ip: LB.ip, port: DEFAULT_LEG_PORTS.lo } });
const NEW_LEG = leg2({ timestamps: false, local: { ip: LB.ip, port: 50001 }, sndNxt: 1_000_000, sndUna: 1_000_000 });

/** A socket layer of fds and tuples: what the splicer's orchestration needs, with the kernel's tuple rule. */
class TupleOps implements SocketOps {
  readonly log: string[] = [];
  /** Open fds and the tuple each holds. */
  readonly open = new Map<number, string>();
  private readonly states = new Map<number, TcpState>();
  private nextFd = 100;
  /** Resolves connect() (a test holds it to open a window). */
  connectGate: Promise<void> = Promise.resolve();
  /** Fault injection: the named operation throws once. */
  failOnce: string | undefined;

  /** No live socket outside this stub's own: leases only look at the table. */
  tuplesInUse(tuples: ReadonlyArray<unknown>): boolean[] {
    return tuples.map(() => false);
  }

  socket(s: TcpState): number {
    const fd = this.nextFd++;
    this.claim(fd, s);
    return fd;
  }
  private claim(fd: number, s: TcpState): void {
    const t = tuple(s.local, s.remote);
    if ([...this.open.values()].includes(t)) {
      this.log.push(`EADDRNOTAVAIL ${t}`);
      throw Object.assign(new Error(`EADDRNOTAVAIL: ${t} is held by an open socket`), { code: 'EADDRNOTAVAIL' });
    }
    this.open.set(fd, t);
    this.states.set(fd, s);
  }
  private fault(op: string): void {
    if (this.failOnce === op) {
      this.failOnce = undefined;
      throw new Error(`injected failure in ${op}`);
    }
  }
  endpoints(fd: number) {
    const s = this.states.get(fd) as TcpState;
    return { family: s.family, local: s.local, remote: s.remote };
  }
  queued() {
    return { unacked: 0, unread: 0 };
  }
  async capture(fds: number[]) {
    return fds.map((fd) => this.states.get(fd) as TcpState);
  }
  leaveRepair(fd: number) {
    this.log.push(`leaveRepair ${fd}`);
  }
  enterRepair(fd: number) {
    this.log.push(`enterRepair ${fd}`);
  }
  releaseSilently(fd: number) {
    this.fault('releaseSilently');
    this.log.push(`release ${fd}`);
    this.open.delete(fd);
  }
  send(fd: number, data: Buffer) {
    this.fault('send');
    this.log.push(`send ${fd} ${data.length}`);
  }
  close(fd: number) {
    this.log.push(`close ${fd}`);
    this.open.delete(fd);
  }
  netnsOf() {
    return undefined;
  }
  async connect() {
    await this.connectGate;
    const fd = this.socket(NEW_LEG);
    this.log.push(`connect ${fd}`);
    return fd;
  }
  placeholder(state: TcpState) {
    const fd = this.socket(state);
    this.log.push(`placeholder ${fd} ${tuple(state.local, state.remote)}`);
    return fd;
  }
  finish(state: TcpState) {
    this.claim(-1, state); // throws while the tuple is held
    this.open.delete(-1);
    this.log.push(`finish ${tuple(state.local, state.remote)}`);
  }
  reset(s: Pick<TcpState, 'family' | 'local' | 'remote' | 'sndNxt' | 'rcvNxt'>) {
    this.claim(-1, { ...L1, ...s });
    this.open.delete(-1);
    this.log.push(`reset ${tuple(s.local, s.remote)}`);
  }
}

describe("splicer races (real datapath, socket layer with the kernel's tuple rule)", { skip: skipUnlessBpf }, () => {
  let dp: Datapath;
  let ns: FixtureNetns;
  let ops: TupleOps;
  let splicer: Splicer;
  const prog = () => dp.object.program('baton_xdp');
  /** A client segment to the VIP and a back-end segment to the LB, through the real program. */
  const send = (from: 'client' | 'backend', seq: number, ack: number, flags = 'A') => {
    const [src, dst] = from === 'client' ? [CLIENT, VIP] : [BACKEND, LB];
    const packet = buildPacket({
      ip: { version: 4, src: src.ip, dst: dst.ip },
      tcp: { sport: src.port, dport: dst.port, flags, seq, ack },
    });
    withNetns(ns.name, () => testRun(prog(), { packet }));
  };
  /** Both directions at a boundary: every client byte up to `clientEnd` acknowledged, and every back-end byte. */
  const atBoundary = (pending: number) => {
    send('client', L1.rcvNxt, L1.sndNxt); // client: nothing new, acks everything the LB sent
    send('backend', L2.rcvNxt, L2.sndNxt + pending); // back end: acks the pending bytes leg 2 sent
  };

  before(async () => {
    ns = await FixtureNetns.create();
    dp = await Datapath.load({ flowsCapacity: 16 });
  });
  after(async () => {
    dp?.close();
    await ns?.destroy();
  });
  beforeEach(() => {
    dp.table.clear();
    ops = new TupleOps();
    splicer = new Splicer(dp, ops, { legPorts: DEFAULT_LEG_PORTS });
  });
  const spliceLegs = (prefix?: string) =>
    splicer.splice(ops.socket(L1), ops.socket(L2), prefix ? { prefix: Buffer.from(prefix) } : {});

  test('1a. abort right after a splice with a prefix: the original leg-2 socket is released before its tuple is reset', async () => {
    const rec = await spliceLegs('GET / HTTP/1.1\r\n\r\n'); // the back end never acknowledges: the background step waits
    assert.equal(await splicer.abort(rec.id), true);
    await splicer.settled();
    const released = ops.log.indexOf('release 101');
    const reset = ops.log.indexOf(`reset ${tuple(LB, BACKEND)}`);
    assert.ok(released >= 0 && reset > released, `leg 2 released, then reset: ${ops.log.join(', ')}`);
    assert.ok(!ops.log.some((l) => l.startsWith('EADDRNOTAVAIL')), ops.log.join(', '));
    assert.ok(!ops.log.some((l) => l.startsWith('placeholder')), 'no placeholder for an aborted connection');
    assert.equal(dp.table.size(), 0);
    assert.equal(ops.open.size, 0, 'no socket left open');
  });

  test('1c. abort of a connection that is over (a RST seen): entries removed, no RST sent, no socket rebuilt', async () => {
    const rec = await spliceLegs();
    await splicer.settled();
    send('client', L1.rcvNxt, L1.sndNxt, 'RA');
    assert.equal(splicer.status(rec.id)?.state, 'closed');
    assert.equal(await splicer.abort(rec.id), true);
    assert.ok(!ops.log.some((l) => l.startsWith('reset')), `no RST for a closed connection: ${ops.log.join(', ')}`);
    assert.equal(dp.table.size(), 0);
    assert.equal(splicer.records.size, 0);
  });

  test('1b. a handoff right after a splice with a prefix: the retired leg closes with a FIN, not EADDRNOTAVAIL', async () => {
    const prefix = 'GET / HTTP/1.1\r\n\r\n';
    const rec = await spliceLegs(prefix);
    // The back end acknowledges late, when the background step polls every
    // 50 ms: the handoff (a few ms) would otherwise run inside its wait.
    await new Promise((r) => setTimeout(r, 1100));
    atBoundary(prefix.length);
    await splicer.handoff(rec.id, BACKEND, { quiesceTimeoutMs: 2000 });
    await splicer.settled();
    assert.deepEqual(splicer.retireFailures, [], ops.log.join(', '));
    assert.ok(ops.log.includes(`finish ${tuple(LB, BACKEND)}`), ops.log.join(', '));
    assert.equal(rec.legs.length, 2);
    assert.equal(rec.legs[0]?.retired, true);
    assert.deepEqual([...ops.open.values()], [tuple(NEW_LEG.local, BACKEND)], 'only the new leg is held');
  });

  test('2. a reclaim during a handoff waits for it: the handoff completes, then everything goes', async () => {
    const rec = await spliceLegs();
    atBoundary(0);
    let openGate!: () => void;
    ops.connectGate = new Promise<void>((r) => (openGate = r));
    const handoff = splicer.handoff(rec.id, BACKEND, { quiesceTimeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 5)); // the handoff is waiting in connect()
    const reclaimed = splicer.reclaim(rec.id);
    openGate();
    const after = await handoff;
    assert.equal(after.legs.length, 2, 'the handoff stood');
    assert.equal(await reclaimed, true);
    assert.equal(splicer.records.has(rec.id), false);
    assert.equal(dp.table.size(), 0, "no entry left, the new leg's included");
    assert.equal(ops.open.size, 0, `no socket left open: ${[...ops.open.values()].join(', ')}`);
  });

  test('4. a leg on a port of the leg range holds no socket, and legPort never hands out its tuple while it lives', async () => {
    const rec = await splicer.splice(ops.socket(L1), ops.socket(RANGE_LEG));
    assert.equal(rec.legs[0]?.heldFd, undefined, 'no socket held for the tuple');
    assert.equal(ops.open.size, 0, `both sockets released at once: ${[...ops.open.values()].join(', ')}`);
    assert.ok(ops.log.includes('release 101'), ops.log.join(', '));
    const backendKey = rec.legs[0]?.backendKey;
    assert.ok(backendKey && dp.table.ownerOf(backendKey) === rec.id, 'the back-end entry reserves the tuple');
    const given = Array.from({ length: 8 }, () => splicer.legPort(LB.ip, BACKEND));
    assert.equal(given.includes(RANGE_LEG.local.port), false, `legPort skipped ${RANGE_LEG.local.port}: ${given}`);
    assert.ok(given.every((p) => p > DEFAULT_LEG_PORTS.lo && p <= DEFAULT_LEG_PORTS.hi));
    assert.equal(await splicer.reclaim(rec.id), true);
    assert.equal(dp.table.ownerOf(backendKey), undefined, 'reclaimed: the tuple is free again');
    assert.equal(ops.open.size, 0);
  });

  test('4b. a splicer without a leg range (the range not reserved) holds the socket of every leg, whatever its port', async () => {
    const plain = new Splicer(dp, ops);
    const rec = await plain.splice(ops.socket(L1), ops.socket(RANGE_LEG));
    assert.equal(rec.legs[0]?.heldFd, 101, 'the leg-2 socket holds the tuple');
    assert.deepEqual([...ops.open.values()], [tuple(RANGE_LEG.local, BACKEND)]);
    assert.throws(() => plain.legPort(LB.ip, BACKEND), /no leg port range/);
    assert.equal(await plain.reclaim(rec.id), true);
    assert.equal(ops.open.size, 0);
  });

  test('5. a range leg that carried a prefix: released once the back end acknowledged it, no placeholder', async () => {
    const prefix = 'GET / HTTP/1.1\r\n\r\n';
    const rec = await splicer.splice(ops.socket(L1), ops.socket(RANGE_LEG), { prefix: Buffer.from(prefix) });
    assert.deepEqual([...ops.open.values()], [tuple(RANGE_LEG.local, BACKEND)], 'leg 2 sends the prefix');
    // The back end acknowledges the prefix (to the leg-range port).
    const packet = buildPacket({
      ip: { version: 4, src: BACKEND.ip, dst: LB.ip },
      tcp: {
        sport: BACKEND.port,
        dport: RANGE_LEG.local.port,
        flags: 'A',
        seq: RANGE_LEG.rcvNxt,
        ack: RANGE_LEG.sndNxt + prefix.length,
      },
    });
    withNetns(ns.name, () => testRun(prog(), { packet }));
    await splicer.settled();
    assert.equal(ops.open.size, 0, `leg 2 released: ${ops.log.join(', ')}`);
    assert.ok(!ops.log.some((l) => l.startsWith('placeholder')), `no placeholder: ${ops.log.join(', ')}`);
    assert.equal(rec.legs[0]?.heldFd, undefined);
    assert.equal(splicer.records.has(rec.id), true, 'the connection lives on');
  });

  test('3. a failure after forwarding started leaves no entry without a record: both ends are reset', async () => {
    ops.failOnce = 'send'; // the pending bytes cannot be written on leg 2
    await assert.rejects(spliceLegs('GET / HTTP/1.1\r\n\r\n'), (e: Error & { code?: string; reason?: string }) => {
      assert.equal(e.code, 'DATAPATH');
      assert.equal(e.reason, 'splice_incomplete');
      return true;
    });
    assert.equal(dp.table.size(), 0, 'entries removed');
    assert.equal(splicer.records.size, 0);
    assert.ok(ops.log.includes(`reset ${tuple(VIP, CLIENT)}`), ops.log.join(', '));
    assert.ok(ops.log.includes(`reset ${tuple(LB, BACKEND)}`), ops.log.join(', '));
  });
});
