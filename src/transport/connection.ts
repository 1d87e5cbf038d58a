/**
 * One client socket: decodes its frames, checks them against protocol/, calls the service and
 * sends the replies; and, as an EventSink, receives the events of its subscriptions. It speaks to
 * the socket through SocketPort only, so uWS stays in uws-server.ts. Everything it sends during a
 * turn of the event loop leaves in one corked write (outbox.ts): the replies a group commit
 * released, the events it delivered, in the order they were sent.
 */
import { errorFrame, ProtocolError, wireError, type ErrorCode } from '../../protocol/errors.js';
import { checkRequest, isKnownOp } from '../../protocol/schemas.js';
import { PROTOCOL_REVISION, type ClientRequest, type EventFrame, type EventsFrame, type RequestId, type ServerFrame } from '../../protocol/types.js';
import { decodeFrame, encodeFrame } from '../../protocol/codec.js';
import type { ExecutionService } from '../sessions/service.js';
import { SendResult, type EndReason, type EventSink, type RunResult } from '../events/subscription-hub.js';
import { endedEarlyError } from '../events/end-reason.js';
import { publicExecutionId, storedExecutionId } from '../sessions/live.js';
import { Outbox } from './outbox.js';
import type { BudgetMember, SendBudget } from './send-budget.js';

/** What a connection needs of its socket. */
export interface SocketPort {
  /** 0: sent, 1: sent and buffered, 2: dropped (past the hard backpressure limit). */
  send(frame: Uint8Array): number;
  bufferedAmount(): number;
  cork(fn: () => void): void;
  end(code: number, reason: string): void;
}

export interface ConnectionOptions {
  backpressureBytes: number;
  /** Shared by every socket: the event bytes their buffers may hold together. */
  budget: SendBudget;
  maxFramesPerSecond: number;
  onInternalError(error: unknown): void;
}

export class Connection implements EventSink, BudgetMember {
  readonly #socket: SocketPort;
  readonly #service: ExecutionService;
  readonly #options: ConnectionOptions;
  /** Every operation of this socket acts as this tenant. */
  readonly #tenant: string;
  #open = true;
  readonly #outbox = new Outbox({ flush: (frames) => this.#write(frames) });
  /** A send found the socket over its threshold: its subscriptions paused until it drains. */
  #full = false;
  /** What the socket's buffer held at the first send after the last write (-1: to be read). */
  #socketBytes = -1;
  /** Executions (stored ids) whose subscription on this socket asked for `events` frames, until it ends. */
  readonly #batching = new Set<string>();
  /** The execution whose subscription is being started: the end of the one it replaces keeps its flag. */
  #starting: string | null = null;
  // Token bucket for frames: starts full, refills continuously at maxFramesPerSecond.
  #frameBudget: number;
  #budgetAt = performance.now();

  constructor(socket: SocketPort, service: ExecutionService, tenant: string, options: ConnectionOptions) {
    this.#socket = socket;
    this.#tenant = tenant;
    this.#service = service;
    this.#options = options;
    this.#frameBudget = options.maxFramesPerSecond;
  }

  get open(): boolean {
    return this.#open;
  }

  send(frame: Uint8Array): SendResult {
    if (!this.#open) return SendResult.DROPPED;
    this.#outbox.push(frame);
    return this.#sent(this.#socketBuffered() + this.#outbox.bytes);
  }

  /**
   * A run of frames queued in one call, with one look at the budget: they stop after the frame that
   * takes the buffer past the socket's threshold or all buffers past the budget's limit, where
   * `send` one by one would have stopped. The first frame goes through `send`: its report to the
   * budget may return this socket's reservation or a held figure that erred high, and so let
   * waiting sockets go, whose reservations take room. After it nothing does (this socket's figure
   * only grows until the turn's write), so the room read then holds for the rest of the run.
   */
  sendRun(frames: readonly Uint8Array[], from: number, to: number): RunResult {
    const first = this.send(frames[from]!);
    if (first !== SendResult.SENT || from + 1 >= to) return { sent: first === SendResult.DROPPED ? 0 : 1, result: first };
    const stop = Math.min(this.#options.backpressureBytes, this.#options.budget.room(this));
    let buffered = this.#socketBuffered() + this.#outbox.bytes;
    let index = from + 1;
    do {
      const frame = frames[index++]!;
      this.#outbox.push(frame);
      buffered += frame.length;
    } while (index < to && buffered <= stop);
    return { sent: index - from, result: this.#sent(buffered) };
  }

  /**
   * The socket's own buffer: it grows only when the outbox writes to it, so it is read once after
   * each write (#write marks the figure stale), not per event (a call into uWS). A drain meanwhile
   * only makes it smaller, so the figure errs high.
   */
  #socketBuffered(): number {
    if (this.#socketBytes < 0) this.#socketBytes = this.#socket.bufferedAmount();
    return this.#socketBytes;
  }

  /** What a send that left `buffered` bytes on their way returns, the budget told of them. */
  #sent(buffered: number): SendResult {
    const room = this.#options.budget.hold(this, buffered);
    // Full on its own: its drain (or the end of the turn's write) resumes it. Full with all the others: it waits its turn.
    if (buffered > this.#options.backpressureBytes) {
      this.#full = true;
      return SendResult.SENT_FULL;
    }
    if (room) return SendResult.SENT;
    this.#options.budget.wait(this);
    return SendResult.SENT_FULL;
  }

  /** Runs `fn`: whatever it sends joins the turn's one write anyway. */
  cork(fn: () => void): void {
    fn();
  }

  batched(executionId: string): boolean {
    return this.#batching.has(executionId);
  }

  /**
   * A subscription ended. One that ended short of its `done` tells the client, after the last event
   * it sent: an `error` frame with the execution's id and no request id (the `subscribed` or
   * `execution` reply went out long before).
   */
  ended(executionId: string, reason: EndReason): void {
    if (executionId !== this.#starting) this.#batching.delete(executionId);
    const publicId = publicExecutionId(executionId);
    const error = endedEarlyError(publicId, reason);
    if (error) this.#reply(errorFrame(wireError(error), undefined, publicId));
  }

  /** Writes what this turn queued now: the socket is about to be ended. */
  flush(): void {
    this.#outbox.flush();
  }

  /** The socket is gone: its subscriptions end; nothing is sent to it any more. */
  closed(): void {
    this.#open = false;
    this.#outbox.discard();
    this.#options.budget.remove(this);
    this.#service.detachAll(this);
  }

  /** Its buffer shrank: paused subscriptions catch up, unless other sockets wait for room before it. */
  drained(): void {
    const { budget, backpressureBytes } = this.#options;
    const buffered = this.#buffered();
    budget.hold(this, buffered);
    if (buffered > backpressureBytes || budget.isWaiting(this)) return;
    this.#full = false;
    if (budget.open) this.proceed();
    else budget.wait(this);
  }

  /** Its turn (BudgetMember): its paused subscriptions catch up; the budget hears when they stopped. */
  proceed(): void {
    void this.#service.resume(this).then(() => this.#options.budget.settle(this));
  }

  /** Handles one message; `bytes` is only valid until the first await, so it is decoded at once. */
  receive(bytes: Uint8Array, isBinary: boolean): void {
    // Checked before decoding, so a flood of garbage costs no more than a flood of pings.
    if (!this.#takeFrameBudget()) {
      this.#replyError(new ProtocolError('LIMIT_EXCEEDED', `more than ${this.#options.maxFramesPerSecond} frames per second on this socket`), undefined);
      return;
    }
    let request: ClientRequest;
    try {
      request = parseRequest(bytes, isBinary);
    } catch (error) {
      this.#replyError(error, requestIdOf(error));
      return;
    }
    this.#dispatch(request).catch((error: unknown) => this.#replyError(error, request.id));
  }

  #takeFrameBudget(): boolean {
    const now = performance.now();
    const rate = this.#options.maxFramesPerSecond;
    this.#frameBudget = Math.min(rate, this.#frameBudget + ((now - this.#budgetAt) * rate) / 1000);
    this.#budgetAt = now;
    if (this.#frameBudget < 1) return false;
    this.#frameBudget -= 1;
    return true;
  }

  async #dispatch(request: ClientRequest): Promise<void> {
    const service = this.#service;
    const tenant = this.#tenant;
    const id = request.id;
    switch (request.op) {
      case 'ping':
        return this.#reply({ op: 'pong', id, version: PROTOCOL_REVISION });
      case 'session.create':
        return this.#reply({ op: 'session', id, session: await service.createSession(tenant, request.name) });
      case 'session.list':
        return this.#reply({ op: 'sessions', id, items: service.listSessions(tenant) });
      case 'session.close':
        return this.#reply({ op: 'session', id, session: await service.closeSession(tenant, request.session_id) });
      case 'session.rename':
        return this.#reply({ op: 'session', id, session: await service.renameSession(tenant, request.session_id, request.name) });
      case 'execute': {
        const { op: _op, id: _id, batch, ...input } = request;
        const { record, created } = await service.execute(tenant, input, this);
        this.#reply({ op: 'execution', id, execution: record });
        // A repeated execution_id gets the same stream as the first call did, from the start.
        this.#startStream(batch, record.execution_id, () => {
          if (created) service.release(this, tenant, record.execution_id);
          else service.subscribe(this, tenant, record.execution_id, 0, null);
        });
        return;
      }
      case 'subscribe': {
        const afterSeq = request.after_seq ?? 0;
        const { lastSeq, finalSeq } = await service.locate(tenant, request.execution_id, afterSeq);
        this.#reply({ op: 'subscribed', id, execution_id: request.execution_id, last_seq: lastSeq });
        this.#startStream(request.batch, request.execution_id, () => service.subscribe(this, tenant, request.execution_id, afterSeq, finalSeq));
        return;
      }
      case 'unsubscribe':
        service.unsubscribe(this, tenant, request.execution_id);
        return this.#reply({ op: 'unsubscribed', id, execution_id: request.execution_id });
      case 'cancel':
        return this.#reply({ op: 'execution', id, execution: await service.cancel(tenant, request.execution_id) });
      case 'execution.get':
        return this.#reply({ op: 'execution', id, execution: await service.getExecution(tenant, request.execution_id) });
      case 'execution.list':
        return this.#reply({ op: 'executions', id, items: await service.listExecutions(tenant, request.session_id, request.limit) });
      case 'complete':
        return this.#reply({ op: 'completion', id, ...(await service.complete(tenant, request.session_id, request.code, request.cursor)) });
    }
  }

  /**
   * Runs `start` (a subscribe or release of `executionId`) with the request's choice of frames
   * recorded, for the hub to ask when the subscription starts (`batched`); it is forgotten when the
   * subscription ends.
   */
  #startStream(batch: boolean | undefined, executionId: string, start: () => void): void {
    const stored = storedExecutionId(this.#tenant, executionId);
    if (batch === true) this.#batching.add(stored);
    else this.#batching.delete(stored);
    this.#starting = stored;
    try {
      start();
    } finally {
      this.#starting = null;
    }
  }

  #reply(frame: Exclude<ServerFrame, EventFrame | EventsFrame>): void {
    if (frame.id === undefined) delete frame.id;
    if (this.#open) this.#outbox.push(encodeFrame(frame));
  }

  /** Bytes on their way: in the socket's buffer, and queued for this turn's write. */
  #buffered(): number {
    return this.#socket.bufferedAmount() + this.#outbox.bytes;
  }

  /** The turn's frames, in one corked write. */
  #write(frames: Uint8Array[]): void {
    if (!this.#open) return;
    this.#socketBytes = -1;
    let refused = false;
    try {
      this.#socket.cork(() => {
        for (const frame of frames) {
          if (this.#socket.send(frame) === 2) {
            refused = true;
            return;
          }
        }
      });
    } catch (error) {
      // Runs from the shared flush of every socket (outbox.ts): one socket's failure stays its own.
      this.#options.onInternalError(error);
      return;
    }
    // Past uWS's hard cap a frame is dropped, and the subscription's cursor has already passed it:
    // the socket ends rather than go on with a gap; the client resumes from its last seq.
    if (refused) {
      this.#socket.end(1013, 'send buffer over its hard limit: reconnect and resume from the last seq received');
      return;
    }
    // What was queued is in the socket's buffer now, or gone to the kernel, and uWS reports a drain
    // only of its own buffer: a pause the queue caused is lifted here, and the budget hears it.
    if (this.#full) this.drained();
    else this.#options.budget.hold(this, this.#buffered());
  }

  #replyError(error: unknown, id: RequestId | undefined): void {
    const wire = wireError(error);
    if (wire.internal) this.#options.onInternalError(error);
    this.#reply(errorFrame(wire, id));
  }
}

/** Carries the request id of a frame that decoded but failed validation, for the error reply. */
class RequestError extends ProtocolError {
  constructor(code: ErrorCode, message: string, readonly requestId: RequestId | undefined) {
    super(code, message);
  }
}

function requestIdOf(error: unknown): RequestId | undefined {
  return error instanceof RequestError ? error.requestId : undefined;
}

function parseRequest(bytes: Uint8Array, isBinary: boolean): ClientRequest {
  if (!isBinary) throw new ProtocolError('BAD_FRAME', 'text frames are not part of the protocol: send binary msgpack');
  const frame = decodeFrame(bytes);
  const id = (typeof frame.id === 'string' && frame.id.length <= 128) || Number.isSafeInteger(frame.id) ? (frame.id as RequestId) : undefined;
  if (!isKnownOp(frame.op)) throw new RequestError('UNKNOWN_OP', `unknown op \`${frame.op.slice(0, 64)}\``, id);
  const problem = checkRequest(frame.op, frame);
  if (problem !== null) throw new RequestError('BAD_REQUEST', `${frame.op}: ${problem}`, id);
  return frame as unknown as ClientRequest;
}
