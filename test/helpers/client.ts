/**
 * A plain `ws` client speaking protocol v1 for tests: requests get auto ids and resolve with their
 * reply, every frame is recorded, and events are kept per execution in arrival order. An `events`
 * frame (v1.1, `batch: true`) is kept in `batches` and recorded as the `event` frames it carries,
 * so the checks written for single frames hold batched streams to the same guarantees.
 */
import WebSocket from 'ws';
import { eventsOf } from '../../protocol/batch.js';
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import type { DonePayload, EventFrame, EventPayloads, EventsFrame, EventType, ServerFrame } from '../../protocol/types.js';

type Frame = ServerFrame & Record<string, any>;

export class TestClient {
  readonly socket: WebSocket;
  readonly frames: Frame[] = [];
  readonly events = new Map<string, EventFrame[]>();
  /** The `events` frames received, as they came. */
  readonly batches: EventsFrame[] = [];
  /** Bytes of each `events` frame received, in order. */
  readonly batchBytes: number[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #nextId = 1;
  #waiters: Array<{ predicate: (frame: Frame) => boolean; resolve: (frame: Frame) => void }> = [];

  private constructor(socket: WebSocket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    socket.on('message', (data: Buffer) => {
      const frame = decodeValue(data) as Frame;
      if (frame.op !== 'events') return this.#onFrame(frame);
      this.batches.push(frame as EventsFrame);
      this.batchBytes.push(data.length);
      for (const event of eventsOf(frame as EventsFrame)) this.#onFrame(event as Frame);
    });
  }

  static async connect(url: string, token?: string, options: { useQuery?: boolean; origin?: string; insecureTls?: boolean } = {}): Promise<TestClient> {
    const target = token && options.useQuery ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url;
    const headers: Record<string, string> = token && !options.useQuery ? { authorization: `Bearer ${token}` } : {};
    if (options.origin) headers.origin = options.origin;
    const socket = new WebSocket(target, { headers, maxPayload: 256 * 1024 * 1024, rejectUnauthorized: !options.insecureTls });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      // With a listener, ws leaves the refused request's connection open: it is ours to end.
      socket.once('unexpected-response', (request, response) => {
        request.destroy();
        reject(new Error(`HTTP ${response.statusCode}`));
      });
    });
    return new TestClient(socket);
  }

  /** Sends a request and resolves with the frame that carries its id (a reply or an error). */
  request(frame: Record<string, unknown>): Promise<Frame> {
    const id = this.#nextId++;
    const reply = this.waitFor((f) => f.id === id);
    this.sendRaw(encodeFrame({ ...frame, id }));
    return reply;
  }

  /** Like request, but fails unless the reply's op is `op`. */
  async expect(op: string, frame: Record<string, unknown>): Promise<Frame> {
    const reply = await this.request(frame);
    if (reply.op !== op) throw new Error(`expected ${op}, got ${JSON.stringify(reply)}`);
    return reply;
  }

  sendRaw(data: Buffer | Uint8Array | string): void {
    this.socket.send(data);
  }

  waitFor(predicate: (frame: Frame) => boolean, timeoutMs = 20_000): Promise<Frame> {
    const seen = this.frames.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a frame; last: ${JSON.stringify(this.frames.slice(-3))}`)), timeoutMs);
      this.#waiters.push({ predicate, resolve: (frame) => { clearTimeout(timer); resolve(frame); } });
    });
  }

  /** Resolves with all events of an execution once its `done` has arrived. */
  async untilDone(executionId: string, timeoutMs = 30_000): Promise<EventFrame[]> {
    await this.waitFor((f) => f.op === 'event' && f.execution_id === executionId && f.type === 'done', timeoutMs);
    return this.events.get(executionId) ?? [];
  }

  async createSession(name?: string): Promise<string> {
    const reply = await this.expect('session', { op: 'session.create', ...(name ? { name } : {}) });
    return reply.session.session_id as string;
  }

  /** Runs repl code to its end; returns the record from the reply and the events. */
  async run(sessionId: string, code: string, extra: Record<string, unknown> = {}) {
    const reply = await this.expect('execution', { op: 'execute', session_id: sessionId, kind: 'repl', code, ...extra });
    const events = await this.untilDone(reply.execution.execution_id);
    // untilDone resolved on it: the last event is the done.
    return { execution: reply.execution, events, done: events[events.length - 1]! as EventFrame<'done'> };
  }

  close(): Promise<{ code: number; reason: string }> {
    this.socket.close();
    return this.closed;
  }

  #onFrame(frame: Frame): void {
    this.frames.push(frame);
    if (frame.op === 'event') {
      const list = this.events.get(frame.execution_id);
      if (list) list.push(frame);
      else this.events.set(frame.execution_id, [frame]);
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      if (waiter.predicate(frame)) waiter.resolve(frame);
      else this.#waiters.push(waiter);
    }
  }
}

/** Any value as msgpack, through the protocol's codec: tests also send values that are no frame. */
export function pack(value: unknown): Buffer {
  return encodeFrame(value as object) as Buffer;
}

/** The payload of an event of type `type`; any other event (or none) throws. */
export function payloadOf<K extends EventType>(event: EventFrame | undefined, type: K): EventPayloads[K] {
  if (event?.type !== type) throw new Error(`expected a ${type} event, got ${event?.type ?? 'nothing'}`);
  return event.payload as EventPayloads[K];
}

/** The payload of the `done` that ends `events` (what untilDone waits for). */
export function doneOf(events: readonly EventFrame[]): DonePayload {
  return payloadOf(events[events.length - 1], 'done');
}

/** Seqs of events, for checking order and contiguity. */
export function seqs(events: EventFrame[]): number[] {
  return events.map((event) => event.seq);
}

export function contiguousFrom1(values: number[]): boolean {
  return values.every((value, index) => value === index + 1);
}
