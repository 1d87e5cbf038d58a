/**
 * One execution the client follows: it delivers each event to the application exactly once and in
 * seq order, whatever the socket does. A duplicate (seq already delivered: the replay after a
 * resent `execute` starts at seq 1) is dropped; an event ahead of the next seq is held and the
 * stream is asked again from the last delivered seq, so a gap can only delay, never lose.
 *
 * It asks for batched `events` frames (protocol v1.1); the client unpacks them into the same
 * per-event `receive` calls, so the application sees no difference, and a 1.0 server's single
 * frames work as before.
 */
import { TERMINAL_STATUSES, type EventFrame, type ExecuteRequest, type ExecutionRecord, type ServerFrame } from '../../protocol/types.js';
import { AbortError, ClientClosedError, VmstreamError, type ServerError } from './errors.js';
import { QueuedIterator } from './queue.js';

type Reply = Exclude<ServerFrame, { op: 'event' | 'events' | 'error' }>;

/** What an execution needs of its client. */
export interface ExecutionHost {
  /** Sends now or once connected; resend: sent again after a reconnect when its reply was lost. */
  request(frame: Record<string, unknown> & { op: string }, resend: boolean): Promise<Reply>;
  /** The client stops routing events to it and stops resuming it. */
  forget(execution: Execution): void;
}

export type ExecuteInput = Omit<ExecuteRequest, 'op' | 'id'> & { execution_id: string };

/** Events held past a gap before the oldest are let go (they come again with the resync). */
const AHEAD_LIMIT = 4096;
const TERMINAL = new Set<string>(TERMINAL_STATUSES);
/**
 * Subscriptions the server ended with LOG_UNREADABLE, in a row (no event delivered in between),
 * asked again before the execution fails with that error; the n-th is asked n × the delay later.
 * The server has already retried what it could (a store that did not answer, an empty read), so a
 * few tries over seconds cover a passing fault without making the caller wait long for a lasting one.
 */
const UNREADABLE_RETRIES = 3;
const UNREADABLE_DELAY_MS = 1000;

export class Execution implements AsyncIterable<EventFrame> {
  readonly id: string;
  /** Settles once the server holds the execution: the execute reply, or the subscribe reply. */
  readonly accepted: Promise<void>;
  /** The final record, once `done` has been delivered. */
  readonly result: Promise<ExecutionRecord>;
  /** The record from the execute reply (status `queued`), once accepted; null for a subscribe. */
  record: ExecutionRecord | null = null;
  readonly #host: ExecutionHost;
  /** The execute request to (re)send until the server has answered it; null for a subscribe. */
  readonly #start: ExecuteInput | null;
  readonly #onEvent: ((event: EventFrame) => void) | null;
  #events: QueuedIterator<EventFrame> | null;
  #iterated = false;
  #lastSeq: number;
  #acknowledged = false;
  #resyncing = false;
  #finished = false;
  #aborted = false;
  /** LOG_UNREADABLE ends in a row, without an event delivered in between. */
  #unreadable = 0;
  /** The subscribe again after a LOG_UNREADABLE, waiting: cleared when it ends, or it would keep a process (`vmstream tail`) alive. */
  #retry: ReturnType<typeof setTimeout> | null = null;
  readonly #ahead = new Map<number, EventFrame>();
  #settleAccepted!: { resolve(): void; reject(error: unknown): void };
  #settleResult!: { resolve(record: ExecutionRecord): void; reject(error: unknown): void };

  /** @internal Executions come from `client.start()` and `client.subscribe()`. */
  constructor(host: ExecutionHost, id: string, start: ExecuteInput | null, afterSeq: number, onEvent?: (event: EventFrame) => void) {
    this.#host = host;
    this.id = id;
    this.#start = start;
    this.#lastSeq = afterSeq;
    this.#onEvent = onEvent ?? null;
    this.#events = onEvent ? null : new QueuedIterator(() => this.close());
    this.accepted = new Promise((resolve, reject) => (this.#settleAccepted = { resolve, reject }));
    this.result = new Promise((resolve, reject) => (this.#settleResult = { resolve, reject }));
    // Nobody may be listening to these; the rejection still reaches whoever awaits them.
    this.accepted.catch(() => {});
    this.result.catch(() => {});
  }

  /** Seq of the last event delivered to the application. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** The events, in seq order, ending after `done`. One iteration per execution; leaving it early calls close(). */
  [Symbol.asyncIterator](): AsyncIterableIterator<EventFrame> {
    if (!this.#events) throw new TypeError('this execution delivers its events to onEvent; it cannot also be iterated');
    if (this.#iterated) throw new TypeError(`execution ${this.id} is already being iterated`);
    this.#iterated = true;
    return this.#events;
  }

  /** Asks the server to cancel it; the stream goes on to its `done` (status `cancelled`). */
  async cancel(): Promise<ExecutionRecord> {
    await this.accepted;
    const reply = await this.#host.request({ op: 'cancel', execution_id: this.id }, true);
    return (reply as { execution: ExecutionRecord }).execution;
  }

  /** Stops following it (the execution goes on on the server): `result` rejects, iteration ends. */
  close(): void {
    if (this.#finished) return;
    this.#host.request({ op: 'unsubscribe', execution_id: this.id }, false).catch(() => {});
    this.fail(new ClientClosedError(`stopped following execution ${this.id}`));
  }

  /**
   * For `signal`: no more events are delivered and `result` rejects with an AbortError. An
   * execution this client started is cancelled on the server (the error holds its final record);
   * one it only subscribed to is left running: the client just stops following it.
   */
  abort(reason: unknown): void {
    if (this.#finished || this.#aborted) return;
    this.#aborted = true;
    if (!this.#start) {
      this.#host.request({ op: 'unsubscribe', execution_id: this.id }, false).catch(() => {});
      this.fail(new AbortError(`stopped following execution ${this.id}`, { cause: reason }));
      return;
    }
    const aborted = (cause: unknown, record?: ExecutionRecord) =>
      this.fail(new AbortError(`execution ${this.id} was aborted`, { cause, ...(record ? { record } : {}) }));
    this.cancel().then((record) => aborted(reason, record), (error: unknown) => aborted(error));
  }

  /** Called by the client each time a socket is up: asks the server to stream from the last delivered seq. */
  resume(): void {
    if (this.#finished) return;
    if (this.#start && !this.#acknowledged) {
      // The same execution_id again: a server that already has it answers with it and runs nothing.
      this.#host.request({ op: 'execute', ...this.#start, batch: true }, false).then((reply) => {
        this.record = (reply as { execution: ExecutionRecord }).execution;
        this.#acknowledged = true;
        this.#settleAccepted.resolve();
      }, (error: unknown) => this.#requestFailed(error));
      return;
    }
    this.#resync();
  }

  /** An event frame for this execution, from any socket, in any order, possibly again. */
  receive(event: EventFrame): void {
    if (this.#finished || this.#aborted) return;
    const next = this.#lastSeq + 1;
    if (event.seq < next) return;
    if (event.seq > next) {
      if (this.#ahead.size < AHEAD_LIMIT) this.#ahead.set(event.seq, event);
      this.#resync();
      return;
    }
    this.#deliver(event);
    let held: EventFrame | undefined;
    while (!this.#finished && (held = this.#ahead.get(this.#lastSeq + 1))) {
      this.#ahead.delete(held.seq);
      this.#deliver(held);
    }
    if (this.#ahead.size > 0) for (const seq of this.#ahead.keys()) if (seq <= this.#lastSeq) this.#ahead.delete(seq);
  }

  /**
   * The server ended its subscription short of `done` (an `error` frame with its execution_id). A
   * deleted log fails it at once: asking again would get NOT_FOUND; so does a log the store refused
   * the rest of (LOG_REFUSED): asking again would end at the same place. A log that could not be read is
   * asked again from the last delivered seq, UNREADABLE_RETRIES times in a row, then fails it.
   */
  subscriptionFailed(error: ServerError): void {
    if (this.#finished || this.#aborted) return;
    if (error.code !== 'LOG_UNREADABLE' || ++this.#unreadable > UNREADABLE_RETRIES) {
      this.fail(error);
      return;
    }
    this.#stopRetry();
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.#resync();
    }, UNREADABLE_DELAY_MS * this.#unreadable);
  }

  #stopRetry(): void {
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
  }

  /** Ends it with `error`: the client closed, the server refused it, or the application stopped. */
  fail(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stopRetry();
    this.#host.forget(this);
    this.#settleAccepted.reject(error);
    this.#settleResult.reject(error);
    this.#events?.fail(error);
  }

  #deliver(event: EventFrame): void {
    this.#lastSeq = event.seq;
    this.#unreadable = 0;
    if (this.#onEvent) {
      try {
        this.#onEvent(event);
      } catch (error) {
        // The application's handler threw: stop following, and hand its error to whoever awaits.
        this.#host.request({ op: 'unsubscribe', execution_id: this.id }, false).catch(() => {});
        this.fail(error);
        return;
      }
    } else {
      this.#events!.push(event);
    }
    if (event.type === 'done') this.#complete(event as EventFrame<'done'>);
  }

  #complete(done: EventFrame<'done'>): void {
    this.#end();
    // The stored record is the truth (started_at, reason); the `done` payload is the fallback.
    this.#host.request({ op: 'execution.get', execution_id: this.id }, true).then(
      (reply) => this.#settleResult.resolve((reply as { execution: ExecutionRecord }).execution),
      () => this.#settleResult.resolve(this.#fromDone(done)),
    );
  }

  #fromDone(done: EventFrame<'done'>): ExecutionRecord {
    const base = this.record ?? ({ execution_id: this.id } as ExecutionRecord);
    const record: ExecutionRecord = { ...base, status: done.payload.status, ended_at: done.ts, last_seq: done.seq };
    if (done.payload.reason !== undefined) record.reason = done.payload.reason;
    return record;
  }

  #resync(): void {
    if (this.#resyncing || this.#finished) return;
    this.#resyncing = true;
    const afterSeq = this.#lastSeq;
    this.#host.request({ op: 'subscribe', execution_id: this.id, after_seq: afterSeq, batch: true }, false).then((reply) => {
      this.#resyncing = false;
      this.#acknowledged = true;
      this.#settleAccepted.resolve();
      // Subscribed at the very end of an execution that has ended: no `done` will come again.
      if ((reply as { last_seq: number }).last_seq <= afterSeq) this.#checkEnded();
    }, (error: unknown) => {
      this.#resyncing = false;
      this.#requestFailed(error);
    });
  }

  #checkEnded(): void {
    this.#host.request({ op: 'execution.get', execution_id: this.id }, true).then((reply) => {
      const record = (reply as { execution: ExecutionRecord }).execution;
      if (this.#finished || !TERMINAL.has(record.status) || record.last_seq > this.#lastSeq) return;
      this.#end();
      this.#settleResult.resolve(record);
    }, () => {});
  }

  /** It ended well: the client forgets it, and iteration ends after what is queued. */
  #end(): void {
    this.#finished = true;
    this.#stopRetry();
    this.#host.forget(this);
    this.#settleAccepted.resolve();
    this.#events?.end();
  }

  #requestFailed(error: unknown): void {
    // A dropped socket is not the execution's failure: the next resume() asks again.
    if (error instanceof VmstreamError && error.code === 'CONNECTION_LOST') return;
    this.fail(error);
  }
}
