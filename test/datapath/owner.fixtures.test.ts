/**
 * Owner-forwarding fixtures (source document 004, bpf/lib/owner.h): packet
 * in -> verdict, reason, packet out, through BPF_PROG_TEST_RUN in the
 * fixture netns (test/lib/fixture.ts).
 *
 *   LB A 198.18.5.1 / 2001:db8:5::1  (where the client's packets land)
 *   LB B 198.18.5.2 / 2001:db8:5::2  (the owner of the connections)
 *   client 198.18.0.10 / 2001:db8::10 -> VIP 198.18.1.1 / 2001:db8:1::1
 *
 * Expected outer frames are built here field by field (test/lib/packet),
 * so every outer checksum is verified from scratch against one the program
 * computed from the headers only; the inner packet inside must be the
 * original byte for byte, and what the owner gets after removing the
 * header must equal what it does with the original packet sent directly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfObject, testRun, xdpActionName } from '../../control/bpf/index.js';
import { encodeFlow, encodeFlowKey, type FlowKey, FlowKind, FlowState } from '../../control/datapath/abi.js';
import {
  decodeOwnerHeader,
  encodeFlowKeyProto,
  encodeOwnerHeader,
  IPPROTO_UDP,
  OWNER_OVERHEAD,
  OWNER_PORT_DEFAULT,
  type OwnerHeader,
  ownerFlowHash,
  ownerSourcePort,
  secondChanceBucket,
} from '../../control/datapath/abi-owner.js';
import { FlowTable } from '../../control/datapath/flow-table.js';
import { type OwnerMaps, ownerMaps } from '../../control/datapath/owner.js';
import { BatonError } from '../../control/errors.js';
import { withNetns } from '../../control/net/netns.js';
import { DATAPATH_OBJ, skipUnlessBpf } from '../lib/env.js';
import { FixtureNetns, FX, runFixture } from '../lib/fixture.js';
import { buildPacket, type PacketSpec, parsePacket, verifyChecksums } from '../lib/packet.js';

const LB_A = '198.18.5.1';
const LB_B = '198.18.5.2';
/** a third LB, for where B sends a second chance that A sent it */
const LB_C = '198.18.5.3';
const LB_A6 = '2001:db8:5::1';
const LB_B6 = '2001:db8:5::2';
const STRANGER = '198.18.5.9';
const CLIENT = '198.18.0.10';
const CLIENT6 = '2001:db8::10';
const VIP = '198.18.1.1';
const VIP6 = '2001:db8:1::1';

const IN_ETH = { src: '02:00:00:00:00:0a', dst: FX.devMac };
const OUT_ETH = { src: FX.devMac, dst: FX.neighMac };

type Proto = 'tcp' | 'udp';

interface Inner {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: Proto;
  flags?: string;
  payload?: string | Buffer;
}

/** The original packet, as the client sent it. */
function inner(i: Inner): PacketSpec {
  const ip = i.src.includes(':')
    ? { version: 6 as const, src: i.src, dst: i.dst, flowLabel: 0x12345, hopLimit: 60 }
    : { version: 4 as const, src: i.src, dst: i.dst, id: 0x4242, df: true, ttl: 60 };
  const l4 =
    i.proto === 'tcp'
      ? { tcp: { sport: i.sport, dport: i.dport, seq: 1000, ack: 2000, flags: i.flags ?? 'PA', window: 500 } }
      : { udp: { sport: i.sport, dport: i.dport } };
  return { eth: IN_ETH, ip, ...l4, payload: i.payload ?? 'hello, owner' };
}

const keyOf = (i: Inner): FlowKey => ({ src: i.src, dst: i.dst, sport: i.sport, dport: i.dport });
const keyBytes = (i: Inner): Buffer =>
  i.proto === 'tcp' ? encodeFlowKey(keyOf(i)) : encodeFlowKeyProto(keyOf(i), IPPROTO_UDP);

/** The frame the program must emit toward `to` (outer addresses from `from`). */
function encapsulated(
  i: Inner,
  h: { from: string; to: string; hops: number; ownerPort?: number; eth?: typeof OUT_ETH },
): Buffer {
  const orig = buildPacket(inner(i)).subarray(14);
  const hdr: OwnerHeader = {
    hops: h.hops,
    family: i.src.includes(':') ? 6 : 4,
    proto: i.proto === 'tcp' ? 6 : IPPROTO_UDP,
    client: i.src,
    clientPort: i.sport,
    owner: h.to,
    ownerPort: h.ownerPort ?? i.dport,
  };
  const sport = ownerSourcePort(keyBytes(i));
  const ip = h.to.includes(':')
    ? // flow label = the low 20 bits of the same flow hash the source port has 14 of
      { version: 6 as const, src: h.from, dst: h.to, hopLimit: 64, flowLabel: flowLabelOf(i) }
    : { version: 4 as const, src: h.from, dst: h.to, ttl: 64, id: 0, df: true };
  return buildPacket({
    eth: h.eth ?? OUT_ETH,
    ip,
    udp: { sport, dport: OWNER_PORT_DEFAULT },
    payload: Buffer.concat([encodeOwnerHeader(hdr), orig]),
  });
}

const flowLabelOf = (i: Inner): number => ownerFlowHash(keyBytes(i)) & 0xfffff;

/** The same frame as it arrives at the next LB (addressed to its MAC). */
const arriving = (f: Buffer): Buffer => {
  const out = Buffer.from(f);
  Buffer.from(IN_ETH.dst.split(':').map((x) => parseInt(x, 16))).copy(out, 0);
  Buffer.from(IN_ETH.src.split(':').map((x) => parseInt(x, 16))).copy(out, 6);
  return out;
};

function withHops(f: Buffer, hops: number): Buffer {
  const p = parsePacket(f);
  assert.ok(p.ip && p.udp);
  const i = inner(TCP4);
  const l3 = p.ip.version === 4 ? 20 : 40;
  const hdr = decodeOwnerHeader(f.subarray(14 + l3 + 8));
  return buildPacket({
    eth: IN_ETH,
    ip:
      p.ip.version === 4
        ? { version: 4, src: p.ip.src, dst: p.ip.dst, ttl: 64, id: 0, df: true }
        : { version: 6, src: p.ip.src, dst: p.ip.dst, hopLimit: 64, flowLabel: p.ip.flowLabel },
    udp: { sport: p.udp.sport, dport: p.udp.dport },
    payload: Buffer.concat([encodeOwnerHeader({ ...hdr, hops }), buildPacket(i).subarray(14)]),
  });
}

const TCP4: Inner = { src: CLIENT, dst: VIP, sport: 40000, dport: 80, proto: 'tcp' };
const TCP6: Inner = { src: CLIENT6, dst: VIP6, sport: 40001, dport: 443, proto: 'tcp' };
const UDP4: Inner = { src: CLIENT, dst: VIP, sport: 5353, dport: 53, proto: 'udp' };
const UDP6: Inner = { src: CLIENT6, dst: VIP6, sport: 5354, dport: 4433, proto: 'udp' };

interface Lb {
  obj: BpfObject;
  table: FlowTable;
  owner: OwnerMaps;
}

async function loadLb(self: { v4: string; v6: string }, peers: string[], vips: boolean): Promise<Lb> {
  const obj = BpfObject.open(DATAPATH_OBJ);
  await obj.load();
  const owner = ownerMaps((n) => obj.map(n));
  owner.settings.configure({ local4: self.v4, local6: self.v6 });
  peers.forEach((p, i) => void owner.peers.add(p, i + 1));
  if (vips) {
    owner.vips.add(VIP);
    owner.vips.add(VIP6);
  }
  return { obj, table: FlowTable.of(obj), owner };
}

function run(obj: BpfObject, ns: FixtureNetns, packet: Buffer): { verdict: string; packet: Buffer } {
  const r = withNetns(ns.name, () => testRun(obj.program('baton_xdp'), { packet }));
  return { verdict: xdpActionName(r.retval), packet: r.packet };
}

describe('owner forwarding fixtures', { skip: skipUnlessBpf }, () => {
  let ns: FixtureNetns;
  let a: Lb;
  let b: Lb;
  before(async () => {
    ns = await FixtureNetns.create();
    a = await loadLb({ v4: LB_A, v6: LB_A6 }, [LB_B, LB_B6], true);
    // B serves no VIP until the second-chance tests: a decapsulated stray segment then goes to its stack.
    b = await loadLb({ v4: LB_B, v6: LB_B6 }, [LB_A, LB_A6], false);
    // LB A: each flow is held by B (v4 flows over IPv4, v6 flows over IPv6).
    a.table.insertOwner(keyOf(TCP4), { owner: LB_B, ownerPort: 80 });
    a.table.insertOwner(keyOf(TCP6), { owner: LB_B6, ownerPort: 443 });
    a.table.insertOwner(keyOf(UDP4), { owner: LB_B, ownerPort: 53 }, { proto: 'udp' });
    a.table.insertOwner(keyOf(UDP6), { owner: LB_B6, ownerPort: 4433 }, { proto: 'udp' });
  });
  after(async () => {
    a?.obj.close();
    b?.obj.close();
    await ns?.destroy();
  });

  const cases: Array<[string, Inner, string, string]> = [
    ['IPv4 TCP', TCP4, LB_A, LB_B],
    ['IPv6 TCP', TCP6, LB_A6, LB_B6],
    ['IPv4 UDP', UDP4, LB_A, LB_B],
    ['IPv6 UDP', UDP6, LB_A6, LB_B6],
  ];

  for (const [name, i, from, to] of cases) {
    test(`${name}: a packet of a flow B owns leaves A in the owner header, checksums valid`, () => {
      const out = runFixture(a.obj, ns, {
        name,
        input: inner(i),
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(i, { from, to, hops: 1 }),
      });
      const p = parsePacket(out);
      assert.ok(p.udp, 'outer UDP');
      assert.ok(p.udp.sport >= 0xc000, 'outer source port in the ephemeral range');
    });

    test(`${name}: B removes the header and does exactly what it does with the original`, () => {
      const direct = run(b.obj, ns, buildPacket(inner(i)));
      const viaHeader = runFixture(b.obj, ns, {
        name,
        input: arriving(encapsulated(i, { from, to, hops: 1 })),
        verdict: direct.verdict as 'PASS',
        reason: i.proto === 'tcp' ? 'no_flow' : 'not_tcp',
        // The outer MACs stay (addressed to B); everything from the IP header on is the original's.
        output: { ...inner(i), eth: IN_ETH },
      });
      assert.deepEqual(viaHeader.subarray(14), buildPacket(inner(i)).subarray(14), 'inner packet byte-identical');
      assert.deepEqual(viaHeader.subarray(12, 14), direct.packet.subarray(12, 14), 'EtherType of the inner family');
      assert.ok(verifyChecksums(viaHeader).ok, 'inner checksums still valid');
    });
  }

  test('an IPv6 flow owned by an IPv4 address goes in an IPv4 outer header, and comes out whole', () => {
    const i: Inner = { ...TCP6, sport: 40002 };
    a.table.insertOwner(keyOf(i), { owner: LB_B, ownerPort: 443 });
    try {
      const out = runFixture(a.obj, ns, {
        name: 'v6 in v4',
        input: inner(i),
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(i, { from: LB_A, to: LB_B, hops: 1 }),
      });
      const hdr = decodeOwnerHeader(out.subarray(14 + 28), 4);
      assert.deepEqual([hdr.family, hdr.client, hdr.owner], [6, CLIENT6, LB_B]);
      const back = runFixture(b.obj, ns, {
        name: 'v6 out of v4',
        input: arriving(out),
        verdict: 'PASS',
        reason: 'no_flow',
        output: inner(i),
      });
      assert.deepEqual(back.subarray(14), buildPacket(inner(i)).subarray(14));
    } finally {
      a.table.removeOwner(keyOf(i));
    }
  });

  test('B: a decapsulated segment of a connection B splices takes the splice path, same output as direct', () => {
    const k = keyOf(TCP4);
    const lbOut = { src: '198.18.2.1', dst: '198.18.3.10', sport: 50000, dport: 8080 };
    b.obj.map('baton_flows').update(
      encodeFlowKey(k),
      encodeFlow({
        connId: 7n,
        state: FlowState.FORWARD,
        kind: FlowKind.CLIENT,
        legs: [
          {
            seqStart: 0,
            ackFloor: 0,
            x: {
              out: lbOut,
              seqDelta: 100,
              ackDelta: 200,
              tsvalDelta: 0,
              tsecrDelta: 0,
              wscaleIn: 0,
              wscaleOut: 0,
              timestamps: false,
            },
          },
        ],
      }),
      'NOEXIST',
    );
    try {
      const direct = run(b.obj, ns, buildPacket(inner(TCP4)));
      assert.equal(direct.verdict, 'REDIRECT');
      const via = runFixture(b.obj, ns, {
        name: 'splice via owner header',
        input: arriving(encapsulated(TCP4, { from: LB_A, to: LB_B, hops: 1 })),
        verdict: 'REDIRECT',
        reason: 'redirect',
        output: direct.packet,
      });
      assert.equal(parsePacket(via).tcp?.seq, 1100, 'rewritten by the splice entry (seq +100)');
    } finally {
      b.obj.map('baton_flows').delete(encodeFlowKey(k));
    }
  });

  test('a header from an address that is not a configured peer is dropped', () => {
    runFixture(b.obj, ns, {
      name: 'not a peer',
      input: arriving(encapsulated(TCP4, { from: STRANGER, to: LB_B, hops: 1 })),
      verdict: 'DROP',
      reason: 'owner_header_not_peer',
    });
    // Removing a peer takes effect at once.
    b.owner.peers.remove(LB_A);
    try {
      runFixture(b.obj, ns, {
        name: 'peer removed',
        input: arriving(encapsulated(TCP4, { from: LB_A, to: LB_B, hops: 1 })),
        verdict: 'DROP',
        reason: 'owner_header_not_peer',
      });
    } finally {
      b.owner.peers.add(LB_A, 1);
    }
  });

  test('hop limit: a header over the limit is dropped; one at the limit is not forwarded again', () => {
    const at = arriving(encapsulated(TCP4, { from: LB_A, to: LB_B, hops: 1 }));
    runFixture(b.obj, ns, {
      name: 'hops 4 > 3',
      input: withHops(at, 4),
      verdict: 'DROP',
      reason: 'owner_hop_limit',
    });
    runFixture(b.obj, ns, { name: 'hops 0', input: withHops(at, 0), verdict: 'DROP', reason: 'owner_hop_limit' });
    // B with a stale owner entry pointing back at A: hops 1 -> forwarded with hops 2 ...
    b.table.insertOwner(keyOf(TCP4), { owner: LB_A, ownerPort: 80 });
    try {
      const out = runFixture(b.obj, ns, {
        name: 'stale entry, hops 1',
        input: at,
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(TCP4, { from: LB_B, to: LB_A, hops: 2 }),
      });
      assert.equal(decodeOwnerHeader(out.subarray(14 + 28)).hops, 2);
      // ... and at the limit (3) never again: two LBs pointing at each other cannot loop.
      runFixture(b.obj, ns, {
        name: 'stale entry, hops 3',
        input: withHops(at, 3),
        verdict: 'DROP',
        reason: 'owner_hop_limit',
        // Dropped after the header came off: what is left is the inner packet.
        output: inner(TCP4),
      });
    } finally {
      b.table.removeOwner(keyOf(TCP4));
    }
  });

  test('a malformed header (wrong version, lengths) from a peer is dropped, typed', () => {
    const f = Buffer.from(arriving(encapsulated(TCP4, { from: LB_A, to: LB_B, hops: 1 })));
    f.writeUInt8(9, 14 + 28); // version 9
    runFixture(b.obj, ns, {
      name: 'version',
      input: f,
      verdict: 'DROP',
      reason: 'owner_header_malformed',
      checksumsValid: false,
    });
  });

  test("packets sent in the owner header are counted in the peer's stats slot: the entry's slot, else its index in baton_peers; to the owner and on a second chance", () => {
    const stray: Inner = { src: CLIENT, dst: VIP, sport: 41100, dport: 80, proto: 'tcp', flags: 'A' };
    const slotted: Inner = { ...TCP4, sport: 40100 };
    const stranger: Inner = { ...TCP4, sport: 40101 };
    const STRANGER_PEER = '198.18.9.9';
    for (const slot of [1, 2, 3]) a.owner.peerStats.reset(slot);
    a.owner.secondChance.set(secondChanceBucket(keyBytes(stray)), LB_B);
    a.table.insertOwner(keyOf(slotted), { owner: LB_B, ownerPort: 80, slot: 3 });
    a.table.insertOwner(keyOf(stranger), { owner: STRANGER_PEER, ownerPort: 80 });
    try {
      assert.deepEqual(a.owner.peerStats.read(1), { packets: 0n, bytes: 0n });
      // TCP4's entry has no slot (0): LB_B's index in baton_peers (1) is its slot.
      const direct = runFixture(a.obj, ns, {
        name: 'to owner, slot looked up',
        input: inner(TCP4),
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(TCP4, { from: LB_A, to: LB_B, hops: 1 }),
      });
      const second = runFixture(a.obj, ns, {
        name: 'second chance, slot looked up',
        input: inner(stray),
        verdict: 'REDIRECT',
        reason: 'second_chance',
        output: encapsulated(stray, { from: LB_A, to: LB_B, hops: 1 }),
      });
      assert.deepEqual(a.owner.peerStats.read(1), { packets: 2n, bytes: BigInt(direct.length + second.length) });
      // An entry carrying its owner's slot is counted there, without a lookup.
      const viaSlot = runFixture(a.obj, ns, {
        name: 'to owner, slot in the entry',
        input: inner(slotted),
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(slotted, { from: LB_A, to: LB_B, hops: 1 }),
      });
      assert.deepEqual(a.owner.peerStats.read(3), { packets: 1n, bytes: BigInt(viaSlot.length) });
      // An owner that is no peer, no slot: sent, counted nowhere.
      runFixture(a.obj, ns, {
        name: 'to a non-peer owner',
        input: inner(stranger),
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(stranger, { from: LB_A, to: STRANGER_PEER, hops: 1 }),
      });
      assert.deepEqual(
        [1, 2, 3].map((slot) => a.owner.peerStats.read(slot).packets),
        [2n, 0n, 1n],
      );
    } finally {
      a.owner.secondChance.set(secondChanceBucket(keyBytes(stray)), undefined);
      a.table.removeOwner(keyOf(slotted));
      a.table.removeOwner(keyOf(stranger));
      a.owner.peerStats.reset(1);
      assert.deepEqual(a.owner.peerStats.read(1), { packets: 0n, bytes: 0n });
    }
  });

  describe('second chance (no entry, not a SYN, a VIP, no local socket)', () => {
    const stray: Inner = { src: CLIENT, dst: VIP, sport: 41000, dport: 80, proto: 'tcp', flags: 'A' };
    const stray6: Inner = { src: CLIENT6, dst: VIP6, sport: 41001, dport: 80, proto: 'tcp', flags: 'A' };

    test('with no second-chance peer the segment is dropped (no_owner), never passed to a stack that would RST', () => {
      a.owner.secondChance.setAll(undefined);
      runFixture(a.obj, ns, { name: 'no peer', input: inner(stray), verdict: 'DROP', reason: 'no_owner' });
      runFixture(a.obj, ns, {
        name: 'no peer (RST)',
        input: inner({ ...stray, flags: 'R' }),
        verdict: 'DROP',
        reason: 'no_owner',
      });
    });

    test("with the bucket's previous owner set, it is sent there in the owner header (hops 1)", () => {
      a.owner.secondChance.set(secondChanceBucket(keyBytes(stray)), LB_B);
      a.owner.secondChance.set(secondChanceBucket(keyBytes(stray6)), LB_B6);
      runFixture(a.obj, ns, {
        name: 'second chance v4',
        input: inner(stray),
        verdict: 'REDIRECT',
        reason: 'second_chance',
        output: encapsulated(stray, { from: LB_A, to: LB_B, hops: 1 }),
      });
      runFixture(a.obj, ns, {
        name: 'second chance v6',
        input: inner(stray6),
        verdict: 'REDIRECT',
        reason: 'second_chance',
        output: encapsulated(stray6, { from: LB_A6, to: LB_B6, hops: 1 }),
      });
    });

    test('SYNs and segments for addresses that are not VIPs go to the stack as before', () => {
      runFixture(a.obj, ns, {
        name: 'SYN',
        input: inner({ ...stray, flags: 'S', payload: '' }),
        verdict: 'PASS',
        reason: 'no_flow',
      });
      runFixture(a.obj, ns, {
        name: 'not a VIP',
        input: inner({ ...stray, dst: '198.18.1.99' }),
        verdict: 'PASS',
        reason: 'no_flow',
      });
    });

    test('a second chance never points back at the LB itself', () => {
      a.owner.secondChance.set(secondChanceBucket(keyBytes(stray)), LB_A);
      runFixture(a.obj, ns, { name: 'self', input: inner(stray), verdict: 'DROP', reason: 'no_owner' });
    });

    test('at B, a second-chance packet that B cannot place either goes on hop-limited to another peer, then dies', () => {
      const bucket = secondChanceBucket(keyBytes(stray));
      // B's peers A and C, round robin over the buckets as the control plane fills them.
      b.owner.secondChance.set(bucket, LB_C);
      b.owner.secondChance.set(bucket ^ 1, LB_A);
      b.owner.vips.add(VIP);
      try {
        const at = arriving(encapsulated(stray, { from: LB_A, to: LB_B, hops: 1 }));
        runFixture(b.obj, ns, {
          name: 'B second chance, hops 2',
          input: at,
          verdict: 'REDIRECT',
          reason: 'second_chance',
          output: encapsulated(stray, { from: LB_B, to: LB_C, hops: 2 }),
        });
        const f3 = Buffer.from(at);
        f3.writeUInt8(3, 14 + 28 + 1);
        // The outer UDP checksum no longer matches, which XDP does not check: the hop count decides.
        runFixture(b.obj, ns, {
          name: 'hops 3',
          input: f3,
          verdict: 'DROP',
          reason: 'owner_hop_limit',
          output: inner(stray),
          checksumsValid: false,
        });
      } finally {
        b.owner.secondChance.setAll(undefined);
        b.owner.vips.remove(VIP);
      }
    });

    test('at B, a second chance is never sent back to the peer it came from: the neighbouring bucket, else dropped', () => {
      const bucket = secondChanceBucket(keyBytes(stray));
      // Without this, with owner C: A's bucket says B, B's says A, and the segment bounces
      // A-B-A until the hop limit while C never sees it.
      b.owner.secondChance.set(bucket, LB_A);
      b.owner.secondChance.set(bucket ^ 1, LB_C);
      b.owner.vips.add(VIP);
      try {
        const at = arriving(encapsulated(stray, { from: LB_A, to: LB_B, hops: 1 }));
        runFixture(b.obj, ns, {
          name: 'not back to A: on to C',
          input: at,
          verdict: 'REDIRECT',
          reason: 'second_chance',
          output: encapsulated(stray, { from: LB_B, to: LB_C, hops: 2 }),
        });
        // Two LBs: B's only peer is A, the sender: nowhere else to try.
        b.owner.secondChance.set(bucket ^ 1, LB_A);
        runFixture(b.obj, ns, {
          name: 'only A: dropped',
          input: at,
          verdict: 'DROP',
          reason: 'no_owner',
          output: inner(stray), // the header was removed before the decision
        });
        // Arrived directly (hops 0), the bucket's peer is used as it is.
        runFixture(b.obj, ns, {
          name: 'direct: to A',
          input: buildPacket(inner(stray)),
          verdict: 'REDIRECT',
          reason: 'second_chance',
          output: encapsulated(stray, { from: LB_B, to: LB_A, hops: 1 }),
        });
      } finally {
        b.owner.secondChance.setAll(undefined);
        b.owner.vips.remove(VIP);
      }
    });
  });

  describe('MTU: the header adds 68 bytes (IPv4 outer) or 88 (IPv6 outer)', () => {
    const mtu = 1500;
    const tcpPayload = (ipLen: number, family: 4 | 6): Buffer => Buffer.alloc(ipLen - (family === 4 ? 40 : 60), 0x61);

    test('a full-size packet (1500-byte datagram) is dropped and counted, not fragmented or passed', () => {
      assert.equal(OWNER_OVERHEAD[4], 68);
      assert.equal(OWNER_OVERHEAD[6], 88);
      runFixture(a.obj, ns, {
        name: 'full size v4',
        input: inner({ ...TCP4, payload: tcpPayload(mtu, 4) }),
        verdict: 'DROP',
        reason: 'owner_too_big',
      });
      runFixture(a.obj, ns, {
        name: 'full size v6',
        input: inner({ ...TCP6, payload: tcpPayload(mtu, 6) }),
        verdict: 'DROP',
        reason: 'owner_too_big',
      });
    });

    test('both MTU checks: the cached next hop of an OWNER entry (device MTU) and a fresh FIB lookup (second chance)', () => {
      // The OWNER entry of TCP4 has its next hop cached by now (earlier fixtures): checked with bpf_check_mtu.
      runFixture(a.obj, ns, {
        name: 'cached hop, full size',
        input: inner({ ...TCP4, payload: tcpPayload(mtu, 4) }),
        verdict: 'DROP',
        reason: 'owner_too_big',
      });
      // A second chance has no entry to cache in: the FIB lookup's own MTU check.
      const big: Inner = {
        src: CLIENT,
        dst: VIP,
        sport: 44000,
        dport: 80,
        proto: 'tcp',
        flags: 'A',
        payload: tcpPayload(mtu, 4),
      };
      a.owner.secondChance.set(secondChanceBucket(keyBytes(big)), LB_B);
      try {
        runFixture(a.obj, ns, { name: 'FIB, full size', input: inner(big), verdict: 'DROP', reason: 'owner_too_big' });
        const fits = { ...big, payload: tcpPayload(mtu - OWNER_OVERHEAD[4], 4) };
        runFixture(a.obj, ns, {
          name: 'FIB, largest that fits',
          input: inner(fits),
          verdict: 'REDIRECT',
          reason: 'second_chance',
          output: encapsulated(fits, { from: LB_A, to: LB_B, hops: 1 }),
        });
      } finally {
        a.owner.secondChance.setAll(undefined);
      }
    });

    test('the largest that fits (MTU - overhead) goes through intact', () => {
      const i = { ...TCP4, payload: tcpPayload(mtu - OWNER_OVERHEAD[4], 4) };
      const out = runFixture(a.obj, ns, {
        name: 'largest v4',
        input: inner(i),
        verdict: 'REDIRECT',
        reason: 'to_owner',
        output: encapsulated(i, { from: LB_A, to: LB_B, hops: 1 }),
      });
      assert.equal(out.length - 14, mtu);
      runFixture(a.obj, ns, {
        name: 'one byte more',
        input: inner({ ...TCP4, payload: tcpPayload(mtu - OWNER_OVERHEAD[4] + 1, 4) }),
        verdict: 'DROP',
        reason: 'owner_too_big',
      });
    });
  });

  describe('typed owners', () => {
    test('insertOwner refuses to overwrite a connection this LB holds itself; replaces an owner entry', () => {
      const k = { src: CLIENT, dst: VIP, sport: 42000, dport: 80 };
      a.obj
        .map('baton_flows')
        .update(
          encodeFlowKey(k),
          encodeFlow({ connId: 9n, state: FlowState.FORWARD, kind: FlowKind.CLIENT, legs: [] }),
          'NOEXIST',
        );
      try {
        assert.throws(
          () => a.table.insertOwner(k, { owner: LB_B, ownerPort: 80 }),
          (e: unknown) =>
            e instanceof BatonError && e.code === 'OWNER_ENTRY_CONFLICT' && /held by this LB/.test(e.message),
        );
        assert.throws(
          () => a.table.removeOwner(k),
          (e: unknown) => e instanceof BatonError && e.code === 'OWNER_ENTRY_CONFLICT',
        );
      } finally {
        a.obj.map('baton_flows').delete(encodeFlowKey(k));
      }
      a.table.insertOwner(k, { owner: LB_B, ownerPort: 80 });
      a.table.insertOwner(k, { owner: STRANGER, ownerPort: 8080 });
      assert.deepEqual(a.table.ownerEntry(k), { owner: STRANGER, ownerPort: 8080, slot: 0, connId: 0n });
      assert.equal(a.table.removeOwner(k), true);
      assert.equal(a.table.removeOwner(k), false);
      assert.equal(a.table.ownerEntry(k), undefined);
    });

    test('maps reject bad input with catalogue errors', () => {
      assert.throws(
        () => a.owner.peers.add('not-an-ip', 1),
        (e: unknown) => e instanceof BatonError && e.code === 'CONFIG_INVALID',
      );
      assert.throws(
        () => a.owner.secondChance.set(256, LB_B),
        (e: unknown) => e instanceof BatonError && e.code === 'CONFIG_INVALID',
      );
      assert.throws(
        () => a.owner.settings.configure({ local4: undefined, local6: undefined }),
        (e: unknown) => e instanceof BatonError && e.code === 'CONFIG_INVALID',
      );
      assert.deepEqual(a.owner.peers.list().sort(), [LB_B, LB_B6].sort());
    });

    test('with owner forwarding off, the datapath is as before; an owner entry has nowhere to go (dropped, no_owner)', () => {
      a.owner.settings.disable();
      try {
        runFixture(a.obj, ns, {
          name: 'off: owner entry',
          input: inner(TCP4),
          verdict: 'DROP',
          reason: 'no_owner',
        });
        runFixture(a.obj, ns, {
          name: 'off: stray segment',
          input: inner({ ...TCP4, sport: 43000 }),
          verdict: 'PASS',
          reason: 'no_flow',
        });
        runFixture(a.obj, ns, { name: 'off: UDP', input: inner(UDP4), verdict: 'PASS', reason: 'not_tcp' });
        runFixture(a.obj, ns, {
          name: 'off: a header is just UDP',
          input: arriving(encapsulated(TCP4, { from: LB_B, to: LB_A, hops: 1 })),
          verdict: 'PASS',
          reason: 'not_tcp',
        });
      } finally {
        a.owner.settings.configure({ local4: LB_A, local6: LB_A6 });
      }
    });
  });
});
