/**
 * The owner directory and cluster membership (control/owner/) over both
 * stores: the embedded one and a real redis-server. Two or three "LBs" share
 * one store, each with its own OwnerDirectory; what one owns must be
 * installed at the others, batched, withdrawn when released, never published
 * when released first, resynchronized from a snapshot, kept across store
 * trouble; malformed entries and registrations are refused, not installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { Registry } from 'prom-client';
import { BatonError } from '../../control/errors.js';
import { type Cluster, joinCluster } from '../../control/owner/cluster.js';
import { OwnerDirectory, type OwnerEntries } from '../../control/owner/directory.js';
import { startLbCluster } from '../../control/owner/lb-cluster.js';
import {
  decodeOwnedConnection,
  encodeOwnedConnection,
  flowRef,
  type OwnedConnection,
} from '../../control/owner/owned-connection.js';
import { decodePeerInfo, encodePeerInfo, type PeerInfo } from '../../control/owner/peer-info.js';
import { ConnectionRecords } from '../../control/splice/records.js';
import { MemoryStore } from '../../control/store/memory.js';
import { RedisStore } from '../../control/store/redis.js';
import type { Store } from '../../control/store/store.js';
import { fakeRecord } from '../api/lib.js';
import { until } from './conformance.js';
import { haveRedisServer, type RedisServer, startRedis } from './redis-server.js';

const conn = (n: number, family: 4 | 6 = 4): OwnedConnection =>
  family === 4
    ? { family, client: { ip: `198.18.1.${n}`, port: 40000 + n }, vip: { ip: '198.19.0.1', port: 80 } }
    : { family, client: { ip: `2001:db8:1::${n}`, port: 40000 + n }, vip: { ip: '2001:db8:ff::1', port: 443 } };

describe('owner-directory entries and peer info (pure)', () => {
  test('an owned connection round-trips (IPv4, IPv6); its ref is "client->vip", IPv6 in brackets', () => {
    for (const c of [conn(7), conn(7, 6)]) {
      const d = decodeOwnedConnection(encodeOwnedConnection(c, 1234.5));
      assert.deepEqual(d, { ...c, publishedAtMs: 1234.5 });
    }
    assert.equal(flowRef(conn(7)), '198.18.1.7:40007->198.19.0.1:80');
    assert.equal(flowRef(conn(7, 6)), '[2001:db8:1::7]:40007->[2001:db8:ff::1]:443');
  });

  test('malformed entries are refused with STORE_REFUSED saying why', () => {
    const good = encodeOwnedConnection(conn(1), 1);
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.alloc(1), /too short/],
      [Buffer.concat([Buffer.from([2]), good.subarray(1)]), /version 2; this baton reads version 1/],
      [Buffer.concat([Buffer.from([1, 5]), good.subarray(2)]), /address family 5/],
      [good.subarray(0, good.length - 1), /bytes; an IPv4 entry has/],
    ];
    for (const [bytes, why] of cases) {
      assert.throws(
        () => decodeOwnedConnection(bytes),
        (e: unknown) => e instanceof BatonError && e.code === 'STORE_REFUSED' && why.test(e.message),
      );
    }
  });

  test('peer info: round trip; a registration without a usable address or port is refused', () => {
    const info: PeerInfo = { address: '198.18.0.11', ownerPort: 6080, version: '0.4.0' };
    assert.deepEqual(decodePeerInfo('lb1', encodePeerInfo(info)), info);
    for (const [raw, why] of [
      ['not json', /not JSON/],
      ['{"address":"nope","ownerPort":6080}', /not an IP address/],
      ['{"address":"198.18.0.1","ownerPort":70000}', /not a port/],
    ] as const) {
      assert.throws(() => decodePeerInfo('lb9', Buffer.from(raw)), new RegExp(`peer lb9: .*${why.source}`));
    }
  });
});

/** Where a directory installs peers' entries: recorded, to be checked. */
function recordingEntries() {
  const installed = new Map<string, string>();
  const calls: string[] = [];
  const entries: OwnerEntries = {
    install: (ref, _c, owner) => {
      installed.set(ref, owner);
      calls.push(`install ${ref} ${owner}`);
    },
    remove: (ref) => {
      installed.delete(ref);
      calls.push(`remove ${ref}`);
    },
  };
  return { installed, calls, entries };
}

type Opener = () => Promise<Store>;

function ownerSuite(name: string, backend: () => Promise<{ open: Opener; close(): Promise<void> }>) {
  describe(`owner directory on ${name}`, () => {
    let open: Opener;
    let closeBackend: () => Promise<void>;
    const closers: Array<() => Promise<void>> = [];
    before(async () => {
      ({ open, close: closeBackend } = await backend());
    });
    after(async () => {
      for (const c of closers.reverse()) await c().catch(() => {});
      await closeBackend();
    });
    const lb = async (self: string, extra: { store?: Store } = {}) => {
      const store = extra.store ?? (await open());
      const rec = recordingEntries();
      const counts = { published: 0, publishes: 0, withdrawn: 0, refused: 0, propagation: [] as number[] };
      const errors: BatonError[] = [];
      const dir = new OwnerDirectory({
        store,
        self,
        entries: rec.entries,
        retryMs: 20,
        observer: {
          published: (n) => {
            counts.published += n;
            counts.publishes++;
          },
          withdrawn: (n) => {
            counts.withdrawn += n;
          },
          refused: (n) => {
            counts.refused += n;
          },
          propagation: (s) => counts.propagation.push(s),
        },
        onError: (e) => errors.push(e),
      });
      dir.start();
      closers.push(async () => {
        await dir.close({ withdraw: false });
        if (!extra.store) await store.close();
      });
      return { store, dir, ...rec, counts, errors };
    };

    test("what one LB owns is installed at the others as that LB's, in one batch; a release withdraws it", async () => {
      const a = await lb('lbA');
      const b = await lb('lbB');
      const c = await lb('lbC');
      for (let i = 1; i <= 50; i++) a.dir.own(conn(i));
      await until(() => b.installed.size === 50 && c.installed.size === 50, 5000, 'B and C install all 50');
      assert.equal(a.counts.publishes, 1, 'fifty own() calls in one turn: one publish');
      assert.equal(b.installed.get(flowRef(conn(7))), 'lbA');
      assert.equal(a.installed.size, 0, 'an LB never installs its own connections as forwarded ones');
      assert.ok(b.counts.propagation.length >= 1 && b.counts.propagation.every((s) => s >= 0 && s < 5));
      a.dir.release(conn(7));
      await until(() => !b.installed.has(flowRef(conn(7))) && !c.installed.has(flowRef(conn(7))), 5000, 'withdrawn');
      assert.equal(b.installed.size, 49);
      assert.equal(a.dir.ownedCount, 49);
    });

    test('a connection released before its publish went out is never published', async () => {
      const a = await lb('lbD');
      const b = await lb('lbE');
      a.dir.own(conn(100));
      a.dir.release(conn(100));
      a.dir.own(conn(101));
      await until(() => b.installed.has(flowRef(conn(101))), 5000, 'the other one arrives');
      assert.equal(b.installed.has(flowRef(conn(100))), false);
      const { entries } = await a.store.readDirectory();
      assert.equal(entries.filter((e) => e.ref === flowRef(conn(100))).length, 0, 'not in the store either');
    });

    test('an LB that starts later gets everything from a snapshot; a connection that moves is re-pointed', async () => {
      const a = await lb('lbF');
      a.dir.own(conn(150));
      a.dir.own(conn(151, 6));
      await a.dir.flush();
      const late = await lb('lbG');
      await until(() => late.installed.size >= 2, 5000, 'the late LB installs from the snapshot');
      assert.equal(late.installed.get(flowRef(conn(151, 6))), 'lbF');
      const h = await lb('lbH');
      h.dir.own(conn(150)); // the connection now belongs to H
      await until(() => late.installed.get(flowRef(conn(150))) === 'lbH', 5000, 're-pointed to lbH');
      await until(() => !h.installed.has(flowRef(conn(150))), 5000, 'H does not forward what it owns');
    });

    test('malformed entries in the store are refused and counted, never installed', async () => {
      const b = await lb('lbI');
      await b.store.publish('lbRogue', [{ ref: '198.18.9.9:1->198.19.0.1:80', value: Buffer.from('junk') }]);
      await b.store.publish('lbRogue', [
        { ref: '198.18.9.9:2->198.19.0.1:80', value: encodeOwnedConnection(conn(3), 1) },
      ]);
      await until(() => b.counts.refused >= 2, 5000, 'both refused');
      assert.equal(b.installed.has('198.18.9.9:1->198.19.0.1:80'), false);
      assert.equal(
        b.installed.has('198.18.9.9:2->198.19.0.1:80'),
        false,
        'an entry whose value describes another flow',
      );
      assert.ok(b.errors.some((e) => /version|too short|bytes/.test(e.message)));
      assert.ok(b.errors.some((e) => e.reason === 'bad_ref'));
    });

    test('store trouble: failed publishes are kept and retried; nothing is lost', async () => {
      const real = await open();
      closers.push(() => real.close());
      let failuresLeft = 2;
      const flaky: Store = Object.create(real, {
        publish: {
          value: (owner: string, entries: { ref: string; value: Buffer }[]) => {
            if (failuresLeft-- > 0) return Promise.reject(new BatonError('STORE_UNAVAILABLE', 'store away', 'test'));
            return real.publish(owner, entries);
          },
        },
      });
      const a = await lb('lbJ', { store: flaky });
      const b = await lb('lbK');
      for (let i = 200; i < 210; i++) a.dir.own(conn(i));
      await until(
        () => [...b.installed.values()].filter((o) => o === 'lbJ').length === 10,
        5000,
        'all ten arrive after two failures',
      );
      assert.equal(a.errors.filter((e) => e.code === 'STORE_UNAVAILABLE').length, 2);
    });

    test('close() withdraws what the LB owned, so peers stop forwarding to it at once', async () => {
      const store = await open();
      closers.push(() => store.close());
      const rec = recordingEntries();
      const a = new OwnerDirectory({ store, self: 'lbL', entries: rec.entries });
      a.start();
      const b = await lb('lbM');
      a.own(conn(250));
      await until(() => b.installed.has(flowRef(conn(250))), 5000, 'installed');
      await a.close();
      await until(() => !b.installed.has(flowRef(conn(250))), 5000, 'withdrawn at close');
    });

    test('cluster: LBs see each other from the store; a leaving LB is gone at once; bad registrations are left out', async () => {
      const seen = new Map<string, ReadonlyMap<string, PeerInfo>>();
      const members: Cluster[] = [];
      const errors: BatonError[] = [];
      for (const [id, address] of [
        ['lbN', '198.18.0.21'],
        ['lbO', '198.18.0.22'],
        ['lbP', '2001:db8::23'],
      ] as const) {
        const store = await open();
        closers.push(() => store.close());
        members.push(
          await joinCluster({
            store,
            self: id,
            info: { address, ownerPort: 6080, version: 'test' },
            ttlMs: 3000,
            onPeers: (p) => seen.set(id, new Map(p)),
            onError: (e) => errors.push(e),
          }),
        );
      }
      const [n, o, p] = members as [Cluster, Cluster, Cluster];
      await until(
        () => ['lbO', 'lbP'].every((id) => n.peers().has(id)) && o.peers().has('lbP'),
        5000,
        'lbN sees lbO and lbP, lbO sees lbP',
      );
      assert.equal(n.peers().has('lbN'), false, 'not itself');
      assert.equal(o.peers().get('lbP')?.address, '2001:db8::23');
      const rogue = await open();
      closers.push(() => rogue.close());
      await rogue.heartbeatPeer({ id: 'lbRogue', info: Buffer.from('{"address":"x"}') }, 3000);
      await until(() => errors.some((e) => e.reason === 'bad_peer_info'), 5000, 'refused');
      assert.equal(n.peers().has('lbRogue'), false);
      await p.leave();
      await until(() => !n.peers().has('lbP') && !o.peers().has('lbP'), 5000, 'lbP left');
      assert.equal(seen.get('lbN')?.has('lbP'), false);
      await n.leave();
      await o.leave();
    });
  });
}

ownerSuite('the embedded store', async () => {
  const store = new MemoryStore({ reapIntervalMs: 100 });
  // One process, one store: every "LB" gets a view whose close() leaves the shared store open.
  const open: Opener = async () => Object.create(store, { close: { value: async () => {} } }) as Store;
  return { open, close: () => store.close() };
});

const noRedis = !haveRedisServer();
if (noRedis && process.getuid?.() === 0) {
  test('redis-server is installed (scripts/setup installs it)', () => assert.fail('redis-server missing'));
} else if (!noRedis) {
  let srv: RedisServer | undefined;
  ownerSuite('Redis', async () => {
    srv = await startRedis({ prefix: 'bt:' });
    const url = srv.url({ prefix: 'bt:owner:' });
    return { open: () => RedisStore.connect(url, { reapIntervalMs: 100 }), close: async () => srv?.stop() };
  });
}

describe('an LB that expires: its peers withdraw its connections from the directory', { skip: noRedis }, () => {
  test('lb A owns two connections and stops without leaving; after its TTL, lb B withdraws them', async () => {
    const srv = await startRedis({ prefix: 'bt:' });
    const url = srv.url({ prefix: 'bt:expiry:' });
    const quiet = { warn: () => {}, info: () => {}, error: () => {} } as unknown as FastifyBaseLogger;
    const start = async (self: string, address: string) => {
      const records = new ConnectionRecords();
      const rec = recordingEntries();
      const c = await startLbCluster({
        storeUrl: url,
        self,
        info: { address, ownerPort: 6181, version: 'test' },
        peerTtlMs: 300,
        records,
        entries: rec.entries,
        registry: new Registry(),
        log: quiet,
      });
      return { c, records, ...rec };
    };
    const reader = await RedisStore.connect(url);
    try {
      const a = await start('lbA', '198.18.0.31');
      const b = await start('lbB', '198.18.0.32');
      for (const n of [1, 2]) a.records.set(BigInt(n), fakeRecord(BigInt(n), { client: `198.18.1.${n}` }));
      await until(() => b.installed.size === 2, 5000, "B installs A's two connections");
      await a.c.close(); // a restart or a crash: no withdraw, no deregister
      await until(() => b.installed.size === 0, 5000, "B drops A's entries once A expired");
      for (let i = 0; i < 100 && (await reader.readDirectory()).entries.length > 0; i++) await sleep(20);
      assert.deepEqual((await reader.readDirectory()).entries, [], "the store no longer holds the dead LB's entries");
      await b.c.close({ leave: true });
    } finally {
      await reader.close();
      await srv.stop();
    }
  });
});
