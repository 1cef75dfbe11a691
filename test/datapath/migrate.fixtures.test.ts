/**
 * Migrate fixtures (source document 002, flow id in the ports): packet in ->
 * verdict, reason, packet out, through BPF_PROG_TEST_RUN in the fixture
 * netns (test/lib/fixture.ts), for both ends of the path:
 *
 *   LB (bpf/xdp_baton.c, BATON_KIND_MIGRATED entry):
 *     client 198.18.0.10:40000 -> VIP 198.18.1.1:80
 *       leaves as 198.18.0.10:0x0001 -> back end 198.18.3.10:0x002a (flow id 0x0001002a)
 *   agent (bpf/xdp_agent.c, baton_fids mapping):
 *     198.18.0.10:0x0001 -> 198.18.3.10:0x002a   back to   198.18.0.10:40000 -> 198.18.1.1:80
 *
 * Expected frames are built from scratch by test/lib/packet (checksums
 * computed over the whole segment), so byte equality of the output proves
 * the program's incremental checksum updates equal a full recomputation;
 * runFixture checks them again with verifyChecksums.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfObject, testRun, xdpActionName } from '../../control/bpf/index.js';
import {
  decodeFlow,
  encodeFlowKey,
  type FlowKey,
  FlowState,
  type REASONS,
  TRACK_F_FIN,
  TRACK_F_RST,
  TRACK_F_SEEN,
} from '../../control/datapath/abi.js';
import { FidState, flowIdOfPorts, flowIdPorts } from '../../control/datapath/abi-migrate.js';
import { AgentDatapath } from '../../control/datapath/agent-datapath.js';
import { readCounters } from '../../control/datapath/datapath.js';
import { FlowIdTable } from '../../control/datapath/fid-table.js';
import { planFidMapping, planMigratedEntry } from '../../control/datapath/flow-id.js';
import { FlowTable } from '../../control/datapath/flow-table.js';
import { BatonError } from '../../control/errors.js';
import { withNetns } from '../../control/net/netns.js';
import type { SpliceContext } from '../../control/splice/context.js';
import { recoverFromTable } from '../../control/splice/recovery.js';
import { BPF_DIR, DATAPATH_OBJ, skipUnlessBpf } from '../lib/env.js';
import { type Fixture, FixtureNetns, FX, runFixture } from '../lib/fixture.js';
import { buildPacket, diffPackets, type PacketSpec, type TcpOption, verifyChecksums } from '../lib/packet.js';

const AGENT_OBJ = resolve(BPF_DIR, 'xdp_agent.o');

const CLIENT = '198.18.0.10';
const VIP = '198.18.1.1';
const BE = '198.18.3.10';
const CLIENT6 = '2001:db8::10';
const VIP6 = '2001:db8:1::1';
const BE6 = '2001:db8:3::10';

const FID = 0x0001_002a; // sport 0x0001, dport 0x002a
const FID_BLOCKED = 0x0001_002b;
const FID_TRACK = 0x0001_002c;

/** MACs of a frame arriving at the LB, and of the frame the LB forwards (the fixture netns's neighbour). */
const IN_ETH = { src: '02:00:00:00:00:0a', dst: FX.devMac };
const OUT_ETH = { src: FX.devMac, dst: FX.neighMac };

const NOP: TcpOption = { kind: 'nop' };
const TS: TcpOption[] = [NOP, NOP, { kind: 'timestamp', tsval: 123_456, tsecr: 654_321 }];
const SACK: TcpOption[] = [
  NOP,
  NOP,
  {
    kind: 'sack',
    blocks: [
      [900_100, 900_200],
      [900_300, 900_400],
    ],
  },
];
const REQ = 'GET /index.html HTTP/1.1\r\nHost: vip\r\n\r\n';

interface Seg {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: string;
  opts?: TcpOption[];
  payload?: string;
  eth?: { src: string; dst: string };
  corrupt?: PacketSpec['corrupt'];
}

/** A segment; every field a rewrite must leave alone (TTL, id, DF, flow label, window, options) set to non-defaults. */
function seg(s: Seg): PacketSpec {
  const ip = s.src.includes(':')
    ? { version: 6 as const, src: s.src, dst: s.dst, flowLabel: 0x5a5a5, hopLimit: 61, trafficClass: 0x28 }
    : { version: 4 as const, src: s.src, dst: s.dst, id: 0x1234, df: true, ttl: 61, tos: 0x28 };
  const out: PacketSpec = {
    eth: s.eth ?? IN_ETH,
    ip,
    tcp: {
      sport: s.sport,
      dport: s.dport,
      seq: s.seq ?? 1_000,
      ack: s.ack ?? 900_000,
      flags: s.flags ?? 'PA',
      window: 501,
      options: s.opts ?? TS,
    },
  };
  if (s.payload !== undefined) out.payload = s.payload;
  if (s.corrupt) out.corrupt = s.corrupt;
  return out;
}

/** The client's segment toward the VIP, and the same segment as the LB must forward it (flow id in the ports). */
function pair(
  fam: 4 | 6,
  cport: number,
  fid: number,
  over: Partial<Seg> = {},
): { client: PacketSpec; encap: PacketSpec; clientSeg: Seg } {
  const [c, v, b] = fam === 4 ? [CLIENT, VIP, BE] : [CLIENT6, VIP6, BE6];
  const ports = flowIdPorts(fid);
  const clientSeg: Seg = { src: c, dst: v, sport: cport, dport: 80, payload: REQ, ...over };
  return {
    clientSeg,
    client: seg(clientSeg),
    encap: seg({ ...clientSeg, dst: b, sport: ports.sport, dport: ports.dport, eth: OUT_ETH }),
  };
}

const key = (fam: 4 | 6, cport: number): FlowKey =>
  fam === 4 ? { src: CLIENT, dst: VIP, sport: cport, dport: 80 } : { src: CLIENT6, dst: VIP6, sport: cport, dport: 80 };

/** One's complement 16-bit addition and subtraction (RFC 1071). */
const onesAdd = (a: number, b: number): number => {
  const s = a + b;
  return (s & 0xffff) + (s >>> 16);
};
const onesSub = (a: number, b: number): number => onesAdd(a, ~b & 0xffff);

// ------------------------------------------------------------------ agent runner

interface AgentFixture {
  name: string;
  input: PacketSpec | Buffer;
  verdict: 'PASS' | 'DROP';
  reason: (typeof REASONS)[number][1];
  /** Expected frame; omitted = must equal the input. */
  output?: PacketSpec | Buffer;
}

const frameOf = (p: PacketSpec | Buffer): Buffer => (Buffer.isBuffer(p) ? p : buildPacket(p));

/** runFixture's assertions, for the agent's program (baton_agent_xdp): verdict, the one reason counted, bytes out. */
function runAgent(obj: BpfObject, ns: FixtureNetns, fx: AgentFixture): Buffer {
  const input = frameOf(fx.input);
  const counters = obj.map('baton_counters');
  const before = readCounters(counters).map((c) => c.packets);
  const res = withNetns(ns.name, () => testRun(obj.program('baton_agent_xdp'), { packet: input }));
  const bumped = readCounters(counters).flatMap((c, i) => (c.packets !== before[i] ? [c.reason] : []));
  assert.equal(xdpActionName(res.retval), fx.verdict, `${fx.name}: verdict (counted: ${bumped.join(',') || 'none'})`);
  assert.deepEqual(bumped, [fx.reason], `${fx.name}: reason counter`);
  const expected = fx.output === undefined ? input : frameOf(fx.output);
  const diff = diffPackets(expected, res.packet);
  assert.equal(diff, null, `${fx.name}: output packet differs:\n${diff}`);
  if (verifyChecksums(input).ok) {
    const v = verifyChecksums(res.packet);
    assert.ok(v.ok, `${fx.name}: output checksums: ${v.errors.join('; ')}`);
  }
  return res.packet;
}

// ------------------------------------------------------------------ tests

describe('migrate fixtures', { skip: skipUnlessBpf }, () => {
  let ns: FixtureNetns;
  let lb: BpfObject;
  let agent: BpfObject;
  let table: FlowTable;
  let fids: FlowIdTable;

  before(async () => {
    ns = await FixtureNetns.create();
    lb = BpfObject.open(DATAPATH_OBJ);
    await lb.load();
    table = FlowTable.of(lb);
    agent = BpfObject.open(AGENT_OBJ, { maps: { baton_fids: { maxEntries: 16 } } });
    await agent.load();
    fids = new FlowIdTable(agent.map('baton_fids'), agent.program('baton_agent_ctl'));
    for (const fam of [4, 6] as const) {
      // Installed as the LB's migrate flow does: BLOCK while the socket moves, then FORWARD in place.
      const fwd = planMigratedEntry({
        connId: 1n,
        client: key(fam, 40000),
        backend: fam === 4 ? BE : BE6,
        flowId: FID,
      });
      table.insert(fwd.key, fwd.entry);
      table.setState(fwd.key, FlowState.FORWARD);
      const blk = planMigratedEntry({
        connId: 2n,
        client: key(fam, 40001),
        backend: fam === 4 ? BE : BE6,
        flowId: FID_BLOCKED,
      });
      table.insert(blk.key, blk.entry);
      const trk = planMigratedEntry({
        connId: 3n,
        client: key(fam, 40002),
        backend: fam === 4 ? BE : BE6,
        flowId: FID_TRACK,
      });
      table.insert(trk.key, trk.entry);
      table.setState(trk.key, FlowState.FORWARD);
      // The agent's mappings: FID restored, FID_BLOCKED held (socket not restored yet), FID_TRACK restored.
      const m = planFidMapping({ connId: 1n, client: key(fam, 40000), backend: fam === 4 ? BE : BE6, flowId: FID });
      fids.insert(m.key, m.mapping);
      fids.setState(m.key, FidState.RESTORE);
      const h = planFidMapping({
        connId: 2n,
        client: key(fam, 40001),
        backend: fam === 4 ? BE : BE6,
        flowId: FID_BLOCKED,
      });
      fids.insert(h.key, h.mapping);
      const t = planFidMapping({
        connId: 3n,
        client: key(fam, 40002),
        backend: fam === 4 ? BE : BE6,
        flowId: FID_TRACK,
      });
      fids.insert(t.key, t.mapping, { rcvNxt: 1_000 });
      fids.setState(t.key, FidState.RESTORE);
    }
  });
  after(async () => {
    lb?.close();
    agent?.close();
    await ns?.destroy();
  });

  test('flow id rides high 16 bits in sport, low 16 in dport', () => {
    assert.deepEqual(flowIdPorts(0x0001_002a), { sport: 1, dport: 42 });
    assert.deepEqual(flowIdPorts(0xffff_fffe), { sport: 0xffff, dport: 0xfffe });
    assert.equal(flowIdOfPorts(0xffff, 0xfffe), 0xffff_fffe);
    assert.throws(() => flowIdPorts(2 ** 32), RangeError);
    assert.throws(() => flowIdPorts(-1), RangeError);
  });

  for (const fam of [4, 6] as const) {
    describe(`IPv${fam}`, () => {
      const runLb = (fx: Fixture): Buffer => runFixture(lb, ns, fx);

      // -------------------------------------------------------------- LB: encapsulation
      test('LB: request leaves with dst = back end, ports = flow id, src/seq/ack/options/payload untouched', () => {
        const { client, encap } = pair(fam, 40000, FID);
        const out = runLb({ name: 'encap', input: client, output: encap, verdict: 'REDIRECT', reason: 'redirect' });
        // Read the ports back from the wire: the word at TCP offset 0 is the flow id.
        const l4 = fam === 4 ? 14 + 20 : 14 + 40;
        assert.equal(out.readUInt32BE(l4), FID);
      });

      test('LB: pure ACK with SACK blocks, and a FIN, are encapsulated the same way', () => {
        const a = pair(fam, 40000, FID, { flags: 'A', payload: undefined, opts: [...TS, ...SACK], seq: 1_040 });
        runLb({ name: 'sack ack', input: a.client, output: a.encap, verdict: 'REDIRECT', reason: 'redirect' });
      });

      test('LB: a segment with a bad TCP checksum keeps exactly its error (incremental update, never recomputed)', () => {
        const { client, encap } = pair(fam, 40000, FID, { corrupt: { l4Checksum: true } });
        const good = pair(fam, 40000, FID);
        const l4 = fam === 4 ? 14 + 20 : 14 + 40;
        const csumAt = (b: Buffer) => b.readUInt16BE(l4 + 16);
        // field = ~sum: a field off by e (one's complement) before the rewrite is off by e after it.
        const e = onesSub(csumAt(buildPacket(client)), csumAt(buildPacket(good.client)));
        const expected = buildPacket(good.encap);
        expected.writeUInt16BE(onesAdd(csumAt(expected), e), l4 + 16);
        assert.equal(verifyChecksums(buildPacket(encap)).ok, false);
        const out = runLb({
          name: 'bad csum',
          input: client,
          output: expected,
          verdict: 'REDIRECT',
          reason: 'redirect',
        });
        assert.equal(verifyChecksums(out).ok, false, 'still bad: the receiver drops it');
      });

      test('LB: BLOCK drops data segments and passes pure ACKs to the LB socket, both untouched', () => {
        const d = pair(fam, 40001, FID_BLOCKED);
        runLb({ name: 'blocked data', input: d.client, verdict: 'DROP', reason: 'blocked' });
        const a = pair(fam, 40001, FID_BLOCKED, { flags: 'A', payload: undefined });
        runLb({ name: 'blocked ack', input: a.client, verdict: 'PASS', reason: 'blocked_ack' });
        const f = pair(fam, 40001, FID_BLOCKED, { flags: 'FA', payload: undefined });
        runLb({ name: 'blocked fin', input: f.client, verdict: 'DROP', reason: 'blocked' });
      });

      test('LB: a client segment of a flow not in the table passes untouched', () => {
        const u = pair(fam, 40999, FID);
        runLb({ name: 'unknown', input: u.client, verdict: 'PASS', reason: 'no_flow' });
      });

      test('LB: malformed and truncated segments of a migrated flow are never rewritten', () => {
        const base = pair(fam, 40000, FID);
        const full = buildPacket(base.client).length;
        runLb({
          name: 'truncated',
          input: seg({ ...base.clientSeg, corrupt: { truncateTo: full - 10 } }),
          verdict: 'PASS',
          reason: 'malformed',
        });
        runLb({
          name: 'data offset',
          input: seg({ ...base.clientSeg, corrupt: { tcpDataOffset: 4 } }),
          verdict: 'PASS',
          reason: 'malformed',
        });
        runLb({
          name: 'ip length',
          input: seg({ ...base.clientSeg, corrupt: { ipTotalLength: 9000 } }),
          verdict: 'PASS',
          reason: 'malformed',
        });
      });

      // -------------------------------------------------------------- agent: restoration
      test("agent: the LB's output becomes byte for byte the segment the client sent", () => {
        const { client, encap } = pair(fam, 40000, FID);
        const lbOut = runLb({ name: 'encap', input: client, output: encap, verdict: 'REDIRECT', reason: 'redirect' });
        const restored = runAgent(agent, ns, {
          name: 'restore',
          input: lbOut,
          // The frame the client sent, with the MACs of the LB's hop (the only L2 change on the way).
          output: { ...client, eth: OUT_ETH },
          verdict: 'PASS',
          reason: 'flow_id_restored',
        });
        // Everything from the IP header on is the client's packet, checksums included.
        assert.ok(restored.subarray(14).equals(buildPacket(client).subarray(14)), 'IP packet identical');
      });

      test('agent: FIN+ACK with SACK restored as sent', () => {
        const { client, encap } = pair(fam, 40000, FID, { flags: 'FA', opts: [...TS, ...SACK] });
        runAgent(agent, ns, {
          name: 'restore fin',
          input: { ...encap },
          output: { ...client, eth: OUT_ETH },
          verdict: 'PASS',
          reason: 'flow_id_restored',
        });
      });

      test('agent: HOLD drops every segment of the flow (data, ACK, RST), counted flow_id_held', () => {
        for (const over of [{}, { flags: 'A', payload: undefined }, { flags: 'R', payload: undefined }]) {
          const { encap } = pair(fam, 40001, FID_BLOCKED, over);
          runAgent(agent, ns, { name: 'held', input: encap, verdict: 'DROP', reason: 'flow_id_held' });
        }
      });

      test('agent: unknown flow ids, other client addresses and non-migrated traffic pass untouched', () => {
        const { encap } = pair(fam, 40000, 0x0002_0001);
        runAgent(agent, ns, { name: 'unknown id', input: encap, verdict: 'PASS', reason: 'no_flow' });
        const other = pair(fam, 40000, FID).encap;
        const otherSrc = { ...other, ip: { ...other.ip, src: fam === 4 ? '198.18.0.99' : '2001:db8::99' } };
        runAgent(agent, ns, { name: 'other client', input: otherSrc, verdict: 'PASS', reason: 'no_flow' });
        // An ordinary connection to the back end itself (its own service port).
        const plain = seg({ src: fam === 4 ? CLIENT : CLIENT6, dst: fam === 4 ? BE : BE6, sport: 40000, dport: 22 });
        runAgent(agent, ns, { name: 'plain', input: plain, verdict: 'PASS', reason: 'no_flow' });
      });

      test('agent: malformed and truncated frames carrying a mapped flow id are never rewritten', () => {
        const { encap } = pair(fam, 40000, FID);
        const full = buildPacket(encap).length;
        for (const corrupt of [{ truncateTo: full - 10 }, { tcpDataOffset: 4 }, { ipTotalLength: 9000 }]) {
          runAgent(agent, ns, {
            name: `malformed ${JSON.stringify(corrupt)}`,
            input: { ...encap, corrupt },
            verdict: 'PASS',
            reason: 'malformed',
          });
        }
        if (fam === 4) {
          // A first fragment: its ports are there, the rest of the segment is not; never rewritten.
          runAgent(agent, ns, {
            name: 'fragment',
            input: { ...encap, ip: { ...encap.ip, version: 4, mf: true } },
            verdict: 'PASS',
            reason: 'fragment',
          });
        }
        // Too short for a TCP header at all.
        runAgent(agent, ns, {
          name: 'runt',
          input: buildPacket(encap).subarray(0, fam === 4 ? 14 + 20 + 8 : 14 + 40 + 8),
          verdict: 'PASS',
          reason: 'malformed',
        });
      });

      // -------------------------------------------------------------- FIN/RST tracking, both sides
      test('FIN and an exact RST are tracked on the LB entry and the agent mapping; an inexact RST is not', () => {
        const k = key(fam, 40002);
        const fk = { client: k.src, flowId: FID_TRACK };
        const fam6 = fam;
        const lbTrack = () => {
          const v = lb.map('baton_flows').lookup(encodeFlowKey(k));
          assert.ok(v);
          return decodeFlow(v, fam6).track;
        };
        // Data 1000..1040 (seq_end 1040 on both sides).
        const d = pair(fam, 40002, FID_TRACK);
        runAgent(agent, ns, {
          name: 'data',
          input: runLb({ name: 'data', input: d.client, output: d.encap, verdict: 'REDIRECT', reason: 'redirect' }),
          output: { ...d.client, eth: OUT_ETH },
          verdict: 'PASS',
          reason: 'flow_id_restored',
        });
        assert.equal(lbTrack().seqEnd, 1_000 + REQ.length);
        assert.equal(lbTrack().flags & (TRACK_F_FIN | TRACK_F_RST), 0);
        assert.equal(fids.finished(fk), false);

        // A RST far from the client's seq: forwarded (the endpoint judges it), not recorded.
        const r1 = pair(fam, 40002, FID_TRACK, { flags: 'R', seq: 77_777, payload: undefined, opts: [] });
        runAgent(agent, ns, {
          name: 'rst inexact',
          input: runLb({ name: 'rst', input: r1.client, output: r1.encap, verdict: 'REDIRECT', reason: 'redirect' }),
          output: { ...r1.client, eth: OUT_ETH },
          verdict: 'PASS',
          reason: 'flow_id_restored',
        });
        assert.equal(lbTrack().flags & TRACK_F_RST, 0, 'LB: inexact RST not recorded');
        assert.equal((fids.get(fk)?.track.flags ?? 0) & TRACK_F_RST, 0, 'agent: inexact RST not recorded');
        assert.equal((fids.get(fk)?.track.flags ?? 0) & TRACK_F_SEEN, TRACK_F_SEEN, 'agent: track seeded');

        // FIN at 1040: recorded with its seq.
        const f = pair(fam, 40002, FID_TRACK, { flags: 'FA', seq: 1_000 + REQ.length, payload: undefined });
        runAgent(agent, ns, {
          name: 'fin',
          input: runLb({ name: 'fin', input: f.client, output: f.encap, verdict: 'REDIRECT', reason: 'redirect' }),
          output: { ...f.client, eth: OUT_ETH },
          verdict: 'PASS',
          reason: 'flow_id_restored',
        });
        assert.equal(lbTrack().flags & TRACK_F_FIN, TRACK_F_FIN);
        assert.equal(lbTrack().finSeq, 1_000 + REQ.length);
        assert.equal(fids.get(fk)?.track.finSeq, 1_000 + REQ.length);
        assert.equal(fids.finished(fk), true);

        // RST at seq_end (1041, after the FIN): exact, recorded on both.
        const r2 = pair(fam, 40002, FID_TRACK, {
          flags: 'R',
          seq: 1_000 + REQ.length + 1,
          payload: undefined,
          opts: [],
        });
        runAgent(agent, ns, {
          name: 'rst exact',
          input: runLb({ name: 'rst', input: r2.client, output: r2.encap, verdict: 'REDIRECT', reason: 'redirect' }),
          output: { ...r2.client, eth: OUT_ETH },
          verdict: 'PASS',
          reason: 'flow_id_restored',
        });
        assert.equal(lbTrack().flags & TRACK_F_RST, TRACK_F_RST, 'LB: exact RST recorded');
        assert.equal((fids.get(fk)?.track.flags ?? 0) & TRACK_F_RST, TRACK_F_RST, 'agent: exact RST recorded');

        // The client reuses the tuple for a new connection: the LB's stack gets the SYN, untouched.
        const syn = pair(fam, 40002, FID_TRACK, { flags: 'S', seq: 5_000_000, ack: 0, payload: undefined, opts: [] });
        runLb({ name: 'syn on finished', input: syn.client, verdict: 'PASS', reason: 'syn_on_finished' });
        // And the rest of that new connection too (its handshake's ACK, its request), never the old flow id.
        const ack = pair(fam, 40002, FID_TRACK, { flags: 'A', seq: 5_000_001, ack: 7, payload: undefined, opts: [] });
        runLb({ name: 'ack after syn', input: ack.client, verdict: 'PASS', reason: 'superseded' });
        const req = pair(fam, 40002, FID_TRACK, { flags: 'PA', seq: 5_000_001, ack: 7 });
        runLb({ name: 'request after syn', input: req.client, verdict: 'PASS', reason: 'superseded' });
      });
    });
  }

  test("an LB restart's splice recovery leaves migrated entries (blocked or forwarding) in place", () => {
    const before = table.size();
    assert.equal(before, 6, 'three migrated connections per family');
    const ctx = { table, records: new Map() } as unknown as SpliceContext; // recovery reads only these two
    const r = recoverFromTable(ctx);
    assert.equal(r.records.length, 0, 'not adopted as splices');
    assert.equal(r.maxId, 3n, 'their ids still count: new connection ids start after them');
    assert.equal(table.size(), before, 'none deleted');
  });

  test('AgentDatapath (what the agent daemon holds) loads xdp_agent.o, attaches natively, restores, detaches', async () => {
    const dp = await AgentDatapath.load({ bpfDir: BPF_DIR, fidsCapacity: 8 });
    try {
      assert.equal(dp.fids.capacity, 8);
      withNetns(ns.name, () => dp.attach(ns.ifindex));
      const m = planFidMapping({ connId: 1n, client: key(4, 40000), backend: BE, flowId: FID });
      dp.fids.insert(m.key, m.mapping, { rcvNxt: 1_000 });
      const { client, encap } = pair(4, 40000, FID);
      const res = withNetns(ns.name, () =>
        testRun(dp.object.program('baton_agent_xdp'), { packet: buildPacket(encap) }),
      );
      assert.equal(xdpActionName(res.retval), 'DROP', 'HOLD until setState');
      dp.fids.setState(m.key, FidState.RESTORE);
      const res2 = withNetns(ns.name, () =>
        testRun(dp.object.program('baton_agent_xdp'), { packet: buildPacket(encap) }),
      );
      assert.equal(xdpActionName(res2.retval), 'PASS');
      assert.ok(res2.packet.subarray(14).equals(buildPacket(client).subarray(14)));
      const rows = dp.readCounters();
      assert.equal(rows.find((r) => r.reason === 'flow_id_held')?.packets, 1n);
      assert.equal(rows.find((r) => r.reason === 'flow_id_restored')?.packets, 1n);
      assert.equal(dp.fids.get(m.key)?.track.packets, 1n);
    } finally {
      dp.close();
    }
  });

  // ------------------------------------------------------------------ owner classes
  describe('FlowIdTable (the agent map owner)', () => {
    const k = { client: '198.18.0.77', flowId: 0x0005_0001 };
    const m = { connId: 9n, clientPort: 41000, vip: VIP, vipPort: 443, state: FidState.HOLD };

    test('a taken (client, flow id) is FLOW_ID_IN_USE and the first mapping stays', () => {
      fids.insert(k, m);
      assert.throws(
        () => fids.insert(k, { ...m, clientPort: 1 }),
        (e: unknown) =>
          e instanceof BatonError && e.code === 'FLOW_ID_IN_USE' && /0x00050001 from 198\.18\.0\.77/.test(e.message),
      );
      assert.equal(fids.get(k)?.clientPort, 41000);
    });

    test('setState changes HOLD to RESTORE in place; a missing mapping is NOT_FOUND', () => {
      fids.setState(k, FidState.RESTORE);
      assert.equal(fids.get(k)?.state, FidState.RESTORE);
      const missing = { client: '198.18.0.78', flowId: 1 };
      assert.throws(
        () => fids.setState(missing, FidState.RESTORE),
        (e: unknown) => e instanceof BatonError && e.code === 'NOT_FOUND',
      );
      assert.throws(
        () => fids.finished(missing),
        (e: unknown) => e instanceof BatonError && e.code === 'NOT_FOUND',
      );
    });

    test('a VIP of the other family, or an out-of-range port, is refused before the map', () => {
      assert.throws(() => fids.insert({ client: '198.18.0.79', flowId: 1 }, { ...m, vip: VIP6 }), TypeError);
      assert.throws(() => fids.insert({ client: '198.18.0.79', flowId: 1 }, { ...m, vipPort: 70000 }), RangeError);
      assert.equal(fids.get({ client: '198.18.0.79', flowId: 1 }), undefined);
    });

    test('remove reclaims: the flow passes untouched afterwards and the id can be mapped again', () => {
      assert.equal(fids.remove(k), true);
      assert.equal(fids.remove(k), false);
      fids.insert(k, m);
      assert.equal(fids.remove(k), true);
    });

    test('a full table is TABLE_FULL, never an eviction', () => {
      const before = fids.size();
      const extra: Array<{ client: string; flowId: number }> = [];
      try {
        for (let i = before; i < fids.capacity; i++) {
          const kk = { client: '198.18.0.80', flowId: 0x0100_0000 + i };
          fids.insert(kk, m);
          extra.push(kk);
        }
        assert.throws(
          () => fids.insert({ client: '198.18.0.81', flowId: 7 }, m),
          (e: unknown) => e instanceof BatonError && e.code === 'TABLE_FULL' && /16 mappings/.test(e.message),
        );
        // The live mappings are all still there.
        assert.equal(fids.size(), fids.capacity);
        assert.equal(fids.get({ client: CLIENT, flowId: FID })?.state, FidState.RESTORE);
      } finally {
        for (const kk of extra) fids.remove(kk);
      }
    });
  });
});
