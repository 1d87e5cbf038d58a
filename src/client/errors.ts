/**
 * The client's errors: one base class with a `code` and a `cause`. Codes that crossed the wire come
 * from protocol/errors.ts unchanged (`ServerError.fromFrame` is the one place that maps a frame to a
 * typed error); the few codes below name what can go wrong on the client's side of the socket.
 */
import { isErrorCode, type ErrorCode } from '../../protocol/errors.js';
import type { ErrorFrame, ExecutionRecord } from '../../protocol/types.js';

export const CLIENT_ERROR_CODES = Object.freeze({
  REQUEST_TIMEOUT: 'no reply came within requestTimeoutMs',
  CONNECTION_LOST: 'the socket closed before the reply came, and the request is not one that is safe to send twice (session.create)',
  CONNECTION_FAILED: 'no connection could be made (HTTP status in `status` when the server answered), or reconnect attempts ran out',
  ABORTED: 'the AbortSignal fired; the execution was cancelled on the server (its final record is in `record`)',
  CLIENT_CLOSED: 'close() was called while the request or execution was in progress',
} as const);

export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES;
export type ConnectionErrorCode = 'CONNECTION_LOST' | 'CONNECTION_FAILED' | 'UNAUTHORIZED' | 'FORBIDDEN';

/** The code of a refused upgrade: the protocol's own for 401 and 403, else CONNECTION_FAILED. */
export function refusalCode(status: number | undefined): ConnectionErrorCode {
  return status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'FORBIDDEN' : 'CONNECTION_FAILED';
}
export type VmstreamErrorCode = ErrorCode | ClientErrorCode;

export class VmstreamError extends Error {
  readonly code: VmstreamErrorCode;

  constructor(code: VmstreamErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmstreamError';
    this.code = code;
  }
}

/** The server answered a request with an `error` frame. */
export class ServerError extends VmstreamError {
  declare readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ServerError';
  }

  /** The one mapping from a wire error to a typed error; an unknown code (a newer server) is INTERNAL. */
  static fromFrame(frame: Pick<ErrorFrame, 'code' | 'message'>): ServerError {
    const code = isErrorCode(frame.code) ? frame.code : 'INTERNAL';
    const message = typeof frame.message === 'string' ? frame.message : 'server error';
    return new ServerError(code, code === frame.code ? message : `${String(frame.code)}: ${message}`, { cause: frame });
  }
}

export class RequestTimeoutError extends VmstreamError {
  declare readonly code: 'REQUEST_TIMEOUT';

  constructor(op: string, timeoutMs: number) {
    super('REQUEST_TIMEOUT', `${op}: no reply within ${timeoutMs} ms`);
    this.name = 'RequestTimeoutError';
  }
}

/**
 * The socket could not be opened or was lost. A refused token is `UNAUTHORIZED` and a refused
 * browser Origin `FORBIDDEN` (the protocol's codes for a 401 or 403 on the upgrade) where the
 * platform reveals the status, as `ws` in Node does; a browser's WebSocket hides it, and there
 * they are `CONNECTION_FAILED`.
 */
export class ConnectionError extends VmstreamError {
  declare readonly code: ConnectionErrorCode;
  /** The HTTP status of a refused upgrade (401, 403), when the platform reveals it. */
  readonly status: number | undefined;

  constructor(code: ConnectionErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(code, message, options);
    this.name = 'ConnectionError';
    this.status = options?.status;
  }
}

export class AbortError extends VmstreamError {
  declare readonly code: 'ABORTED';
  /** The execution's record after the cancel, when the server confirmed it. */
  readonly record: ExecutionRecord | undefined;

  constructor(message: string, options?: { cause?: unknown; record?: ExecutionRecord }) {
    super('ABORTED', message, options);
    this.name = 'AbortError';
    this.record = options?.record;
  }
}

export class ClientClosedError extends VmstreamError {
  declare readonly code: 'CLIENT_CLOSED';

  constructor(message = 'the client was closed') {
    super('CLIENT_CLOSED', message);
    this.name = 'ClientClosedError';
  }
}
