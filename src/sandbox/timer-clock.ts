/**
 * Where a run's timers wait. A normal run uses the real clock. A session rebuild's re-run uses a
 * clock of its own that skips the waiting: each timer fires as soon as the ones due before it have,
 * in the order the real clock would have fired them (by due time, then by creation), with the
 * run's microtasks drained between two timers. Time spent in the code itself does not advance it:
 * re-run code sees its waits shrink to nothing, never its callbacks reordered among themselves.
 */
export interface TimerClock {
  set(fire: () => void, delayMs: number, repeat: boolean): unknown;
  clear(handle: unknown): void;
}

export const REAL_CLOCK: TimerClock = {
  set: (fire, delayMs, repeat) => (repeat ? setInterval(fire, delayMs) : setTimeout(fire, delayMs)),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

interface VirtualTimer { fire: () => void; delayMs: number; repeat: boolean; due: number; order: number }

export class SkippingClock implements TimerClock {
  readonly #pending = new Set<VirtualTimer>();
  #now = 0;
  #created = 0;
  #scheduled = false;

  set(fire: () => void, delayMs: number, repeat: boolean): unknown {
    const timer: VirtualTimer = { fire, delayMs, repeat, due: this.#now + delayMs, order: this.#created++ };
    this.#pending.add(timer);
    this.#schedule();
    return timer;
  }

  clear(handle: unknown): void {
    this.#pending.delete(handle as VirtualTimer);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#fireNext());
  }

  #fireNext(): void {
    this.#scheduled = false;
    let next: VirtualTimer | undefined;
    // A run has few timers pending at once; a scan costs less than keeping a heap.
    for (const timer of this.#pending) if (!next || timer.due < next.due || (timer.due === next.due && timer.order < next.order)) next = timer;
    if (!next) return;
    this.#now = next.due;
    if (next.repeat) {
      next.due += next.delayMs;
      next.order = this.#created++;
    } else {
      this.#pending.delete(next);
    }
    next.fire();
    if (this.#pending.size > 0) this.#schedule();
  }
}
