/**
 * Progress notifications of one tool call, sent only when the client asked for them (a
 * `progressToken` in the request's _meta). Each carries the latest output line; `progress` is the
 * seq of that line's event, so it only grows. An output of thousands of lines a second must not
 * become as many notifications: the first is sent at once, then at most one per interval, always
 * with the newest line.
 */
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';

export const PROGRESS_INTERVAL_MS = 250;

export class Progress {
  readonly #extra: RequestHandlerExtra<ServerRequest, ServerNotification>;
  readonly #token: string | number | undefined;
  #sentAt = -Infinity;
  #pending: { line: string; seq: number } | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(extra: RequestHandlerExtra<ServerRequest, ServerNotification>) {
    this.#extra = extra;
    this.#token = extra._meta?.progressToken;
  }

  report(line: string, seq: number): void {
    if (this.#token === undefined) return;
    this.#pending = { line, seq };
    if (this.#timer) return;
    const wait = this.#sentAt + PROGRESS_INTERVAL_MS - performance.now();
    if (wait <= 0) this.#flush();
    else this.#timer = setTimeout(() => this.#flush(), wait);
  }

  /** The call is answered: nothing more is sent. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#pending = null;
  }

  #flush(): void {
    this.#timer = null;
    const pending = this.#pending;
    if (pending === null || this.#token === undefined) return;
    this.#pending = null;
    this.#sentAt = performance.now();
    const notification = { method: 'notifications/progress' as const, params: { progressToken: this.#token, progress: pending.seq, message: pending.line } };
    // A client gone mid-call is not an error: its run goes on and its result stays readable.
    this.#extra.sendNotification(notification).catch(() => undefined);
  }
}
