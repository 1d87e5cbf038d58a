/**
 * Deletes executions (records and events) that ended longer ago than the retention age, in the
 * background and a page at a time, so a large backlog never holds the event loop or the store.
 * A subscriber reading an execution while it is deleted simply reaches the end of its log.
 */
import type { EventStore } from '../store/event-store.js';

const PAGE = 100;

export class RetentionSweeper {
  readonly #store: EventStore;
  readonly #maxAgeMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #timer: NodeJS.Timeout;
  #sweeping: Promise<number> | null = null;
  deleted = 0;

  constructor(store: EventStore, maxAgeMs: number, everyMs: number, onError: (error: unknown) => void) {
    this.#store = store;
    this.#maxAgeMs = maxAgeMs;
    this.#onError = onError;
    this.#timer = setInterval(() => void this.sweep(), everyMs);
    this.#timer.unref();
  }

  /** One sweep (or the one under way): resolves with how many executions it deleted. */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweepAll().finally(() => (this.#sweeping = null));
    return this.#sweeping;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  async #sweepAll(): Promise<number> {
    let count = 0;
    try {
      const cutoff = Date.now() - this.#maxAgeMs;
      for (;;) {
        if (!this.#store.isOpen) break;
        const expired = await this.#store.expireEndedBefore(cutoff, PAGE);
        count += expired;
        if (expired < PAGE) break;
      }
    } catch (error) {
      this.#onError(error);
    }
    this.deleted += count;
    return count;
  }
}
