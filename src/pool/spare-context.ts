/**
 * One session context made ahead on each worker thread, once it has been quiet for a while, for the
 * next session opened there. Making a context takes ~1.5 ms on a quiet machine (the vm context and
 * the in-context code: sandbox/session-context.ts) and 2–12 ms on a busy one, and a thread does it
 * before anything else it was sent: an `execute` sent the moment `session.create` answers reached
 * the thread while it was still making the context, and its first event waited for it (traced:
 * 2.6–8.4 ms in 3 of 13 runs at load 5–7). With a spare, `open` costs nothing.
 *
 * The spare is made only after QUIET_MS without a request or a run's end on the thread, never while
 * a run is under way: whatever arrives while it is being made waits for it, as an `execute` waited
 * for `open` before. A fixed delay after `open` instead (50 ms) fell on the bench's gated runs,
 * whose `execute` comes 10–80 ms after the create, and made their first event later.
 */

/** How long the thread must have had nothing to do before the spare is made. */
export const QUIET_MS = 500;

export interface SpareClock {
  now(): number;
  /** Calls `fn` once, `ms` later, without keeping the thread alive for it. */
  later(fn: () => void, ms: number): void;
}

const timers: SpareClock = { now: () => performance.now(), later: (fn, ms) => void setTimeout(fn, ms).unref() };

export class SpareContexts<T> {
  readonly #make: () => T;
  readonly #busy: () => boolean;
  readonly #clock: SpareClock;
  #spare: T | null = null;
  #pending = false;
  #lastActive: number;

  /** `make` builds a context; `busy` says whether a run is under way on the thread (then the spare waits). */
  constructor(make: () => T, busy: () => boolean, clock: SpareClock = timers) {
    this.#make = make;
    this.#busy = busy;
    this.#clock = clock;
    this.#lastActive = clock.now();
    this.#later(QUIET_MS);
  }

  /** The thread was asked something, or a run ended: the spare waits for QUIET_MS from now. */
  touch(): void {
    this.#lastActive = this.#clock.now();
  }

  /** A context for a session opened now: the spare when there is one (a new one is made later), else a new one. */
  take(): T {
    this.touch();
    const context = this.#spare ?? this.#make();
    this.#spare = null;
    this.#later(QUIET_MS);
    return context;
  }

  #later(ms: number): void {
    if (this.#pending) return;
    this.#pending = true;
    this.#clock.later(() => {
      this.#pending = false;
      if (this.#spare !== null) return;
      const quiet = this.#clock.now() - this.#lastActive;
      if (quiet < QUIET_MS) return this.#later(QUIET_MS - quiet);
      if (this.#busy()) return this.#later(QUIET_MS);
      this.#spare = this.#make();
    }, ms);
  }
}
