/**
 * Store propagation: how long from publish() on one store client to the
 * change reaching another client's followDirectory() handler, for the
 * embedded store and for Redis (plain and rediss://), on this machine.
 * Not a test: it prints p50/p99/max. Both clients live in this process, so
 * one clock measures both ends.
 *
 *   node --import tsx bench/store-propagation.ts [--events 1000]
 *
 * Each event is published alone and awaited before the next (no batching
 * helps): the per-change latency an owner-directory update would see.
 * Bounded: at most --events events and 60 s per store.
 */
import { parseArgs } from 'node:util';
import { MemoryStore } from '../control/store/memory.js';
import { RedisStore } from '../control/store/redis.js';
import type { DirectoryChange, DirectoryEntry, FeedEvent, Store } from '../control/store/store.js';
import { haveRedisServer, startRedis } from '../test/store/redis-server.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '1000' } } });
const EVENTS = Math.min(100_000, Math.max(10, Number(values.events)));
const LIMIT_MS = 60_000;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function measure(name: string, pub: Store, sub: Store): Promise<void> {
  const sent = new Map<number, number>();
  const lat: number[] = [];
  let wake: (() => void) | undefined;
  let ready = false;
  const follow = sub.followDirectory((e: FeedEvent<DirectoryEntry[], DirectoryChange>) => {
    const now = performance.now();
    if (e.kind === 'snapshot') ready = true;
    else
      for (const c of e.changes) {
        for (const x of c.entries) {
          const t = sent.get(x.value.readUInt32BE(0));
          if (t !== undefined) lat.push(now - t);
        }
      }
    wake?.();
  });
  const t0 = Date.now();
  while (!ready && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
  for (let i = 0; i < EVENTS && Date.now() - t0 < LIMIT_MS; i++) {
    const got = new Promise<void>((r) => {
      wake = r;
    });
    // The event's number travels in the value, so the receiving end finds its start time
    // even when the change arrives before publish() has returned.
    const value = Buffer.alloc(64);
    value.writeUInt32BE(i, 0);
    sent.set(i, performance.now());
    await pub.publish('lb1', [{ ref: `198.18.${(i >> 8) & 255}.${i & 255}:${1024 + (i % 60000)}`, value }]);
    await Promise.race([got, new Promise((r) => setTimeout(r, 1000))]);
  }
  await follow.close();
  const s = [...lat].sort((a, b) => a - b);
  const f = (x: number) => `${(x * 1000).toFixed(0)} µs`;
  console.log(
    `${name.padEnd(22)} events ${String(s.length).padStart(5)}  p50 ${f(quantile(s, 0.5)).padStart(9)}  p99 ${f(quantile(s, 0.99)).padStart(9)}  max ${f(s.at(-1) ?? Number.NaN).padStart(9)}`,
  );
}

const mem = new MemoryStore();
await measure('memory', mem, mem);
await mem.close();

if (!haveRedisServer()) {
  console.log('redis: redis-server is not installed (scripts/setup); skipped');
} else {
  for (const tls of [false, true]) {
    const srv = await startRedis({ prefix: 'bench:', tls });
    try {
      const a = await RedisStore.connect(srv.url());
      const b = await RedisStore.connect(srv.url());
      try {
        await measure(tls ? 'redis rediss:// (TLS)' : 'redis redis://', a, b);
      } finally {
        await a.close();
        await b.close();
      }
    } finally {
      await srv.stop();
    }
  }
}
