/**
 * Progress notifications of one tool call, sent only when the client asked for them (a
 * `progressToken` in the request's _meta). Each carries the latest output line as its message;
 * `progress` is the milliseconds the call has been running, so it always grows, as MCP requires.
 *
 * An output of thousands of lines a second must not become as many notifications: the first is
 * sent at once, then at most one per interval, always with the newest line. A run that prints
 * nothing for a long while still gets one per heartbeat, so a client that resets its request
 * timeout on progress (the SDK's `resetTimeoutOnProgress`) keeps waiting for a long run.
 */
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';

export const PROGRESS_INTERVAL_MS = 250;
export const PROGRESS_HEARTBEAT_MS = 10_000;

export class Progress {
  readonly #extra: RequestHandlerExtra<ServerRequest, ServerNotification>;
  readonly #token: string | number | undefined;
  readonly #startedAt = performance.now();
  #sentAt = -Infinity;
  #progress = 0;
  #line = 'running';
  #pending = false;
  #timer: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;

  constructor(extra: RequestHandlerExtra<ServerRequest, ServerNotification>) {
    this.#extra = extra;
    this.#token = extra._meta?.progressToken;
  }

  /** The run is being followed: heartbeats from now until stop(). */
  start(): void {
    if (this.#token !== undefined) this.#heartbeat ??= setInterval(() => this.#beat(), PROGRESS_HEARTBEAT_MS).unref();
  }

  report(line: string): void {
    if (this.#token === undefined) return;
    this.#line = line;
    this.#pending = true;
    if (this.#timer) return;
    const wait = this.#sentAt + PROGRESS_INTERVAL_MS - performance.now();
    if (wait <= 0) this.#flush();
    else this.#timer = setTimeout(() => this.#flush(), wait);
  }

  /** The call is answered: nothing more is sent. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#timer = this.#heartbeat = null;
    this.#pending = false;
  }

  #beat(): void {
    if (performance.now() - this.#sentAt >= PROGRESS_HEARTBEAT_MS / 2) {
      this.#pending = true;
      this.#flush();
    }
  }

  #flush(): void {
    this.#timer = null;
    if (!this.#pending || this.#token === undefined) return;
    this.#pending = false;
    const now = performance.now();
    this.#sentAt = now;
    this.#progress = Math.max(this.#progress + 1, Math.round(now - this.#startedAt));
    const params = { progressToken: this.#token, progress: this.#progress, message: this.#line };
    // A client gone mid-call is not an error: its run goes on and its result stays readable.
    this.#extra.sendNotification({ method: 'notifications/progress', params }).catch(() => undefined);
  }
}
