/**
 * Request/reply over a vmstream socket for the set-up steps of a workload (create sessions,
 * subscribe): never on a measured path. The measured paths match frames themselves, without a
 * promise or a closure per frame.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import type WebSocket from 'ws';
import type { ServerFrame } from '../../protocol/types.js';

const CALL_TIMEOUT_MS = 30_000;
let nextCallId = 0;

/** A server error frame, turned into an Error that says which request it answered. */
export class ServerError extends Error {
  constructor(readonly op: string, readonly code: string, message: string) {
    super(`${op}: ${code}: ${message}`);
  }
}

/** Sends `frame` with a fresh string id and resolves with the reply carrying that id. */
export function call(ws: WebSocket, frame: { op: string } & Record<string, unknown>): Promise<ServerFrame> {
  const id = `setup-${++nextCallId}`;
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, reply?: ServerFrame): void => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (error) reject(error);
      else resolve(reply!);
    };
    const onMessage = (data: Buffer): void => {
      const reply = decodeValue(data) as ServerFrame;
      if (reply.op === 'event' || reply.op === 'events' || reply.id !== id) return;
      if (reply.op === 'error') done(new ServerError(frame.op, reply.code, reply.message));
      else done(null, reply);
    };
    const onClose = (): void => done(new Error(`${frame.op}: socket closed before the reply`));
    const timer = setTimeout(() => done(new Error(`${frame.op}: no reply within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.send(encodeFrame({ ...frame, id }));
  });
}

export async function createSession(ws: WebSocket, name: string): Promise<string> {
  const reply = await call(ws, { op: 'session.create', name });
  if (reply.op !== 'session') throw new Error(`session.create: unexpected reply ${reply.op}`);
  return reply.session.session_id;
}

/** Subscribes and resolves with the reply's last_seq; the events that follow are the caller's. */
export async function subscribe(ws: WebSocket, executionId: string, afterSeq: number): Promise<number> {
  const reply = await call(ws, { op: 'subscribe', execution_id: executionId, after_seq: afterSeq });
  if (reply.op !== 'subscribed') throw new Error(`subscribe: unexpected reply ${reply.op}`);
  return reply.last_seq;
}

/**
 * Runs `code` in a session and resolves when its `done` arrives (the socket that executes is
 * subscribed to the execution by the server). Throws if it did not end `ok`.
 */
export function executeToDone(ws: WebSocket, sessionId: string, code: string): Promise<void> {
  const id = `setup-${++nextCallId}`;
  return new Promise((resolve, reject) => {
    let executionId: string | null = null;
    const done = (error: Error | null): void => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onMessage = (data: Buffer): void => {
      const frame = decodeValue(data) as ServerFrame;
      if (frame.op === 'error' && frame.id === id) return done(new ServerError('execute', frame.code, frame.message));
      if (frame.op === 'execution' && frame.id === id) executionId = frame.execution.execution_id;
      else if (frame.op === 'event' && frame.type === 'done' && frame.execution_id === executionId) {
        const status = (frame.payload as { status: string }).status;
        done(status === 'ok' ? null : new Error(`execute ${JSON.stringify(code)}: ended ${status}`));
      }
    };
    const onClose = (): void => done(new Error('execute: socket closed before done'));
    const timer = setTimeout(() => done(new Error(`execute: no done within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.send(encodeFrame({ op: 'execute', id, session_id: sessionId, kind: 'repl', code }));
  });
}
