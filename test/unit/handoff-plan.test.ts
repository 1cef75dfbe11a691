/**
 * The arithmetic of a later handoff, of retiring a leg, of the placeholder
 * after pending bytes, and of an abort's RSTs, from the hand-computed legs
 * of test/lib/legs.ts (no kernel). Expected numbers are written out.
 *
 *   leg 1: client 198.18.0.10:40000 <-> VIP 198.18.1.1:80
 *          LB sends from 500000, expects client byte 10000; LB clock 50000, client TSval 1000
 *   leg 2: LB 198.18.2.1:50000 <-> back end 198.18.3.10:8080
 *          LB sends from 70000, expects back-end byte 900000; LB clock 200000, back-end TSval 3000000
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TRACK_F_FIN, TRACK_F_RST, TRACK_F_SEEN, type Track } from '../../control/datapath/abi.js';
import { abortResets } from '../../control/datapath/connection-plan.js';
import {
  boundaryOf,
  describeBoundary,
  handoffStartState,
  pendingAcked,
  placeholderState,
  planHandoff,
  RETIRE_TS_LEAD,
  retiredLegState,
  ticks,
} from '../../control/datapath/handoff-plan.js';
import { planSplice, SpliceRefused, TS_MARGIN } from '../../control/datapath/splice-plan.js';
import { BACKEND, CLIENT, LB, leg1, leg2, VIP } from '../lib/legs.js';

const track = (over: Partial<Track> = {}): Track => ({
  packets: 1n,
  bytes: 1n,
  lastNs: 1n,
  seqEnd: 0,
  ackMax: 0,
  finSeq: 0,
  flags: TRACK_F_SEEN,
  ...over,
});

describe('boundaryOf', () => {
  test('every byte acknowledged both ways: the boundary in client space', () => {
    // Client sent up to 10100, back end acked 10100; back end sent up to 500300, client acked 500300.
    const b = boundaryOf(track({ seqEnd: 10100, ackMax: 500300 }), track({ seqEnd: 500300, ackMax: 10100 }));
    assert.deepEqual(b, { clientEnd: 10100, backendEnd: 500300 });
  });
  test('an unacknowledged byte either way, a FIN, a RST, or an unseen direction: no boundary', () => {
    const c = track({ seqEnd: 10100, ackMax: 500300 });
    const b = track({ seqEnd: 500300, ackMax: 10100 });
    assert.equal(boundaryOf({ ...c, seqEnd: 10101 }, b), undefined, 'client byte in flight');
    assert.equal(boundaryOf({ ...c, ackMax: 500299 }, b), undefined, 'back-end byte unacknowledged');
    assert.equal(boundaryOf(c, { ...b, flags: TRACK_F_SEEN | TRACK_F_FIN }), undefined);
    assert.equal(boundaryOf({ ...c, flags: TRACK_F_SEEN | TRACK_F_RST }, b), undefined);
    assert.equal(boundaryOf({ ...c, flags: 0 }, b), undefined);
    assert.equal(boundaryOf(c, undefined), undefined);
  });
  test('describeBoundary says where each direction stands', () => {
    const s = describeBoundary(
      track({ seqEnd: 5, ackMax: 7 }),
      track({ seqEnd: 9, ackMax: 3, flags: TRACK_F_SEEN | TRACK_F_FIN }),
    );
    assert.equal(
      s,
      'client sent up to 5, back end acknowledged 3; back end sent up to 9, client acknowledged 7; a FIN was seen',
    );
    assert.equal(describeBoundary(undefined, track()), 'no segment seen yet in one direction');
  });
});

describe('handoffStartState and planHandoff', () => {
  const b = { clientEnd: 10100, backendEnd: 500300 };
  test('the start state: leg 1 at the boundary, clocks advanced by the time since capture, a margin per leg', () => {
    const s = handoffStartState(leg1(), b, 250, 2);
    assert.equal(s.rcvNxt, 10100);
    assert.equal(s.sndNxt, 500300);
    assert.equal(s.sndUna, 500300);
    assert.equal(s.tsRecent, 1000 + 250); // the client's clock from below: 1 ms ticks
    assert.equal(s.tsNow, 50000 + 250 + 2 * TS_MARGIN);
    assert.equal(s.sendQueue.length + s.recvQueue.length, 0);
  });
  test('microsecond clocks tick 1000 times faster', () => {
    assert.equal(ticks({ usecTs: true }, 2.5), 2500);
    assert.equal(ticks({ usecTs: false }, 2.5), 2);
    assert.equal(handoffStartState(leg1({ usecTs: true }), b, 3, 1).tsNow, 50000 + 3000 + TS_MARGIN);
  });
  test('the new leg: its range starts at the boundary; deltas from the start state to the new socket', () => {
    const newLeg = leg2({ local: { ip: LB.ip, port: 50001 }, sndNxt: 1_000_000, sndUna: 1_000_000, rcvNxt: 42 });
    const p = planHandoff(leg1(), newLeg, b, 0, 1);
    assert.equal(p.toBackend.seqStart, 10100);
    assert.equal(p.toBackend.ackFloor, 500300);
    // client byte 10100 becomes the new back end's 1000000; its byte 42 becomes client 500300.
    assert.equal(p.toBackend.x.seqDelta, (1_000_000 - 10100) >>> 0);
    assert.equal(p.toClient.seqDelta, (500300 - 42) >>> 0);
    assert.deepEqual(p.toBackend.x.out, { src: LB.ip, dst: BACKEND.ip, sport: 50001, dport: BACKEND.port });
    assert.deepEqual(p.toClient.out, { src: VIP.ip, dst: CLIENT.ip, sport: VIP.port, dport: CLIENT.port });
  });
  test('a new leg that cannot be joined is refused', () => {
    assert.throws(() => planHandoff(leg1(), leg2({ timestamps: false }), b, 0, 1), SpliceRefused);
  });
});

describe('retiredLegState', () => {
  test("the closing socket stands at the boundary in the old leg's own space, its clock far ahead", () => {
    const plan = planSplice(1n, leg1(), leg2());
    const h = { toBackend: plan.client.legs[0]!, toClient: plan.backend.legs[0]!.x };
    const b = { clientEnd: 10100, backendEnd: 500300 };
    const s = retiredLegState(leg2(), h, b, 100);
    // client 10100 -> back end space: + (70000 - 10000) = 70100; client 500300 <- back end 900300.
    assert.equal(s.sndNxt, 70100);
    assert.equal(s.sndUna, 70100);
    assert.equal(s.rcvNxt, 900300);
    assert.equal(s.window.sndWl1, 900300);
    assert.equal(s.window.rcvWup, 900300);
    assert.equal(s.tsNow, (200000 + 100 + RETIRE_TS_LEAD) & ~1); // bit 0 (usec flag) kept from leg 2's 0
  });
  test('the clock wraps modulo 2^32 and keeps the usec flag bit', () => {
    const plan = planSplice(1n, leg1(), leg2());
    const h = { toBackend: plan.client.legs[0]!, toClient: plan.backend.legs[0]!.x };
    const s = retiredLegState(leg2({ tsNow: 0xffffffff }), h, { clientEnd: 10000, backendEnd: 500000 }, 0);
    assert.equal(s.tsNow, ((0xffffffff + RETIRE_TS_LEAD) >>> 0) | 1);
    assert.ok(s.tsNow >= 0);
  });
});

describe('placeholderState and pendingAcked', () => {
  test('the placeholder stands past the pending bytes, nothing queued', () => {
    const s = placeholderState(leg2({ sendQueue: Buffer.from('x') }), 300);
    assert.equal(s.sndNxt, 70300);
    assert.equal(s.sndUna, 70300);
    assert.equal(s.sendQueue.length, 0);
  });
  test("acknowledged once the back end's ack (client space) reaches leg 1's rcv_nxt, across the wrap", () => {
    assert.equal(pendingAcked(track({ ackMax: 9999 }), 10000), false);
    assert.equal(pendingAcked(track({ ackMax: 10000 }), 10000), true);
    assert.equal(pendingAcked(track({ ackMax: 5 }), 0xfffffff0), true);
    assert.equal(pendingAcked(track({ ackMax: 10000, flags: 0 }), 10000), false, 'nothing seen');
    assert.equal(pendingAcked(undefined, 0), false);
  });
});

describe('abortResets', () => {
  const plan = planSplice(1n, leg1(), leg2());
  const leg = { local: LB, backend: BACKEND, toBackend: plan.client.legs[0]!, toClient: plan.backend.legs[0]!.x };
  const conn = { client: CLIENT, vip: VIP };
  test('each RST carries the end of what the other side sent', () => {
    const r = abortResets(
      conn,
      leg,
      track({ seqEnd: 10500, ackMax: 500100 }),
      track({ seqEnd: 500200, ackMax: 10400 }),
    );
    assert.deepEqual(r.toClient, { local: VIP, remote: CLIENT, sndNxt: 500200, rcvNxt: 10500 });
    // In the back end's space: client 10500 + 60000; client-space 500200 - (500000 - 900000).
    assert.deepEqual(r.toBackend, { local: LB, remote: BACKEND, sndNxt: 70500, rcvNxt: 900200 });
  });
  test("directions never seen fall back to the leg's start", () => {
    const r = abortResets(conn, leg, undefined, track({ flags: 0 }));
    assert.deepEqual(r.toClient, { local: VIP, remote: CLIENT, sndNxt: 500000, rcvNxt: 10000 });
    assert.deepEqual(r.toBackend, { local: LB, remote: BACKEND, sndNxt: 70000, rcvNxt: 900000 });
  });
});
