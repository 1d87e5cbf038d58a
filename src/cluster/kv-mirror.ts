/**
 * Keeps a KV bucket's keys in view: every revision of every key, once, in order per key, to
 * `onEntry` — the current values first (`ready` resolves once those are in), then each change.
 *
 * Why not a bare `kv.watch()`: its consumer lives on the nats-server, and a nats-server restart can
 * lose it; so on every reconnect the watch is started again from the revision after the last one
 * seen, and revisions already seen (the old watch may still deliver a few) are dropped.
 */
import type { KV, KvEntry, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/nats-core';

export type EntryListener = (entry: KvEntry) => void;

const RETRY_MS = 250;

export class KvMirror {
  readonly #kv: KV;
  readonly #onEntry: EntryListener;
  readonly #onError: (error: unknown) => void;
  /** Highest revision delivered, per key and over the bucket (a KV revision is its stream seq). */
  readonly #revisions = new Map<string, number>();
  #lastRevision = 0;
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  /** Watches being opened: see `stop`. */
  readonly #opening = new Set<Promise<void>>();
  #stopped = false;
  /** Counts restarts, so that a retry of an older one gives way to a newer one. */
  #generation = 0;
  #caughtUp: (() => void) | undefined;
  readonly ready: Promise<void>;

  constructor(kv: KV, onEntry: EntryListener, onError: (error: unknown) => void) {
    this.#kv = kv;
    this.#onEntry = onEntry;
    this.#onError = onError;
    this.ready = new Promise((resolve) => (this.#caughtUp = resolve));
  }

  /** Starts watching; `ready` resolves once every value stored at this moment was delivered. */
  async start(): Promise<void> {
    // An empty bucket sends nothing; otherwise the watch marks the last of the current values as the first update.
    if ((await this.#kv.status()).values === 0) this.#markCaughtUp();
    await this.#open(0, this.#generation);
    await this.ready;
  }

  /**
   * The connection came back: a new watch from where this one was (see the header). JetStream may
   * still be recovering on a nats-server that just restarted: the watch is retried until it opens.
   */
  restart(): void {
    if (this.#stopped) return;
    this.#watch?.stop();
    this.#watch = undefined;
    const generation = ++this.#generation;
    const attempt = () => {
      if (this.#stopped || generation !== this.#generation) return;
      this.#open(this.#lastRevision + 1, generation).catch((error: unknown) => {
        this.#onError(error);
        setTimeout(attempt, RETRY_MS);
      });
    };
    attempt();
  }

  /**
   * No more entries, no more retries. Resolves once no watch is still being opened: the connection
   * must not be drained under one (a `kv.watch` that finds it draining fails after it started its
   * consumer's 30 s heartbeat monitor, which then outlives everything, process included). A watch
   * opened after the stop is stopped as soon as it opens.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch?.stop();
    this.#watch = undefined;
    await Promise.allSettled(this.#opening);
  }

  #open(fromRevision: number, generation: number): Promise<void> {
    const opening = this.#openWatch(fromRevision, generation);
    this.#opening.add(opening);
    const forget = () => this.#opening.delete(opening);
    opening.then(forget, forget);
    return opening;
  }

  async #openWatch(fromRevision: number, generation: number): Promise<void> {
    const watch = await this.#kv.watch(fromRevision > 0 ? { resumeFromRevision: fromRevision } : {});
    if (this.#stopped || generation !== this.#generation) {
      watch.stop();
      return;
    }
    this.#watch = watch;
    void this.#drain(watch);
  }

  async #drain(watch: QueuedIterator<KvWatchEntry>): Promise<void> {
    try {
      for await (const entry of watch) {
        if (watch !== this.#watch) return;
        this.#deliver(entry);
      }
    } catch (error) {
      if (watch === this.#watch) this.#onError(error);
    }
  }

  #deliver(entry: KvWatchEntry): void {
    if (entry.isUpdate) this.#markCaughtUp();
    if (entry.revision <= (this.#revisions.get(entry.key) ?? 0)) return;
    this.#revisions.set(entry.key, entry.revision);
    this.#lastRevision = Math.max(this.#lastRevision, entry.revision);
    try {
      this.#onEntry(entry);
    } catch (error) {
      this.#onError(error);
    }
  }

  #markCaughtUp(): void {
    this.#caughtUp?.();
    this.#caughtUp = undefined;
  }
}
