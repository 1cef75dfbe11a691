/**
 * Datapath fixtures in the style of Katran's: an input packet, the verdict
 * and reason the program must return, and the packet it must leave behind,
 * run through BPF_PROG_TEST_RUN. A mismatch prints a field-level diff.
 * Fixtures run in a private network namespace whose routes and neighbours
 * are fixed, so FIB lookups (and so verdicts and MACs) do not depend on the
 * machine the tests run on.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type BpfMap, type BpfObject, testRun, xdpActionName, type XdpActionName } from '../../control/bpf/index.js';
import { REASONS, type ReasonName } from '../../control/datapath/abi.js';
import { withNetns } from '../../control/net/netns.js';
import { readCounters } from '../../control/datapath/datapath.js';
import { buildPacket, diffPackets, type PacketSpec, verifyChecksums } from './packet.js';

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

function ip(ns: string, ...args: string[]): void {
  execFileSync('ip', ['-n', ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class FixtureNetns {
  readonly name = `bt-fx-${process.pid}-${randomBytes(2).toString('hex')}`;
  ifindex = 0;

  constructor() {
    execFileSync('ip', ['netns', 'add', this.name]);
    try {
      ip(this.name, 'link', 'set', 'lo', 'up');
      // A veth pair (not a dummy device: not every kernel has that driver).
      ip(this.name, 'link', 'add', FX.dev, 'address', FX.devMac, 'type', 'veth', 'peer', 'name', `${FX.dev}p`);
      ip(this.name, 'link', 'set', `${FX.dev}p`, 'up');
      ip(this.name, 'link', 'set', FX.dev, 'up');
      execFileSync('ip', ['netns', 'exec', this.name, 'sysctl', '-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
      ip(this.name, 'addr', 'add', '198.19.255.253/30', 'dev', FX.dev);
      ip(this.name, '-6', 'addr', 'add', '2001:db8:ffff::fffd/64', 'dev', FX.dev, 'nodad');
      ip(this.name, 'neigh', 'add', FX.gw4, 'lladdr', FX.neighMac, 'dev', FX.dev, 'nud', 'permanent');
      ip(this.name, '-6', 'neigh', 'add', FX.gw6, 'lladdr', FX.neighMac, 'dev', FX.dev, 'nud', 'permanent');
      ip(this.name, 'route', 'add', '198.18.0.0/15', 'via', FX.gw4, 'dev', FX.dev);
      ip(this.name, '-6', 'route', 'add', '2001:db8::/32', 'via', FX.gw6, 'dev', FX.dev);
      this.ifindex = Number(execFileSync('ip', ['netns', 'exec', this.name, 'cat', `/sys/class/net/${FX.dev}/ifindex`], { encoding: 'utf8' }).trim());
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  destroy(): void {
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
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

  assert.equal(xdpActionName(res.retval), fx.verdict, `${fx.name}: verdict (reason counted: ${bumped.join(',') || 'none'})`);
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
