/**
 * The live feed of a node of a cluster (a store that `supports.follow`): an execution running here
 * is live as in a single process; one that is not live here and has not ended may be running on
 * another node, and its subscribers here get its events from a remote tail: one `follow` of its log
 * per execution on this node, shared by all local subscribers, started from the cursor of the first
 * one that needed it (later ones with lower cursors catch up from the store to the tail's seq, as
 * they would to a local commit). A tail hands its chunks to the hub exactly as local commits are
 * handed (`deliver`), its last delivered seq is the execution's committedSeq here, and it ends with
 * the chunk that holds `done` (`finish`). What a tail delivers is stored by JetStream already, so
 * "durable before sent" holds on every node.
 */
import type { EventStore, LogFollow, StoreError } from '../store/event-store.js';
import type { CommittedChunk } from './commit-log.js';
import { endsWithDone, isDone, locateLog, type LiveFeed, type LogState } from './live-feed.js';

/** Where a tail's chunks go: the subscription hub. */
export interface TailTarget {
  deliver(chunks: CommittedChunk[]): void;
  finish(executionId: string, finalSeq: number): void;
}

/** A broken follow (NATS unreachable longer than its client retries) starts again from its seq after this. */
const RETRY_MS = 500;

interface Tail {
  committedSeq: number;
  follow: LogFollow | null;
  retry: NodeJS.Timeout | null;
}

export class FollowingFeed implements LiveFeed {
  readonly #store: EventStore;
  readonly #live: (executionId: string) => number | undefined;
  readonly #target: () => TailTarget;
  readonly #onError: (error: StoreError) => void;
  readonly #tails = new Map<string, Tail>();
  #closed = false;

  /** `target` is asked for lazily: the hub is built with this feed. */
  constructor(store: EventStore, live: (executionId: string) => number | undefined, target: () => TailTarget, onError: (error: StoreError) => void) {
    this.#store = store;
    this.#live = live;
    this.#target = target;
    this.#onError = onError;
  }

  committedSeq(executionId: string): number | undefined {
    return this.#live(executionId) ?? this.#tails.get(executionId)?.committedSeq;
  }

  /**
   * Live here: as far as committed. Elsewhere: a terminal record is exact; a record that has not
   * ended may lag its log (and the log may hold its `done` already), so the log decides.
   */
  locate(executionId: string): Promise<LogState | null> {
    return locateLog(this.#store, this.#live, executionId, async (record) => {
      if (record.ended_at !== undefined) return { lastSeq: record.last_seq, finalSeq: record.last_seq };
      const lastSeq = await this.#store.lastSeq(executionId);
      return { lastSeq, finalSeq: (await endsWithDone(this.#store, executionId, lastSeq)) ? lastSeq : null };
    });
  }

  follow(executionId: string, afterSeq: number): void {
    if (this.#closed || this.#live(executionId) !== undefined || this.#tails.has(executionId)) return;
    const tail: Tail = { committedSeq: afterSeq, follow: null, retry: null };
    this.#tails.set(executionId, tail);
    this.#start(executionId, tail);
  }

  unfollow(executionId: string): void {
    const tail = this.#tails.get(executionId);
    if (!tail) return;
    this.#tails.delete(executionId);
    tail.follow?.stop();
    if (tail.retry) clearTimeout(tail.retry);
  }

  close(): void {
    this.#closed = true;
    for (const executionId of [...this.#tails.keys()]) this.unfollow(executionId);
  }

  #start(executionId: string, tail: Tail): void {
    tail.retry = null;
    try {
      tail.follow = this.#store.follow(executionId, tail.committedSeq, {
        chunk: (chunk) => this.#onChunk(tail, chunk),
        error: (error) => this.#broken(executionId, tail, error),
      });
    } catch (error) {
      this.#broken(executionId, tail, error as StoreError);
    }
  }

  #onChunk(tail: Tail, chunk: CommittedChunk): void {
    if (this.#tails.get(chunk.executionId) !== tail) return;
    tail.committedSeq = chunk.firstSeq + chunk.frames.length - 1;
    const target = this.#target();
    target.deliver([chunk]);
    if (isDone(chunk.frames[chunk.frames.length - 1]!)) {
      this.unfollow(chunk.executionId);
      target.finish(chunk.executionId, tail.committedSeq);
    }
  }

  #broken(executionId: string, tail: Tail, error: StoreError): void {
    if (this.#tails.get(executionId) !== tail) return;
    // A closed store is not coming back: shutdown.
    if (error.code === 'STORE_NOT_OPEN') return this.unfollow(executionId);
    this.#onError(error);
    tail.follow = null;
    tail.retry = setTimeout(() => this.#start(executionId, tail), RETRY_MS);
  }
}
