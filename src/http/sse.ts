/**
 * An execution's events as Server-Sent Events. The stream is an EventSink, so the subscription hub
 * serves it exactly as it serves a socket: stored events from the cursor, then live ones, with no gap
 * and no duplicate, pausing when the response cannot take more and catching up from the store once
 * it drains. Each event is one SSE message: `event:` is its type (`console`, `value`, … `done`: an
 * EventSource listens with addEventListener), `id:` its seq (so a browser's reconnect sends it back
 * as Last-Event-ID), `data:` the event frame as JSON. The response ends after `done`, or after an
 * `error` message when its tenant's token is revoked or its subscription ended short of `done` (its
 * log deleted or unreadable, or refused by the store). Each server has its own EventStreams.
 *
 * The bytes a stream has written that its socket has not taken count against the server's one send
 * budget (transport/send-budget.ts), as a WebSocket's buffer does: a thousand slow readers wait
 * their turn instead of each holding a page in memory. uWS does not say how much an HTTP response
 * holds, so a stream counts what it wrote since its socket last took everything (a cork that ended
 * without backpressure, or onWritable): never less than what is buffered.
 */
import { decodeValue } from '../../protocol/codec.js';
import { errorEnvelope, wireError, type WireError } from '../../protocol/errors.js';
import type { EventFrame } from '../../protocol/types.js';
import type { ExecutionService } from '../sessions/service.js';
import { SendResult, type EndReason, type EventSink } from '../events/subscription-hub.js';
import { endedEarlyError } from '../events/end-reason.js';
import { publicExecutionId } from '../sessions/live.js';
import type { BudgetMember, SendBudget } from '../transport/send-budget.js';
import type { HttpResponse } from './port.js';
import { statusLine } from './respond.js';

/** Sent at the start: how long a browser waits before reconnecting. */
const RETRY_MS = 1000;
/**
 * A comment line on every open stream this often, so a proxy's idle timeout (nginx: 60 s) does not
 * cut a stream whose execution is quietly thinking. One timer for all streams, not one each.
 */
const HEARTBEAT_MS = 15_000;

class EventStream implements EventSink, BudgetMember {
  readonly tenant: string;
  readonly #response: HttpResponse;
  readonly #service: ExecutionService;
  readonly #budget: SendBudget;
  readonly #onClose: (stream: EventStream) => void;
  #closed = false;
  /** Bytes written since the socket last took everything: what the budget counts for this stream. */
  #unsent = 0;

  constructor(tenant: string, response: HttpResponse, service: ExecutionService, budget: SendBudget, onClose: (stream: EventStream) => void) {
    this.tenant = tenant;
    this.#response = response;
    this.#service = service;
    this.#budget = budget;
    this.#onClose = onClose;
    response.onAborted(() => this.close());
    response.onWritable(() => this.#drained());
  }

  send(frame: Uint8Array): SendResult {
    if (this.#closed) return SendResult.DROPPED;
    const event = decodeValue(frame) as EventFrame;
    // JSON.stringify escapes line breaks, so the frame is always a single `data:` line.
    const text = `event: ${event.type}\nid: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`;
    const flushed = this.#response.write(text);
    if (event.type === 'done') {
      this.close();
      return SendResult.SENT;
    }
    this.#unsent += Buffer.byteLength(text);
    const room = this.#budget.hold(this, this.#unsent);
    // Full on its own: onWritable resumes it. Full with all the others: it waits its turn.
    if (!flushed) return SendResult.SENT_FULL;
    if (room) return SendResult.SENT;
    this.#budget.wait(this);
    return SendResult.SENT_FULL;
  }

  cork(fn: () => void): void {
    if (this.#closed) return;
    this.#response.cork(fn);
    // The cork's writes are out: if the socket took them all, this stream holds nothing.
    if (this.#unsent > 0 && !this.#response.backpressured) this.#taken();
  }

  /** Its turn (BudgetMember): its paused subscription catches up; the budget hears when it stopped. */
  proceed(): void {
    void this.#service.resume(this).then(() => this.#budget.settle(this));
  }

  /** The socket took what was buffered: go on, unless other streams or sockets wait for room before it. */
  #drained(): void {
    if (this.#closed) return;
    this.#taken();
    if (this.#budget.isWaiting(this)) return;
    if (this.#budget.open) this.proceed();
    else this.#budget.wait(this);
  }

  #taken(): void {
    this.#unsent = 0;
    this.#budget.hold(this, 0);
  }

  /** Its subscription ended: after `done`, or short of it with an `error` message saying why. */
  ended(executionId: string, reason: EndReason): void {
    const error = endedEarlyError(publicExecutionId(executionId), reason);
    if (error) this.fail(wireError(error));
    else this.close();
  }

  beat(): void {
    this.cork(() => this.#response.write(':\n\n'));
  }

  /** Ends the stream with an `error` message (the HTTP envelope as its data), as a revocation does. */
  fail(wire: WireError): void {
    this.cork(() => this.#response.write(`event: error\ndata: ${JSON.stringify(errorEnvelope(wire))}\n\n`));
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.remove(this);
    this.#service.detachAll(this);
    this.#response.cork(() => this.#response.end());
    this.#onClose(this);
  }
}

/**
 * The open event streams of one server, and their heartbeat: one timer for all of them, running
 * only while there are any.
 */
export class EventStreams {
  readonly #open = new Set<EventStream>();
  readonly #budget: SendBudget;
  #heartbeat: NodeJS.Timeout | null = null;

  /** `budget`: the server's one bound on bytes waiting in socket buffers, shared with its WebSockets. */
  constructor(budget: SendBudget) {
    this.#budget = budget;
  }

  get size(): number {
    return this.#open.size;
  }

  /** Ends every stream of a tenant with the error (its token was revoked). */
  failTenant(tenant: string, wire: WireError): void {
    for (const stream of [...this.#open]) if (stream.tenant === tenant) stream.fail(wire);
  }

  /**
   * Streams the events of an execution with seq > afterSeq. Errors (no such execution, after_seq
   * past its log) are thrown before anything is written, so the caller can still answer with JSON.
   * When the execution has ended and the client has all of it, the answer is 204: the SSE spec's
   * way to tell a browser's EventSource to stop reconnecting. `reauthorize` checks the token again
   * once the store has answered: a revocation during that read would miss a stream opened after it.
   */
  async stream(
    service: ExecutionService,
    tenant: string,
    executionId: string,
    afterSeq: number,
    response: HttpResponse,
    reauthorize: () => Promise<unknown>,
    log: { opened(): void; closed(): void },
  ): Promise<void> {
    const { finalSeq, endSeq } = await service.locate(tenant, executionId, afterSeq);
    await reauthorize();
    if (response.aborted) return;
    // Nothing follows what the client has (a `done`, or the end of a log the store refused the rest
    // of): 204, or a reconnecting EventSource would be streamed the same end again and again.
    if (endSeq !== null && afterSeq >= endSeq) {
      response.cork(() => {
        response.writeStatus(statusLine(204));
        response.end();
      });
      return;
    }
    log.opened();
    const stream = new EventStream(tenant, response, service, this.#budget, (closed) => {
      this.#remove(closed);
      log.closed();
    });
    this.#add(stream);
    response.cork(() => {
      response.writeStatus(statusLine(200));
      response.writeHeader('content-type', 'text/event-stream; charset=utf-8');
      response.writeHeader('cache-control', 'no-cache');
      // Asks nginx-style proxies not to buffer the stream.
      response.writeHeader('x-accel-buffering', 'no');
      response.write(`retry: ${RETRY_MS}\n\n`);
    });
    service.subscribe(stream, tenant, executionId, afterSeq, finalSeq);
  }

  #add(stream: EventStream): void {
    this.#open.add(stream);
    this.#heartbeat ??= setInterval(() => {
      for (const open of this.#open) open.beat();
    }, HEARTBEAT_MS).unref();
  }

  #remove(stream: EventStream): void {
    this.#open.delete(stream);
    if (this.#open.size === 0 && this.#heartbeat) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = null;
    }
  }
}
