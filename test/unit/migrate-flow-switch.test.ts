/** The LB's flow-id allocation and MIGRATED entry steering (control/migrate/flow-switch.ts), and the agent's mapping of a blob. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FidReclaimer } from '../../control/agent/reclaim.js';
import { fidOfFlow } from '../../control/agent/restore.js';
import {
  type FlowKey,
  FlowKind,
  FlowState,
  TRACK_F_FIN,
  TRACK_F_RST,
  TRACK_F_SEEN,
  type Track,
} from '../../control/datapath/abi.js';
import { flowIdPorts } from '../../control/datapath/abi-migrate.js';
import { nextReclaimCheck, reclaimable } from '../../control/datapath/flow-id.js';
import type { FlowEntry } from '../../control/datapath/flow-table.js';
import { BatonError } from '../../control/errors.js';
import { FlowIdAllocator, FlowIdSwitch, isWireFlowId } from '../../control/migrate/flow-switch.js';

const BE1 = '198.18.3.2';
const BE2 = '198.18.3.3';
const client: FlowKey = { src: '198.18.1.1', sport: 40000, dst: '198.19.0.1', dport: 80 };

describe('flow-id allocation', () => {
  test('no id has a zero 16-bit half (a port 0 on the wire)', () => {
    const a = new FlowIdAllocator();
    const first = a.next(BE1);
    assert.equal(first, 0x0001_0001);
    const p = flowIdPorts(first);
    assert.ok(p.sport !== 0 && p.dport !== 0);
    assert.equal(isWireFlowId(0x0001_0000), false);
    assert.equal(isWireFlowId(0x0000_0001), false);
    assert.equal(isWireFlowId(0xffff_ffff), true);
    // 65535 ids further on, the low half would be 0: it is skipped.
    for (let i = 0; i < 0xfffe; i++) a.next(BE1);
    assert.equal(a.next(BE1), 0x0002_0001);
  });

  test('one counter per back end; live ids are never handed out twice; released ids come back after a wrap', () => {
    const a = new FlowIdAllocator(3);
    const x = a.next(BE1);
    assert.equal(a.next(BE2), x, 'another back end has its own counter');
    const y = a.next(BE1);
    const z = a.next(BE1);
    assert.equal(new Set([x, y, z]).size, 3);
    assert.throws(
      () => a.next(BE1),
      (e: unknown) => e instanceof BatonError && e.code === 'TABLE_FULL',
    );
    a.release(BE1, y);
    assert.equal(a.liveCount(BE1), 2);
    const w = a.next(BE1);
    assert.ok(w !== x && w !== z && isWireFlowId(w));
  });
});

interface Op {
  op: string;
  key: FlowKey;
  entry?: FlowEntry;
  state?: number;
}
const fakeTable = (failInsert?: Error) => {
  const ops: Op[] = [];
  const tracks = new Map<string, Track>();
  /** What the table holds, so a second switch can adopt it (a restarted daemon over the pinned table). */
  const held = new Map<string, { key: FlowKey; entry: FlowEntry }>();
  const id = (key: FlowKey) => `${key.src}:${key.sport}`;
  const noTrack: Track = { packets: 0n, bytes: 0n, lastNs: 0n, seqEnd: 0, ackMax: 0, finSeq: 0, flags: 0 };
  return {
    ops,
    tracks,
    held,
    table: {
      track: (key: FlowKey) => tracks.get(id(key)),
      insert: (key: FlowKey, entry: FlowEntry) => {
        if (failInsert) throw failInsert;
        if (held.has(id(key))) throw new BatonError('ALREADY_SPLICED', 'taken', 'duplicate');
        ops.push({ op: 'insert', key, entry });
        held.set(id(key), { key, entry });
      },
      setState: (key: FlowKey, state: number) => {
        ops.push({ op: 'setState', key, state });
        const h = held.get(id(key));
        if (h) h.entry = { ...h.entry, state: state as FlowEntry['state'] };
      },
      remove: (key: FlowKey) => {
        ops.push({ op: 'remove', key });
        return held.delete(id(key));
      },
      *entries() {
        for (const { key, entry } of held.values())
          yield { key: { ...key, family: 4 as const }, flow: { ...entry, track: tracks.get(id(key)) ?? noTrack } };
      },
    },
  };
};

describe('FlowIdSwitch', () => {
  test('begin inserts the MIGRATED entry in BLOCK toward the back end with the flow id in the ports; forward sets FORWARD', () => {
    const { ops, table } = fakeTable();
    const sw = new FlowIdSwitch(table, '198.18.1.2');
    const p = sw.begin(7n, client, BE1);
    assert.equal(ops.length, 1);
    const ins = ops[0] as Op;
    assert.equal(ins.op, 'insert');
    assert.deepEqual(ins.key, client);
    assert.equal(ins.entry?.kind, FlowKind.MIGRATED);
    assert.equal(ins.entry?.state, FlowState.BLOCK);
    assert.equal(ins.entry?.connId, 7n);
    assert.deepEqual(ins.entry?.legs[0]?.x.out, { src: client.src, dst: BE1, ...flowIdPorts(p.flowId) });
    assert.deepEqual(p.mapping, {
      lb: '198.18.1.2',
      flowId: p.flowId,
      client: { ip: client.src, port: client.sport },
      vip: { ip: client.dst, port: client.dport },
    });
    p.forward();
    assert.deepEqual(ops[1], { op: 'setState', key: client, state: FlowState.FORWARD });
    assert.equal(sw.forwardedCount, 0, 'forwarding is not a migration until the agent confirmed');
    p.confirm();
    assert.equal(sw.forwardedCount, 1);
    p.abort(); // after the confirmation: no effect
    p.forward();
    assert.equal(ops.length, 2);
    assert.equal(sw.ids.liveCount(BE1), 1, 'the id stays live until the connection is reclaimed');
  });

  test('forwarding then a refusal: abort still removes the entry and frees the id', () => {
    const { ops, table } = fakeTable();
    const sw = new FlowIdSwitch(table, '198.18.1.2');
    const p = sw.begin(6n, client, BE1);
    p.forward();
    p.abort();
    assert.deepEqual(
      ops.map((o) => o.op),
      ['insert', 'setState', 'remove'],
    );
    assert.equal(sw.ids.liveCount(BE1), 0);
    assert.equal(sw.forwardedCount, 0);
  });

  test('abort removes the entry and frees the id, once', () => {
    const { ops, table } = fakeTable();
    const sw = new FlowIdSwitch(table, '198.18.1.2');
    const p = sw.begin(8n, client, BE1);
    p.abort();
    p.abort();
    assert.deepEqual(
      ops.map((o) => o.op),
      ['insert', 'remove'],
    );
    assert.equal(sw.ids.liveCount(BE1), 0);
  });

  test('a failed insert leaves no id allocated', () => {
    const { table } = fakeTable(new BatonError('ALREADY_SPLICED', 'taken', 'duplicate'));
    const sw = new FlowIdSwitch(table, '198.18.1.2');
    assert.throws(
      () => sw.begin(9n, client, BE1),
      (e: unknown) => e instanceof BatonError && e.code === 'ALREADY_SPLICED',
    );
    assert.equal(sw.ids.liveCount(BE1), 0);
  });
});

describe('FlowIdSwitch.adopt (a restarted daemon over the pinned table)', () => {
  test('takes over forwarded migrations (tracked, ids kept live) and removes unfinished ones', () => {
    const { table, held } = fakeTable();
    const before = new FlowIdSwitch(table, '198.18.1.2');
    const done = before.begin(1n, client, BE1);
    done.forward();
    done.confirm();
    const cut = { ...client, sport: 40002 };
    before.begin(2n, cut, BE1); // the daemon died before the agent confirmed
    const after = new FlowIdSwitch(table, '198.18.1.2');
    assert.deepEqual(after.adopt(), { forwarded: 1, removed: 1 });
    assert.equal(after.forwardedCount, 1);
    assert.deepEqual([...held.keys()], [`${client.src}:${client.sport}`], 'the BLOCK entry is gone');
    assert.equal(after.ids.liveCount(BE1), 1);
    const next = after.begin(3n, { ...client, sport: 40003 }, BE1);
    assert.notEqual(next.flowId, done.flowId, 'an adopted flow id is not handed out again');
  });
});

describe('FlowIdSwitch: a client reusing its ip:port', () => {
  test('an ended migration on the tuple gives way to the new one (its id freed); a live one does not', () => {
    const { table, tracks } = fakeTable();
    const sw = new FlowIdSwitch(table, '198.18.1.2');
    const first = sw.begin(1n, client, BE1);
    first.forward();
    first.confirm();
    const track = (flags: number): Track => ({
      packets: 3n,
      bytes: 1n,
      lastNs: 0n,
      seqEnd: 0,
      ackMax: 0,
      finSeq: 0,
      flags,
    });
    tracks.set(`${client.src}:${client.sport}`, track(TRACK_F_SEEN));
    assert.throws(
      () => sw.begin(2n, client, BE1),
      (e: unknown) => e instanceof BatonError && e.code === 'ALREADY_SPLICED',
      'still open: refused',
    );
    tracks.set(`${client.src}:${client.sport}`, track(TRACK_F_FIN));
    const second = sw.begin(3n, client, BE1);
    assert.equal(sw.forwardedCount, 0, 'the old one is gone');
    assert.equal(sw.ids.liveCount(BE1), 1, "only the new migration's id is live");
    assert.ok(second.flowId > 0);
  });
});

describe('reclaim', () => {
  const MS = 1_000_000n;
  test('reclaimable: FIN or RST seen, and idle for the linger time', () => {
    assert.equal(reclaimable({ flags: TRACK_F_SEEN, lastNs: 0n }, 10_000n * MS, 1000), false, 'still open');
    assert.equal(reclaimable({ flags: TRACK_F_FIN, lastNs: 9_500n * MS }, 10_000n * MS, 1000), false, 'lingering');
    assert.equal(reclaimable({ flags: TRACK_F_FIN, lastNs: 9_000n * MS }, 10_000n * MS, 1000), true);
    assert.equal(reclaimable({ flags: TRACK_F_RST, lastNs: 0n }, 10_000n * MS, 1000), true);
  });

  test('FlowIdSwitch.reclaim removes finished entries, frees their ids, keeps the rest', () => {
    const { ops, table, tracks } = fakeTable();
    const sw = new FlowIdSwitch(table, '198.18.1.2');
    const open = sw.begin(1n, client, BE1);
    const other = { ...client, sport: 40001 };
    const done = sw.begin(2n, other, BE1);
    const track = (flags: number, lastNs: bigint): Track => ({
      packets: 3n,
      bytes: 100n,
      lastNs,
      seqEnd: 0,
      ackMax: 0,
      finSeq: 0,
      flags,
    });
    tracks.set(`${client.src}:${client.sport}`, track(TRACK_F_SEEN, 0n));
    tracks.set(`${other.src}:${other.sport}`, track(TRACK_F_SEEN | TRACK_F_FIN, 0n));
    assert.equal(sw.reclaim(1000, 5000n * MS), 0, 'nothing forwarded yet');
    open.forward();
    open.confirm();
    done.forward();
    done.confirm();
    assert.equal(sw.reclaim(1000, 5000n * MS), 1);
    assert.deepEqual(ops.at(-1), { op: 'remove', key: other });
    assert.equal(sw.ids.liveCount(BE1), 1);
    assert.equal(sw.forwardedCount, 1);
    // The open one was looked at and is not due again until a second later: no lookup before then.
    let reads = 0;
    const read = table.track;
    table.track = (k: FlowKey) => {
      reads++;
      return read(k);
    };
    assert.equal(sw.reclaim(1000, 5500n * MS), 0);
    assert.equal(reads, 0, 'not due: not read');
    // An entry removed elsewhere only frees its id (at its next look).
    tracks.clear();
    const before = ops.length;
    assert.equal(sw.reclaim(1000, 6000n * MS), 1);
    assert.equal(ops.length, before);
    assert.equal(sw.ids.liveCount(BE1), 0);
  });
});

test('nextReclaimCheck: an ended connection when its linger runs out, an open one ever less often, 1 s to 30 s', () => {
  const MS = 1_000_000n;
  const fin = { flags: TRACK_F_SEEN | TRACK_F_FIN, lastNs: 1000n * MS };
  assert.equal(nextReclaimCheck(fin, 2000n * MS, 60_000).atNs, 61_000n * MS, 'last segment + linger');
  assert.equal(nextReclaimCheck(fin, 90_000n * MS, 60_000).atNs, 90_000n * MS, 'overdue: now');
  const open = { flags: TRACK_F_SEEN, lastNs: 0n };
  let interval = 0n;
  const seen: bigint[] = [];
  for (let i = 0; i < 8; i++) {
    const next = nextReclaimCheck(open, 0n, 60_000, interval);
    interval = next.intervalNs;
    seen.push(interval / MS);
  }
  assert.deepEqual(seen, [1000n, 2000n, 4000n, 8000n, 16_000n, 30_000n, 30_000n, 30_000n]);
  // A short linger (tests) keeps the looks at least as often as half the linger.
  assert.equal(nextReclaimCheck(open, 0n, 300, 10_000n * MS).intervalNs, 300n * MS);
  assert.equal(nextReclaimCheck(open, 0n, 300).intervalNs, 300n * MS);
});

test('FidReclaimer: a full pass finds every mapping, later ticks read only those due', () => {
  const MS = 1_000_000n;
  const mapping = (flags: number, lastNs: bigint) => ({
    connId: 1n,
    clientPort: 1,
    vip: client.dst,
    vipPort: 80,
    state: 2 as const,
    track: { packets: 1n, bytes: 1n, lastNs, seqEnd: 0, ackMax: 0, finSeq: 0, flags },
  });
  const table = new Map<number, ReturnType<typeof mapping>>([
    [0x10001, mapping(TRACK_F_SEEN, 0n)],
    [0x10002, mapping(TRACK_F_SEEN | TRACK_F_FIN, 0n)],
  ]);
  let fullPasses = 0;
  let gets = 0;
  const fids = {
    *entries() {
      fullPasses++;
      for (const [flowId, m] of table) yield { key: { client: client.src, flowId, family: 4 as const }, mapping: m };
    },
    get: (k: { flowId: number }) => {
      gets++;
      return table.get(k.flowId);
    },
    remove: (k: { flowId: number }) => table.delete(k.flowId),
  };
  const r = new FidReclaimer(fids as never, 60_000);
  assert.equal(r.tick(1000n * MS), 0, 'the first tick is a full pass; nothing has lingered a minute');
  assert.equal(fullPasses, 1);
  assert.equal(r.tracked, 2);
  assert.equal(r.tick(1500n * MS), 0);
  assert.equal(gets, 0, 'nothing due half a second later');
  assert.equal(r.tick(2000n * MS), 0);
  assert.equal(gets, 1, 'the open one, due after 1 s');
  assert.equal(r.tick(20_000n * MS), 0);
  assert.equal(gets, 2, 'the open one again (now every 2 s); the ended one is not read before its linger ends');
  assert.equal(r.tick(31_000n * MS), 0);
  assert.equal(fullPasses, 2, 'a full pass every 30 s');
  assert.equal(r.tick(60_000n * MS), 1, 'the ended one, read when its linger ran out, removed');
  assert.equal(fullPasses, 2);
  assert.equal(table.has(0x10002), false);
  table.set(0x10001, mapping(TRACK_F_SEEN | TRACK_F_RST, 0n));
  assert.equal(r.tick(61_000n * MS), 1, 'the next full pass finds the other one ended');
  assert.equal(r.tracked, 0);
});

test('a full reclaim pass removes only the finished, idle mappings', () => {
  const MS = 1_000_000n;
  const mk = (flowId: number, flags: number) => ({
    key: { client: client.src, flowId, family: 4 as const },
    mapping: {
      connId: 1n,
      clientPort: 1,
      vip: client.dst,
      vipPort: 80,
      state: 2 as const,
      track: { packets: 1n, bytes: 1n, lastNs: 0n, seqEnd: 0, ackMax: 0, finSeq: 0, flags },
    },
  });
  const removed: number[] = [];
  const fids = {
    *entries() {
      yield mk(0x10001, TRACK_F_SEEN);
      yield mk(0x10002, TRACK_F_SEEN | TRACK_F_FIN);
      yield mk(0x10003, TRACK_F_SEEN | TRACK_F_RST);
    },
    remove: (k: { flowId: number }) => {
      removed.push(k.flowId);
      return true;
    },
  };
  // The first tick of a reclaimer is a full pass.
  const fullPass = (nowNs: bigint) => new FidReclaimer({ ...fids, get: () => undefined } as never, 1000).tick(nowNs);
  assert.equal(fullPass(500n * MS), 0, 'lingering');
  assert.equal(fullPass(2000n * MS), 2);
  assert.deepEqual(removed, [0x10002, 0x10003]);
});

describe("the agent's mapping of a flow mapping", () => {
  test('key (client IP, flow id), mapping to (client port, VIP, VIP port) in HOLD', () => {
    const flow = {
      lb: '198.18.1.2',
      flowId: 0x00010002,
      client: { ip: client.src, port: 40000 },
      vip: { ip: client.dst, port: 80 },
    };
    assert.deepEqual(fidOfFlow(5n, flow), {
      key: { client: client.src, flowId: 0x00010002 },
      mapping: { connId: 5n, clientPort: 40000, vip: client.dst, vipPort: 80, state: 1 },
    });
  });
});
