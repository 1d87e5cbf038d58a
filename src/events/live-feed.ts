/**
 * Where the subscription hub learns how far an execution's log goes and whether more is coming.
 * An execution that is not producing events in this process may still be producing them elsewhere
 * (on another node of a cluster): the hub must not take "not live here" for "ended". A feed says
 * which it is, and for one running elsewhere it delivers that execution's new chunks to the hub
 * (`deliver`, then `finish` at its last seq) as this process's own commits are delivered.
 *
 * The local engine is the feed of a single process (LocalFeed below): everything live is live here.
 * A clustered store adds one that follows other nodes' logs (a JetStream `follow(id, afterSeq)`).
 */
import { decodeValue } from '../../protocol/codec.js';
import type { ExecutionRecord } from '../../protocol/types.js';
import type { EventStore } from '../store/event-store.js';

/** Where a log stands: its highest durable seq, and the seq of its `done` once it has ended. */
export interface LogState {
  lastSeq: number;
  finalSeq: number | null;
  /**
   * The log ends at lastSeq without a `done`, and nothing more will come: the store refused the
   * rest of the execution's events for good (it ended `store_refused`). finalSeq is null: no `done`.
   * Only LocalFeed says so: on a cluster such a log looks like one another node is still writing.
   */
  refused?: true;
}

export interface LiveFeed {
  /**
   * The highest durable seq of an execution whose new chunks reach the hub through `deliver`
   * (running here, or followed), or undefined when none do. Synchronous: the hub compares it with a
   * subscription's cursor in the same turn as deliveries, which is what makes the hand-off from
   * stored to live events gapless.
   */
  committedSeq(executionId: string): number | undefined;
  /** Where the log of an execution stands, wherever it runs; null when there is no such execution. */
  locate(executionId: string): Promise<LogState | null>;
  /**
   * A subscriber needs the new events of an execution running elsewhere, from seq afterSeq + 1:
   * from now on `committedSeq` answers for it and its chunks reach the hub, until `finish`.
   */
  follow(executionId: string, afterSeq: number): void;
  /** No subscriber needs the execution's events any more: a follow may stop. */
  unfollow(executionId: string): void;
  /** Stops every follow (shutdown). */
  close?(): void;
}

/**
 * The feed of one process: an execution is live exactly when the engine runs it here. One that is
 * not but whose record never ended is one whose writes the store refused for good (store_refused:
 * its run was stopped, and nothing more of it is written), or was left by a process that died
 * (recovery ends those before the server listens): its log ends where the log says, not where its
 * record (which may lag) says, and one that does not end with a `done` will never get one.
 */
export class LocalFeed implements LiveFeed {
  readonly #store: EventStore;
  readonly #live: (executionId: string) => number | undefined;

  constructor(store: EventStore, live: (executionId: string) => number | undefined) {
    this.#store = store;
    this.#live = live;
  }

  committedSeq(executionId: string): number | undefined {
    return this.#live(executionId);
  }

  locate(executionId: string): Promise<LogState | null> {
    return locateLog(this.#store, this.#live, executionId, async (record) => {
      if (record.ended_at !== undefined) return { lastSeq: record.last_seq, finalSeq: record.last_seq };
      const lastSeq = await this.#store.lastSeq(executionId);
      return (await endsWithDone(this.#store, executionId, lastSeq)) ? { lastSeq, finalSeq: lastSeq } : { lastSeq, finalSeq: null, refused: true };
    });
  }

  /** Nothing runs elsewhere: every live execution's commits already reach the hub. */
  follow(): void {}

  unfollow(): void {}
}

/**
 * The opening of every feed's `locate`: an execution live here stands as far as it has committed;
 * one that is not is placed from its record by `notLive` (null when it has none).
 */
export async function locateLog(
  store: EventStore,
  live: (executionId: string) => number | undefined,
  executionId: string,
  notLive: (record: ExecutionRecord) => Promise<LogState>,
): Promise<LogState | null> {
  const seq = live(executionId);
  if (seq !== undefined) return { lastSeq: seq, finalSeq: null };
  const record = await store.getExecution(executionId);
  // It may have been created (and be live) while the store was read.
  const now = live(executionId);
  if (now !== undefined) return { lastSeq: now, finalSeq: null };
  return record ? notLive(record) : null;
}

/** Whether the log's event at lastSeq is its `done` (false for an empty log). */
export async function endsWithDone(store: EventStore, executionId: string, lastSeq: number): Promise<boolean> {
  const [last] = lastSeq === 0 ? [] : await store.readEvents(executionId, lastSeq - 1, 1);
  return last !== undefined && isDone(last.frame);
}

/** An execution's log ends with its `done` (the only event nothing follows). */
export function isDone(frame: Uint8Array): boolean {
  return (decodeValue(frame) as { type?: unknown }).type === 'done';
}
