/**
 * A push-fed async iterator with one consumer: what the client hands out for an execution's events
 * and for its status. Values pushed before anyone iterates are kept; the consumer's `return()`
 * (a `break` out of `for await`) tells the producer through `onReturn`.
 */
export class QueuedIterator<T> implements AsyncIterableIterator<T> {
  #values: T[] = [];
  /** Index of the next value to hand out: a moving head instead of `shift()`, which copies. */
  #head = 0;
  #waiter: { resolve(result: IteratorResult<T>): void; reject(error: unknown): void } | null = null;
  #ended = false;
  #error: unknown = null;
  readonly #onReturn: (() => void) | undefined;

  constructor(onReturn?: () => void) {
    this.#onReturn = onReturn;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(value: T): void {
    if (this.#ended) return;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter.resolve({ value, done: false });
      return;
    }
    this.#values.push(value);
  }

  /** No more values: the consumer gets what is queued, then the end. */
  end(): void {
    this.#finish(null);
  }

  /** The consumer gets what is queued, then `error` is thrown. */
  fail(error: unknown): void {
    this.#finish(error);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#values.length) {
      const value = this.#values[this.#head]!;
      this.#values[this.#head++] = undefined as T;
      if (this.#head === this.#values.length) {
        // Drained: start over with the same array rather than a new one.
        this.#values.length = 0;
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) {
      const error = this.#error;
      this.#error = null;
      return error === null ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(error);
    }
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    const wasEnded = this.#ended;
    this.#finish(null);
    this.#values.length = 0;
    this.#head = 0;
    if (!wasEnded) this.#onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #finish(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter) {
      if (error === null) waiter.resolve({ value: undefined, done: true });
      else waiter.reject(error);
    } else {
      this.#error = error;
    }
  }
}
