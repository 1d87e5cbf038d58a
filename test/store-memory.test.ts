import t from 'tap';
import { MemoryEventStore } from './helpers/memory-store.js';
import { runStoreSuite } from './store/suite.js';

// The fake the commit log and hub tests use: it must honour the contract it stands in for.
runStoreSuite(t, 'MemoryEventStore', async (sameLocationAs) => new MemoryEventStore((sameLocationAs as MemoryEventStore | undefined)?.location));
