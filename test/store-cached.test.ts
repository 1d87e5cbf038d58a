import t from 'tap';
import { CachedEventStore } from '../src/store/cached-store.js';
import { MemoryEventStore } from './helpers/memory-store.js';
import { runStoreSuite } from './store/suite.js';

// The read cache server.ts puts in front of the configured store: with it, the store still honours
// the contract (a small cache, so that eviction happens too). Sharing a location means sharing the
// backing store's, each instance with its own cache, as two servers would.
const backing = new WeakMap<CachedEventStore, MemoryEventStore>();
runStoreSuite(t, 'CachedEventStore', async (sameLocationAs) => {
  const inner = new MemoryEventStore(sameLocationAs ? backing.get(sameLocationAs as CachedEventStore)!.location : undefined);
  const store = new CachedEventStore(inner, 64 * 1024);
  backing.set(store, inner);
  return store;
});
