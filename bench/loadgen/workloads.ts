/**
 * What the load generator says and how it recognises the answer, per named workload. A workload's
 * `open` runs once per connection before the clock starts (creating sessions, subscribing) and
 * returns what that connection sends and how it reads the answers. A scenario against the real
 * server adds its workload here (one entry) and names it in its job.
 *
 * Matching functions throw on an `error` frame or an execution that did not end `ok`: a figure made
 * of failed requests must not pass for a measurement.
 */
import { encodeFrame } from '../../protocol/codec.js';
import type WebSocket from 'ws';
import type { ServerFrame } from '../../protocol/types.js';
import { eventFrame } from '../harness/frames.js';
import type { WorkloadParams } from './types.js';
import { createSession, executeToDone, ServerError, subscribe } from './vmstream-calls.js';

export interface RttConnection {
  /** Encodes request `id`; the frame that completes it must let `completes` recover the id. */
  request(id: number): Uint8Array;
  /** The id a decoded server frame completes, or -1 for a frame that completes none. */
  completes(frame: unknown): number;
}

export interface RttWorkload {
  open(ws: WebSocket, params: WorkloadParams, index: number): Promise<RttConnection>;
}

export interface SinkConnection {
  /** The frame that asks for the stream, sent when the clock starts; null if `open` already asked. */
  start(count: number, ms: number): Uint8Array | null;
  /** Whether a decoded frame is one of the stream's, to be counted (and its seq checked). */
  counts(frame: unknown): boolean;
  /** Whether a decoded frame ends the stream. */
  isEnd(frame: unknown): boolean;
}

export interface SinkWorkload {
  open(ws: WebSocket, params: WorkloadParams, index: number): Promise<SinkConnection>;
}

interface Framed {
  op?: unknown;
  seq?: unknown;
}

/** Echo baseline: an event frame goes out, the same frame comes back; its seq is the request id. */
const echoConnection: RttConnection = {
  request: (id) => encodeFrame(eventFrame(id, Date.now())),
  completes: (frame) => {
    const seq = (frame as Framed).seq;
    return typeof seq === 'number' ? seq : -1;
  },
};

const echo: RttWorkload = { open: async () => echoConnection };

/**
 * vmstream `execute`, pipelined over `params.sessions` sessions of this connection (request id mod
 * sessions picks one, so a window that is a multiple of it keeps window/sessions queued in each),
 * or over `params.sessionIds` (comma-separated) made elsewhere: on a cluster, sessions another node
 * owns. The request is answered by the `execution` reply, which carries the server's execution_id;
 * the round trip ends at that execution's `done` event.
 */
const execute: RttWorkload = {
  async open(ws, params, index) {
    const sessions: string[] = params.sessionIds ? String(params.sessionIds).split(',') : [];
    for (let i = sessions.length; i < Math.max(1, Number(params.sessions ?? 1)); i++) sessions.push(await createSession(ws, `bench-${index}-${i}`));
    const count = sessions.length;
    const code = String(params.code ?? '1 + 1');
    const byExecution = new Map<string, number>();
    return {
      request: (id) => encodeFrame({ op: 'execute', id, session_id: sessions[id % count], kind: 'repl', code }),
      completes(frame) {
        const f = frame as ServerFrame;
        if (f.op === 'execution') {
          byExecution.set(f.execution.execution_id, f.id as number);
          return -1;
        }
        if (f.op === 'event') {
          if (f.type !== 'done') return -1;
          const id = byExecution.get(f.execution_id);
          if (id === undefined) return -1;
          byExecution.delete(f.execution_id);
          const status = (f.payload as { status: string }).status;
          if (status !== 'ok') throw new Error(`execution ${f.execution_id} ended ${status}`);
          return id;
        }
        if (f.op === 'error') throw new ServerError('execute', f.code, f.message);
        return -1;
      },
    };
  },
};

/** Push baseline: one request, then event frames until {op:'end'}. */
const push: SinkWorkload = {
  open: async () => ({
    start: (count, ms) => encodeFrame({ op: 'push', count, ms }),
    counts: (frame) => (frame as Framed).op !== 'end',
    isEnd: (frame) => (frame as Framed).op === 'end',
  }),
};

const isEvent = (frame: unknown): boolean => (frame as Framed).op === 'event';

function isDone(frame: unknown): boolean {
  const f = frame as ServerFrame;
  if (f.op === 'error') throw new ServerError('stream', f.code, f.message);
  if (f.op !== 'event' || f.type !== 'done') return false;
  const status = (f.payload as { status: string }).status;
  if (status !== 'ok') throw new Error(`execution ${f.execution_id} ended ${status}`);
  return true;
}

/**
 * A vmstream execution's events: counted until its `done`, which must say `ok`. Every such
 * connection, the client warm-up's included, shares one object shape and the same two functions, so
 * the code the warm-up compiled is the code that measures: with a warm-up of its own shape, the
 * measured stream's first ~50 000 events ran deoptimized ('wrong map', 'wrong call target' in
 * `--trace-deopt`).
 */
function eventsUntilDone(start: (count: number, ms: number) => Uint8Array | null): SinkConnection {
  return { start, counts: isEvent, isEnd: isDone };
}

/** The client warm-up's stream (loadgen/warm.ts): event frames until a `done`, read as a vmstream execution's are. */
export const warmupConnection: SinkConnection = eventsUntilDone(() => null);

/**
 * Compiles this client's side of an execute (its send, the `execution` reply's decode, an event's) as
 * a running client has it: `count` one-line runs in a session of their own. In a fresh load
 * generator, the reply's decode before the first event took 0.50 ms against 0.26 once it had
 * executed before, and its send 1.10 against 0.93 (medians, traced at load 3–9): costs of the
 * bench's process, not of the server.
 */
async function warmExecutes(ws: WebSocket, count: number, index: number): Promise<void> {
  if (count <= 0) return;
  const sessionId = await createSession(ws, `bench-warm-${index}`);
  for (let i = 0; i < count; i++) await executeToDone(ws, sessionId, 'console.log(0)');
}

/** One execution of `params.code` in a session of its own, streamed to the socket that ran it (as `events` frames with `params.batch`). */
const stream: SinkWorkload = {
  async open(ws, params, index) {
    await warmExecutes(ws, Number(params.warmExecutes ?? 0), index);
    const sessionId = await createSession(ws, `bench-stream-${index}`);
    const frame = encodeFrame({
      op: 'execute',
      id: 'stream',
      session_id: sessionId,
      kind: 'repl',
      code: String(params.code),
      timeout_ms: Number(params.timeoutMs ?? 120_000),
      ...(params.executionId ? { execution_id: String(params.executionId) } : {}),
      ...(params.batch ? { batch: true } : {}),
    });
    return eventsUntilDone(() => frame);
  },
};

/** A stored (or running) execution read from seq 1 by `subscribe` with after_seq 0 (as `events` frames with `params.batch`). */
const replay: SinkWorkload = {
  open: async (_ws, params) => {
    const frame = encodeFrame({ op: 'subscribe', id: 'replay', execution_id: String(params.executionId), after_seq: 0, ...(params.batch ? { batch: true } : {}) });
    return eventsUntilDone(() => frame);
  },
};

/**
 * Fan-out: subscribed during set-up to an execution that has not started yet (it waits behind a
 * gate the harness opens on go), so every subscriber is live before the first event.
 */
const subscriber: SinkWorkload = {
  async open(ws, params) {
    await subscribe(ws, String(params.executionId), 0);
    return eventsUntilDone(() => null);
  },
};

export const rttWorkloads: Record<string, RttWorkload> = { echo, execute };
export const sinkWorkloads: Record<string, SinkWorkload> = { push, stream, replay, subscriber };
