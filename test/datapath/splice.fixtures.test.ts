/**
 * Splice fixtures (source document 000): packet in -> verdict, reason, packet
 * out, through BPF_PROG_TEST_RUN in a private netns (test/lib/fixture.ts).
 * Every expected number is written out by hand from the entries installed
 * at the top of each block; comments show the arithmetic.
 *
 *   leg 1: client 198.18.0.10:40000 <-> VIP 198.18.1.1:80
 *   leg 2: LB 198.18.2.1:50000      <-> back end 198.18.3.10:8080
 *
 * Forwarded frames leave with src MAC FX.devMac and dst MAC FX.neighMac
 * (the fixture netns routes 198.18/15 and 2001:db8::/32 through one
 * neighbour). Everything else in the IP header (TTL, id, DF, flow label) is
 * left as it came.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { BpfError, BpfObject, runSyscallProgram } from '../../control/bpf/index.js';
import {
  CtlOp,
  type decodeFlow,
  encodeConnId,
  encodeFlowKey,
  type Flow,
  type FlowKey,
  FlowKind,
  FlowState,
  TRACK_F_FIN,
  TRACK_F_RST,
  TRACK_F_SEEN,
  type Track,
  type Xlate,
} from '../../control/datapath/abi.js';
import { type CtlRequest, decodeCtlResult, encodeCtl } from '../../control/datapath/abi-ctl.js';
import { FlowTable } from '../../control/datapath/flow-table.js';
import { planSplice, TS_MARGIN } from '../../control/datapath/splice-plan.js';
import { DATAPATH_OBJ, skipUnlessBpf } from '../lib/env.js';
import { type Fixture, FixtureNetns, FX, runFixture } from '../lib/fixture.js';
import { leg1, leg2 } from '../lib/legs.js';
import {
  buildPacket,
  type Corruption,
  internetChecksum,
  type PacketSpec,
  parsePacket,
  type TcpOption,
  verifyChecksums,
} from '../lib/packet.js';

// ------------------------------------------------------------------ addresses

const CLIENT = '198.18.0.10';
const VIP = '198.18.1.1';
const LB = '198.18.2.1';
const BE1 = '198.18.3.10';
const BE2 = '198.18.3.11';
const BE3 = '198.18.3.12';

const CLIENT6 = '2001:db8::10';
const VIP6 = '2001:db8:1::1';
const LB6 = '2001:db8:2::1';
const BE6 = '2001:db8:3::10';

/** MACs of an arriving frame (anything; the program replaces both on forward). */
const IN_ETH = { src: '02:00:00:00:00:0a', dst: FX.devMac };
const OUT_ETH = { src: FX.devMac, dst: FX.neighMac };

const TWO32 = 2 ** 32;

// ------------------------------------------------------------------ builders

interface Seg {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags?: string;
  win?: number;
  opts?: TcpOption[];
  payload?: string | Buffer;
  corrupt?: Corruption;
}

function spec(s: Seg, eth: { src: string; dst: string }): PacketSpec {
  const ip = s.src.includes(':')
    ? { version: 6 as const, src: s.src, dst: s.dst, flowLabel: 0x5a5a5, hopLimit: 61 }
    : { version: 4 as const, src: s.src, dst: s.dst, id: 0x1234, df: true, ttl: 61 };
  const out: PacketSpec = {
    eth,
    ip,
    tcp: {
      sport: s.sport,
      dport: s.dport,
      seq: s.seq,
      ack: s.ack ?? 0,
      flags: s.flags ?? 'A',
      window: s.win ?? 1000,
      options: s.opts ?? [],
    },
  };
  if (s.payload !== undefined) out.payload = s.payload;
  if (s.corrupt) out.corrupt = s.corrupt;
  return out;
}
/** An arriving segment. */
const inp = (s: Seg): PacketSpec => spec(s, IN_ETH);
/** The segment as the program must forward it. */
const fwd = (s: Seg): PacketSpec => spec(s, OUT_ETH);

const NOP: TcpOption = { kind: 'nop' };
const ts = (tsval: number, tsecr: number): TcpOption[] => [NOP, NOP, { kind: 'timestamp', tsval, tsecr }];
const sack = (...blocks: Array<[number, number]>): TcpOption[] => [NOP, NOP, { kind: 'sack', blocks }];

const REQ = 'GET /index.html HTTP/1.1\r\n\r\n'; // 28 bytes
const RESP = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'; // 38 bytes

// ------------------------------------------------------------------ legs (as in test/unit/splice-plan.test.ts)

/*
 * planSplice(leg1(), leg2()) gives (see the unit test for the derivation):
 *   client -> back end: seq +60_000, ack +400_000, TSval +C_TSVAL, TSecr +C_TSECR, window <<7 >>2
 *   back end -> client: seq -400_000, ack -60_000, TSval +B_TSVAL, TSecr +B_TSECR, window <<3 >>9
 *   handoff seqStart 10_000, ackFloor 500_000
 * The timestamp offsets carry planSplice's PAWS margin (TS_MARGIN, 1000
 * today): with it, TSval +200_000 / TSecr +2_949_000 toward the back end and
 * TSval -2_949_000 / TSecr -200_000 toward the client.
 */
const C_TSVAL = 199_000 + TS_MARGIN; //   d1 = leg2.tsNow + margin - leg1.tsRecent
const C_TSECR = 2_950_000 - TS_MARGIN; // -d2
const B_TSVAL = -(2_950_000 - TS_MARGIN); // d2 = leg1.tsNow + margin - leg2.tsRecent
const B_TSECR = -(199_000 + TS_MARGIN); //  -d1

function xlate(out: FlowKey, over: Partial<Omit<Xlate, 'out'>> = {}): Xlate {
  return {
    out,
    seqDelta: 0,
    ackDelta: 0,
    tsvalDelta: 0,
    tsecrDelta: 0,
    wscaleIn: 0,
    wscaleOut: 0,
    timestamps: false,
    ...over,
  };
}

// ------------------------------------------------------------------ frame surgery

/** IPv4 frame with `opts` inserted as IP options (IHL, total length and header checksum fixed up). */
function withIpOptions(frame: Buffer, opts: Buffer): Buffer {
  assert.equal(opts.length % 4, 0);
  const hdr = Buffer.concat([frame.subarray(14, 34), opts]);
  hdr.writeUInt8(0x40 | (hdr.length / 4), 0);
  hdr.writeUInt16BE(hdr.readUInt16BE(2) + opts.length, 2);
  hdr.writeUInt16BE(0, 10);
  hdr.writeUInt16BE(internetChecksum(hdr), 10);
  return Buffer.concat([frame.subarray(0, 14), hdr, frame.subarray(34)]);
}

/** Recomputes the TCP checksum of an IPv4 (IHL 5) frame after byte surgery. */
function fixTcpChecksum4(frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  const seg = f.subarray(34);
  seg.writeUInt16BE(0, 16);
  const pseudo = Buffer.alloc(12);
  f.copy(pseudo, 0, 26, 34);
  pseudo.writeUInt8(6, 9);
  pseudo.writeUInt16BE(seg.length, 10);
  seg.writeUInt16BE(internetChecksum(pseudo, seg), 16);
  return f;
}

/** Frame of `s` with the TCP option bytes patched by `patch` (offsets into the options area), checksum fixed. */
function patchOptions(s: Seg, patch: (opts: Buffer) => void): Buffer {
  const f = buildPacket(inp(s));
  patch(f.subarray(34 + 20, 34 + 20 + (f.readUInt8(34 + 12) >> 4) * 4 - 20));
  return fixTcpChecksum4(f);
}

/** One's complement sum over the TCP pseudo-header and segment of a parsed frame: 0xffff when valid. */
function tcpSum(frame: Buffer): number {
  const p = parsePacket(frame);
  const c = p.checksums.find((x) => x.layer === 'tcp');
  assert.ok(c?.found !== undefined && c.expected !== undefined, 'TCP checksum present');
  // found - expected (mod 0xffff) is how far the sum is from 0xffff.
  return (c.found - c.expected + 0xffff) % 0xffff;
}

// ------------------------------------------------------------------ harness

describe('splice fixtures', { skip: skipUnlessBpf }, () => {
  let ns: FixtureNetns;
  before(async () => {
    ns = await FixtureNetns.create();
  });
  after(() => ns?.destroy());

  /** A fresh datapath object per block, with `entries` installed (BPF_NOEXIST). */
  function datapath(entries: () => Array<[FlowKey, Flow]>): {
    obj: () => BpfObject;
    flow: (k: FlowKey) => ReturnType<typeof decodeFlow>;
  } {
    let obj: BpfObject | undefined;
    before(async () => {
      obj = BpfObject.open(DATAPATH_OBJ);
      await obj.load();
      const table = FlowTable.of(obj);
      for (const [k, f] of entries()) table.insert(k, f);
    });
    after(() => obj?.close());
    const get = (): BpfObject => {
      assert.ok(obj, 'datapath loaded');
      return obj;
    };
    return {
      obj: get,
      flow: (k) => {
        const v = FlowTable.of(get()).get({ ...k, family: k.src.includes(':') ? 6 : 4 });
        assert.ok(v, 'flow entry present');
        return v;
      },
    };
  }

  function fixtures(dp: { obj: () => BpfObject }, list: Fixture[]): void {
    for (const f of list) test(f.name, () => void runFixture(dp.obj(), ns, f));
  }

  // ================================================================ IPv4, one handoff, from planSplice
  describe('IPv4 splice planned from two legs', () => {
    const plan = planSplice(1n, leg1(), leg2());
    const dp = datapath(() => [
      [plan.clientKey, plan.client],
      [plan.backendKey, plan.backend],
    ]);
    // Same legs without timestamps, on another client port / LB port.
    const noTs = planSplice(
      2n,
      leg1({ remote: { ip: CLIENT, port: 40001 }, timestamps: false }),
      leg2({ local: { ip: LB, port: 50001 }, timestamps: false }),
    );
    const dpNoTs = datapath(() => [
      [noTs.clientKey, noTs.client],
      [noTs.backendKey, noTs.backend],
    ]);

    const c2b = { src: CLIENT, dst: VIP, sport: 40000, dport: 80 };
    const c2bOut = { src: LB, dst: BE1, sport: 50000, dport: 8080 };
    const b2c = { src: BE1, dst: LB, sport: 8080, dport: 50000 };
    const b2cOut = { src: VIP, dst: CLIENT, sport: 80, dport: 40000 };

    fixtures(dp, [
      {
        name: 'client request: tuple, seq, ack, TSval, TSecr and window rewritten toward the back end',
        input: inp({
          ...c2b,
          seq: 10_000,
          ack: 500_000,
          flags: 'PA',
          win: 1000,
          opts: ts(1_050, 50_000),
          payload: REQ,
        }),
        // seq 10_000+60_000, ack 500_000+400_000, window (1000<<7)>>2
        output: fwd({
          ...c2bOut,
          seq: 70_000,
          ack: 900_000,
          flags: 'PA',
          win: 32_000,
          opts: ts(1_050 + C_TSVAL, 50_000 + C_TSECR),
          payload: REQ,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'back-end response: tuple, seq, ack, TSval, TSecr and window rewritten toward the client',
        input: inp({
          ...b2c,
          seq: 900_000,
          ack: 70_028,
          flags: 'PA',
          win: 2000,
          opts: ts(3_000_010, 200_050),
          payload: RESP,
        }),
        // seq 900_000-400_000, ack 70_028-60_000, window (2000<<3)>>9 = 31
        output: fwd({
          ...b2cOut,
          seq: 500_000,
          ack: 10_028,
          flags: 'PA',
          win: 31,
          opts: ts(3_000_010 + B_TSVAL, 200_050 + B_TSECR),
          payload: RESP,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client pure ACK',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, win: 500, opts: ts(1_060, 50_010) }),
        output: fwd({ ...c2bOut, seq: 70_028, ack: 900_038, win: 16_000, opts: ts(1_060 + C_TSVAL, 50_010 + C_TSECR) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      // ---- SACK: client blocks name back-end bytes in leg-1 space, +400_000 (client ack delta)
      {
        name: 'client SACK, 1 block (+ timestamps)',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, opts: [...ts(1_070, 50_020), ...sack([500_100, 500_200])] }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [...ts(1_070 + C_TSVAL, 50_020 + C_TSECR), ...sack([900_100, 900_200])],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client SACK, 2 blocks (+ timestamps)',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: [...ts(1_070, 50_020), ...sack([500_300, 500_400], [500_100, 500_200])],
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [...ts(1_070 + C_TSVAL, 50_020 + C_TSECR), ...sack([900_300, 900_400], [900_100, 900_200])],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client SACK, 3 blocks (+ timestamps: all 40 option bytes)',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: [...ts(1_070, 50_020), ...sack([500_500, 500_600], [500_300, 500_400], [500_100, 500_200])],
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [
            ...ts(1_070 + C_TSVAL, 50_020 + C_TSECR),
            ...sack([900_500, 900_600], [900_300, 900_400], [900_100, 900_200]),
          ],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client SACK, 4 blocks (no room for timestamps)',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: sack([500_700, 500_800], [500_500, 500_600], [500_300, 500_400], [500_100, 500_200]),
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: sack([900_700, 900_800], [900_500, 900_600], [900_300, 900_400], [900_100, 900_200]),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'back-end SACK, 2 blocks: edges move by the back-end ack delta (-60_000)',
        input: inp({
          ...b2c,
          seq: 900_038,
          ack: 70_028,
          win: 2000,
          opts: [...ts(3_000_020, 200_070), ...sack([70_200, 70_300], [70_100, 70_150])],
        }),
        output: fwd({
          ...b2cOut,
          seq: 500_038,
          ack: 10_028,
          win: 31,
          opts: [...ts(3_000_020 + B_TSVAL, 200_070 + B_TSECR), ...sack([10_200, 10_300], [10_100, 10_150])],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'SACK-permitted, MSS and window-scale options are left alone',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: [{ kind: 'mss', value: 1400 }, { kind: 'sackPermitted' }, NOP, { kind: 'wscale', shift: 7 }],
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [{ kind: 'mss', value: 1400 }, { kind: 'sackPermitted' }, NOP, { kind: 'wscale', shift: 7 }],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'options after an EOL are not options: a TS before it moves, bytes after it stay',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: [
            ...ts(1_070, 50_020),
            { kind: 'eol' },
            { kind: 'raw', type: 8, data: Buffer.from([0, 0, 0, 1, 0, 0]) },
          ],
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [
            ...ts(1_070 + C_TSVAL, 50_020 + C_TSECR),
            { kind: 'eol' },
            { kind: 'raw', type: 8, data: Buffer.from([0, 0, 0, 1, 0, 0]) },
          ],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'a layout Linux never sends (TS unpadded, then SACK): the general path translates it the same',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: [
            { kind: 'timestamp', tsval: 1_070, tsecr: 50_020 },
            NOP,
            NOP,
            { kind: 'sack', blocks: [[500_100, 500_200]] },
          ],
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [
            { kind: 'timestamp', tsval: 1_070 + C_TSVAL, tsecr: 50_020 + C_TSECR },
            NOP,
            NOP,
            { kind: 'sack', blocks: [[900_100, 900_200]] },
          ],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      // ---- timestamps: TSval and TSecr wrap across 2^32 (both back end -> client deltas are negative)
      {
        name: 'back-end TSval and TSecr below their (negative) deltas wrap below zero',
        input: inp({ ...b2c, seq: 900_038, ack: 70_028, win: 2000, opts: ts(1_000, 100) }),
        output: fwd({ ...b2cOut, seq: 500_038, ack: 10_028, win: 31, opts: ts(1_000 + B_TSVAL, 100 + B_TSECR) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'TSecr 0 ("no echo", RFC 7323 §3.2) is left 0; TSval still moves',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, opts: ts(1_080, 0) }),
        output: fwd({ ...c2bOut, seq: 70_028, ack: 900_038, win: 32_000, opts: ts(1_080 + C_TSVAL, 0) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      // ---- window rescale
      {
        name: 'window toward the back end saturates at 65535 ((3000<<7)>>2 = 96000)',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, win: 3000 }),
        output: fwd({ ...c2bOut, seq: 70_028, ack: 900_038, win: 65535 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'window toward the back end at exactly 65535 ((2047<<7)>>2 = 65504, (2048<<7)>>2 = 65536 -> 65535)',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, win: 2048 }),
        output: fwd({ ...c2bOut, seq: 70_028, ack: 900_038, win: 65535 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'window toward the client scales up and rounds down ((65535<<3)>>9 = 1023)',
        input: inp({ ...b2c, seq: 900_038, ack: 70_028, win: 65535 }),
        output: fwd({ ...b2cOut, seq: 500_038, ack: 10_028, win: 1023 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'a zero window stays zero',
        input: inp({ ...b2c, seq: 900_038, ack: 70_028, win: 0 }),
        output: fwd({ ...b2cOut, seq: 500_038, ack: 10_028, win: 0 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      // ---- FIN and RST
      {
        name: 'client FIN with data is forwarded and translated',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, flags: 'FPA', opts: ts(1_090, 50_030), payload: 'bye\r\n' }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          flags: 'FPA',
          win: 32_000,
          opts: ts(1_090 + C_TSVAL, 50_030 + C_TSECR),
          payload: 'bye\r\n',
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'back-end FIN is forwarded and translated',
        input: inp({ ...b2c, seq: 900_038, ack: 70_034, flags: 'FA', win: 2000, opts: ts(3_000_040, 200_090) }),
        output: fwd({
          ...b2cOut,
          seq: 500_038,
          ack: 10_034,
          flags: 'FA',
          win: 31,
          opts: ts(3_000_040 + B_TSVAL, 200_090 + B_TSECR),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        // The client's rcv_nxt is now past the back end's FIN: the RSTs below are exact (rst_verdict).
        name: "client ACK of the back end's FIN",
        input: inp({ ...c2b, seq: 10_034, ack: 500_039 }),
        output: fwd({ ...c2bOut, seq: 70_034, ack: 900_039, win: 32_000 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'back-end RST without ACK: seq translated, the (unused) ack field left as it came',
        input: inp({ ...b2c, seq: 900_039, ack: 0, flags: 'R', win: 0 }),
        output: fwd({ ...b2cOut, seq: 500_039, ack: 0, flags: 'R', win: 0 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'back-end RST without ACK carrying TSecr 0: TSval moved, TSecr left 0',
        input: inp({ ...b2c, seq: 900_039, flags: 'R', win: 0, opts: ts(3_000_050, 0) }),
        output: fwd({ ...b2cOut, seq: 500_039, flags: 'R', win: 0, opts: ts(3_000_050 + B_TSVAL, 0) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client RST+ACK is forwarded and translated',
        input: inp({ ...c2b, seq: 10_034, ack: 500_039, flags: 'RA', win: 0 }),
        output: fwd({ ...c2bOut, seq: 70_034, ack: 900_039, flags: 'RA', win: 0 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
    ]);

    // Reads what the FIN/RST fixtures above left in the entries (tests in a block run in order).
    test('FIN and RST are recorded in the entries (client sequence space)', () => {
      const c = dp.flow(plan.clientKey).track;
      assert.equal(c.flags & (TRACK_F_SEEN | TRACK_F_FIN | TRACK_F_RST), TRACK_F_SEEN | TRACK_F_FIN | TRACK_F_RST);
      assert.equal(c.finSeq, 10_033); // 'bye\r\n' at 10_028, FIN after it
      const b = dp.flow(plan.backendKey).track;
      assert.equal(b.flags & (TRACK_F_SEEN | TRACK_F_FIN | TRACK_F_RST), TRACK_F_SEEN | TRACK_F_FIN | TRACK_F_RST);
      assert.equal(b.finSeq, 500_038); // back end's FIN at 900_038, in client space
    });

    // ---- checksums that arrive wrong stay wrong by the same amount
    test('a bad TCP checksum stays bad after the rewrite (the error is carried, not repaired)', () => {
      const inSeg: Seg = { ...c2b, seq: 10_000, ack: 500_000, flags: 'PA', opts: ts(1_050, 50_000), payload: REQ };
      const input = buildPacket(inp({ ...inSeg, corrupt: { l4Checksum: true } }));
      const good = buildPacket(
        fwd({
          ...c2bOut,
          seq: 70_000,
          ack: 900_000,
          flags: 'PA',
          win: 32_000,
          opts: ts(1_050 + C_TSVAL, 50_000 + C_TSECR),
          payload: REQ,
        }),
      );
      const err = tcpSum(input);
      assert.notEqual(err, 0);
      // The expected frame: the correct output with its checksum off by the input's error.
      const expected = Buffer.from(good);
      const at = 14 + 20 + 16;
      expected.writeUInt16BE((expected.readUInt16BE(at) + err) % 0xffff, at);
      const out = runFixture(dp.obj(), ns, {
        name: 'bad l4 checksum',
        input,
        output: expected,
        verdict: 'REDIRECT',
        reason: 'redirect',
        checksumsValid: false,
      });
      const v = verifyChecksums(out);
      assert.equal(v.ok, false);
      assert.match(v.errors.join(';'), /^tcp checksum/);
      assert.equal(tcpSum(out), err);
      assert.ok(!v.errors.some((e) => e.startsWith('ipv4')), 'the IPv4 header checksum is still right');
    });

    test('a bad IPv4 header checksum stays bad after the rewrite, by the same amount', () => {
      const input = buildPacket(inp({ ...c2b, seq: 10_028, ack: 500_038, corrupt: { ipChecksum: true } }));
      const inGood = buildPacket(inp({ ...c2b, seq: 10_028, ack: 500_038 }));
      const good = buildPacket(fwd({ ...c2bOut, seq: 70_028, ack: 900_038, win: 32_000 }));
      // One's complement error carried over: out = correct out + (in - correct in), mod 0xffff.
      const at = 14 + 10;
      const err = (input.readUInt16BE(at) - inGood.readUInt16BE(at) + 0xffff) % 0xffff;
      assert.notEqual(err, 0);
      const expected = Buffer.from(good);
      expected.writeUInt16BE((good.readUInt16BE(at) + err) % 0xffff, at);
      const out = runFixture(dp.obj(), ns, {
        name: 'bad ip checksum',
        input,
        output: expected,
        verdict: 'REDIRECT',
        reason: 'redirect',
        checksumsValid: false,
      });
      // Only the IPv4 header checksum is wrong; TCP's verifies.
      assert.deepEqual(
        verifyChecksums(out).errors.map((e) => e.split(' ')[0]),
        ['ipv4'],
      );
    });

    // ---- IPv4 options and Ethernet padding
    test('IPv4 with IP options (IHL 6): TCP found after the options, options kept', () => {
      const ra = Buffer.from([0x94, 0x04, 0x00, 0x00]); // Router Alert
      const input = withIpOptions(
        buildPacket(inp({ ...c2b, seq: 10_000, ack: 500_000, flags: 'PA', opts: ts(1_050, 50_000), payload: REQ })),
        ra,
      );
      const output = withIpOptions(
        buildPacket(
          fwd({
            ...c2bOut,
            seq: 70_000,
            ack: 900_000,
            flags: 'PA',
            win: 32_000,
            opts: ts(1_050 + C_TSVAL, 50_000 + C_TSECR),
            payload: REQ,
          }),
        ),
        ra,
      );
      assert.ok(verifyChecksums(input).ok);
      const out = runFixture(dp.obj(), ns, {
        name: 'ip options',
        input,
        output,
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      const p = parsePacket(out);
      assert.ok(p.ip?.version === 4 && p.ip.ihl === 6 && p.ip.options.equals(ra));
    });

    test('Ethernet padding after the IP datagram is kept and not checksummed', () => {
      const pad = Buffer.alloc(6);
      const input = Buffer.concat([buildPacket(inp({ ...c2b, seq: 10_028, ack: 500_038 })), pad]);
      const output = Buffer.concat([buildPacket(fwd({ ...c2bOut, seq: 70_028, ack: 900_038, win: 32_000 })), pad]);
      assert.equal(input.length, 60);
      runFixture(dp.obj(), ns, { name: 'padding', input, output, verdict: 'REDIRECT', reason: 'redirect' });
    });

    // ---- timestamps not negotiated: TS options pass through unchanged
    fixtures(dpNoTs, [
      {
        name: 'without XLATE_F_TS a timestamp option is not touched (seq/ack still move)',
        input: inp({
          ...c2b,
          sport: 40001,
          seq: 10_000,
          ack: 500_000,
          flags: 'PA',
          opts: ts(1_050, 50_000),
          payload: REQ,
        }),
        output: fwd({
          ...c2bOut,
          sport: 50001,
          seq: 70_000,
          ack: 900_000,
          flags: 'PA',
          win: 32_000,
          opts: ts(1_050, 50_000),
          payload: REQ,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'without XLATE_F_TS SACK edges still move',
        input: inp({ ...b2c, dport: 50001, seq: 900_000, ack: 70_028, win: 2000, opts: sack([70_100, 70_200]) }),
        output: fwd({ ...b2cOut, dport: 40001, seq: 500_000, ack: 10_028, win: 31, opts: sack([10_100, 10_200]) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
    ]);
  });

  // ================================================================ IPv6
  describe('IPv6 splice planned from two legs', () => {
    const plan = planSplice(
      3n,
      leg1({ family: 6, local: { ip: VIP6, port: 80 }, remote: { ip: CLIENT6, port: 40000 } }),
      leg2({ family: 6, local: { ip: LB6, port: 50000 }, remote: { ip: BE6, port: 8080 } }),
    );
    const dp = datapath(() => [
      [plan.clientKey, plan.client],
      [plan.backendKey, plan.backend],
    ]);
    const c2b = { src: CLIENT6, dst: VIP6, sport: 40000, dport: 80 };
    const c2bOut = { src: LB6, dst: BE6, sport: 50000, dport: 8080 };
    const b2c = { src: BE6, dst: LB6, sport: 8080, dport: 50000 };
    const b2cOut = { src: VIP6, dst: CLIENT6, sport: 80, dport: 40000 };

    fixtures(dp, [
      {
        name: 'IPv6 client request with timestamps',
        input: inp({
          ...c2b,
          seq: 10_000,
          ack: 500_000,
          flags: 'PA',
          win: 1000,
          opts: ts(1_050, 50_000),
          payload: REQ,
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_000,
          ack: 900_000,
          flags: 'PA',
          win: 32_000,
          opts: ts(1_050 + C_TSVAL, 50_000 + C_TSECR),
          payload: REQ,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 back-end response with timestamps',
        input: inp({
          ...b2c,
          seq: 900_000,
          ack: 70_028,
          flags: 'PA',
          win: 2000,
          opts: ts(3_000_010, 200_050),
          payload: RESP,
        }),
        output: fwd({
          ...b2cOut,
          seq: 500_000,
          ack: 10_028,
          flags: 'PA',
          win: 31,
          opts: ts(3_000_010 + B_TSVAL, 200_050 + B_TSECR),
          payload: RESP,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 client SACK, 3 blocks + timestamps',
        input: inp({
          ...c2b,
          seq: 10_028,
          ack: 500_038,
          opts: [...ts(1_070, 50_020), ...sack([500_500, 500_600], [500_300, 500_400], [500_100, 500_200])],
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          win: 32_000,
          opts: [
            ...ts(1_070 + C_TSVAL, 50_020 + C_TSECR),
            ...sack([900_500, 900_600], [900_300, 900_400], [900_100, 900_200]),
          ],
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 back-end SACK, 4 blocks',
        input: inp({
          ...b2c,
          seq: 900_038,
          ack: 70_028,
          win: 2000,
          opts: sack([70_400, 70_500], [70_300, 70_350], [70_200, 70_250], [70_100, 70_150]),
        }),
        output: fwd({
          ...b2cOut,
          seq: 500_038,
          ack: 10_028,
          win: 31,
          opts: sack([10_400, 10_500], [10_300, 10_350], [10_200, 10_250], [10_100, 10_150]),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 full-size segment (1428 payload bytes, 1500-byte packet)',
        input: inp({
          ...c2b,
          seq: 10_000,
          ack: 500_000,
          flags: 'A',
          win: 1000,
          opts: ts(1_050, 50_000),
          payload: Buffer.alloc(1428, 0x7a),
        }),
        output: fwd({
          ...c2bOut,
          seq: 70_000,
          ack: 900_000,
          flags: 'A',
          win: 32_000,
          opts: ts(1_050 + C_TSVAL, 50_000 + C_TSECR),
          payload: Buffer.alloc(1428, 0x7a),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 client FIN',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, flags: 'FA', opts: ts(1_090, 50_030) }),
        output: fwd({
          ...c2bOut,
          seq: 70_028,
          ack: 900_038,
          flags: 'FA',
          win: 32_000,
          opts: ts(1_090 + C_TSVAL, 50_030 + C_TSECR),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 back-end RST+ACK',
        input: inp({ ...b2c, seq: 900_038, ack: 70_029, flags: 'RA', win: 0 }),
        output: fwd({ ...b2cOut, seq: 500_038, ack: 10_029, flags: 'RA', win: 0 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'IPv6 payload length beyond the frame: passed untouched (malformed)',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, payload: 'x', corrupt: { ipTotalLength: 40 + 20 + 2 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'IPv6 frame cut inside the TCP header: passed untouched (malformed)',
        input: inp({ ...c2b, seq: 10_028, ack: 500_038, corrupt: { truncateTo: 14 + 40 + 12 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'IPv6 with a hop-by-hop header: passed untouched (ipv6_ext_header)',
        input: {
          eth: IN_ETH,
          ip: { version: 6, src: CLIENT6, dst: VIP6, protocol: 0 },
          payload: Buffer.from([6, 0, 1, 4, 0, 0, 0, 0]),
        },
        verdict: 'PASS',
        reason: 'ipv6_ext_header',
      },
    ]);
  });

  // ================================================================ sequence wraparound
  describe('sequence and timestamp wraparound', () => {
    const cKey = { src: CLIENT, dst: VIP, sport: 40002, dport: 80 };
    const cOut = { src: LB, dst: BE1, sport: 50002, dport: 8080 };
    const bKey = { src: BE1, dst: LB, sport: 8080, dport: 50002 };
    const bOut = { src: VIP, dst: CLIENT, sport: 80, dport: 40002 };
    // Handoffs across 2^32, client port 40003: h0 at 0xfffffff0 -> BE1, h1 at 0x10 -> BE2.
    const hKey = { src: CLIENT, dst: VIP, sport: 40003, dport: 80 };
    const h0Out = { src: LB, dst: BE1, sport: 50003, dport: 8080 };
    const h1Out = { src: LB, dst: BE2, sport: 50003, dport: 8080 };
    const dp = datapath(() => [
      [
        cKey,
        {
          connId: 10n,
          state: FlowState.FORWARD,
          kind: FlowKind.CLIENT,
          legs: [
            {
              seqStart: 0xffff_ff00,
              ackFloor: 0xffff_fff0,
              x: xlate(cOut, { seqDelta: 0x200, ackDelta: 0x30, tsvalDelta: 0x20, tsecrDelta: 0x40, timestamps: true }),
            },
          ],
        },
      ],
      [
        bKey,
        {
          connId: 10n,
          state: FlowState.FORWARD,
          kind: FlowKind.BACKEND,
          legs: [
            {
              seqStart: 0,
              ackFloor: 0,
              x: xlate(bOut, {
                seqDelta: TWO32 - 0x30,
                ackDelta: TWO32 - 0x200,
                tsvalDelta: TWO32 - 0x40,
                tsecrDelta: TWO32 - 0x20,
                timestamps: true,
              }),
            },
          ],
        },
      ],
      [
        hKey,
        {
          connId: 11n,
          state: FlowState.FORWARD,
          kind: FlowKind.CLIENT,
          legs: [
            { seqStart: 0xffff_fff0, ackFloor: 0xffff_ff00, x: xlate(h0Out, { seqDelta: 0x1000, ackDelta: 0x2000 }) },
            { seqStart: 0x10, ackFloor: 0xffff_ff80, x: xlate(h1Out, { seqDelta: 0x3000, ackDelta: 0x4000 }) },
          ],
        },
      ],
    ]);

    fixtures(dp, [
      {
        name: 'client segment spanning 2^32: seq, ack, TSval, TSecr and SACK edges all wrap',
        // 32 bytes at 0xfffffff0..0x0f; SACK block 0xffffffe0..0x10 straddles 2^32 too.
        input: inp({
          ...cKey,
          seq: 0xffff_fff0,
          ack: 0xffff_fff8,
          flags: 'PA',
          win: 100,
          opts: [...ts(0xffff_fff0, 0xffff_ffd0), ...sack([0xffff_ffe0, 0x10])],
          payload: Buffer.alloc(32, 0x61),
        }),
        output: fwd({
          ...cOut,
          seq: 0x1f0,
          ack: 0x28,
          flags: 'PA',
          win: 100,
          opts: [...ts(0x10, 0x10), ...sack([0x10, 0x40])],
          payload: Buffer.alloc(32, 0x61),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client ack past 2^32 is after an ackFloor before it (not clamped)',
        input: inp({ ...cKey, seq: 0x10, ack: 0x8, win: 100 }),
        output: fwd({ ...cOut, seq: 0x210, ack: 0x38, win: 100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'client ack before the ackFloor is clamped up to it (0xffffff80 -> 0xfffffff0, +0x30 wraps to 0x20)',
        input: inp({ ...cKey, seq: 0x10, ack: 0xffff_ff80, win: 100 }),
        output: fwd({ ...cOut, seq: 0x210, ack: 0x20, win: 100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'back-end segment translated back across 2^32',
        input: inp({
          ...bKey,
          seq: 0x20,
          ack: 0x1f0,
          flags: 'PA',
          win: 100,
          opts: [...ts(0x30, 0x10), ...sack([0x100, 0x180])],
          payload: 'ok',
        }),
        output: fwd({
          ...bOut,
          seq: 0xffff_fff0,
          ack: 0xffff_fff0,
          flags: 'PA',
          win: 100,
          opts: [...ts(0xffff_fff0, 0xffff_fff0), ...sack([0xffff_ff00, 0xffff_ff80])],
          payload: 'ok',
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      // Leg selection across 2^32: h0 at 0xfffffff0, h1 at 0x10.
      {
        name: 'wrap: segment whose last byte is 0xffffffff goes to the handoff before 2^32',
        input: inp({ ...hKey, seq: 0xffff_fff8, ack: 0xffff_ff10, flags: 'PA', payload: Buffer.alloc(8, 0x62) }),
        output: fwd({ ...h0Out, seq: 0xff8, ack: 0x1f10, flags: 'PA', payload: Buffer.alloc(8, 0x62) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'wrap: segment 0x0..0xf, wholly before the handoff at 0x10, goes to the earlier back end',
        input: inp({ ...hKey, seq: 0, ack: 0xffff_ff10, flags: 'PA', payload: Buffer.alloc(16, 0x63) }),
        output: fwd({ ...h0Out, seq: 0x1000, ack: 0x1f10, flags: 'PA', payload: Buffer.alloc(16, 0x63) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'wrap: segment 0x0..0x1f straddles the handoff at 0x10 and goes to the later back end (ack clamped to 0xffffff80)',
        input: inp({ ...hKey, seq: 0, ack: 0xffff_ff10, flags: 'PA', payload: Buffer.alloc(32, 0x64) }),
        output: fwd({ ...h1Out, seq: 0x3000, ack: 0x3f80, flags: 'PA', payload: Buffer.alloc(32, 0x64) }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
    ]);
  });

  // ================================================================ several handoffs
  describe('handoff selection with three back ends', () => {
    const key = { src: CLIENT, dst: VIP, sport: 40100, dport: 80 };
    const out1 = { src: LB, dst: BE1, sport: 50100, dport: 8080 };
    const out2 = { src: LB, dst: BE2, sport: 50101, dport: 8080 };
    const out3 = { src: LB, dst: BE3, sport: 50102, dport: 8080 };
    const be2Key = { src: BE2, dst: LB, sport: 8080, dport: 50101 };
    const emptyKey = { src: CLIENT, dst: VIP, sport: 40101, dport: 80 };
    // h0: [1000, 2000) -> BE1, back-end stream from client-ack 5000
    // h1: [2000, 3000) -> BE2, from 8000
    // h2: [3000, ...)  -> BE3, from 9000
    const dp = datapath(() => [
      [
        key,
        {
          connId: 20n,
          state: FlowState.FORWARD,
          kind: FlowKind.CLIENT,
          legs: [
            { seqStart: 1000, ackFloor: 5000, x: xlate(out1, { seqDelta: 100_000, ackDelta: 200_000 }) },
            { seqStart: 2000, ackFloor: 8000, x: xlate(out2, { seqDelta: 300_000, ackDelta: 400_000 }) },
            { seqStart: 3000, ackFloor: 9000, x: xlate(out3, { seqDelta: 500_000, ackDelta: 600_000 }) },
          ],
        },
      ],
      [
        be2Key,
        {
          connId: 20n,
          state: FlowState.FORWARD,
          kind: FlowKind.BACKEND,
          legs: [
            {
              seqStart: 0,
              ackFloor: 0,
              x: xlate(
                { src: VIP, dst: CLIENT, sport: 80, dport: 40100 },
                { seqDelta: TWO32 - 400_000, ackDelta: TWO32 - 300_000 },
              ),
            },
          ],
        },
      ],
      [emptyKey, { connId: 21n, state: FlowState.FORWARD, kind: FlowKind.CLIENT, legs: [] }],
    ]);
    const p100 = Buffer.alloc(100, 0x41);
    const p20 = Buffer.alloc(20, 0x42);
    const p2 = Buffer.alloc(2, 0x43);

    fixtures(dp, [
      {
        name: 'segment inside the first range goes to back end 1',
        input: inp({ ...key, seq: 1000, ack: 5500, flags: 'PA', win: 1234, payload: p100 }),
        output: fwd({ ...out1, seq: 101_000, ack: 205_500, flags: 'PA', win: 1234, payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'ack below the handoff ackFloor is clamped up to it (4000 -> 5000)',
        input: inp({ ...key, seq: 1500, ack: 4000, flags: 'PA', win: 1234, payload: p100 }),
        output: fwd({ ...out1, seq: 101_500, ack: 205_000, flags: 'PA', win: 1234, payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'retransmission [1900, 2000) wholly before the second handoff goes to back end 1',
        input: inp({ ...key, seq: 1900, ack: 7000, flags: 'PA', win: 1234, payload: p100 }),
        output: fwd({ ...out1, seq: 101_900, ack: 207_000, flags: 'PA', win: 1234, payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'retransmission [1990, 2010) straddling the second handoff goes to back end 2 (ack 7000 clamped to 8000)',
        input: inp({ ...key, seq: 1990, ack: 7000, flags: 'PA', win: 1234, payload: p20 }),
        output: fwd({ ...out2, seq: 301_990, ack: 408_000, flags: 'PA', win: 1234, payload: p20 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'segment starting exactly at the second handoff goes to back end 2',
        input: inp({ ...key, seq: 2000, ack: 8500, flags: 'PA', win: 1234, payload: p100 }),
        output: fwd({ ...out2, seq: 302_000, ack: 408_500, flags: 'PA', win: 1234, payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'segment [2998, 3000) ending one byte before the third handoff goes to back end 2',
        input: inp({ ...key, seq: 2998, ack: 8500, flags: 'PA', win: 1234, payload: p2 }),
        output: fwd({ ...out2, seq: 302_998, ack: 408_500, flags: 'PA', win: 1234, payload: p2 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'segment [2999, 3001) straddling the third handoff goes to back end 3 (ack 8500 clamped to 9000)',
        input: inp({ ...key, seq: 2999, ack: 8500, flags: 'PA', win: 1234, payload: p2 }),
        output: fwd({ ...out3, seq: 502_999, ack: 609_000, flags: 'PA', win: 1234, payload: p2 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'empty ACK at seq 3000 goes to back end 3',
        input: inp({ ...key, seq: 3000, ack: 9100, win: 1234 }),
        output: fwd({ ...out3, seq: 503_000, ack: 609_100, win: 1234 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: "SACK edges on a later handoff move by that handoff's ack delta (+600_000)",
        input: inp({ ...key, seq: 3000, ack: 9100, win: 1234, opts: sack([9300, 9400], [9200, 9250]) }),
        output: fwd({
          ...out3,
          seq: 503_000,
          ack: 609_100,
          win: 1234,
          opts: sack([609_300, 609_400], [609_200, 609_250]),
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'empty ACK at seq 2999 goes to back end 2 (empty segments select by seq)',
        input: inp({ ...key, seq: 2999, ack: 8100, win: 1234 }),
        output: fwd({ ...out2, seq: 302_999, ack: 408_100, win: 1234 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'segment far past the last handoff goes to back end 3',
        input: inp({ ...key, seq: 1_000_000, ack: 100_000, flags: 'PA', win: 1234, payload: p20 }),
        output: fwd({ ...out3, seq: 1_500_000, ack: 700_000, flags: 'PA', win: 1234, payload: p20 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'keepalive probe (empty, seq one before the first handoff) goes to back end 1, which answers it',
        input: inp({ ...key, seq: 999, ack: 5000, win: 1234 }),
        output: fwd({ ...out1, seq: 100_999, ack: 205_000, win: 1234 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'retransmission wholly before the first handoff goes to back end 1 (old data, it re-acks)',
        input: inp({ ...key, seq: 900, ack: 5000, flags: 'PA', win: 1234, payload: p100 }),
        output: fwd({ ...out1, seq: 100_900, ack: 205_000, flags: 'PA', win: 1234, payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'a client entry without handoffs drops (no_leg), untouched',
        input: inp({ ...emptyKey, seq: 1000, ack: 5000, flags: 'PA', payload: p20 }),
        verdict: 'DROP',
        reason: 'no_leg',
      },
      {
        name: 'back end 2 replies to the client through its own entry',
        input: inp({ ...be2Key, seq: 408_000, ack: 302_100, flags: 'PA', win: 1234, payload: p20 }),
        output: fwd({
          src: VIP,
          dst: CLIENT,
          sport: 80,
          dport: 40100,
          seq: 8000,
          ack: 2100,
          flags: 'PA',
          win: 1234,
          payload: p20,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
    ]);
  });

  // ================================================================ unknown, blocked, not for us
  describe('unknown, blocked and foreign packets', () => {
    // The entries of step 1 of a splice: the translation is known, the state is BLOCK.
    const plan = planSplice(
      4n,
      leg1({ remote: { ip: CLIENT, port: 40200 } }),
      leg2({ local: { ip: LB, port: 50200 } }),
    );
    const dp = datapath(() => [
      [plan.clientKey, { ...plan.client, state: FlowState.BLOCK }],
      [plan.backendKey, { ...plan.backend, state: FlowState.BLOCK }],
    ]);
    const c2b = { src: CLIENT, dst: VIP, sport: 40200, dport: 80 };
    const b2c = { src: BE1, dst: LB, sport: 8080, dport: 50200 };

    fixtures(dp, [
      {
        name: 'blocked client flow: dropped untouched',
        input: inp({ ...c2b, seq: 10_000, ack: 500_000, flags: 'PA', opts: ts(1_050, 50_000), payload: REQ }),
        verdict: 'DROP',
        reason: 'blocked',
      },
      {
        name: 'blocked back-end flow: dropped untouched',
        input: inp({ ...b2c, seq: 900_000, ack: 70_000, flags: 'PA', payload: RESP }),
        verdict: 'DROP',
        reason: 'blocked',
      },
      {
        name: 'blocked client FIN (no data): dropped untouched',
        input: inp({ ...c2b, seq: 10_000, ack: 500_000, flags: 'FA', opts: ts(1_050, 50_000) }),
        verdict: 'DROP',
        reason: 'blocked',
      },
      {
        name: 'blocked back-end RST: dropped untouched',
        input: inp({ ...b2c, seq: 900_000, ack: 0, flags: 'R', win: 0 }),
        verdict: 'DROP',
        reason: 'blocked',
      },
      {
        name: 'blocked client SYN: dropped untouched',
        input: inp({ ...c2b, seq: 12_345, flags: 'S', opts: [{ kind: 'mss', value: 1460 }] }),
        verdict: 'DROP',
        reason: 'blocked',
      },
      {
        name: 'blocked client pure ACK: passed to the LB socket untouched (blocked_ack)',
        input: inp({ ...c2b, seq: 10_000, ack: 500_000, opts: ts(1_050, 50_000) }),
        verdict: 'PASS',
        reason: 'blocked_ack',
      },
      {
        name: 'blocked back-end pure ACK with SACK: passed untouched (blocked_ack)',
        input: inp({ ...b2c, seq: 900_000, ack: 70_000, opts: [...ts(3_000_000, 200_000), ...sack([70_100, 70_200])] }),
        verdict: 'PASS',
        reason: 'blocked_ack',
      },
      {
        name: 'blocked data segment with malformed options: still "blocked", untouched',
        input: inp({
          ...c2b,
          seq: 10_000,
          ack: 500_000,
          opts: ts(1, 2),
          payload: 'x',
          corrupt: { badOptionLength: true },
        }),
        verdict: 'DROP',
        reason: 'blocked',
      },
      {
        name: 'unknown flow (other client port): passed untouched',
        input: inp({
          ...c2b,
          sport: 40999,
          seq: 10_000,
          ack: 500_000,
          flags: 'PA',
          opts: ts(1_050, 50_000),
          payload: REQ,
        }),
        verdict: 'PASS',
        reason: 'no_flow',
      },
      {
        name: 'reverse direction of a client entry (VIP -> client) is not a flow: passed untouched',
        input: inp({
          src: VIP,
          dst: CLIENT,
          sport: 80,
          dport: 40200,
          seq: 500_000,
          ack: 10_000,
          flags: 'PA',
          payload: RESP,
        }),
        verdict: 'PASS',
        reason: 'no_flow',
      },
      {
        name: 'same ports over IPv6: passed untouched',
        input: inp({ src: CLIENT6, dst: VIP6, sport: 40200, dport: 80, seq: 10_000, ack: 500_000 }),
        verdict: 'PASS',
        reason: 'no_flow',
      },
      {
        name: 'unknown flow with malformed options: passed untouched (options are only parsed for spliced flows)',
        input: inp({
          ...c2b,
          sport: 40999,
          seq: 10_000,
          ack: 500_000,
          opts: ts(1, 2),
          corrupt: { badOptionLength: true },
        }),
        verdict: 'PASS',
        reason: 'no_flow',
      },
      {
        name: 'UDP: passed untouched',
        input: {
          eth: IN_ETH,
          ip: { version: 4, src: CLIENT, dst: VIP },
          udp: { sport: 40200, dport: 80 },
          payload: 'x',
        },
        verdict: 'PASS',
        reason: 'not_tcp',
      },
      {
        name: 'IPv4 fragment of a blocked tuple: passed untouched (fragment)',
        input: {
          ...inp({ ...c2b, seq: 10_000, ack: 500_000, payload: REQ }),
          ip: { version: 4, src: CLIENT, dst: VIP, mf: true },
        },
        verdict: 'PASS',
        reason: 'fragment',
      },
      {
        name: 'ARP: passed untouched (not_ip)',
        input: Buffer.concat([Buffer.from('ffffffffffff02000000000a0806', 'hex'), Buffer.alloc(46)]),
        verdict: 'PASS',
        reason: 'not_ip',
      },
    ]);
  });

  // ================================================================ hold + control program
  describe('a held client entry and the control program (a later handoff)', () => {
    const key = { src: CLIENT, dst: VIP, sport: 40300, dport: 80 };
    const out1 = { src: LB, dst: BE1, sport: 50300, dport: 8080 };
    const out2 = { src: LB, dst: BE2, sport: 50301, dport: 8080 };
    const be1Key = { src: BE1, dst: LB, sport: 8080, dport: 50300 };
    const fullKey = { src: CLIENT, dst: VIP, sport: 40301, dport: 80 };
    const h0 = { seqStart: 1000, ackFloor: 5000, x: xlate(out1, { seqDelta: 100_000, ackDelta: 200_000 }) };
    const h1 = { seqStart: 1100, ackFloor: 8000, x: xlate(out2, { seqDelta: 300_000, ackDelta: 400_000 }) };
    const dp = datapath(() => [
      [key, { connId: 30n, state: FlowState.FORWARD, kind: FlowKind.CLIENT, legs: [h0] }],
      [
        be1Key,
        {
          connId: 30n,
          state: FlowState.FORWARD,
          kind: FlowKind.BACKEND,
          legs: [{ seqStart: 0, ackFloor: 0, x: xlate({ src: VIP, dst: CLIENT, sport: 80, dport: 40300 }) }],
        },
      ],
      [
        fullKey,
        {
          connId: 31n,
          state: FlowState.FORWARD,
          kind: FlowKind.CLIENT,
          legs: Array.from({ length: 8 }, (_, i) => ({ ...h0, seqStart: 1000 + i })),
        },
      ],
    ]);
    const ctl = (req: CtlRequest): number => {
      const { result, nLegs } = decodeCtlResult(runSyscallProgram(dp.obj().program('baton_ctl'), encodeCtl(req)).ctx);
      if (result < 0) throw new BpfError('flow_control', -result);
      return nLegs;
    };
    const p100 = Buffer.alloc(100, 0x41);
    const run = (f: Fixture) => runFixture(dp.obj(), ns, f);

    test('control on a key that is not in the table: ENOENT, nothing created', () => {
      const k = { ...key, sport: 40399 };
      assert.throws(
        () => ctl({ op: CtlOp.SET_STATE, key: k, state: FlowState.HOLD }),
        (e: unknown) => e instanceof BpfError && e.code === 'ENOENT',
      );
      assert.equal(dp.obj().map('baton_flows').lookup(encodeFlowKey(k)), undefined);
    });
    test('before the hold: the request goes to back end 1 and is tracked', () => {
      run({
        name: 'req',
        input: inp({ ...key, seq: 1000, ack: 5000, flags: 'PA', payload: p100 }),
        output: fwd({ ...out1, seq: 101_000, ack: 205_000, flags: 'PA', payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      assert.equal(dp.flow(key).track.seqEnd, 1100);
    });
    test('SET_STATE HOLD changes the state in place: the track survives', () => {
      assert.equal(ctl({ op: CtlOp.SET_STATE, key, state: FlowState.HOLD }), 1);
      const f = dp.flow(key);
      assert.equal(f.state, FlowState.HOLD);
      assert.equal(f.track.seqEnd, 1100);
      assert.equal(f.track.packets, 1n);
    });
    fixtures(dp, [
      {
        name: 'held: client data dropped untouched (held)',
        input: inp({ ...key, seq: 1100, ack: 6000, flags: 'PA', payload: p100 }),
        verdict: 'DROP',
        reason: 'held',
      },
      {
        name: 'held: client FIN dropped untouched (held)',
        input: inp({ ...key, seq: 1100, ack: 6000, flags: 'FA' }),
        verdict: 'DROP',
        reason: 'held',
      },
      {
        name: 'held: client pure ACK still reaches back end 1, translated',
        input: inp({ ...key, seq: 1100, ack: 6000, flags: 'A' }),
        output: fwd({ ...out1, seq: 101_100, ack: 206_000, flags: 'A' }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
    ]);
    test('held data is not tracked: seq_end stays at the boundary', () => {
      assert.equal(dp.flow(key).track.seqEnd, 1100);
    });
    test('APPEND_LEG of a second leg before its list exists: ENOSPC, entry unchanged', () => {
      assert.throws(
        () => ctl({ op: CtlOp.APPEND_LEG, key, state: FlowState.FORWARD, leg: h1 }),
        (e: unknown) => e instanceof BpfError && e.code === 'ENOSPC',
      );
      const f = dp.flow(key);
      assert.equal(f.state, FlowState.HOLD);
      assert.equal(f.legs.length, 1);
    });
    test('APPEND_LEG adds back end 2 and forwards again, track kept; both legs now in the out-of-line list', () => {
      const [first] = dp.flow(key).legs;
      assert.equal(FlowTable.of(dp.obj()).appendLeg(key, h1, FlowState.FORWARD), 2);
      const f = dp.flow(key);
      assert.equal(f.state, FlowState.FORWARD);
      assert.deepEqual(f.legs, [first, h1]);
      assert.equal(f.track.seqEnd, 1100);
      const list = dp.obj().map('baton_legs').lookup(encodeConnId(f.connId));
      assert.ok(list, 'the leg list was created under the conn_id');
    });
    fixtures(dp, [
      {
        name: 'after the append: the next request goes to back end 2, ack raised to its floor',
        input: inp({ ...key, seq: 1100, ack: 6000, flags: 'PA', payload: p100 }),
        output: fwd({ ...out2, seq: 301_100, ack: 408_000, flags: 'PA', payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'after the append: a retransmission of the old request still goes to back end 1',
        input: inp({ ...key, seq: 1000, ack: 6000, flags: 'PA', payload: p100 }),
        output: fwd({ ...out1, seq: 101_000, ack: 206_000, flags: 'PA', payload: p100 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
    ]);
    test('APPEND_LEG on a full list: E2BIG, entry unchanged', () => {
      assert.throws(
        () => ctl({ op: CtlOp.APPEND_LEG, key: fullKey, state: FlowState.FORWARD, leg: h1 }),
        (e: unknown) => e instanceof BpfError && e.code === 'E2BIG',
      );
      assert.equal(dp.flow(fullKey).legs.length, 8);
    });
    test('APPEND_LEG on a back-end entry: EINVAL', () => {
      assert.throws(
        () => ctl({ op: CtlOp.APPEND_LEG, key: be1Key, state: FlowState.FORWARD, leg: h1 }),
        (e: unknown) => e instanceof BpfError && e.code === 'EINVAL',
      );
    });
    test('removing an entry with a leg list removes the list too', () => {
      const lists = dp.obj().map('baton_legs');
      const table = FlowTable.of(dp.obj());
      for (const [k, id] of [
        [key, 30n],
        [fullKey, 31n],
      ] as const) {
        const connId = dp.flow(k).connId;
        assert.equal(connId, id);
        assert.ok(lists.lookup(encodeConnId(connId)), 'list present before');
        assert.equal(table.remove(k), true);
        assert.equal(lists.lookup(encodeConnId(connId)), undefined, 'list gone with its entry');
      }
    });
  });

  // ================================================================ SYN on an entry's tuple
  describe('a SYN on a connection-table entry (reused client ports, RFC 5961 §4)', () => {
    /*
     * Every connection here: client 198.18.0.10:<port> -> VIP:80, leg 2
     * LB:<port+10000> <-> BE1:8080. Client -> back end: seq +100_000, ack
     * +200_000; back end -> client: seq -200_000, ack -100_000. Tracks are
     * installed as the datapath would have left them (client space).
     */
    const TO_BE = { seqDelta: 100_000, ackDelta: 200_000 };
    const TO_C = { seqDelta: TWO32 - 200_000, ackDelta: TWO32 - 100_000 };
    const V4 = { client: CLIENT, vip: VIP, lb: LB, be: BE1 };
    const V6 = { client: CLIENT6, vip: VIP6, lb: LB6, be: BE6 };
    type Addrs = typeof V4;
    const ck = (port: number, a: Addrs = V4): FlowKey => ({ src: a.client, dst: a.vip, sport: port, dport: 80 });
    const bk = (port: number, a: Addrs = V4): FlowKey => ({ src: a.be, dst: a.lb, sport: 8080, dport: port + 10_000 });
    const track = (t: Partial<Track> & Pick<Track, 'flags'>): Track => ({
      packets: 5n,
      bytes: 500n,
      lastNs: 1n,
      seqEnd: 0,
      ackMax: 0,
      finSeq: 0,
      ...t,
    });
    const SEEN = TRACK_F_SEEN;
    function conn(
      id: bigint,
      port: number,
      c: Track | undefined,
      b: Track | undefined,
      backend = true,
      a: Addrs = V4,
    ): Array<[FlowKey, Flow]> {
      const out: Array<[FlowKey, Flow]> = [
        [
          ck(port, a),
          {
            connId: id,
            state: FlowState.FORWARD,
            kind: FlowKind.CLIENT,
            legs: [
              {
                seqStart: 1000,
                ackFloor: 4000,
                x: xlate({ src: a.lb, dst: a.be, sport: port + 10_000, dport: 8080 }, TO_BE),
              },
            ],
            ...(c ? { track: c } : {}),
          },
        ],
      ];
      if (backend) {
        out.push([
          bk(port, a),
          {
            connId: id,
            state: FlowState.FORWARD,
            kind: FlowKind.BACKEND,
            legs: [{ seqStart: 0, ackFloor: 0, x: xlate({ src: a.vip, dst: a.client, sport: 80, dport: port }, TO_C) }],
            ...(b ? { track: b } : {}),
          },
        ]);
      }
      return out;
    }
    // 40400: closed cleanly: back end's FIN at 5000 (client space), acked 5001; client's FIN at 2000, acked 2001.
    const FINISHED = 40400;
    // 40401: reset by the back end, nothing else finished.
    const RESET = 40401;
    // 40402: live: client sent up to 3000, acknowledged 7000; back end sent up to 7000, acknowledged 3000.
    const LIVE = 40402;
    // 40403: live, spliced a moment ago: no segment seen yet either way.
    const FRESH = 40403;
    // 40404: client entry with a RST seen, its back-end entry already removed.
    const RESET_ALONE = 40404;
    // 40405: the client's FIN acknowledged, the back end's not yet (closing): still live.
    const CLOSING = 40405;
    // 40406: live like LIVE, for segments that are not a SYN alone. 40410: live, over IPv6.
    const LIVE2 = 40406;
    const LIVE6 = 40410;
    const liveTracks = (): [Track, Track] => [
      track({ flags: SEEN, seqEnd: 3000, ackMax: 7000 }),
      track({ flags: SEEN, seqEnd: 7000, ackMax: 3000 }),
    ];
    const dp = datapath(() => [
      ...conn(
        60n,
        FINISHED,
        track({ flags: SEEN | TRACK_F_FIN, seqEnd: 2001, finSeq: 2000, ackMax: 5001 }),
        track({ flags: SEEN | TRACK_F_FIN, seqEnd: 5001, finSeq: 5000, ackMax: 2001 }),
      ),
      ...conn(
        61n,
        RESET,
        track({ flags: SEEN, seqEnd: 3000, ackMax: 7000 }),
        track({ flags: SEEN | TRACK_F_RST, seqEnd: 7000, ackMax: 3000 }),
      ),
      ...conn(62n, LIVE, ...liveTracks()),
      ...conn(66n, LIVE2, ...liveTracks()),
      ...conn(67n, LIVE6, ...liveTracks(), true, V6),
      ...conn(63n, FRESH, undefined, undefined),
      ...conn(64n, RESET_ALONE, track({ flags: SEEN | TRACK_F_RST, seqEnd: 3000, ackMax: 7000 }), undefined, false),
      ...conn(
        65n,
        CLOSING,
        track({ flags: SEEN | TRACK_F_FIN, seqEnd: 2001, finSeq: 2000, ackMax: 5001 }),
        track({ flags: SEEN | TRACK_F_FIN, seqEnd: 5001, finSeq: 5000, ackMax: 2000 }),
      ),
    ]);
    const run = (f: Fixture) => runFixture(dp.obj(), ns, f);
    const synOpts: TcpOption[] = [
      { kind: 'mss', value: 1460 },
      { kind: 'sackPermitted' },
      { kind: 'timestamp', tsval: 77_000, tsecr: 0 },
      NOP,
      { kind: 'wscale', shift: 7 },
    ];
    const syn = (port: number, seq = 900_000_000, a: Addrs = V4): PacketSpec =>
      inp({ ...ck(port, a), seq, flags: 'S', win: 64_240, opts: synOpts });
    /** The challenge ACK the program makes of a SYN: back to the sender, no options, fresh IP header. */
    const challenge = (k: FlowKey, seq: number, ack: number): PacketSpec => ({
      eth: { src: IN_ETH.dst, dst: IN_ETH.src },
      ip: k.src.includes(':')
        ? { version: 6, src: k.dst, dst: k.src, hopLimit: 64 }
        : { version: 4, src: k.dst, dst: k.src, id: 0, df: true, ttl: 64 },
      tcp: { sport: k.dport, dport: k.sport, seq, ack, flags: 'A', window: 0, options: [] },
    });
    const trackOf = (k: FlowKey) => dp.flow(k).track;

    test('finished (both FINs acknowledged): the SYN goes to the stack untouched, the entry is superseded, tracks untouched', () => {
      const before = trackOf(ck(FINISHED));
      run({ name: 'SYN on a finished entry', input: syn(FINISHED), verdict: 'PASS', reason: 'syn_on_finished' });
      assert.equal(dp.flow(ck(FINISHED)).state, FlowState.SUPERSEDED);
      assert.deepEqual(trackOf(ck(FINISHED)), before);
    });
    test("superseded: the new connection's handshake ACK, request and FIN pass untouched and untracked", () => {
      const before = trackOf(ck(FINISHED));
      run({
        name: 'handshake ACK',
        input: inp({ ...ck(FINISHED), seq: 900_000_001, ack: 33_000_001, opts: ts(77_010, 12_345) }),
        verdict: 'PASS',
        reason: 'superseded',
      });
      run({
        name: 'request',
        input: inp({
          ...ck(FINISHED),
          seq: 900_000_001,
          ack: 33_000_001,
          flags: 'PA',
          opts: ts(77_011, 12_345),
          payload: REQ,
        }),
        verdict: 'PASS',
        reason: 'superseded',
      });
      run({ name: 'retransmitted SYN', input: syn(FINISHED), verdict: 'PASS', reason: 'superseded' });
      assert.deepEqual(trackOf(ck(FINISHED)), before);
    });
    test("the finished connection's back-end entry is not superseded by the client's SYN (its tuple is not reused)", () => {
      assert.equal(dp.flow(bk(FINISHED)).state, FlowState.FORWARD);
    });
    test('reset (a RST in either direction): the SYN goes to the stack untouched', () => {
      run({ name: 'SYN after a RST', input: syn(RESET), verdict: 'PASS', reason: 'syn_on_finished' });
      assert.equal(dp.flow(ck(RESET)).state, FlowState.SUPERSEDED);
    });
    test("reset, the other direction's entry already gone: the SYN goes to the stack untouched", () => {
      run({
        name: 'SYN after a RST, no back-end entry',
        input: syn(RESET_ALONE),
        verdict: 'PASS',
        reason: 'syn_on_finished',
      });
    });
    test("live: the SYN draws a challenge ACK (seq = client's last ACK - 1, ack = back end's last ACK), never a translated SYN", () => {
      const before = trackOf(ck(LIVE));
      // seq 7000 - 1 (the client acknowledged 7000), ack 3000 (the back end acknowledged 3000).
      run({
        name: 'SYN on a live entry',
        input: syn(LIVE),
        verdict: 'TX',
        reason: 'syn_challenge_ack',
        output: challenge(ck(LIVE), 6999, 3000),
      });
      assert.equal(dp.flow(ck(LIVE)).state, FlowState.FORWARD);
      assert.deepEqual(trackOf(ck(LIVE)), before);
    });
    test('live: a second SYN within 500 ms is dropped untouched (one challenge ACK per entry per 500 ms)', () => {
      run({
        name: 'second SYN on a live entry',
        input: syn(LIVE, 900_000_000),
        verdict: 'DROP',
        reason: 'syn_on_live',
      });
    });
    test("live, the peer RSTs with the challenge's ACK number: translated to the back end's rcv_nxt, and the next SYN passes", () => {
      // RST seq 3000 -> 3000 + 100_000 toward the back end: exactly what it acknowledged.
      run({
        name: 'RST drawn by the challenge ACK',
        input: inp({ ...ck(LIVE), seq: 3000, ack: 0, flags: 'R', win: 0 }),
        output: fwd({ src: LB, dst: BE1, sport: LIVE + 10_000, dport: 8080, seq: 103_000, ack: 0, flags: 'R', win: 0 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      run({ name: 'SYN retransmitted after the RST', input: syn(LIVE), verdict: 'PASS', reason: 'syn_on_finished' });
    });
    test('closing (one FIN not yet acknowledged) is live: challenge ACK', () => {
      // seq 5001 - 1, ack 2000 (the back end has not acknowledged the client's FIN).
      run({
        name: 'SYN on a closing entry',
        input: syn(CLOSING),
        verdict: 'TX',
        reason: 'syn_challenge_ack',
        output: challenge(ck(CLOSING), 5000, 2000),
      });
    });
    test('live, nothing seen yet to number an answer with: dropped untouched', () => {
      run({ name: 'SYN on a fresh entry', input: syn(FRESH), verdict: 'DROP', reason: 'syn_on_live' });
    });
    test('a SYN from the back end on a live back-end entry: challenge ACK toward it, in its own sequence space', () => {
      // seq: its last ACK 3000 (client space) + 100_000 - 1; ack: the client's last ACK 7000 + 200_000.
      const be = bk(CLOSING);
      run({
        name: 'back-end SYN on a live back-end entry',
        input: inp({ ...be, seq: 5_555, flags: 'S', opts: [{ kind: 'mss', value: 1460 }] }),
        verdict: 'TX',
        reason: 'syn_challenge_ack',
        // CLOSING's back end acknowledged 2000 -> 102_000, minus 1; the client acknowledged 5001 -> 205_001.
        output: challenge(be, 101_999, 205_001),
      });
    });
    test('live over IPv6: challenge ACK (checksum over the IPv6 pseudo-header)', () => {
      run({
        name: 'IPv6 SYN on a live entry',
        input: syn(LIVE6, 1, V6),
        verdict: 'TX',
        reason: 'syn_challenge_ack',
        output: challenge(ck(LIVE6, V6), 6999, 3000),
      });
    });
    test('SYN|ACK and ordinary segments of a live connection are translated as before', () => {
      const out = { src: LB, dst: BE1, sport: LIVE2 + 10_000, dport: 8080 };
      // seq 3000 + 100_000, ack 7000 + 200_000, window as it came (both scales 0).
      run({
        name: 'client SYN|ACK on a live entry',
        input: inp({ ...ck(LIVE2), seq: 3000, ack: 7000, flags: 'SA' }),
        output: fwd({ ...out, seq: 103_000, ack: 207_000, flags: 'SA' }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      run({
        name: 'client data on a live entry',
        input: inp({ ...ck(LIVE2), seq: 3000, ack: 7000, flags: 'PA', payload: REQ }),
        output: fwd({ ...out, seq: 103_000, ack: 207_000, flags: 'PA', payload: REQ }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      assert.equal(dp.flow(ck(LIVE2)).state, FlowState.FORWARD);
    });
  });

  // ================================================================ what the tracks record
  describe('tracks record only what was forwarded, and a RST only when exact', () => {
    /*
     * Every connection here: client 198.18.0.10:<port> -> VIP:80, leg 2
     * LB:<port+10000> <-> <back end>:8080, handoff seqStart 1000, ackFloor
     * 4000. Client -> back end: seq +100_000, ack +200_000; back end ->
     * client: seq -200_000, ack -100_000. Window scales 0, so the largest
     * window either side can advertise (the RST window) is 65_535.
     * Tracks are in client sequence space.
     */
    const TO_BE = { seqDelta: 100_000, ackDelta: 200_000 };
    const TO_C = { seqDelta: TWO32 - 200_000, ackDelta: TWO32 - 100_000 };
    const ck = (port: number): FlowKey => ({ src: CLIENT, dst: VIP, sport: port, dport: 80 });
    const bk = (port: number, be = BE1): FlowKey => ({ src: be, dst: LB, sport: 8080, dport: port + 10_000 });
    const toBe = (port: number, be = BE1) => ({ src: LB, dst: be, sport: port + 10_000, dport: 8080 });
    const toC = (port: number, client = CLIENT) => ({ src: VIP, dst: client, sport: 80, dport: port });
    const track = (t: Partial<Track>): Track => ({
      packets: 5n,
      bytes: 500n,
      lastNs: 1n,
      seqEnd: 0,
      ackMax: 0,
      finSeq: 0,
      flags: 0,
      ...t,
    });
    /** Live: the client sent up to 3000 and acknowledged 7000; the back end sent up to 7000 and acknowledged 3000. */
    const live = (): [Track, Track] => [
      track({ flags: TRACK_F_SEEN, seqEnd: 3000, ackMax: 7000 }),
      track({ flags: TRACK_F_SEEN, seqEnd: 7000, ackMax: 3000 }),
    ];
    interface Conn {
      tracks?: [Track | undefined, Track | undefined];
      state?: Flow['state'];
      be?: string;
      client?: string;
      backend?: boolean;
      handoffs?: boolean;
    }
    function conn(id: bigint, port: number, o: Conn = {}): Array<[FlowKey, Flow]> {
      const [c, b] = o.tracks ?? [undefined, undefined];
      const state = o.state ?? FlowState.FORWARD;
      const legs = o.handoffs === false ? [] : [{ seqStart: 1000, ackFloor: 4000, x: xlate(toBe(port, o.be), TO_BE) }];
      const out: Array<[FlowKey, Flow]> = [
        [ck(port), { connId: id, state, kind: FlowKind.CLIENT, legs, ...(c ? { track: c } : {}) }],
      ];
      if (o.backend !== false) {
        const x = xlate(toC(port, o.client), TO_C);
        out.push([
          bk(port, o.be),
          {
            connId: id,
            state: state === FlowState.HOLD ? FlowState.FORWARD : state,
            kind: FlowKind.BACKEND,
            legs: [{ seqStart: 0, ackFloor: 0, x }],
            ...(b ? { track: b } : {}),
          },
        ]);
      }
      return out;
    }
    const TRACKED = 40500; // live, for drops, RSTs and forwarded segments both ways
    const FRESH = 40501; // spliced a moment ago: no segment seen either way
    const ALONE = 40502; // live client entry whose back-end entry is gone
    const BLACKHOLE = 40503; // both directions translate to blackholed addresses
    const VIA_STACK = 40504; // the back end's neighbour is not resolved
    const HELD = 40505; // client entry in HOLD
    const BLOCKED = 40506; // both entries in BLOCK
    const NO_LEG = 40507; // client entry with an empty handoff list
    const BH_BE = '198.18.9.9';
    const BH_CLIENT = '198.18.9.10';
    const UNRESOLVED_BE = '198.18.9.20';
    const dp = datapath(() => [
      ...conn(70n, TRACKED, { tracks: live() }),
      ...conn(71n, FRESH),
      ...conn(72n, ALONE, { tracks: live(), backend: false }),
      ...conn(73n, BLACKHOLE, { tracks: live(), be: BH_BE, client: BH_CLIENT }),
      ...conn(74n, VIA_STACK, { tracks: live(), be: UNRESOLVED_BE }),
      ...conn(75n, HELD, { tracks: live(), state: FlowState.HOLD }),
      ...conn(76n, BLOCKED, { tracks: live(), state: FlowState.BLOCK }),
      ...conn(77n, NO_LEG, { tracks: live(), handoffs: false, backend: false }),
      ...conn(78n, ALONE + 100, { tracks: live() }),
    ]);
    before(() => {
      // Routes only this block uses, in the fixture namespace: the blackholed
      // addresses, and one on-link address without a neighbour entry.
      const ip = (...args: string[]) => execFileSync('ip', ['-n', ns.name, ...args]);
      ip('route', 'add', 'blackhole', `${BH_BE}/32`);
      ip('route', 'add', 'blackhole', `${BH_CLIENT}/32`);
      ip('route', 'add', `${UNRESOLVED_BE}/32`, 'dev', FX.dev);
    });
    const run = (f: Fixture) => runFixture(dp.obj(), ns, f);
    const trackOf = (k: FlowKey) => dp.flow(k).track;
    /** Runs f and asserts that it left the entry's track exactly as it was. */
    const unchanged = (k: FlowKey, f: Fixture) => {
      const before = trackOf(k);
      run(f);
      assert.deepEqual(trackOf(k), before, `${f.name}: track unchanged`);
    };
    /** Runs f (one forwarded frame) and asserts the track moved by exactly `moved` (lastNs aside). */
    const advanced = (k: FlowKey, f: Fixture, moved: Partial<Track>) => {
      const before = trackOf(k);
      const out = run(f);
      const after = trackOf(k);
      assert.deepEqual(
        { ...after, lastNs: 0n },
        { ...before, packets: before.packets + 1n, bytes: before.bytes + BigInt(out.length), ...moved, lastNs: 0n },
        `${f.name}: track`,
      );
      assert.ok(after.lastNs >= before.lastNs, `${f.name}: lastNs`);
    };
    const badSack: TcpOption[] = [NOP, NOP, { kind: 'raw', type: 5, data: Buffer.alloc(10, 1) }];
    const c2b = (port: number, s: Omit<Seg, 'src' | 'dst' | 'sport' | 'dport'>) => inp({ ...ck(port), ...s });
    const b2c = (port: number, s: Omit<Seg, 'src' | 'dst' | 'sport' | 'dport'>, be = BE1) =>
      inp({ ...bk(port, be), ...s });

    // ---- dropped: the track stays as it was
    test('client data + FIN with malformed options: dropped (bad_tcp_options), track unchanged', () => {
      unchanged(ck(TRACKED), {
        name: 'bad options c->b',
        input: c2b(TRACKED, { seq: 3000, ack: 7000, flags: 'FPA', opts: badSack, payload: REQ }),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      });
    });
    test('back-end data + FIN with malformed options: dropped (bad_tcp_options), track unchanged', () => {
      unchanged(bk(TRACKED), {
        name: 'bad options b->c',
        input: b2c(TRACKED, { seq: 207_000, ack: 103_000, flags: 'FPA', opts: badSack, payload: RESP }),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      });
    });
    test('client data + FIN toward a blackholed back end: dropped (fib_blackhole), track unchanged', () => {
      unchanged(ck(BLACKHOLE), {
        name: 'blackhole c->b',
        input: c2b(BLACKHOLE, { seq: 3000, ack: 7000, flags: 'FPA', payload: REQ }),
        // Rewritten before the FIB said no; the frame goes nowhere.
        output: spec({ ...toBe(BLACKHOLE, BH_BE), seq: 103_000, ack: 207_000, flags: 'FPA', payload: REQ }, IN_ETH),
        verdict: 'DROP',
        reason: 'fib_blackhole',
      });
    });
    test('back-end data + FIN toward a blackholed client: dropped (fib_blackhole), track unchanged', () => {
      unchanged(bk(BLACKHOLE, BH_BE), {
        name: 'blackhole b->c',
        input: b2c(BLACKHOLE, { seq: 207_000, ack: 103_000, flags: 'FPA', payload: RESP }, BH_BE),
        output: spec({ ...toC(BLACKHOLE, BH_CLIENT), seq: 7000, ack: 3000, flags: 'FPA', payload: RESP }, IN_ETH),
        verdict: 'DROP',
        reason: 'fib_blackhole',
      });
    });
    test('held client data + FIN: dropped (held), track unchanged', () => {
      unchanged(ck(HELD), {
        name: 'held data',
        input: c2b(HELD, { seq: 3000, ack: 7000, flags: 'FPA', payload: REQ }),
        verdict: 'DROP',
        reason: 'held',
      });
    });
    test('blocked data and FIN both ways, and a blocked pure ACK passed to the LB socket: tracks unchanged', () => {
      unchanged(ck(BLOCKED), {
        name: 'blocked c->b',
        input: c2b(BLOCKED, { seq: 3000, ack: 7000, flags: 'FPA', payload: REQ }),
        verdict: 'DROP',
        reason: 'blocked',
      });
      unchanged(bk(BLOCKED), {
        name: 'blocked b->c',
        input: b2c(BLOCKED, { seq: 207_000, ack: 103_000, flags: 'FPA', payload: RESP }),
        verdict: 'DROP',
        reason: 'blocked',
      });
      // The LB's socket takes it, not the entry: the splice has not begun forwarding.
      unchanged(ck(BLOCKED), {
        name: 'blocked pure ACK',
        input: c2b(BLOCKED, { seq: 3000, ack: 7000 }),
        verdict: 'PASS',
        reason: 'blocked_ack',
      });
    });
    test('a client entry without handoffs: dropped (no_leg), track unchanged', () => {
      unchanged(ck(NO_LEG), {
        name: 'no handoff',
        input: c2b(NO_LEG, { seq: 3000, ack: 7000, flags: 'FPA', payload: REQ }),
        verdict: 'DROP',
        reason: 'no_leg',
      });
    });

    // ---- RSTs outside the receiver's window: dropped untouched, not recorded
    test("client RST below the back end's last ACK (2999 < 3000): dropped (rst_out_of_window), not recorded", () => {
      unchanged(ck(TRACKED), {
        name: 'client RST below',
        input: c2b(TRACKED, { seq: 2999, flags: 'R', win: 0 }),
        verdict: 'DROP',
        reason: 'rst_out_of_window',
      });
    });
    test("client RST past the back end's largest window (3000 + 65_536): dropped (rst_out_of_window), not recorded", () => {
      unchanged(ck(TRACKED), {
        name: 'client RST past',
        input: c2b(TRACKED, { seq: 68_536, flags: 'R', win: 0 }),
        verdict: 'DROP',
        reason: 'rst_out_of_window',
      });
    });
    test("back-end RST below and past the client's window: dropped (rst_out_of_window), not recorded", () => {
      // Client space 6999 and 7000 + 65_536, +200_000 in the back end's.
      unchanged(bk(TRACKED), {
        name: 'back-end RST below',
        input: b2c(TRACKED, { seq: 206_999, flags: 'R', win: 0 }),
        verdict: 'DROP',
        reason: 'rst_out_of_window',
      });
      unchanged(bk(TRACKED), {
        name: 'back-end RST past',
        input: b2c(TRACKED, { seq: 272_536, ack: 103_000, flags: 'RA', win: 0 }),
        verdict: 'DROP',
        reason: 'rst_out_of_window',
      });
    });

    // ---- RSTs inside the window but not exact: forwarded (the receiver answers with a challenge ACK), not recorded
    test("client RST inside the back end's window, not at its rcv_nxt: forwarded, counted, no RST flag, no sequence number moved", () => {
      advanced(
        ck(TRACKED),
        {
          name: 'client RST in window',
          input: c2b(TRACKED, { seq: 3100, flags: 'R', win: 0 }),
          output: fwd({ ...toBe(TRACKED), seq: 103_100, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {},
      );
      // The window's last number (3000 + 65_535) is still inside.
      advanced(
        ck(TRACKED),
        {
          name: 'client RST at the window edge',
          input: c2b(TRACKED, { seq: 68_535, flags: 'R', win: 0 }),
          output: fwd({ ...toBe(TRACKED), seq: 168_535, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {},
      );
    });
    test("back-end RST inside the client's window, not at its rcv_nxt: forwarded, not recorded", () => {
      advanced(
        bk(TRACKED),
        {
          name: 'back-end RST in window',
          input: b2c(TRACKED, { seq: 207_001, ack: 103_000, flags: 'RA', win: 0 }),
          output: fwd({ ...toC(TRACKED), seq: 7001, ack: 3000, flags: 'RA', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {},
      );
    });

    // ---- forwarded: the track advances
    test('forwarded client data + FIN advances the client track (seq_end 3029, FIN at 3028)', () => {
      advanced(
        ck(TRACKED),
        {
          name: 'client request + FIN',
          input: c2b(TRACKED, { seq: 3000, ack: 7000, flags: 'FPA', payload: REQ }),
          output: fwd({ ...toBe(TRACKED), seq: 103_000, ack: 207_000, flags: 'FPA', payload: REQ }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        { seqEnd: 3029, finSeq: 3028, flags: TRACK_F_SEEN | TRACK_F_FIN },
      );
    });
    test('forwarded back-end data advances the back-end track (seq_end 7038, ack 3029)', () => {
      advanced(
        bk(TRACKED),
        {
          name: 'back-end response',
          input: b2c(TRACKED, { seq: 207_000, ack: 103_029, flags: 'PA', payload: RESP }),
          output: fwd({ ...toC(TRACKED), seq: 7000, ack: 3029, flags: 'PA', payload: RESP }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        { seqEnd: 7038, ackMax: 3029 },
      );
    });
    test('a frame the stack forwards (neighbour unresolved, via_stack) is tracked', () => {
      advanced(
        ck(VIA_STACK),
        {
          name: 'via the stack',
          input: c2b(VIA_STACK, { seq: 3000, ack: 7000, flags: 'PA', payload: REQ }),
          output: spec(
            { ...toBe(VIA_STACK, UNRESOLVED_BE), seq: 103_000, ack: 207_000, flags: 'PA', payload: REQ },
            IN_ETH,
          ),
          verdict: 'PASS',
          reason: 'via_stack',
        },
        { seqEnd: 3028 },
      );
    });
    test("a held client's pure ACK is forwarded and tracked", () => {
      advanced(
        ck(HELD),
        {
          name: 'held pure ACK',
          input: c2b(HELD, { seq: 3000, ack: 7010 }),
          output: fwd({ ...toBe(HELD), seq: 103_000, ack: 207_010 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        { ackMax: 7010 },
      );
    });

    // ---- exact RSTs: forwarded and recorded
    test("client RST at the back end's last ACK (3029): forwarded and recorded", () => {
      advanced(
        ck(TRACKED),
        {
          name: 'client RST exact',
          input: c2b(TRACKED, { seq: 3029, flags: 'R', win: 0 }),
          output: fwd({ ...toBe(TRACKED), seq: 103_029, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {
          flags: TRACK_F_SEEN | TRACK_F_FIN | TRACK_F_RST,
        },
      );
    });
    test("back-end RST at the client's last ACK: forwarded and recorded", () => {
      // The client acknowledges the response (7038) first; the RST at 207_038 is then exact.
      run({
        name: 'client ACK',
        input: c2b(TRACKED, { seq: 3029, ack: 7038 }),
        output: fwd({ ...toBe(TRACKED), seq: 103_029, ack: 207_038 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      advanced(
        bk(TRACKED),
        {
          name: 'back-end RST exact',
          input: b2c(TRACKED, { seq: 207_038, flags: 'R', win: 0 }),
          output: fwd({ ...toC(TRACKED), seq: 7038, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {
          flags: TRACK_F_SEEN | TRACK_F_RST,
        },
      );
    });
    test("right after a splice (nothing seen back yet), a RST is judged by where the receiver's stream began", () => {
      // Client RST: the back end's stream of client bytes began at seqStart 1000.
      advanced(
        ck(FRESH),
        {
          name: 'fresh client RST inexact',
          input: c2b(FRESH, { seq: 1500, flags: 'R', win: 0 }),
          output: fwd({ ...toBe(FRESH), seq: 101_500, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {},
      );
      unchanged(ck(FRESH), {
        name: 'fresh client RST below',
        input: c2b(FRESH, { seq: 999, flags: 'R', win: 0 }),
        verdict: 'DROP',
        reason: 'rst_out_of_window',
      });
      advanced(
        ck(FRESH),
        {
          name: 'fresh client RST exact',
          input: c2b(FRESH, { seq: 1000, flags: 'R', win: 0 }),
          output: fwd({ ...toBe(FRESH), seq: 101_000, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {
          flags: TRACK_F_RST,
        },
      );
      // Back-end RST: the client's stream of back-end bytes began at ackFloor 4000 (client space; 204_000 in the back end's).
      advanced(
        bk(FRESH),
        {
          name: 'fresh back-end RST inexact',
          input: b2c(FRESH, { seq: 204_001, flags: 'R', win: 0 }),
          output: fwd({ ...toC(FRESH), seq: 4001, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {},
      );
      advanced(
        bk(FRESH),
        {
          name: 'fresh back-end RST exact',
          input: b2c(FRESH, { seq: 204_000, flags: 'R', win: 0 }),
          output: fwd({ ...toC(FRESH), seq: 4000, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {
          flags: TRACK_F_RST,
        },
      );
    });
    test("without the other direction's entry nothing says where the receiver stands: forwarded, not recorded", () => {
      advanced(
        ck(ALONE),
        {
          name: 'RST, no back-end entry',
          input: c2b(ALONE, { seq: 3000, flags: 'R', win: 0 }),
          output: fwd({ ...toBe(ALONE), seq: 103_000, flags: 'R', win: 0 }),
          verdict: 'REDIRECT',
          reason: 'redirect',
        },
        {},
      );
    });
    test('an unrecorded RST leaves a live connection live: a SYN on it draws a challenge ACK, not the stack', () => {
      // TRACKED-like, but fresh: a blind in-window RST first, then the SYN of a reused port.
      run({
        name: 'blind RST in window',
        input: c2b(ALONE + 100, { seq: 3100, flags: 'R', win: 0 }),
        output: fwd({ ...toBe(ALONE + 100), seq: 103_100, flags: 'R', win: 0 }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      });
      run({
        name: 'SYN after it',
        input: c2b(ALONE + 100, { seq: 900_000_000, flags: 'S', win: 64_240, opts: [{ kind: 'mss', value: 1460 }] }),
        verdict: 'TX',
        reason: 'syn_challenge_ack',
        output: {
          eth: { src: IN_ETH.dst, dst: IN_ETH.src },
          ip: { version: 4, src: VIP, dst: CLIENT, id: 0, df: true, ttl: 64 },
          // seq: the client's last ACK 7000 - 1; ack: the back end's last ACK 3000.
          tcp: { sport: 80, dport: ALONE + 100, seq: 6999, ack: 3000, flags: 'A', window: 0, options: [] },
        },
      });
    });
  });

  // ================================================================ malformed
  describe('malformed and truncated headers on a spliced tuple', () => {
    // A forwarding entry for exactly these tuples, so a parser that let any of
    // these through would rewrite them (and the fixture would show it).
    const plan = planSplice(
      5n,
      leg1({ remote: { ip: CLIENT, port: 40300 } }),
      leg2({ local: { ip: LB, port: 50300 } }),
    );
    const dp = datapath(() => [
      [plan.clientKey, plan.client],
      [plan.backendKey, plan.backend],
    ]);
    const c2b = { src: CLIENT, dst: VIP, sport: 40300, dport: 80 };
    const base: Seg = { ...c2b, seq: 10_000, ack: 500_000, flags: 'PA', opts: ts(1_050, 50_000), payload: REQ };
    const fullLen = 14 + 20 + 20 + 12 + REQ.length;

    fixtures(dp, [
      {
        name: 'control: the well-formed segment is forwarded',
        input: inp(base),
        output: fwd({
          src: LB,
          dst: BE1,
          sport: 50300,
          dport: 8080,
          seq: 70_000,
          ack: 900_000,
          flags: 'PA',
          win: 32_000,
          opts: ts(1_050 + C_TSVAL, 50_000 + C_TSECR),
          payload: REQ,
        }),
        verdict: 'REDIRECT',
        reason: 'redirect',
      },
      {
        name: 'frame of only an Ethernet header',
        input: inp({ ...base, corrupt: { truncateTo: 14 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'frame cut inside the IPv4 header',
        input: inp({ ...base, corrupt: { truncateTo: 14 + 12 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'frame cut inside the TCP fixed header',
        input: inp({ ...base, corrupt: { truncateTo: 14 + 20 + 10 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'frame cut inside the TCP options',
        input: inp({ ...base, corrupt: { truncateTo: 14 + 20 + 20 + 6 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'frame cut inside the payload',
        input: inp({ ...base, corrupt: { truncateTo: fullLen - 5 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'TCP data offset 4 (below 20 bytes)',
        input: inp({ ...base, corrupt: { tcpDataOffset: 4 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'TCP data offset 0',
        input: inp({ ...base, corrupt: { tcpDataOffset: 0 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'TCP data offset 15 past the end of a short segment',
        input: inp({ ...base, payload: 'x', corrupt: { tcpDataOffset: 15 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      { name: 'IPv4 IHL 4', input: inp({ ...base, corrupt: { ipIhl: 4 } }), verdict: 'PASS', reason: 'malformed' },
      { name: 'IPv4 IHL 0', input: inp({ ...base, corrupt: { ipIhl: 0 } }), verdict: 'PASS', reason: 'malformed' },
      {
        name: 'IPv4 IHL 15 past the total length',
        input: inp({ ...base, payload: 'x', opts: [], corrupt: { ipIhl: 15 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'IPv4 total length beyond the frame',
        input: inp({ ...base, corrupt: { ipTotalLength: fullLen - 14 + 1 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'IPv4 total length below the IP header',
        input: inp({ ...base, corrupt: { ipTotalLength: 19 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'IPv4 total length shorter than IP + TCP header',
        input: inp({ ...base, corrupt: { ipTotalLength: 20 + 20 + 8 } }),
        verdict: 'PASS',
        reason: 'malformed',
      },
      {
        name: 'IP version 6 inside an IPv4 ethertype',
        input: (() => {
          const f = buildPacket(inp(base));
          f.writeUInt8(0x65, 14);
          return f;
        })(),
        verdict: 'PASS',
        reason: 'malformed',
      },
      // ---- options: the headers are fine, the options are not -> a spliced segment is dropped untouched
      {
        name: 'option length running past the header: dropped untouched (bad_tcp_options)',
        input: inp({ ...base, corrupt: { badOptionLength: true } }),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
      {
        name: 'SACK option of 12 bytes (not 2 + 8n): dropped untouched',
        input: inp({ ...base, opts: [NOP, NOP, { kind: 'raw', type: 5, data: Buffer.alloc(10, 1) }] }),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
      {
        name: 'SACK option of 2 bytes (no block): dropped untouched',
        input: inp({ ...base, opts: [NOP, NOP, { kind: 'raw', type: 5, data: Buffer.alloc(0) }] }),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
      {
        name: 'timestamp option of 8 bytes: dropped untouched',
        input: inp({ ...base, opts: [NOP, NOP, { kind: 'raw', type: 8, data: Buffer.alloc(6, 1) }] }),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
      {
        name: 'option with length byte 1: dropped untouched',
        input: patchOptions({ ...base, opts: [NOP, NOP, { kind: 'raw', type: 30, data: Buffer.alloc(2) }] }, (o) =>
          o.writeUInt8(1, 3),
        ),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
      {
        name: 'option with length byte 0: dropped untouched',
        input: patchOptions({ ...base, opts: [NOP, NOP, { kind: 'raw', type: 30, data: Buffer.alloc(2) }] }, (o) =>
          o.writeUInt8(0, 3),
        ),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
      {
        name: 'option kind in the last byte with no length byte: dropped untouched',
        input: patchOptions({ ...base, opts: [NOP, NOP, NOP, NOP] }, (o) => o.writeUInt8(8, 3)),
        verdict: 'DROP',
        reason: 'bad_tcp_options',
      },
    ]);
  });
});
