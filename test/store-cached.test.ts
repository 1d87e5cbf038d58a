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

t.test('a reservation is the backing store\'s: a create it defers stays deferred behind the cache', async (t) => {
  const store = new CachedEventStore(new MemoryEventStore(undefined, { reserve: true }), 64 * 1024);
  await store.open();
  t.teardown(() => store.close());
  const record = { execution_id: 'r', session_id: 's', number: 1, kind: 'repl' as const, status: 'queued' as const, created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' };
  t.same(await store.reserveExecution(record), { created: true, record, written: false }, 'decided, not written');
  t.equal(await store.getExecution('r'), undefined, 'nothing stored yet');
  t.equal((await store.reserveExecution({ ...record, session_id: 'other' })).created, false, 'the id is taken');
  t.same((await store.commit({ sessions: [], creates: [record], executions: [], events: [] })).failed, [], 'written by a commit');
  t.same(await store.getExecution('r'), record, 'stored');
});
