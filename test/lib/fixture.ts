/**
 * Datapath fixtures in the style of Katran's: an input packet, the verdict
 * and reason the program must return, and the packet it must leave behind,
 * run through BPF_PROG_TEST_RUN. A mismatch prints a field-level diff.
 * Fixtures run in a private network namespace whose routes and neighbours
 * are fixed, so FIB lookups (and so verdicts and MACs) do not depend on the
 * machine the tests run on.
 */
import assert from 'node:assert/strict';
import { type BpfMap, type BpfObject, testRun, type XdpActionName, xdpActionName } from '../../control/bpf/index.js';
import { REASONS, type ReasonName } from '../../control/datapath/abi.js';
import { readCounters } from '../../control/datapath/datapath.js';
import { withNetns } from '../../control/net/netns.js';
import { buildPacket, diffPackets, type PacketSpec, verifyChecksums } from './packet.js';
import { createTestbed, type Testbed } from './testbed.js';

export interface Fixture {
  name: string;
  input: PacketSpec | Buffer;
  verdict: XdpActionName;
  reason: ReasonName;
  /** Expected frame after the program; omitted = must equal the input. */
  output?: PacketSpec | Buffer;
  /** The output's checksums must verify (default: true unless the input's did not). */
  checksumsValid?: boolean;
}

/** Fixed MACs and addresses of the fixture namespace. */
export const FX = {
  dev: 'fx0',
  devMac: '02:fe:00:00:00:01',
  /** Every 198.18/15 and 2001:db8::/32 destination resolves to this MAC. */
  neighMac: '02:fe:00:00:00:02',
  gw4: '198.19.255.254',
  gw6: '2001:db8:ffff::fffe',
} as const;

/**
 * The fixture namespace: a one-node testbed (so it gets the testbed's owner
 * marker, exit handlers and stale cleanup) with a device whose routes and
 * neighbours are fixed.
 */
export class FixtureNetns {
  private constructor(
    private readonly tb: Testbed,
    readonly name: string,
    readonly ifindex: number,
  ) {}

  static async create(): Promise<FixtureNetns> {
    const tb = await createTestbed({ name: 'fixture', nodes: [{ name: 'fx' }], links: [] });
    try {
      const ip = (...args: string[]) => tb.ip('fx', args);
      // A veth pair (not a dummy device: not every kernel has that driver).
      await ip('link', 'add', FX.dev, 'address', FX.devMac, 'type', 'veth', 'peer', 'name', `${FX.dev}p`);
      await ip('link', 'set', `${FX.dev}p`, 'up');
      await ip('link', 'set', FX.dev, 'up');
      await tb.exec('fx', 'sysctl', ['-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
      await ip('addr', 'add', '198.19.255.253/30', 'dev', FX.dev);
      await ip('-6', 'addr', 'add', '2001:db8:ffff::fffd/64', 'dev', FX.dev, 'nodad');
      await ip('neigh', 'add', FX.gw4, 'lladdr', FX.neighMac, 'dev', FX.dev, 'nud', 'permanent');
      await ip('-6', 'neigh', 'add', FX.gw6, 'lladdr', FX.neighMac, 'dev', FX.dev, 'nud', 'permanent');
      await ip('route', 'add', '198.18.0.0/15', 'via', FX.gw4, 'dev', FX.dev);
      await ip('-6', 'route', 'add', '2001:db8::/32', 'via', FX.gw6, 'dev', FX.dev);
      const ifindex = Number((await tb.exec('fx', 'cat', [`/sys/class/net/${FX.dev}/ifindex`])).stdout.trim());
      return new FixtureNetns(tb, tb.ns('fx'), ifindex);
    } catch (e) {
      await tb.destroy();
      throw e;
    }
  }

  destroy(): Promise<void> {
    return this.tb.destroy();
  }
}

function frame(p: PacketSpec | Buffer): Buffer {
  return Buffer.isBuffer(p) ? p : buildPacket(p);
}

function counterSnapshot(counters: BpfMap): bigint[] {
  return readCounters(counters).map((c) => c.packets);
}

/** Runs one fixture and asserts verdict, reason, output bytes and checksums. */
export function runFixture(obj: BpfObject, ns: FixtureNetns, fx: Fixture): Buffer {
  const input = frame(fx.input);
  const counters = obj.map('baton_counters');
  const before = counterSnapshot(counters);
  const res = withNetns(ns.name, () => testRun(obj.program('baton_xdp'), { packet: input }));
  const after = counterSnapshot(counters);
  const bumped = after.flatMap((v, i) => (v !== before[i] ? [REASONS[i]?.[1]] : []));

  assert.equal(
    xdpActionName(res.retval),
    fx.verdict,
    `${fx.name}: verdict (reason counted: ${bumped.join(',') || 'none'})`,
  );
  assert.deepEqual(bumped, [fx.reason], `${fx.name}: reason counter`);
  const expected = fx.output === undefined ? input : frame(fx.output);
  const diff = diffPackets(expected, res.packet);
  assert.equal(diff, null, `${fx.name}: output packet differs:\n${diff}`);
  const inputOk = verifyChecksums(input).ok;
  if (fx.checksumsValid ?? inputOk) {
    const v = verifyChecksums(res.packet);
    assert.ok(v.ok, `${fx.name}: output checksums: ${v.errors.join('; ')}`);
  }
  return res.packet;
}
