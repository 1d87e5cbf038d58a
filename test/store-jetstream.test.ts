import t from 'tap';
import { JetStreamEventStore } from '../src/store/jetstream/jetstream-store.js';
import { natsFor } from './helpers/nats.js';
import { runStoreSuite } from './store/suite.js';

// One nats-server for the file; each store gets a prefix of its own (a fresh, empty location).
const nats = await natsFor(t);
let stores = 0;

runStoreSuite(t, 'JetStreamEventStore', async (sameLocationAs) =>
  new JetStreamEventStore({ servers: [nats.url], prefix: (sameLocationAs as JetStreamEventStore | undefined)?.options.prefix ?? `s${++stores}` }),
);
