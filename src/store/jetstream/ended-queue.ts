/**
 * Terminal executions in the order they ended, for retention: a stream `<P>_ENDED` with one small
 * message per terminal record (`{id, ended_at}`). KV has no range scans, and listing every retained
 * execution's key on each sweep would grow with the number retained; the queue is read from its
 * front only, and each entry is removed once handled, so a sweep costs what it expires.
 *
 * Entries are in commit order, which is end order up to the few milliseconds between an end and its
 * commit: a sweep stops at the first entry not old enough, so one that ended a moment earlier but
 * was queued later waits for the next sweep.
 */
import { headers } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Packr } from 'msgpackr';
import { StoreError } from '../event-store.js';
import type { Names } from './names.js';
import type { AckPublisher } from './publisher.js';

const packr = new Packr({ useRecords: false });

interface Entry {
  id: string;
  ended_at: number;
}

export class EndedQueue {
  readonly #names: Names;
  readonly #jsm: JetStreamManager;
  readonly #publisher: AckPublisher;

  constructor(names: Names, jsm: JetStreamManager, publisher: AckPublisher) {
    this.#names = names;
    this.#jsm = jsm;
    this.#publisher = publisher;
  }

  /** Creates the queue's stream when missing. */
  static async ensure(names: Names, jsm: JetStreamManager, replicas: number): Promise<void> {
    const exists = await jsm.streams.info(names.endedStream).catch(() => undefined);
    if (!exists) await jsm.streams.add({ name: names.endedStream, subjects: [names.endedSubject], allow_direct: true, num_replicas: replicas });
  }

  async push(executionId: string, endedAt: number): Promise<void> {
    await this.#publisher.publish(this.#names.endedSubject, packr.pack({ id: executionId, ended_at: endedAt } satisfies Entry), headers());
  }

  /**
   * Hands entries that ended before `endedBefore` to `expire`, oldest first, until `limit` of them
   * expired something (an entry whose record is gone or ended again later expires nothing) or the
   * front entry is too young; removes each entry handled. Returns how many expired something.
   */
  async sweep(endedBefore: number, limit: number, expire: (executionId: string, endedAt: number) => Promise<boolean>): Promise<number> {
    let expired = 0;
    let streamSeq = 0;
    while (expired < limit) {
      const message = await this.#jsm.direct
        .getMessage(this.#names.endedStream, { seq: streamSeq + 1, next_by_subj: this.#names.endedSubject })
        .catch((error: Error) => {
          throw new StoreError('STORE_UNAVAILABLE', `could not read the ended queue: ${error.message}`, { cause: error });
        });
      if (!message) break;
      const entry = packr.unpack(message.data) as Entry;
      if (entry.ended_at >= endedBefore) break;
      if (await expire(entry.id, entry.ended_at)) expired++;
      // Another sweeper (a later node) may have removed it already: either way it is handled.
      await this.#jsm.streams.deleteMessage(this.#names.endedStream, message.seq, false).catch(() => false);
      streamSeq = message.seq;
    }
    return expired;
  }
}
