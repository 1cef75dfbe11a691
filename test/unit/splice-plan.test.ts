/**
 * planSplice arithmetic from hand-computed TcpStates (no kernel needed).
 *
 *   leg 1: client 198.18.0.10:40000 <-> VIP 198.18.1.1:80     (front end's accepted socket)
 *   leg 2: LB 198.18.2.1:50000      <-> back end 198.18.3.10:8080 (front end's connection)
 *
 * Every expected number below is written out by hand; the comments show the
 * arithmetic so a reader can check it without running anything.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FlowKind, FlowState, type Xlate } from '../../control/datapath/abi.js';
import { planSplice, refusalReason, SpliceRefused, TS_MARGIN } from '../../control/datapath/splice-plan.js';
import type { TcpState } from '../../control/tcp/state.js';
import { leg1, leg2 } from '../lib/legs.js';

const TWO32 = 2 ** 32;

/** Apply a delta modulo 2^32, the way the datapath does. */
const add = (v: number, d: number): number => (v + d) >>> 0;

function only<T>(xs: T[]): T {
  assert.equal(xs.length, 1);
  return xs[0] as T;
}

describe('planSplice: keys, kinds and states', () => {
  test('client entry keyed client -> VIP, back-end entry keyed back end -> LB', () => {
    const p = planSplice(7n, leg1(), leg2());
    assert.deepEqual(p.clientKey, { src: '198.18.0.10', dst: '198.18.1.1', sport: 40000, dport: 80 });
    assert.deepEqual(p.backendKey, { src: '198.18.3.10', dst: '198.18.2.1', sport: 8080, dport: 50000 });
    assert.equal(p.client.kind, FlowKind.CLIENT);
    assert.equal(p.backend.kind, FlowKind.BACKEND);
    assert.equal(p.client.connId, 7n);
    assert.equal(p.backend.connId, 7n);
    assert.equal(p.client.state, FlowState.FORWARD);
    assert.equal(p.backend.state, FlowState.FORWARD);
    // Client bytes are rewritten LB -> back end; back-end bytes VIP -> client.
    assert.deepEqual(only(p.client.legs).x.out, { src: '198.18.2.1', dst: '198.18.3.10', sport: 50000, dport: 8080 });
    assert.deepEqual(only(p.backend.legs).x.out, { src: '198.18.1.1', dst: '198.18.0.10', sport: 80, dport: 40000 });
  });

  test('pending client bytes (sent on leg 2 by the LB socket) shift leg 2 sequence space only', () => {
    const p0 = planSplice(1n, leg1(), leg2());
    const p = planSplice(1n, leg1({ recvQueue: Buffer.from('GET / HTTP/1.1\r\n') }), leg2(), 16);
    const c = only(p.client.legs);
    // The client's next byte (10_000) follows the 16 pending bytes, which the
    // LB sends at leg-2 70_000..70_015: client 10_000 -> 70_016.
    assert.equal(c.seqStart, 10_000);
    assert.equal(c.ackFloor, 500_000);
    assert.equal(c.x.seqDelta, 60_016);
    assert.equal(c.x.ackDelta, 400_000);
    const b = only(p.backend.legs).x;
    assert.equal(b.ackDelta, TWO32 - 60_016); // back-end ack 70_016 -> client 10_000
    assert.equal(b.seqDelta, only(p0.backend.legs).x.seqDelta);
    // Wraps: 20 pending bytes from leg-2 0xfffffff0 end at 0x4.
    const w = planSplice(1n, leg1(), leg2({ sndNxt: 0xffff_fff0, sndUna: 0xffff_fff0 }), 20);
    assert.equal(only(w.client.legs).x.seqDelta, (0x4 - 10_000 + TWO32) % TWO32);
  });

  test('IPv6 legs give IPv6 keys', () => {
    const p = planSplice(
      2n,
      leg1({ family: 6, local: { ip: '2001:db8:1::1', port: 80 }, remote: { ip: '2001:db8::10', port: 40000 } }),
      leg2({ family: 6, local: { ip: '2001:db8:2::1', port: 50000 }, remote: { ip: '2001:db8:3::10', port: 8080 } }),
    );
    assert.deepEqual(p.clientKey, { src: '2001:db8::10', dst: '2001:db8:1::1', sport: 40000, dport: 80 });
    assert.deepEqual(p.backendKey, { src: '2001:db8:3::10', dst: '2001:db8:2::1', sport: 8080, dport: 50000 });
    assert.deepEqual(only(p.client.legs).x.out, {
      src: '2001:db8:2::1',
      dst: '2001:db8:3::10',
      sport: 50000,
      dport: 8080,
    });
    assert.deepEqual(only(p.backend.legs).x.out, {
      src: '2001:db8:1::1',
      dst: '2001:db8::10',
      sport: 80,
      dport: 40000,
    });
  });
});

describe('planSplice: deltas', () => {
  test('TS_MARGIN is the 1000-tick PAWS margin the numbers below assume', () => {
    assert.equal(TS_MARGIN, 1000);
  });

  test('seq, ack, timestamp and window deltas of a plain splice', () => {
    const p = planSplice(1n, leg1(), leg2());
    const c = only(p.client.legs);
    // The handoff starts at the client's next byte; the back end's stream
    // starts, in client space, at the LB's next byte to the client.
    assert.equal(c.seqStart, 10_000);
    assert.equal(c.ackFloor, 500_000);
    const cx: Omit<Xlate, 'out'> = {
      seqDelta: 60_000, //        leg2.sndNxt - leg1.rcvNxt = 70_000 - 10_000
      ackDelta: 400_000, //       leg2.rcvNxt - leg1.sndNxt = 900_000 - 500_000
      tsvalDelta: 200_000, //     d1 = leg2.tsNow + margin - leg1.tsRecent = 200_000 + 1_000 - 1_000
      tsecrDelta: 2_949_000, //   -d2, d2 = leg1.tsNow + margin - leg2.tsRecent = 50_000 + 1_000 - 3_000_000
      wscaleIn: 7, //             leg1.sndWscale (client's shift)
      wscaleOut: 2, //            leg2.rcvWscale (what the back end applies to our fields)
      timestamps: true,
    };
    const { out: _co, ...cRest } = c.x;
    assert.deepEqual(cRest, cx);

    const b = only(p.backend.legs);
    const bx: Omit<Xlate, 'out'> = {
      seqDelta: TWO32 - 400_000, //  leg1.sndNxt - leg2.rcvNxt = 500_000 - 900_000
      ackDelta: TWO32 - 60_000, //   leg1.rcvNxt - leg2.sndNxt = 10_000 - 70_000
      tsvalDelta: TWO32 - 2_949_000, // d2
      tsecrDelta: TWO32 - 200_000, //   -d1
      wscaleIn: 3, //                leg2.sndWscale (back end's shift)
      wscaleOut: 9, //               leg1.rcvWscale
      timestamps: true,
    };
    const { out: _bo, ...bRest } = b.x;
    assert.deepEqual(bRest, bx);
  });

  test('the two directions are inverse: a byte and its ack round-trip exactly', () => {
    const p = planSplice(1n, leg1(), leg2());
    const c = only(p.client.legs).x;
    const b = only(p.backend.legs).x;
    // Client byte 10_017 reaches the back end as 70_017; the back end's ack of
    // it (70_018) returns to the client as 10_018.
    assert.equal(add(10_017, c.seqDelta), 70_017);
    assert.equal(add(70_018, b.ackDelta), 10_018);
    // Back-end byte 900_000 reaches the client as 500_000; the client's ack
    // 500_001 reaches the back end as 900_001.
    assert.equal(add(900_000, b.seqDelta), 500_000);
    assert.equal(add(500_001, c.ackDelta), 900_001);
    // Timestamps: the client's TSval 1_050 becomes 201_050 on the leg-2 clock
    // (1_050 ahead of the 200_000 the back end last saw from the LB socket,
    // margin included); the back end echoes 201_050, which returns to the
    // client as exactly 1_050.
    assert.equal(add(1_000, c.tsvalDelta), 200_000 + TS_MARGIN);
    assert.equal(add(1_050, c.tsvalDelta), 201_050);
    assert.equal(add(201_050, b.tsecrDelta), 1_050);
    // The back end's TSval 3_000_010 reaches the client as 51_010 (past the
    // 50_000 the LB had sent, so PAWS passes); the echo comes back exact.
    assert.equal(add(3_000_010, b.tsvalDelta), 51_010);
    assert.equal(add(51_010, c.tsecrDelta), 3_000_010);
  });

  test('sequence wraparound near 2^32 in both directions', () => {
    const p = planSplice(
      1n,
      leg1({ rcvNxt: 0xffff_fff0, sndNxt: 5, sndUna: 5 }),
      leg2({ sndNxt: 0x10, sndUna: 0x10, rcvNxt: 0xffff_ff00 }),
    );
    const c = only(p.client.legs);
    assert.equal(c.seqStart, 0xffff_fff0);
    assert.equal(c.ackFloor, 5);
    assert.equal(c.x.seqDelta, 0x20); //                 0x10 - 0xfffffff0 mod 2^32
    assert.equal(c.x.ackDelta, 0xffff_fefb); //          0xffffff00 - 5
    const b = only(p.backend.legs).x;
    assert.equal(b.seqDelta, 0x105); //                  5 - 0xffffff00 mod 2^32
    assert.equal(b.ackDelta, 0xffff_ffe0); //            0xfffffff0 - 0x10
    // Every delta is a u32, never negative or >= 2^32.
    for (const x of [c.x, b]) {
      for (const v of [x.seqDelta, x.ackDelta, x.tsvalDelta, x.tsecrDelta])
        assert.ok(Number.isInteger(v) && v >= 0 && v < TWO32, `${v}`);
    }
    // The client's last byte before the wrap and the first after it land
    // around the back end's 0x10.
    assert.equal(add(0xffff_fff0, c.x.seqDelta), 0x10);
    assert.equal(add(0xffff_ffff, c.x.seqDelta), 0x1f);
    assert.equal(add(0x0000_0005, c.x.seqDelta), 0x25);
    assert.equal(add(0xffff_ff00, b.seqDelta), 5);
  });

  test('timestamp clocks that wrap', () => {
    const p = planSplice(1n, leg1({ tsRecent: 0xffff_ff00, tsNow: 0xffff_f000 }), leg2({ tsNow: 100, tsRecent: 7 }));
    const c = only(p.client.legs).x;
    const b = only(p.backend.legs).x;
    assert.equal(c.tsvalDelta, 1356); //            d1 = 100 + 1000 - 0xffffff00 = 100 + 1000 + 256
    assert.equal(b.tsvalDelta, 0xffff_f3e1); //     d2 = 0xfffff000 + 1000 - 7 = 0xfffff000 + 0x3e1
    assert.equal(c.tsecrDelta, 0xc1f); //           -d2 = 2^32 - 0xfffff3e1
    assert.equal(b.tsecrDelta, TWO32 - 1356); //    -d1
    assert.equal(add(0xffff_ff10, c.tsvalDelta), 0x45c); // client TSval wraps onto leg 2's clock: 0xffffff10 + 0x54c
    assert.equal(add(0x10, b.tsvalDelta), 0xffff_f3f1); //  back-end TSval lands just below 2^32 on leg 1's clock
  });

  test('without timestamps every timestamp delta is 0 and the flag is off', () => {
    const p = planSplice(
      1n,
      leg1({ timestamps: false, tsRecent: undefined }),
      leg2({ timestamps: false, tsRecent: undefined }),
    );
    for (const x of [only(p.client.legs).x, only(p.backend.legs).x]) {
      assert.equal(x.timestamps, false);
      assert.equal(x.tsvalDelta, 0);
      assert.equal(x.tsecrDelta, 0);
    }
  });

  test('SACK toward the client only is accepted (the back end never sends blocks)', () => {
    assert.equal(refusalReason(leg1({ sackPermitted: true }), leg2({ sackPermitted: false })), undefined);
    assert.doesNotThrow(() => planSplice(1n, leg1({ sackPermitted: false }), leg2({ sackPermitted: false })));
  });

  test('an MSS toward the client equal to what it allows is accepted', () => {
    assert.equal(refusalReason(leg1({ mssClamp: 1400 }), leg2({ advMss: 1400 })), undefined);
  });
});

describe('planSplice: refusals', () => {
  const refuses = (reason: string, l1: TcpState, l2: TcpState, msg: RegExp): void => {
    assert.equal(refusalReason(l1, l2)?.reason, reason);
    assert.throws(
      () => planSplice(1n, l1, l2),
      (e: unknown) =>
        e instanceof SpliceRefused && e.name === 'SpliceRefused' && e.reason === reason && msg.test(e.message),
    );
  };

  test('family mismatch', () => {
    refuses(
      'family_mismatch',
      leg1(),
      leg2({ family: 6, local: { ip: '2001:db8:2::1', port: 50000 }, remote: { ip: '2001:db8:3::10', port: 8080 } }),
      /IPv4 .*IPv6/,
    );
  });

  test('unacked data on either socket (queue bytes or snd_una behind snd_nxt)', () => {
    refuses(
      'unacked_data',
      leg1({ sendQueue: Buffer.from('HTTP/1.1 100 Continue\r\n\r\n') }),
      leg2(),
      /client socket still has 25 /,
    );
    refuses('unacked_data', leg1({ sndUna: 499_990 }), leg2(), /client socket/);
    refuses(
      'unacked_data',
      leg1(),
      leg2({ sendQueue: Buffer.from('GET / HTTP/1.1\r\n') }),
      /back-end socket still has 16 /,
    );
    refuses('unacked_data', leg1(), leg2({ sndUna: 69_999 }), /back-end socket/);
    // Wraparound: sndUna just before 2^32 with sndNxt past it is still unacked.
    refuses('unacked_data', leg1({ sndUna: 0xffff_fff0, sndNxt: 0x10 }), leg2(), /client socket/);
  });

  test('unread data on the back-end socket', () => {
    refuses(
      'unread_data',
      leg1(),
      leg2({ recvQueue: Buffer.from('HTTP/1.1 200 OK') }),
      /back-end socket holds 15 unread/,
    );
  });

  test('unread data on the client socket is not refused (the LB sends it on leg 2 as pending bytes)', () => {
    assert.equal(refusalReason(leg1({ recvQueue: Buffer.from('POST /x') }), leg2()), undefined);
  });

  test('options mismatch: timestamps on one leg only', () => {
    refuses(
      'options_mismatch',
      leg1({ timestamps: false }),
      leg2(),
      /timestamps are off toward the client but on toward the back end/,
    );
    refuses('options_mismatch', leg1(), leg2({ timestamps: false }), /timestamps are on toward the client but off/);
  });

  test('options mismatch: SACK toward the back end but not toward the client', () => {
    refuses('options_mismatch', leg1({ sackPermitted: false }), leg2({ sackPermitted: true }), /SACK/);
  });

  test("timestamps on but a peer's latest TSval unknown", () => {
    refuses('timestamps_unknown', leg1({ tsRecent: undefined }), leg2(), /TSval/);
    refuses('timestamps_unknown', leg1(), leg2({ tsRecent: undefined }), /TSval/);
  });

  test('MSS toward the client larger than the client accepts', () => {
    refuses('mss_too_large', leg1({ mssClamp: 1360 }), leg2({ advMss: 1400 }), /1400-byte segments .* at most 1360/);
  });

  test('refusals are checked in a fixed order (family first, then queues, options, MSS)', () => {
    const bad = { sendQueue: Buffer.from('x'), recvQueue: Buffer.from('y'), timestamps: false, mssClamp: 100 };
    assert.equal(refusalReason(leg1(bad), leg2({ family: 6 }))?.reason, 'family_mismatch');
    assert.equal(refusalReason(leg1(bad), leg2())?.reason, 'unacked_data');
    assert.equal(
      refusalReason(leg1({ ...bad, sendQueue: Buffer.alloc(0) }), leg2({ recvQueue: Buffer.from('z') }))?.reason,
      'unread_data',
    );
    assert.equal(refusalReason(leg1({ timestamps: false, mssClamp: 100 }), leg2())?.reason, 'options_mismatch');
  });
});
