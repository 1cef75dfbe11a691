/**
 * The pure parts of the operations (issue 12): the drain's state machine,
 * the cluster status built from its inputs, percentiles, and what the CLI
 * makes of them (`baton status`' lines, `baton lb drain --wait`).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeCluster, drainCommand, parseTimeout } from '../../control/cli/cluster-commands.js';
import type { Io } from '../../control/cli/io.js';
import { EXIT, UsageError } from '../../control/cli/usage.js';
import { PEERS_MAX } from '../../control/datapath/abi-owner.js';
import {
  aloneStatus,
  buildClusterStatus,
  type ClusterStatusInput,
  DirectoryTimes,
  PROPAGATION_SAMPLES,
  percentile,
} from '../../control/owner/cluster-status.js';
import { peerSlots } from '../../control/owner/datapath-owners.js';
import type { BatonClient } from '../../control/sdk/client.js';
import type { DrainStatus } from '../../control/sdk/types.js';
import { Drain, drainState } from '../../control/service/drain.js';

describe('drain', () => {
  test('state: serving unless draining; draining with nothing left is drained', () => {
    assert.equal(drainState(false, 0), 'serving');
    assert.equal(drainState(false, 5), 'serving');
    assert.equal(drainState(true, 5), 'draining');
    assert.equal(drainState(true, 0), 'drained');
  });

  test('start is idempotent, refuses splices with DRAINING, tells onDrained once, cancel serves again', () => {
    let held = 2;
    let t = 1_000_000;
    const told: string[] = [];
    const d = new Drain({ held: () => held, now: () => t, onDrained: (v) => told.push(v.state) });
    assert.equal(d.refusal(), undefined, 'serving: nothing refused');
    const v1 = d.start();
    assert.deepEqual(v1, {
      state: 'draining',
      since: new Date(1_000_000).toISOString(),
      drainedAt: null,
      connectionsLeft: 2,
    });
    t += 5000;
    assert.equal(d.start().since, v1.since, 'a second start keeps the first time');
    assert.equal(d.refusal()?.code, 'DRAINING');
    assert.equal(d.refusal()?.status, 503);
    held = 0;
    t += 1000;
    const v2 = d.check();
    assert.equal(v2.state, 'drained');
    assert.equal(v2.drainedAt, new Date(1_006_000).toISOString());
    t += 1000;
    assert.equal(d.check().drainedAt, v2.drainedAt, 'drained at the first moment, not the last look');
    assert.deepEqual(told, ['drained'], 'told once');
    assert.deepEqual(d.cancel(), { state: 'serving', since: null, drainedAt: null, connectionsLeft: 0 });
    assert.equal(d.refusal(), undefined);
    d.start();
    assert.deepEqual(told, ['drained', 'drained'], 'a new drain is told again');
  });
});

const input = (over: Partial<ClusterStatusInput> = {}): ClusterStatusInput => ({
  self: { id: 'lb1', address: '198.18.4.2', ownerPort: 6181 },
  storeKind: 'redis',
  peers: new Map([
    ['lb3', { address: '198.18.6.2', ownerPort: 6181, version: '1', ttlMs: 3000 }],
    ['lb2', { address: '198.18.5.2', ownerPort: 6182, version: '1' }],
  ]),
  live: {
    peers: [
      { id: 'lb2', info: Buffer.alloc(0), expiresInMs: 2500.4 },
      { id: 'lb3', info: Buffer.alloc(0), expiresInMs: 1000 },
    ],
  },
  entriesByOwner: new Map([['lb3', 7]]),
  traffic: new Map([['198.18.6.2', { packets: 10n, bytes: 1500n }]]),
  owned: 3,
  published: 2,
  forwarded: 7,
  known: 8,
  pending: 1,
  times: { lastPublishAtMs: 0, lastInstallAtMs: undefined, propagationsMs: [] },
  drain: { state: 'serving', since: null, drainedAt: null, connectionsLeft: 3 },
  ...over,
});

describe('cluster status', () => {
  test('peers sorted by id with TTL left, last seen when their TTL is known, their entries and forwarded packets', () => {
    const s = buildClusterStatus(input());
    assert.equal(s.mode, 'cluster');
    assert.match(s.detail, /member lb1 of a cluster of 3 LBs \(2 live peers\)/);
    assert.deepEqual(
      s.peers.map((p) => [p.id, p.ownerPort, p.ttlLeftMs, p.lastSeenMsAgo, p.connections, p.forwardedPackets]),
      [
        ['lb2', 6182, 2500, null, 0, 0],
        ['lb3', 6181, 1000, 2000, 7, 10],
      ],
    );
    assert.deepEqual(s.connections, { owned: 3, published: 2, forwarded: 7, known: 8 });
    assert.deepEqual(s.store, { kind: 'redis', reachable: true });
    assert.equal(s.directory?.lastPublishAt, new Date(0).toISOString());
    assert.deepEqual(
      [s.directory?.lastInstallAt, s.directory?.lastPropagationMs, s.directory?.propagationP99Ms, s.directory?.samples],
      [null, null, null, 0],
    );
  });

  test('the store away: peers still listed (the datapath uses them), TTLs unknown, the error said', () => {
    const s = buildClusterStatus(input({ live: { error: 'connection refused' } }));
    assert.deepEqual(s.store, { kind: 'redis', reachable: false, error: 'connection refused' });
    assert.deepEqual(
      s.peers.map((p) => [p.ttlLeftMs, p.lastSeenMsAgo]),
      [
        [null, null],
        [null, null],
      ],
    );
  });

  test('a registered peer the cluster does not trust (bad info) is not listed', () => {
    const s = buildClusterStatus(input({ live: { peers: [{ id: 'lb9', info: Buffer.alloc(0), expiresInMs: 10 }] } }));
    assert.deepEqual(
      s.peers.map((p) => p.id),
      ['lb2', 'lb3'],
    );
  });

  test('percentile: nearest rank; the directory keeps the most recent propagations only', () => {
    assert.equal(percentile([], 50), null);
    assert.equal(percentile([5], 99), 5);
    assert.equal(percentile([4, 1, 3, 2], 50), 2);
    assert.equal(percentile([4, 1, 3, 2], 99), 4);
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(xs, 99), 99);
    const t = new DirectoryTimes(() => 42);
    for (let i = 0; i < PROPAGATION_SAMPLES + 10; i++) t.propagation(i / 1000);
    assert.equal(t.propagationsMs.length, PROPAGATION_SAMPLES);
    assert.equal(t.propagationsMs[0], 10, 'the oldest went');
    assert.equal(t.lastInstallAtMs, 42);
  });

  test('baton status lines: alone says so; a cluster names each peer and the drain', () => {
    const alone = describeCluster(
      aloneStatus(2, { state: 'draining', since: new Date().toISOString(), drainedAt: null, connectionsLeft: 2 }),
    );
    assert.match(alone[0] ?? '', /^cluster +alone \(no --store\)/);
    assert.match(alone.at(-1) ?? '', /^drain +draining since .*2 connections left/);
    const lines = describeCluster(buildClusterStatus(input()), 1000).join('\n');
    assert.match(lines, /cluster +lb1 at 198\.18\.4\.2 \(owner port 6181\), store redis reachable/);
    assert.match(
      lines,
      /lb3 +198\.18\.6\.2 +ttl left 1\.0s, seen 2\.0s ago, 7 of its connections here, forwarded 10 packets/,
    );
    assert.match(lines, /owned +3 connections \(2 in the directory\); forwarded to peers 7/);
    assert.match(lines, /directory 1 change pending/);
    assert.match(lines, /drain +serving/);
  });
});

describe('baton lb drain', () => {
  const io = (): Io & { lines: string[] } => {
    const lines: string[] = [];
    return { lines, out: (t) => lines.push(t), err: (t) => lines.push(`err: ${t}`), json: false, env: {} };
  };
  const fakeApi = (states: DrainStatus[]): BatonClient & { calls: string[] } => {
    const calls: string[] = [];
    let i = 0;
    const next = (method: string) => async () => {
      calls.push(method);
      return states[Math.min(i++, states.length - 1)] as DrainStatus;
    };
    return {
      calls,
      drain: next('POST'),
      undrain: next('DELETE'),
      drainStatus: next('GET'),
    } as unknown as BatonClient & { calls: string[] };
  };
  const st = (state: DrainStatus['state'], left: number): DrainStatus => ({
    state,
    since: state === 'serving' ? null : new Date().toISOString(),
    drainedAt: state === 'drained' ? new Date().toISOString() : null,
    connectionsLeft: left,
  });

  test('--wait polls until drained and exits 0; --timeout that passes first exits 1', async () => {
    const api = fakeApi([st('draining', 2), st('draining', 1), st('drained', 0)]);
    const o = io();
    assert.equal(await drainCommand(o, api, { wait: true }, async () => {}), EXIT.OK);
    assert.deepEqual(api.calls, ['POST', 'GET', 'GET']);
    assert.match(o.lines.at(-1) ?? '', /^drained: holds no connection/);
    const slow = fakeApi([st('draining', 5)]);
    assert.equal(await drainCommand(io(), slow, { wait: true, timeout: '0s' }, async () => {}), EXIT.FAILED);
  });

  test('--cancel serves again; misuse is a usage error', async () => {
    const api = fakeApi([st('serving', 0)]);
    const o = io();
    assert.equal(await drainCommand(o, api, { cancel: true }), EXIT.OK);
    assert.deepEqual(api.calls, ['DELETE']);
    assert.match(o.lines[0] ?? '', /drain cancelled: serving/);
    await assert.rejects(drainCommand(io(), api, { cancel: true, wait: true }), UsageError);
    await assert.rejects(drainCommand(io(), api, { timeout: '5m' }), UsageError);
    assert.equal(parseTimeout('90s'), 90_000);
    assert.equal(parseTimeout('5m'), 300_000);
    assert.equal(parseTimeout('1500ms'), 1500);
    assert.equal(parseTimeout('2'), 2000);
    assert.throws(() => parseTimeout('soon'), UsageError);
  });
});

describe('peer stats slots', () => {
  test('a peer keeps its slot while it stays; a new one takes the lowest free; only new slots are given (zeroed)', () => {
    const a = peerSlots(new Map(), ['lb3', 'lb2']);
    assert.deepEqual([...a.slots].sort(), [
      ['lb2', 1],
      ['lb3', 2],
    ]);
    assert.deepEqual(a.given, [1, 2]);
    const b = peerSlots(a.slots, ['lb3', 'lb4']); // lb2 left, lb4 joined: lb2's slot is reused
    assert.deepEqual([...b.slots].sort(), [
      ['lb3', 2],
      ['lb4', 1],
    ]);
    assert.deepEqual(b.given, [1]);
    assert.deepEqual(peerSlots(b.slots, ['lb4', 'lb3']).given, [], 'nothing new: nothing zeroed');
  });

  test('bounded: however many peers come and go, slots stay in 1..PEERS_MAX; beyond it a peer gets none', () => {
    let cur = new Map<string, number>();
    for (let round = 0; round < 5; round++) {
      const live = Array.from({ length: 10 }, (_, i) => `r${round}-lb${i}`);
      cur = peerSlots(cur, live).slots;
      assert.ok(
        [...cur.values()].every((s) => s >= 1 && s <= 10),
        JSON.stringify([...cur]),
      );
    }
    const many = Array.from({ length: PEERS_MAX + 2 }, (_, i) => `lb${String(i).padStart(4, '0')}`);
    const r = peerSlots(new Map(), many);
    assert.equal(r.slots.size, PEERS_MAX);
    assert.equal(Math.max(...r.slots.values()), PEERS_MAX);
  });
});
