/**
 * Fixtures of baton_tc_profile (bpf/lib/tcp_options_profile.h), the TC
 * egress program that gives a back-end leg's SYN the client's option
 * profile: SYN in with a socket mark, SYN out. Every edit (TSopt,
 * SACK-permitted, window scale to NOPs; MSS lowered) is checked byte for
 * byte against a frame built by hand, and the output's checksums are
 * verified from scratch (the test run's skb is CHECKSUM_NONE, so the
 * program's checksum update by diff is what makes them right). Unmarked,
 * foreign-marked and non-SYN segments leave untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfObject, testRunSkb } from '../../control/bpf/index.js';
import { PROFILE_F_NO_SACK, PROFILE_F_NO_TS, PROFILE_F_NO_WSCALE } from '../../control/datapath/abi.js';
import { profileMark } from '../../control/datapath/profile-mark.js';
import { DATAPATH_OBJ, skipUnlessBpf } from '../lib/env.js';
import { buildPacket, diffPackets, type PacketSpec, type TcpOption, verifyChecksums } from '../lib/packet.js';

const TC_ACT_OK = 0;
/** enum profile_result */
const UNTOUCHED = 0;
const STRIPPED = 1;
const BAD = 2;

const NOP: TcpOption = { kind: 'nop' };
const nops = (n: number): TcpOption[] => Array.from({ length: n }, () => NOP);

/** The options Linux puts in a SYN (tcp_options_write): MSS, SACK-permitted + TS, NOP, wscale. */
const linuxSyn = (mss = 1460): TcpOption[] => [
  { kind: 'mss', value: mss },
  { kind: 'sackPermitted' },
  { kind: 'timestamp', tsval: 0x11223344, tsecr: 0 },
  NOP,
  { kind: 'wscale', shift: 7 },
];

function seg(family: 4 | 6, opts: TcpOption[], flags = 'S'): PacketSpec {
  const ip =
    family === 4
      ? { version: 4 as const, src: '198.18.2.1', dst: '198.18.3.10', id: 0x4321, df: true, ttl: 64 }
      : { version: 6 as const, src: '2001:db8:2::1', dst: '2001:db8:3::10', flowLabel: 0x12345, hopLimit: 64 };
  return {
    eth: { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
    ip,
    tcp: {
      sport: 50000,
      dport: 8080,
      seq: 0xdeadbeef,
      ack: flags.includes('A') ? 1 : 0,
      flags,
      window: 64240,
      options: opts,
    },
  };
}

describe('TC egress: a back-end leg SYN gets the client profile', { skip: skipUnlessBpf }, () => {
  let obj: BpfObject | undefined;
  before(async () => {
    obj = BpfObject.open(DATAPATH_OBJ);
    await obj.load();
  });
  after(() => obj?.close());

  function run(name: string, input: PacketSpec, mark: number | undefined, want: PacketSpec, result: number): void {
    assert.ok(obj, 'loaded');
    const frame = buildPacket(input);
    const r = testRunSkb(obj.program('baton_tc_profile'), { packet: frame, ...(mark !== undefined ? { mark } : {}) });
    assert.equal(r.retval, TC_ACT_OK, `${name}: never dropped`);
    assert.equal(r.cb[0], result, `${name}: result`);
    const diff = diffPackets(buildPacket(want), r.packet);
    assert.equal(diff, null, `${name}: output differs:\n${diff}`);
    const v = verifyChecksums(r.packet);
    assert.ok(v.ok, `${name}: checksums from scratch: ${v.errors.join('; ')}`);
  }

  for (const fam of [4, 6] as const) {
    describe(`IPv${fam}`, () => {
      const ts = { kind: 'timestamp', tsval: 0x11223344, tsecr: 0 } as const;
      const ws = { kind: 'wscale', shift: 7 } as const;
      test('no TS: the 10 TSopt bytes become NOPs, the rest as it was', () => {
        const m = profileMark(PROFILE_F_NO_TS);
        run(
          'no-ts',
          seg(fam, linuxSyn()),
          m,
          seg(fam, [{ kind: 'mss', value: 1460 }, { kind: 'sackPermitted' }, ...nops(10), NOP, ws]),
          STRIPPED,
        );
      });
      test('no SACK: SACK-permitted (2 bytes) becomes NOPs', () => {
        run(
          'no-sack',
          seg(fam, linuxSyn()),
          profileMark(PROFILE_F_NO_SACK),
          seg(fam, [{ kind: 'mss', value: 1460 }, ...nops(2), ts, NOP, ws]),
          STRIPPED,
        );
      });
      test('no TS and no SACK, the Windows default', () => {
        run(
          'no-ts,no-sack',
          seg(fam, linuxSyn()),
          profileMark(PROFILE_F_NO_TS | PROFILE_F_NO_SACK),
          seg(fam, [{ kind: 'mss', value: 1460 }, ...nops(12), NOP, ws]),
          STRIPPED,
        );
      });
      test('no wscale: the 3 window-scale bytes become NOPs', () => {
        run(
          'no-wscale',
          seg(fam, linuxSyn()),
          profileMark(PROFILE_F_NO_WSCALE),
          seg(fam, [{ kind: 'mss', value: 1460 }, { kind: 'sackPermitted' }, ts, NOP, ...nops(3)]),
          STRIPPED,
        );
      });
      test('MSS 536: the MSS option lowered, nothing else', () => {
        run('mss-536', seg(fam, linuxSyn()), profileMark(0, 536), seg(fam, linuxSyn(536)), STRIPPED);
      });
      test('MSS never raised: a SYN already at 536 with mark MSS 1220 leaves untouched', () => {
        run('mss-up', seg(fam, linuxSyn(536)), profileMark(0, 1220), seg(fam, linuxSyn(536)), UNTOUCHED);
      });
      test('everything at once (NOP NOP TS layout, tcp_timestamps without SACK)', () => {
        const opts: TcpOption[] = [{ kind: 'mss', value: 1460 }, NOP, NOP, ts, NOP, ws];
        run(
          'all',
          seg(fam, opts),
          profileMark(PROFILE_F_NO_TS | PROFILE_F_NO_SACK | PROFILE_F_NO_WSCALE, 536),
          seg(fam, [{ kind: 'mss', value: 536 }, NOP, NOP, ...nops(10), NOP, ...nops(3)]),
          STRIPPED,
        );
      });
      test("an unmarked SYN, and one with another program's mark, leave untouched", () => {
        run('unmarked', seg(fam, linuxSyn()), undefined, seg(fam, linuxSyn()), UNTOUCHED);
        run('foreign', seg(fam, linuxSyn()), 0x00010001, seg(fam, linuxSyn()), UNTOUCHED);
      });
      test('a SYN-ACK or a data segment of a marked socket leaves untouched', () => {
        const m = profileMark(PROFILE_F_NO_TS);
        run('syn-ack', seg(fam, linuxSyn(), 'SA'), m, seg(fam, linuxSyn(), 'SA'), UNTOUCHED);
        const est: TcpOption[] = [NOP, NOP, ts];
        run('ack', seg(fam, est, 'A'), m, seg(fam, est, 'A'), UNTOUCHED);
      });
      test('a TSopt of the wrong length: left as it came (BAD), still sent', () => {
        const bad: TcpOption[] = [
          { kind: 'mss', value: 1460 },
          { kind: 'raw', type: 8, data: Buffer.alloc(6, 0x33) },
          NOP,
          NOP,
        ];
        run('bad-ts', seg(fam, bad), profileMark(PROFILE_F_NO_TS), seg(fam, bad), BAD);
      });
    });
  }
});
