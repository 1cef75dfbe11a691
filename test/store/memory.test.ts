/** The embedded store against the Store contract (conformance.ts). */
import { MemoryStore } from '../../control/store/memory.js';
import { storeConformance } from './conformance.js';

storeConformance('MemoryStore', async (options) => {
  const store = new MemoryStore(options);
  return { store, another: async () => store, close: () => store.close() };
});
