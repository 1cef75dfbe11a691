/**
 * Forwarding details of a spliced segment (issue 13, found by fuzzing),
 * through BPF_PROG_TEST_RUN in the fixture netns:
 *
 *   - the next-hop cache keeps the FIB's path MTU and checks it per packet:
 *     the same over-MTU segment gets the same verdict (to the stack, which
 *     forwards it or answers "fragmentation needed") from a cold cache and
 *     from a warm one; before, a warm cache redirected it;
 *   - the window of a SYN or SYN-ACK is never rescaled (RFC 7323 2.2),
 *     while every other segment's is.
 *
 * Routes added here: 198.18.9.0/24 with mtu 600, 2001:db8:9::/48 with mtu
 * 1280, both locked (the FIB lookup honours an IPv6 route MTU only when
 * locked), both through the fixture neighbour.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { BpfObject } from '../../control/bpf/index.js';
import {
  encodeFlow,
  encodeFlowKey,
  type Flow,
  type FlowKey,
  FlowKind,
  FlowState,
  LAYOUTS,
  type Xlate,
} from '../../control/datapath/abi.js';
import { DATAPATH_OBJ, skipUnlessBpf } from '../lib/env.js';
import { type Fixture, FixtureNetns, FX, runFixture } from '../lib/fixture.js';
import { type PacketSpec, type TcpOption, verifyChecksums } from '../lib/packet.js';

const IN_ETH = { src: '02:00:00:00:00:0a', dst: FX.devMac };
const OUT_ETH = { src: FX.devMac, dst: FX.neighMac };

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
  payloadLen?: number;
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
  if (s.payloadLen) out.payload = Buffer.alloc(s.payloadLen, 0x61);
  return out;
}

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

function entry(kind: Flow['kind'], x: Xlate): Flow {
  return { connId: 13n, state: FlowState.FORWARD, kind, legs: [{ seqStart: 1000, ackFloor: 5000, x }] };
}

/** The MTU the entry's next-hop cache holds (0: none). */
function cachedMtu(obj: BpfObject, k: FlowKey): number {
  const v = obj.map('baton_flows').lookup(encodeFlowKey(k));
  assert.ok(v, 'flow entry present');
  return v.readUInt16LE(LAYOUTS.baton_flow.fields.nexthop + LAYOUTS.baton_nexthop.fields.mtu);
}

/** Header bytes of a frame without TCP options: Ethernet + IP + TCP. */
const HDR4 = 14 + 20 + 20;
const HDR6 = 14 + 40 + 20;

describe('forwarding fixtures: path MTU in the next-hop cache, SYN windows', { skip: skipUnlessBpf }, () => {
  let ns: FixtureNetns;
  let obj: BpfObject | undefined;

  // client -> VIP entries whose legs lead over the small-MTU routes, and a
  // back end -> LB entry for the SYN-ACK (wscale 7 in, 2 out: a rescale
  // would multiply its window by 32).
  const c4: FlowKey = { src: '198.18.0.10', dst: '198.18.1.1', sport: 41000, dport: 80 };
  const c4out: FlowKey = { src: '198.18.2.1', dst: '198.18.9.10', sport: 51000, dport: 8080 };
  const c6: FlowKey = { src: '2001:db8::10', dst: '2001:db8:1::1', sport: 41000, dport: 80 };
  const c6out: FlowKey = { src: '2001:db8:2::1', dst: '2001:db8:9::10', sport: 51000, dport: 8080 };
  const b4: FlowKey = { src: '198.18.3.10', dst: '198.18.2.1', sport: 8080, dport: 51001 };
  const b4out: FlowKey = { src: '198.18.1.1', dst: '198.18.0.10', sport: 80, dport: 41001 };
  const scaled = { wscaleIn: 7, wscaleOut: 2, timestamps: true, tsvalDelta: 100, tsecrDelta: -50 };

  before(async () => {
    ns = await FixtureNetns.create();
    const ip = (...a: string[]) => execFileSync('ip', ['-n', ns.name, ...a]);
    ip('route', 'add', '198.18.9.0/24', 'via', FX.gw4, 'dev', FX.dev, 'mtu', 'lock', '600');
    ip('-6', 'route', 'add', '2001:db8:9::/48', 'via', FX.gw6, 'dev', FX.dev, 'mtu', 'lock', '1280');
    obj = BpfObject.open(DATAPATH_OBJ);
    await obj.load();
    const flows = obj.map('baton_flows');
    const put = (k: FlowKey, f: Flow) => flows.update(encodeFlowKey(k), encodeFlow(f), 'NOEXIST');
    put(c4, entry(FlowKind.CLIENT, xlate(c4out)));
    put(c6, entry(FlowKind.CLIENT, xlate(c6out)));
    put(b4, entry(FlowKind.BACKEND, xlate(b4out, scaled)));
  });
  after(async () => {
    obj?.close();
    await ns?.destroy();
  });

  const run = (f: Fixture): Buffer => {
    assert.ok(obj, 'datapath loaded');
    return runFixture(obj, ns, f);
  };

  /** Client data segment of `total` frame bytes, and the same rewritten, with the MACs given. */
  function sized(k: FlowKey, out: FlowKey, total: number, hdr: number, eth: { src: string; dst: string }) {
    const payloadLen = total - hdr;
    return {
      input: spec({ ...k, seq: 2000, ack: 6000, flags: 'PA', payloadLen }, IN_ETH),
      rewritten: spec({ ...out, seq: 2000, ack: 6000, flags: 'PA', payloadLen }, eth),
    };
  }

  for (const [fam, k, out, hdr, mtu] of [
    ['IPv4', c4, c4out, HDR4, 600],
    ['IPv6', c6, c6out, HDR6, 1280],
  ] as const) {
    describe(`${fam}: route mtu ${mtu}`, () => {
      const over = sized(k, out, 14 + mtu + 1, hdr, IN_ETH);
      const atMtu = sized(k, out, 14 + mtu, hdr, OUT_ETH);

      test('cold cache: one byte over the MTU goes to the stack, rewritten, MACs untouched', () => {
        assert.equal(cachedMtu(obj as BpfObject, k), 0, 'cache empty before');
        run({
          name: 'over MTU, cold',
          input: over.input,
          verdict: 'PASS',
          reason: 'via_stack',
          output: over.rewritten,
        });
        assert.equal(cachedMtu(obj as BpfObject, k), 0, 'a failed lookup caches nothing');
      });

      test('a segment of exactly the MTU is redirected and fills the cache with the route MTU', () => {
        run({ name: 'at MTU', input: atMtu.input, verdict: 'REDIRECT', reason: 'redirect', output: atMtu.rewritten });
        assert.equal(cachedMtu(obj as BpfObject, k), mtu);
      });

      test('warm cache: the same over-MTU segment gets the cold verdict (was: redirected)', () => {
        run({
          name: 'over MTU, warm',
          input: over.input,
          verdict: 'PASS',
          reason: 'via_stack',
          output: over.rewritten,
        });
        // and the cache still serves segments that fit
        run({
          name: 'at MTU, warm',
          input: atMtu.input,
          verdict: 'REDIRECT',
          reason: 'redirect',
          output: atMtu.rewritten,
        });
      });
    });
  }

  describe('window of a SYN-ACK is not rescaled (RFC 7323 2.2); other segments are', () => {
    const synOpts = (tsval: number, tsecr: number): TcpOption[] => [
      { kind: 'mss', value: 1460 },
      { kind: 'nop' },
      { kind: 'nop' },
      { kind: 'timestamp', tsval, tsecr },
      { kind: 'nop' },
      { kind: 'wscale', shift: 7 },
    ];

    test('SYN-ACK: window 29200 as it came; timestamps still moved; checksums valid', () => {
      const out = run({
        name: 'SYN-ACK window',
        input: spec({ ...b4, seq: 700, ack: 900, flags: 'SA', win: 29200, opts: synOpts(5000, 3000) }, IN_ETH),
        verdict: 'REDIRECT',
        reason: 'redirect',
        // TSval +100, TSecr -50; the window untouched (29200 << 7 >> 2 would saturate at 65535)
        output: spec({ ...b4out, seq: 700, ack: 900, flags: 'SA', win: 29200, opts: synOpts(5100, 2950) }, OUT_ETH),
      });
      assert.ok(verifyChecksums(out).ok);
    });

    test('ACK on the same entry: window 1000 << 7 >> 2 = 32000', () => {
      run({
        name: 'ACK window',
        input: spec({ ...b4, seq: 701, ack: 900, win: 1000 }, IN_ETH),
        verdict: 'REDIRECT',
        reason: 'redirect',
        output: spec({ ...b4out, seq: 701, ack: 900, win: 32000 }, OUT_ETH),
      });
    });
  });
});
