/**
 * The connection's status as a `{type}` union. Each `client.status()` call gets its own iterator:
 * the current status first (so a UI needs no second source), then each change; a consumer that
 * stops iterating is dropped.
 */
import type { VmstreamError } from './errors.js';
import { QueuedIterator } from './queue.js';

export type Status =
  /** A socket is open. `reconnect` is false for the first one; `resumed` counts the executions picked up again. */
  | { type: 'connected'; url: string; reconnect: boolean; resumed: number }
  /** The socket closed; reconnecting follows unless reconnect is off. */
  | { type: 'disconnected'; code: number; reason: string }
  /** Attempt `attempt` of this outage starts after `delayMs`; `error` is why the previous one failed. */
  | { type: 'reconnecting'; attempt: number; delayMs: number; error?: VmstreamError }
  /** For good: close() was called (`error` undefined), or the client gave up. */
  | { type: 'closed'; error?: VmstreamError };

export type StatusType = Status['type'];

export class StatusChannel {
  #current: Status | null = null;
  readonly #listeners = new Set<QueuedIterator<Status>>();

  get current(): Status | null {
    return this.#current;
  }

  push(status: Status): void {
    this.#current = status;
    for (const listener of this.#listeners) listener.push(status);
    if (status.type === 'closed') {
      for (const listener of this.#listeners) listener.end();
      this.#listeners.clear();
    }
  }

  iterate(): AsyncIterableIterator<Status> {
    const listener: QueuedIterator<Status> = new QueuedIterator(() => this.#listeners.delete(listener));
    if (this.#current) listener.push(this.#current);
    if (this.#current?.type === 'closed') listener.end();
    else this.#listeners.add(listener);
    return listener;
  }
}
