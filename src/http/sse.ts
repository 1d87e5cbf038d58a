/**
 * An execution's events as Server-Sent Events. The stream is an EventSink, so the subscription hub
 * serves it exactly as it serves a socket: stored events from the cursor, then live ones, with no gap
 * and no duplicate, pausing when the response cannot take more and catching up from the store once
 * it drains. Each event is one SSE message: `event:` is its type (`console`, `value`, … `done`: an
 * EventSource listens with addEventListener), `id:` its seq (so a browser's reconnect sends it back
 * as Last-Event-ID), `data:` the event frame as JSON. The response ends after `done`.
 */
import type { EventFrame } from '../../protocol/types.js';
import { decodeStored } from '../protocol/codec.js';
import type { ExecutionService } from '../sessions/service.js';
import { SendResult, type EventSink } from '../events/subscription-hub.js';
import type { HttpResponse } from './port.js';
import { statusLine } from './respond.js';

/** Sent at the start: how long a browser waits before reconnecting. */
const RETRY_MS = 1000;
/**
 * A comment line on every open stream this often, so a proxy's idle timeout (nginx: 60 s) does not
 * cut a stream whose execution is quietly thinking. One timer for all streams, not one each.
 */
const HEARTBEAT_MS = 15_000;

const openStreams = new Set<EventStream>();
let heartbeat: NodeJS.Timeout | null = null;

export function openStreamCount(): number {
  return openStreams.size;
}

class EventStream implements EventSink {
  readonly #response: HttpResponse;
  readonly #service: ExecutionService;
  readonly #onClose: () => void;
  #closed = false;

  constructor(response: HttpResponse, service: ExecutionService, onClose: () => void) {
    this.#response = response;
    this.#service = service;
    this.#onClose = onClose;
    response.onAborted(() => this.close());
    response.onWritable(() => {
      if (!this.#closed) service.resume(this);
    });
    openStreams.add(this);
    heartbeat ??= setInterval(beat, HEARTBEAT_MS).unref();
  }

  send(frame: Uint8Array): SendResult {
    if (this.#closed) return SendResult.DROPPED;
    const event = decodeStored(frame) as EventFrame;
    // JSON.stringify escapes line breaks, so the frame is always a single `data:` line.
    const flushed = this.#response.write(`event: ${event.type}\nid: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`);
    if (event.type === 'done') {
      this.close();
      return SendResult.SENT;
    }
    return flushed ? SendResult.SENT : SendResult.SENT_FULL;
  }

  cork(fn: () => void): void {
    if (!this.#closed) this.#response.cork(fn);
  }

  ended(): void {
    this.close();
  }

  beat(): void {
    this.cork(() => this.#response.write(':\n\n'));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openStreams.delete(this);
    if (openStreams.size === 0 && heartbeat) {
      clearInterval(heartbeat);
      heartbeat = null;
    }
    this.#service.detachAll(this);
    this.#response.cork(() => this.#response.end());
    this.#onClose();
  }
}

function beat(): void {
  for (const stream of openStreams) stream.beat();
}

/**
 * Streams the events of an execution with seq > afterSeq. Errors (no such execution, after_seq
 * past its log) are thrown before anything is written, so the caller can still answer with JSON.
 * When the execution has ended and the client has all of it, the answer is 204: the SSE spec's way
 * to tell a browser's EventSource to stop reconnecting.
 */
export async function streamEvents(
  service: ExecutionService,
  tenant: string,
  executionId: string,
  afterSeq: number,
  response: HttpResponse,
  log: { opened(): void; closed(): void },
): Promise<void> {
  const { finalSeq } = await service.locate(tenant, executionId, afterSeq);
  if (response.aborted) return;
  if (finalSeq !== null && afterSeq >= finalSeq) {
    response.cork(() => {
      response.writeStatus(statusLine(204));
      response.end();
    });
    return;
  }
  log.opened();
  const stream = new EventStream(response, service, log.closed);
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
