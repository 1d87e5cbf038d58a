/**
 * One bound on the event bytes all sockets hold in their send buffers together. Each socket is
 * bounded alone (its subscriptions pause past VMSTREAM_BACKPRESSURE_BYTES), but ten thousand
 * sockets resuming at once would each fill theirs: the budget keeps their sum near `limit`.
 *
 * A socket's sends report what its buffer holds (`hold`). While the sum is past the limit, a
 * socket that sends is told so; its subscriptions pause, as on its own backpressure, and it waits
 * its turn (`wait`), first come first served. When buffers drain and there is room, waiting
 * sockets are let go in order (`Member.proceed`: their subscriptions catch up from the store, as
 * after a drain), each with a reservation of RESERVED_BYTES counted against the limit until it
 * has sent (its first `hold`) or found nothing to send (`settle`), so that room for a few is
 * not handed to thousands before any of them has sent a byte.
 */

/** A socket under the budget. */
export interface BudgetMember {
  /** Its turn came: its paused subscriptions may catch up. It calls `settle` once they stopped. */
  proceed(): void;
}

/** Counted for a socket let go until it has sent: about a page of replayed events (less under a smaller limit). */
const RESERVED_BYTES = 64 * 1024;

export class SendBudget {
  readonly #limit: number;
  /** What a socket let go counts until it has sent: never more than the limit, so that one can always go. */
  readonly #reservation: number;
  /** What each socket's buffer held at its last report (sockets holding nothing are absent). */
  readonly #held = new Map<BudgetMember, number>();
  /** Sockets waiting for room, in the order they came (a Set keeps it). */
  readonly #waiting = new Set<BudgetMember>();
  /** Sockets let go that have neither sent nor settled yet. */
  readonly #reserved = new Set<BudgetMember>();
  #total = 0;

  constructor(limit: number) {
    this.#limit = limit;
    this.#reservation = Math.min(RESERVED_BYTES, limit);
  }

  /** Buffered bytes of all sockets, as last reported, with the reservations. */
  get used(): number {
    return this.#total + this.#reserved.size * this.#reservation;
  }

  /** Records what `member`'s buffer holds now; false when all buffers together are past the limit. */
  hold(member: BudgetMember, bytes: number): boolean {
    const before = this.#held.get(member) ?? 0;
    if (bytes !== before) {
      this.#total += bytes - before;
      if (bytes === 0) this.#held.delete(member);
      else this.#held.set(member, bytes);
    }
    const reserved = this.#reserved.size > 0 && this.#reserved.delete(member);
    if (bytes < before || reserved) this.#letGo();
    return this.used <= this.#limit;
  }

  /**
   * The bytes `member`'s buffer may hold before `hold` says all buffers together are past the
   * limit (its reservation, if it has one, not counted: its next `hold` returns it). Only while no
   * other socket is let go meanwhile: a `hold` that returns `member`'s reservation, or reports less
   * than it held, lets waiting sockets go, and their reservations shrink the room. A run of sends
   * reads it after its first `hold` (Connection.sendRun), when later ones only grow its figure.
   */
  room(member: BudgetMember): number {
    const others = this.#reserved.size - (this.#reserved.has(member) ? 1 : 0);
    return this.#limit - (this.#total - (this.#held.get(member) ?? 0)) - others * this.#reservation;
  }

  /** True when a socket may go on sending now: there is room, and no socket waits for its turn. */
  get open(): boolean {
    return this.#waiting.size === 0 && this.used <= this.#limit;
  }

  /** Sockets waiting for their turn. */
  get waiting(): number {
    return this.#waiting.size;
  }

  isWaiting(member: BudgetMember): boolean {
    return this.#waiting.has(member);
  }

  /**
   * `member` must wait for room; it keeps its place if it already waits. Never lets anyone go at
   * once: it is called from inside a send, before the sender's subscriptions are paused. (Nor
   * need it: after every call that frees room, whoever fits has been let go.)
   */
  wait(member: BudgetMember): void {
    this.#waiting.add(member);
  }

  /** `member`, let go, has stopped catching up: its reservation, if still held, is returned. */
  settle(member: BudgetMember): void {
    if (this.#reserved.delete(member)) this.#letGo();
  }

  /** `member`'s socket closed: it holds and waits for nothing any more. */
  remove(member: BudgetMember): void {
    this.#total -= this.#held.get(member) ?? 0;
    this.#held.delete(member);
    this.#waiting.delete(member);
    this.#reserved.delete(member);
    this.#letGo();
  }

  /** Lets waiting sockets go, in order, while their reservations fit. */
  #letGo(): void {
    for (const member of this.#waiting) {
      if (this.used + this.#reservation > this.#limit) return;
      this.#waiting.delete(member);
      this.#reserved.add(member);
      member.proceed();
    }
  }
}
