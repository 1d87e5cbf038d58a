/**
 * In a sandbox process, the workers write their rings out themselves (shared-output.ts), and the
 * main thread drains only the ring of a worker that cannot: one stuck in a loop after it printed.
 * Finding those needs a look at the rings every CHECK_MS while any holds records, and none at all
 * while they are empty: an idle sandbox process wakes for nothing (a timer that always ran cost it
 * ~50 wake-ups a second). Between looks at empty rings, the main thread sleeps on a shared word
 * (Atomics.waitAsync, no timeout), and a worker whose ring goes from empty to holding a record wakes
 * it (`pokeStuckWatch`): under load, about one wake-up per CHECK_MS; idle, none.
 */

import { whenChanged } from './wait-async.js';

/** The word the main thread sleeps on: 1 while it sleeps (a poke takes it back to 0 and wakes it). */
const ASLEEP = 0;
/** How long a ring may hold records its worker has not written before the main thread writes them. */
const CHECK_MS = 20;

export function createStuckWord(): SharedArrayBuffer {
  return new SharedArrayBuffer(4);
}

/** The main thread's side: `check` drains what is pending and says whether anything was. */
export class StuckWatch {
  readonly #word: Int32Array;
  readonly #check: () => boolean;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(word: SharedArrayBuffer, check: () => boolean) {
    this.#word = new Int32Array(word);
    this.#check = check;
    this.#sleep();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    // Wakes a pending wait, so that nothing is left waiting on the word.
    Atomics.store(this.#word, ASLEEP, 0);
    Atomics.notify(this.#word, ASLEEP);
  }

  /** Sleeps until a ring gets a record; at once if one holds some already (it raced the flag). */
  #sleep(): void {
    if (this.#stopped) return;
    Atomics.store(this.#word, ASLEEP, 1);
    if (this.#check()) {
      Atomics.store(this.#word, ASLEEP, 0);
      return this.#later();
    }
    whenChanged(this.#word, ASLEEP, 1, () => this.#later());
  }

  /** A ring has records: looked at again in CHECK_MS, and so on while any has. */
  #later(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#check()) this.#later();
      else this.#sleep();
    }, CHECK_MS);
    // The process lives for its pipes, not for this.
    this.#timer.unref();
  }
}

/** A worker's side: called when its ring goes from empty to holding a record. */
export function pokeStuckWatch(word: Int32Array): void {
  if (Atomics.compareExchange(word, ASLEEP, 1, 0) === 1) Atomics.notify(word, ASLEEP);
}
