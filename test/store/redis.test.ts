/**
 * RedisStore against a real redis-server (redis-server.ts): the Store
 * contract (conformance.ts) with an ACL user confined to its key prefix,
 * then what only Redis has: the URL, credentials, permissions, TLS
 * (rediss:// with a self-signed CA), reconnection, and a server that lost
 * its data.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@redis/client';
import { BatonError } from '../../control/errors.js';
import { RedisStore } from '../../control/store/redis.js';
import { parseStoreUrl, redactUrl } from '../../control/store/redis-url.js';
import type { Store } from '../../control/store/store.js';
import { directoryFollower, storeConformance, until } from './conformance.js';
import { ADMIN_PASSWORD, ADMIN_USER, haveRedisServer, type RedisServer, startRedis } from './redis-server.js';

const PREFIX = 'bt:';
const missing = !haveRedisServer();
// Missing as root is a setup failure, not a reason to skip: scripts/setup installs it.
const skip =
  missing && process.getuid?.() !== 0 ? 'redis-server is not installed and we are not root (run scripts/setup)' : false;

describe('parseStoreUrl (pure)', () => {
  test('redis://, rediss://, unix://, credentials, database, prefix', () => {
    const t = parseStoreUrl('redis://us%40er:p%3Ass@127.0.0.1:6380/3?prefix=c1:');
    assert.deepEqual(
      { ...t },
      {
        tls: false,
        host: '127.0.0.1',
        port: 6380,
        database: 3,
        prefix: 'c1:',
        username: 'us@er',
        password: 'p:ss',
        redacted: 'redis://us%40er:***@127.0.0.1:6380/3?prefix=c1:',
      },
    );
    const s = parseStoreUrl('rediss://[::1]?ca=/etc/ca.pem&servername=redis.example');
    assert.equal(s.tls, true);
    assert.equal(s.host, '::1');
    assert.equal(s.port, 6379);
    assert.equal(s.caFile, '/etc/ca.pem');
    assert.equal(s.servername, 'redis.example');
    assert.equal(s.prefix, 'baton:');
    const u = parseStoreUrl('unix:///run/redis/redis.sock?db=2');
    assert.equal(u.path, '/run/redis/redis.sock');
    assert.equal(u.database, 2);
    assert.equal(redactUrl('redis://:secret@h:1'), 'redis://:***@h:1');
  });

  test('a bad URL is CONFIG_INVALID naming the problem and the forms, never the password', () => {
    for (const [url, why] of [
      ['http://h', /unknown scheme http/],
      ['redis://h/abc', /database "abc"/],
      ['redis://h:0', /no host|out of range|not a URL/],
      ['redis://h?ca=/x', /rediss:\/\/ only/],
      ['rediss://h?ca=rel.pem', /absolute path/],
      ['redis://h?bogus=1', /unknown parameter bogus/],
      ['redis://u:topsecret@h/?db=1', /not \?db=/],
      ['unix://', /absolute path/],
      ['nonsense', /not a URL/],
    ] as const) {
      assert.throws(
        () => parseStoreUrl(url),
        (e: unknown) => {
          assert.ok(e instanceof BatonError && e.code === 'CONFIG_INVALID', String(e));
          assert.match(e.message, why);
          assert.match(e.message, /expected redis:\/\//);
          assert.doesNotMatch(e.message, /topsecret/);
          return true;
        },
        url,
      );
    }
  });
});

describe('RedisStore on a real redis-server', { skip }, () => {
  let srv: RedisServer;
  let n = 0;
  before(async () => {
    srv = await startRedis({ prefix: PREFIX });
  });
  after(async () => {
    await srv?.stop();
  });

  /** An admin connection for what the test does to the server (the store's user may not). */
  async function admin() {
    const c = createClient({
      socket: { host: '127.0.0.1', port: srv.port },
      username: ADMIN_USER,
      password: ADMIN_PASSWORD,
    });
    c.on('error', () => {});
    await c.connect();
    return c;
  }

  storeConformance('RedisStore', async (options) => {
    // A fresh backend: a new prefix under the ACL user's key pattern.
    const url = srv.url({ prefix: `${PREFIX}${++n}:` });
    const opened: Store[] = [];
    const open = async () => {
      const s = await RedisStore.connect(url, options);
      opened.push(s);
      return s;
    };
    const store = await open();
    return { store, another: open, close: async () => void (await Promise.all(opened.map((s) => s.close()))) };
  });

  describe('what only Redis has', () => {
    const fails = (reason: string, more?: RegExp) => (e: unknown) => {
      assert.ok(e instanceof BatonError, String(e));
      assert.equal(e.code, 'STORE_UNAVAILABLE');
      assert.equal(e.reason, reason, e.message);
      if (more) assert.match(e.message, more);
      assert.doesNotMatch(e.message, /store-test-pw|wrongpw/, 'never the password');
      return true;
    };

    test('wrong credentials fail at once (auth_failed); a key outside the ACL pattern is permission_denied with the grants to add', async () => {
      const t0 = Date.now();
      await assert.rejects(RedisStore.connect(srv.url({ password: 'wrongpw' })), fails('auth_failed', /ACL/));
      assert.ok(Date.now() - t0 < 2000, 'no waiting out the connect timeout on a lasting error');
      const s = await RedisStore.connect(srv.url({ prefix: 'elsewhere:' }));
      try {
        await assert.rejects(s.publish('lb1', []), fails('permission_denied', /~elsewhere:\* \+@read/));
      } finally {
        await s.close();
      }
    });

    test('nothing listening is connection_refused after the connect timeout', async () => {
      const t0 = Date.now();
      await assert.rejects(
        RedisStore.connect('redis://127.0.0.1:1/0', { connectTimeoutMs: 800 }),
        fails('connection_refused', /is redis-server running/),
      );
      assert.ok(Date.now() - t0 < 3000);
    });

    test('connections killed under a follower: it reconnects and resumes from its cursor, missing nothing', async () => {
      const url = srv.url({ prefix: `${PREFIX}${++n}:` });
      const a = await RedisStore.connect(url);
      const b = await RedisStore.connect(url);
      const adm = await admin();
      try {
        const fl = directoryFollower();
        const errors: BatonError[] = [];
        const sub = b.followDirectory(fl.handler, { onError: (e) => errors.push(e) });
        await a.publish('lb1', [{ ref: 'r0', value: Buffer.from('0') }]);
        await until(() => fl.seq() === 1, 5000, 'first change');
        for (let round = 1; round <= 3; round++) {
          await adm.sendCommand(['CLIENT', 'KILL', 'USER', 'baton']);
          // Commands fail while a connection is down (no offline queue): retry like a caller would.
          for (let i = 0; i < 10; i++) {
            for (let tries = 0; ; tries++) {
              try {
                await a.publish('lb1', [{ ref: `r${round}-${i}`, value: Buffer.from(`${i}`) }]);
                break;
              } catch (e) {
                assert.ok(e instanceof BatonError && e.code === 'STORE_UNAVAILABLE', String(e));
                assert.ok(tries < 100, 'the publisher reconnected');
                await new Promise((r) => setTimeout(r, 20));
              }
            }
          }
        }
        const final = await a.readDirectory();
        assert.equal(final.seq, 31);
        await until(() => fl.seq() === final.seq, 10_000, 'the follower catches up after reconnecting');
        assert.equal(fl.events.filter((e) => e.kind === 'snapshot').length, 1, 'resumed by cursor, no resync needed');
        assert.equal(fl.state.size, 31);
        assert.ok(errors.length > 0, 'the follower reported the lost connection');
        await sub.close();
      } finally {
        await adm.close();
        await a.close();
        await b.close();
      }
    });

    test('a server that lost its data (FLUSHALL, as a restart without persistence): followers resync from a snapshot', async () => {
      const url = srv.url({ prefix: `${PREFIX}${++n}:` });
      const s = await RedisStore.connect(url, { blockMs: 200 });
      const adm = await admin();
      try {
        for (let i = 0; i < 5; i++) await s.publish('lb1', [{ ref: `r${i}`, value: Buffer.from('x') }]);
        const fl = directoryFollower();
        const sub = s.followDirectory(fl.handler);
        await until(() => fl.seq() === 5, 5000, 'caught up');
        await adm.sendCommand(['FLUSHALL']);
        // New history, seqs from 1 again, below the follower's cursor.
        await s.publish('lb2', [{ ref: 'n1', value: Buffer.from('y') }]);
        await until(() => fl.events.filter((e) => e.kind === 'snapshot').length === 2, 5000, 'a second snapshot');
        assert.deepEqual([...fl.state.keys()], ['n1']);
        await sub.close();
      } finally {
        await adm.close();
        await s.close();
      }
    });

    test('a stopped server: commands fail at once with STORE_UNAVAILABLE; close() is clean', async () => {
      const own = await startRedis({ prefix: PREFIX });
      const s = await RedisStore.connect(own.url());
      const fl = directoryFollower();
      s.followDirectory(fl.handler);
      await until(() => fl.seq() === 0, 5000, 'snapshot');
      await own.stop();
      await until(() => !s.ready, 5000, 'the client sees it');
      const t0 = Date.now();
      await assert.rejects(s.publish('lb1', []), fails('disconnected', /reconnects/));
      assert.ok(Date.now() - t0 < 500, 'no waiting for a server that is gone');
      await s.close();
    });
  });

  test('a feed that starts while the server is down follows it once it is back (its failed reader is not kept)', async () => {
    const own = await startRedis({ prefix: PREFIX });
    let again: RedisServer | undefined;
    const s = await RedisStore.connect(own.url());
    try {
      await own.stop();
      await until(() => !s.ready, 5000, 'the client sees the server gone');
      const fl = directoryFollower();
      const errors: BatonError[] = [];
      const sub = s.followDirectory(fl.handler, { onError: (e) => errors.push(e) });
      await until(() => errors.length > 0, 10_000, 'the feed reports the server away');
      again = await startRedis({ prefix: PREFIX, port: own.port });
      for (let tries = 0; ; tries++) {
        try {
          await s.publish('lb1', [{ ref: 'back', value: Buffer.from('1') }]);
          break;
        } catch (e) {
          assert.ok(tries < 250, `the store reconnected: ${String(e)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      await until(() => fl.state.has('back'), 15_000, 'the feed follows the server that came back');
      await sub.close();
    } finally {
      await s.close();
      await again?.stop();
    }
  });

  describe('rediss:// (TLS, self-signed CA made by openssl)', () => {
    let tls: RedisServer;
    before(async () => {
      tls = await startRedis({ prefix: PREFIX, tls: true });
    });
    after(async () => {
      await tls?.stop();
    });

    test('with ?ca= it works end to end: publish, follow, claim', async () => {
      const url = tls.url();
      assert.match(url, /^rediss:\/\/.*\?.*ca=/);
      const a = await RedisStore.connect(url);
      const b = await RedisStore.connect(url);
      try {
        const fl = directoryFollower();
        const sub = b.followDirectory(fl.handler);
        await a.publish('lb1', [{ ref: '198.18.0.1:9', value: Buffer.from('tls') }]);
        await until(() => fl.state.get('198.18.0.1:9')?.value === 'tls', 5000, 'over TLS');
        assert.equal((await b.claim('ck', 'x')).won, true);
        await sub.close();
      } finally {
        await a.close();
        await b.close();
      }
    });

    test('without the CA the handshake is refused (tls) with the fix; plain redis:// to a TLS port does not connect', async () => {
      const noCa = tls.url().replace(/&?ca=[^&]*/, '');
      await assert.rejects(RedisStore.connect(noCa), (e: unknown) => {
        assert.ok(e instanceof BatonError && e.code === 'STORE_UNAVAILABLE' && e.reason === 'tls', String(e));
        assert.match(e.message, /\?ca=/);
        return true;
      });
      const plain = tls
        .url()
        .replace(/^rediss:/, 'redis:')
        .replace(/&?ca=[^&]*/, '');
      await assert.rejects(RedisStore.connect(plain, { connectTimeoutMs: 1000 }), (e: unknown) => {
        assert.ok(e instanceof BatonError && e.code === 'STORE_UNAVAILABLE', String(e));
        return true;
      });
    });
  });
});
