/**
 * One client socket: decodes its frames, checks them against protocol/, calls the service and
 * sends the replies; and, as an EventSink, receives the events of its subscriptions. It speaks to
 * the socket through SocketPort only, so uWS stays in uws-server.ts.
 */
import { errorFrame, ProtocolError, wireError, type ErrorCode } from '../../protocol/errors.js';
import { checkRequest, isKnownOp } from '../../protocol/schemas.js';
import type { ClientRequest, RequestId, ServerFrame } from '../../protocol/types.js';
import { decodeFrame, encodeFrame } from '../../protocol/codec.js';
import type { ExecutionService } from '../sessions/service.js';
import { SendResult, type EventSink } from '../events/subscription-hub.js';
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
    if (this.#socket.send(frame) === 2) return SendResult.DROPPED;
    const buffered = this.#socket.bufferedAmount();
    const room = this.#options.budget.hold(this, buffered);
    // Full on its own: its drain resumes it. Full with all the others: it waits its turn.
    if (buffered > this.#options.backpressureBytes) return SendResult.SENT_FULL;
    if (room) return SendResult.SENT;
    this.#options.budget.wait(this);
    return SendResult.SENT_FULL;
  }

  cork(fn: () => void): void {
    if (this.#open) this.#socket.cork(fn);
  }

  /** The socket is gone: its subscriptions end; nothing is sent to it any more. */
  closed(): void {
    this.#open = false;
    this.#options.budget.remove(this);
    this.#service.detachAll(this);
  }

  /** Its buffer shrank: paused subscriptions catch up, unless other sockets wait for room before it. */
  drained(): void {
    const { budget, backpressureBytes } = this.#options;
    const buffered = this.#socket.bufferedAmount();
    budget.hold(this, buffered);
    if (buffered > backpressureBytes || budget.isWaiting(this)) return;
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
        return this.#reply({ op: 'pong', id });
      case 'session.create':
        return this.#reply({ op: 'session', id, session: await service.createSession(tenant, request.name) });
      case 'session.list':
        return this.#reply({ op: 'sessions', id, items: service.listSessions(tenant) });
      case 'session.close':
        return this.#reply({ op: 'session', id, session: await service.closeSession(tenant, request.session_id) });
      case 'session.rename':
        return this.#reply({ op: 'session', id, session: await service.renameSession(tenant, request.session_id, request.name) });
      case 'execute': {
        const { op: _op, id: _id, ...input } = request;
        const { record, created } = await service.execute(tenant, input, this);
        this.#reply({ op: 'execution', id, execution: record });
        // A repeated execution_id gets the same stream as the first call did, from the start.
        if (created) service.release(this, tenant, record.execution_id);
        else service.subscribe(this, tenant, record.execution_id, 0, null);
        return;
      }
      case 'subscribe': {
        const afterSeq = request.after_seq ?? 0;
        const { lastSeq, finalSeq } = await service.locate(tenant, request.execution_id, afterSeq);
        this.#reply({ op: 'subscribed', id, execution_id: request.execution_id, last_seq: lastSeq });
        service.subscribe(this, tenant, request.execution_id, afterSeq, finalSeq);
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

  #reply(frame: Exclude<ServerFrame, { op: 'event' }>): void {
    if (frame.id === undefined) delete frame.id;
    // Replies may follow an await, outside any uWS callback: corking sends them in one write.
    this.cork(() => this.#socket.send(encodeFrame(frame)));
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
