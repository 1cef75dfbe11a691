/**
 * Migrate mode's flow id in the ports, the pure parts: the port split, the
 * agent's key and mapping codecs (byte positions as bpf/xdp_agent.c reads
 * them), and the planning of the LB's MIGRATED entry and the agent's
 * mapping from one migration.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFlow, encodeFlow, FlowKind, FlowState, LAYOUTS, TRACK_F_SEEN } from '../../control/datapath/abi.js';
import {
  decodeFidKey,
  decodeFidMapping,
  encodeFidCtl,
  encodeFidKey,
  encodeFidMapping,
  FidCtlOp,
  FidState,
  flowIdOfPorts,
  flowIdPorts,
} from '../../control/datapath/abi-migrate.js';
import { planFidMapping, planMigratedEntry } from '../../control/datapath/flow-id.js';

test('flow id: high 16 bits in sport, low 16 in dport, and back', () => {
  for (const id of [0, 1, 0xffff, 0x1_0000, 0x0001_002a, 0xdead_beef, 0xffff_ffff]) {
    const p = flowIdPorts(id);
    assert.equal(p.sport, Math.floor(id / 0x1_0000));
    assert.equal(p.dport, id % 0x1_0000);
    assert.equal(flowIdOfPorts(p.sport, p.dport), id);
  }
  for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) assert.throws(() => flowIdPorts(bad), RangeError);
  assert.throws(() => flowIdOfPorts(70000, 0), RangeError);
});

test('agent key: the flow id is stored as the wire carries it (sport bytes, then dport bytes)', () => {
  const b = encodeFidKey({ client: '198.18.0.10', flowId: 0xdead_beef });
  const f = LAYOUTS.baton_fid_key.fields;
  assert.equal(b.length, LAYOUTS.baton_fid_key.size);
  assert.deepEqual([...b.subarray(f.flow_id, f.flow_id + 4)], [0xde, 0xad, 0xbe, 0xef]);
  assert.deepEqual([...b.subarray(f.saddr, f.saddr + 4)], [198, 18, 0, 10]);
  assert.ok(
    b.subarray(f.saddr + 4, f.saddr + 16).equals(Buffer.alloc(12)),
    'IPv4 zero-padded so keys compare bytewise',
  );
  assert.equal(b[f.family], 4);
  assert.equal(b[f.proto], 6);
  assert.deepEqual(decodeFidKey(b), { family: 4, client: '198.18.0.10', flowId: 0xdead_beef });
  const b6 = encodeFidKey({ client: '2001:db8::10', flowId: 7 });
  assert.deepEqual(decodeFidKey(b6), { family: 6, client: '2001:db8::10', flowId: 7 });
});

test('agent mapping: round trip, ports big-endian, track seeded, family and state checked', () => {
  const m = { connId: 42n, clientPort: 40000, vip: '2001:db8:1::1', vipPort: 443, state: FidState.HOLD };
  const track = { packets: 0n, bytes: 0n, lastNs: 0n, seqEnd: 0xffff_fff0, ackMax: 0, finSeq: 0, flags: TRACK_F_SEEN };
  const b = encodeFidMapping(6, m, track);
  const f = LAYOUTS.baton_fid_mapping.fields;
  assert.equal(b.readUInt16BE(f.cport), 40000);
  assert.equal(b.readUInt16BE(f.vport), 443);
  assert.deepEqual(decodeFidMapping(b, 6), { ...m, track });
  assert.throws(() => encodeFidMapping(4, m), TypeError, 'IPv6 VIP for an IPv4 client');
  assert.throws(() => encodeFidMapping(6, { ...m, state: 3 as never }), RangeError);
  assert.throws(() => encodeFidMapping(6, { ...m, clientPort: -1 }), RangeError);
});

test('agent control request: key, op and state where the control program reads them', () => {
  const b = encodeFidCtl({ client: '198.18.0.10', flowId: 5 }, FidState.RESTORE);
  const f = LAYOUTS.baton_fid_ctl.fields;
  assert.equal(b.length, LAYOUTS.baton_fid_ctl.size);
  assert.ok(
    b.subarray(f.key, f.key + LAYOUTS.baton_fid_key.size).equals(encodeFidKey({ client: '198.18.0.10', flowId: 5 })),
  );
  assert.equal(b.readUInt32LE(f.op), FidCtlOp.SET_STATE);
  assert.equal(b.readUInt32LE(f.state), FidState.RESTORE);
});

test('one migration plans the LB entry and the agent mapping that undo each other', () => {
  const client = { src: '198.18.0.10', dst: '198.18.1.1', sport: 40000, dport: 80 };
  const m = { connId: 7n, client, backend: '198.18.3.10', flowId: 0x0001_002a };
  const { key, entry } = planMigratedEntry(m);
  assert.deepEqual(key, client);
  assert.equal(entry.kind, FlowKind.MIGRATED);
  assert.equal(entry.state, FlowState.BLOCK, 'blocked until the agent confirms');
  assert.equal(entry.legs.length, 1);
  const out = entry.legs[0]?.x.out;
  assert.deepEqual(out, { src: client.src, dst: '198.18.3.10', sport: 1, dport: 42 });
  // Survives the connection table's codec.
  assert.deepEqual(decodeFlow(encodeFlow(entry), 4).legs[0]?.x.out, out);

  const { key: fk, mapping } = planFidMapping(m);
  assert.deepEqual(fk, { client: client.src, flowId: 0x0001_002a });
  assert.equal(flowIdOfPorts(out?.sport ?? -1, out?.dport ?? -1), fk.flowId, 'the agent keys what the LB writes');
  assert.deepEqual(mapping, { connId: 7n, clientPort: 40000, vip: client.dst, vipPort: 80, state: FidState.HOLD });

  assert.throws(() => planMigratedEntry({ ...m, backend: '2001:db8:3::10' }), TypeError);
  assert.throws(() => planMigratedEntry({ ...m, flowId: 2 ** 32 }), RangeError);
});
