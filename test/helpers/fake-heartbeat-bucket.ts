/**
 * The `<P>_nodes` bucket as Membership (src/cluster/membership.ts) uses it, in memory: keys with
 * revisions from one sequence, compare-and-set on update. With `answering` off it plays a
 * nats-server that died under the requests: an update is sent (counted in `updates`) but never
 * lands and is never answered, as a publish lost with the connection waits out its timeout.
 */
import type { KvEntry } from '@nats-io/kv';
import type { HeartbeatBucket } from '../../src/cluster/membership.js';

type Value = Parameters<HeartbeatBucket['update']>[1];

export class FakeHeartbeatBucket implements HeartbeatBucket {
  readonly #entries = new Map<string, KvEntry>();
  #sequence = 0;
  answering = true;
  /** Updates sent, answered or not. */
  updates = 0;

  async get(key: string): Promise<KvEntry | null> {
    return this.#entries.get(key) ?? null;
  }

  async create(key: string, value: Value): Promise<number> {
    if (this.#entries.get(key)?.operation === 'PUT') throw new Error('wrong last sequence: key exists');
    return this.#put(key, value, 'PUT');
  }

  update(key: string, value: Value, revision: number): Promise<number> {
    this.updates++;
    if (!this.answering) return new Promise<never>(() => undefined);
    if ((this.#entries.get(key)?.revision ?? 0) !== revision) return Promise.reject(new Error('wrong last sequence'));
    return Promise.resolve(this.#put(key, value, 'PUT'));
  }

  async delete(key: string): Promise<void> {
    this.#put(key, new Uint8Array(), 'DEL');
  }

  watch(): never {
    throw new Error('FakeHeartbeatBucket has no watch: give Membership an empty bucket');
  }

  #put(key: string, value: Value, operation: KvEntry['operation']): number {
    const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
    const revision = ++this.#sequence;
    this.#entries.set(key, {
      bucket: 'fake_nodes',
      key,
      rawKey: key,
      value: bytes,
      created: new Date(),
      revision,
      operation,
      length: bytes.length,
      json: () => JSON.parse(new TextDecoder().decode(bytes)),
      string: () => new TextDecoder().decode(bytes),
    });
    return revision;
  }
}
