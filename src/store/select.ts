/**
 * Which EventStore a server runs on (VMSTREAM_STORE): LevelDB in its data folder, the embedded
 * default, or NATS JetStream, shared by every server given the same NATS and prefix.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import type { EventStore } from './event-store.js';
import { JetStreamEventStore } from './jetstream/jetstream-store.js';
import { LevelEventStore } from './level-store.js';

/** Margin between an execution's record expiring and its events leaving the JetStream stream. */
const EVENT_AGE_MARGIN_MS = 10 * 60 * 1000;

export interface SelectedStore {
  store: EventStore;
  /** The store can be written to right now (JetStream: connected to NATS; LevelDB: open). */
  reachable(): boolean;
}

export function storeFor(config: Config): SelectedStore {
  if (config.store === 'level') {
    const store = new LevelEventStore(path.join(config.dataDir, 'events'));
    return { store, reachable: () => store.isOpen };
  }
  const store = new JetStreamEventStore({
    servers: config.natsUrls,
    prefix: config.jetstreamPrefix,
    replicas: config.jetstreamReplicas,
    nodeId: config.nodeId,
    // Events outlive the records that reach them: a record goes `retention` after its end, and
    // its events were all written within the longest run before that end.
    maxAgeMs: config.retentionMs === 0 ? 0 : config.retentionMs + config.maxTimeoutMs + EVENT_AGE_MARGIN_MS,
  });
  return { store, reachable: () => store.isOpen && store.connected };
}
