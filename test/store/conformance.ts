/**
 * The Store contract (control/store/store.ts), one suite run against every
 * implementation (memory.test.ts, redis.test.ts) so code written against one
 * behaves the same on the other. Short TTLs and bounded waits throughout.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BatonError } from '../../control/errors.js';
import { registerPeer } from '../../control/store/peers.js';
import {
  type DirectoryChange,
  type DirectoryEntry,
  type FeedEvent,
  type LivePeer,
  type PeerChange,
  STORE_LIMITS,
  type Store,
} from '../../control/store/store.js';

export interface StoreFixture {
  /** a store on a fresh, empty backend */
  store: Store;
  /** another client of the same backend (another host); memory: the same store */
  another(): Promise<Store>;
  close(): Promise<void>;
}
export type MakeFixture = (options: { history?: number; reapIntervalMs?: number }) => Promise<StoreFixture>;

const b = (s: string) => Buffer.from(s);

/** Waits until cond() holds, polling; fails after ms with what. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A follower's view of the directory: snapshot, then changes applied in order. */
export function directoryFollower() {
  const state = new Map<string, { owner: string; value: string }>();
  const events: FeedEvent<DirectoryEntry[], DirectoryChange>[] = [];
  let seq = -1;
  const handler = (e: FeedEvent<DirectoryEntry[], DirectoryChange>) => {
    events.push(e);
    if (e.kind === 'snapshot') {
      state.clear();
      for (const x of e.state) state.set(x.ref, { owner: x.owner, value: x.value.toString() });
      seq = e.seq;
      return;
    }
    for (const c of e.changes) {
      assert.equal(c.seq, seq + 1, 'changes arrive in order, none skipped');
      seq = c.seq;
      for (const x of c.entries) {
        if (c.op === 'publish') state.set(x.ref, { owner: c.owner, value: x.value.toString() });
        else state.delete(x.ref);
      }
    }
  };
  return { state, events, handler, seq: () => seq };
}

function asMap(entries: DirectoryEntry[]) {
  return new Map(entries.map((e) => [e.ref, { owner: e.owner, value: e.value.toString() }]));
}

function refused(reason: string) {
  return (e: unknown) => {
    assert.ok(e instanceof BatonError, `a BatonError, got ${String(e)}`);
    assert.equal(e.code, 'STORE_REFUSED');
    assert.equal(e.reason, reason, e.message);
    return true;
  };
}

export function storeConformance(name: string, make: MakeFixture): void {
  describe(`Store conformance: ${name}`, () => {
    test('publish, withdraw, read: ownership is per entry and seqs count changes', async () => {
      const f = await make({});
      try {
        const s = f.store;
        assert.deepEqual(await s.readDirectory(), { seq: 0, entries: [] });
        assert.equal(
          await s.publish('lb1', [
            { ref: '198.18.0.1:1000', value: b('a') },
            { ref: '198.18.0.1:1001', value: b('b') },
          ]),
          1,
        );
        assert.equal(await s.publish('lb2', [{ ref: '[2001:db8::1]:443', value: b('c') }]), 2);
        // lb2 cannot withdraw lb1's entry: nothing changes, the seq stays.
        assert.equal(await s.withdraw('lb2', ['198.18.0.1:1000']), 2);
        assert.equal(await s.withdraw('lb1', ['198.18.0.1:1000', 'nope:1']), 3);
        // A connection moving to another owner (takeover) is a publish by the new owner.
        assert.equal(await s.publish('lb2', [{ ref: '198.18.0.1:1001', value: b('b2') }]), 4);
        assert.equal(await s.withdraw('lb1', ['198.18.0.1:1001']), 4, 'the old owner no longer holds it');
        const d = await s.readDirectory();
        assert.equal(d.seq, 4);
        assert.deepEqual(
          asMap(d.entries),
          new Map([
            ['198.18.0.1:1001', { owner: 'lb2', value: 'b2' }],
            ['[2001:db8::1]:443', { owner: 'lb2', value: 'c' }],
          ]),
        );
        // Binary values come back byte-exact.
        const bin = Buffer.from([0, 10, 255, 13, 10, 0]);
        await s.publish('lb3', [{ ref: 'bin', value: bin }]);
        const got = (await s.readDirectory()).entries.find((e) => e.ref === 'bin');
        assert.ok(got?.value.equals(bin));
        // Another host sees the same directory.
        const o = await f.another();
        assert.deepEqual(asMap((await o.readDirectory()).entries), asMap((await s.readDirectory()).entries));
      } finally {
        await f.close();
      }
    });

    test('a follower gets a snapshot, then every change in order and in batches, and ends equal to the directory', async () => {
      const f = await make({});
      try {
        const s = f.store;
        await s.publish('lb1', [{ ref: 'pre:1', value: b('x') }]);
        const fl = directoryFollower();
        const sub = (await f.another()).followDirectory(fl.handler);
        await until(() => fl.seq() >= 1, 5000, 'the first snapshot');
        assert.equal(fl.events[0]?.kind, 'snapshot');
        const N = 300;
        // Concurrent publishers (as a busy LB's batches would be) and withdrawals.
        await Promise.all(
          Array.from({ length: N }, (_, i) =>
            s.publish(`lb${i % 3}`, [{ ref: `198.18.1.${i % 250}:${i}`, value: b(`v${i}`) }]),
          ),
        );
        await Promise.all(Array.from({ length: 50 }, (_, i) => s.withdraw(`lb${i % 3}`, [`198.18.1.${i % 250}:${i}`])));
        const final = await s.readDirectory();
        await until(() => fl.seq() === final.seq, 10_000, `the follower reaches seq ${final.seq}`);
        assert.deepEqual(fl.state, asMap(final.entries));
        const batches = fl.events.filter((e) => e.kind === 'changes');
        const changes = batches.reduce((n, e) => n + (e.kind === 'changes' ? e.changes.length : 0), 0);
        assert.equal(changes, final.seq - 1);
        assert.ok(batches.length < changes, `changes are batched: ${changes} changes in ${batches.length} deliveries`);
        assert.equal(fl.events.filter((e) => e.kind === 'snapshot').length, 1, 'no resync without a gap');
        assert.equal(sub.seq, final.seq);
        await sub.close();
      } finally {
        await f.close();
      }
    });

    test('a follower that missed more than the history gets a snapshot; one within it gets exactly the missed changes', async () => {
      const f = await make({ history: 10 });
      try {
        const s = f.store;
        for (let i = 0; i < 5; i++) await s.publish('lb1', [{ ref: `r${i}`, value: b(`${i}`) }]);
        // Within the window: from seq 5, after 4 more changes.
        for (let i = 5; i < 9; i++) await s.publish('lb1', [{ ref: `r${i}`, value: b(`${i}`) }]);
        const near = directoryFollower();
        near.handler({
          kind: 'snapshot',
          seq: 5,
          state: (await s.readDirectory()).entries.filter((e) => Number(e.ref.slice(1)) < 5),
        });
        near.events.length = 0;
        const subNear = s.followDirectory(near.handler, { fromSeq: 5 });
        await until(() => near.seq() === 9, 5000, 'the near follower catches up');
        assert.ok(
          near.events.every((e) => e.kind === 'changes'),
          'no snapshot within the window',
        );
        await subNear.close();
        // Out of the window: 40 more changes, a follower still at seq 5.
        for (let i = 9; i < 49; i++) await s.publish('lb1', [{ ref: `r${i % 20}`, value: b(`${i}`) }]);
        await s.withdraw('lb1', ['r0', 'r1']);
        const far = directoryFollower();
        const subFar = s.followDirectory(far.handler, { fromSeq: 5 });
        const final = await s.readDirectory();
        await until(() => far.seq() === final.seq, 5000, 'the far follower resyncs');
        assert.equal(far.events[0]?.kind, 'snapshot', 'a missed window is answered with a snapshot');
        assert.deepEqual(far.state, asMap(final.entries));
        await s.publish('lb1', [{ ref: 'after', value: b('z') }]);
        await until(() => far.seq() === final.seq + 1, 5000, 'changes follow the resync');
        assert.equal(far.state.get('after')?.value, 'z');
        await subFar.close();
        // A cursor from the future (the store lost its history): a snapshot too.
        const future = directoryFollower();
        const subF = s.followDirectory(future.handler, { fromSeq: 10_000 });
        await until(() => future.events.length > 0, 5000, 'a future cursor resyncs');
        assert.equal(future.events[0]?.kind, 'snapshot');
        await subF.close();
      } finally {
        await f.close();
      }
    });

    test('peers: a peer that stops refreshing expires and watchers are told; a registered one stays; removal is immediate', async () => {
      const f = await make({ reapIntervalMs: 50 });
      try {
        const s = f.store;
        const seen = new Map<string, string>();
        const changes: PeerChange[] = [];
        const watcher = await f.another();
        const sub = watcher.followPeers((e: FeedEvent<LivePeer[], PeerChange>) => {
          if (e.kind === 'snapshot') {
            seen.clear();
            for (const p of e.state) seen.set(p.id, p.info.toString());
            return;
          }
          for (const c of e.changes) {
            changes.push(c);
            if (c.type === 'join') seen.set(c.peer.id, c.peer.info.toString());
            else seen.delete(c.id);
          }
        });
        const dead = await s.heartbeatPeer({ id: 'lb-dead', info: b('198.18.0.9') }, 300);
        assert.deepEqual(dead, { joined: true });
        assert.deepEqual(
          await s.heartbeatPeer({ id: 'lb-dead', info: b('198.18.0.9') }, 300),
          { joined: false },
          'a refresh is no join',
        );
        const reg = await registerPeer(s, { id: 'lb-live', info: b('198.18.0.10') }, 300);
        await until(() => seen.has('lb-dead') && seen.has('lb-live'), 3000, 'both peers seen joining');
        const t0 = Date.now();
        await until(() => !seen.has('lb-dead'), 3000, 'the dead peer leaves');
        assert.ok(Date.now() - t0 < 300 + 1500, 'within the TTL and a reap interval');
        const leave = changes.find((c) => c.type === 'leave' && c.id === 'lb-dead');
        assert.deepEqual(leave && { type: leave.type, reason: leave.type === 'leave' && leave.reason }, {
          type: 'leave',
          reason: 'expired',
        });
        await new Promise((r) => setTimeout(r, 600)); // two TTLs: the refreshed one must still be there
        assert.ok(seen.has('lb-live'), 'a refreshing peer does not expire');
        const listed = await s.listPeers();
        assert.deepEqual(
          listed.peers.map((p) => p.id),
          ['lb-live'],
        );
        assert.ok((listed.peers[0]?.expiresInMs ?? 0) > 0 && (listed.peers[0]?.expiresInMs ?? 1e9) <= 300);
        await reg.update(b('198.18.0.11'));
        await until(() => seen.get('lb-live') === '198.18.0.11', 3000, 'an info change is a join with the new info');
        await reg.stop();
        await until(() => !seen.has('lb-live'), 1000, 'a clean stop is seen at once');
        const last = changes.at(-1);
        assert.ok(last?.type === 'leave' && last.reason === 'removed', `a removal, got ${JSON.stringify(last)}`);
        assert.equal(await s.removePeer('lb-live'), false);
        assert.deepEqual((await s.listPeers()).peers, []);
        await sub.close();
      } finally {
        await f.close();
      }
    });

    test('claim is atomic: of N concurrent claimers exactly one wins, first from nobody, then from the holder', async () => {
      const f = await make({});
      try {
        const N = 24;
        const clients = await Promise.all(Array.from({ length: 4 }, () => f.another()));
        const round = async (from: string | null, tag: string) => {
          const results = await Promise.all(
            Array.from({ length: N }, (_, i) =>
              (clients[i % clients.length] as Store).claim('ckpt/198.18.0.1:5000', `${tag}${i}`, { from }),
            ),
          );
          const winners = results.filter((r) => r.won);
          assert.equal(winners.length, 1, `exactly one of ${N} wins (${winners.length} did)`);
          const w = winners[0]?.record.owner;
          for (const r of results) assert.equal(r.record.owner, w, 'every loser is told who holds it');
          return w as string;
        };
        const first = await round(null, 'agent-a');
        const rec = await f.store.get('ckpt/198.18.0.1:5000');
        assert.equal(rec?.owner, first);
        assert.equal(rec?.version, 1);
        // The holder dies: survivors claim from it.
        const second = await round(first, 'agent-b');
        assert.notEqual(second, first);
        assert.equal((await f.store.get('ckpt/198.18.0.1:5000'))?.version, 2);
        // Claiming again what one holds wins (idempotent), from a wrong holder loses.
        assert.equal((await f.store.claim('ckpt/198.18.0.1:5000', second, { from: 'whoever' })).won, true);
        assert.equal((await f.store.claim('ckpt/198.18.0.1:5000', 'agent-c', { from: first })).won, false);
        await assert.rejects(f.store.claim('absent', 'x', { from: 'y' }), refused('no_record'));
        // Fenced delete: only the holder.
        assert.equal(await f.store.delete('ckpt/198.18.0.1:5000', { owner: first }), false);
        assert.equal(await f.store.delete('ckpt/198.18.0.1:5000', { owner: second }), true);
        assert.equal(await f.store.get('ckpt/198.18.0.1:5000'), undefined);
      } finally {
        await f.close();
      }
    });

    test('put with ifVersion is compare-and-set; a record keeps its owner across puts', async () => {
      const f = await make({});
      try {
        const s = f.store;
        assert.deepEqual(await s.put('ck', b('v1'), { ifVersion: 0 }), { ok: true, version: 1 });
        const lost = await s.put('ck', b('other'), { ifVersion: 0 });
        assert.equal(lost.ok, false);
        assert.equal(!lost.ok && lost.current?.value.toString(), 'v1');
        assert.equal((await s.claim('ck', 'agent-1')).won, true);
        assert.deepEqual(await s.put('ck', b('v3'), { ifVersion: 2 }), { ok: true, version: 3 });
        const r = await s.get('ck');
        assert.deepEqual(r && { ...r, value: r.value.toString() }, {
          key: 'ck',
          value: 'v3',
          owner: 'agent-1',
          version: 3,
        });
        // Concurrent CAS from the same version: one wins.
        const res = await Promise.all(Array.from({ length: 10 }, (_, i) => s.put('ck', b(`w${i}`), { ifVersion: 3 })));
        assert.equal(res.filter((x) => x.ok).length, 1);
        assert.equal(await s.delete('ck', { ifVersion: 3 }), false);
        assert.equal(await s.delete('ck', { ifVersion: 4 }), true);
        const big = Buffer.alloc(STORE_LIMITS.recordBytes, 7);
        assert.deepEqual(await s.put('big', big), { ok: true, version: 1 });
        assert.ok((await s.get('big'))?.value.equals(big), 'a record at the limit round-trips');
      } finally {
        await f.close();
      }
    });

    test('bad input is refused with STORE_REFUSED and a reason, and changes nothing', async () => {
      const f = await make({});
      try {
        const s = f.store;
        const one = (ref: string, value = b('x')) => [{ ref, value }];
        await assert.rejects(s.publish('lb1', one('has space')), refused('bad_key'));
        await assert.rejects(s.publish('lb1', one('')), refused('bad_key'));
        await assert.rejects(s.publish('lb1', one('é')), refused('bad_key'));
        await assert.rejects(s.publish('lb1', one('k'.repeat(STORE_LIMITS.keyBytes + 1))), refused('key_too_long'));
        await assert.rejects(s.publish('lb 1', one('ok')), refused('bad_key'));
        await assert.rejects(
          s.publish('lb1', one('ok', Buffer.alloc(STORE_LIMITS.entryBytes + 1))),
          refused('value_too_large'),
        );
        await assert.rejects(
          s.publish('lb1', [{ ref: 'ok', value: 'str' as unknown as Buffer }]),
          refused('bad_value'),
        );
        await assert.rejects(s.publish('lb1', [...one('d'), ...one('d')]), refused('duplicate_ref'));
        const many = Array.from({ length: STORE_LIMITS.batchEntries + 1 }, (_, i) => ({ ref: `r${i}`, value: b('x') }));
        await assert.rejects(s.publish('lb1', many), refused('batch_too_large'));
        await assert.rejects(s.withdraw('lb1', ['a b']), refused('bad_key'));
        await assert.rejects(s.heartbeatPeer({ id: 'p', info: b('i') }, 10), refused('bad_ttl'));
        await assert.rejects(
          s.heartbeatPeer({ id: 'p', info: Buffer.alloc(STORE_LIMITS.peerInfoBytes + 1) }, 1000),
          refused('value_too_large'),
        );
        await assert.rejects(s.put('k', Buffer.alloc(STORE_LIMITS.recordBytes + 1)), refused('value_too_large'));
        await assert.rejects(s.put('k', b('x'), { ifVersion: -1 }), refused('bad_version'));
        await assert.rejects(s.claim('k\n', 'o'), refused('bad_key'));
        assert.throws(() => s.followDirectory(() => {}, { fromSeq: 1.5 }), refused('bad_version'));
        // A batch at the limit is fine.
        const max = many.slice(0, STORE_LIMITS.batchEntries);
        assert.equal(await s.publish('lb1', max), 1, 'nothing before changed the seq');
        assert.equal((await s.readDirectory()).entries.length, STORE_LIMITS.batchEntries);
        assert.equal((await s.listPeers()).peers.length, 0);
        assert.equal(await s.get('k'), undefined);
      } finally {
        await f.close();
      }
    });

    test('a closed store says so', async () => {
      const f = await make({});
      try {
        const s = await f.another();
        const fl = directoryFollower();
        s.followDirectory(fl.handler);
        await s.close();
        await s.close(); // twice is fine
        await assert.rejects(
          s.readDirectory(),
          (e: unknown) => e instanceof BatonError && e.code === 'STORE_UNAVAILABLE' && e.reason === 'closed',
        );
      } finally {
        await f.close();
      }
    });
  });
}
