/**
 * The store an LB runs with: `--store redis://...` joins a cluster through
 * Redis; without it the LB runs alone on the embedded store.
 */
import { MemoryStore, type MemoryStoreOptions } from './memory.js';
import { RedisStore, type RedisStoreOptions } from './redis.js';
import type { Store } from './store.js';

export async function openStore(
  url: string | undefined,
  options: MemoryStoreOptions & RedisStoreOptions = {},
): Promise<Store> {
  if (url === undefined || url === '') return new MemoryStore(options);
  return RedisStore.connect(url, options);
}
