/**
 * The one table of error codes that cross the wire. Each code carries the HTTP status it maps to
 * (for the HTTP API and the refused upgrades), the WebSocket close code it ends a socket with when
 * it ends one (null: it never does, its `error` frame leaves the socket open), and what it means;
 * protocol/README.md lists the same rows and test/protocol-errors.test.ts checks the two against
 * each other in both directions. `wireError` is the one builder every door uses.
 */
import type { ErrorFrame, RequestId } from './types.js';

export const ERROR_CODES = Object.freeze({
  BAD_FRAME: { http: 400, close: null, meaning: 'the frame is not a binary msgpack map with a string `op` (text frame, undecodable bytes, trailing bytes, another type)' },
  UNKNOWN_OP: { http: 400, close: null, meaning: 'the `op` is a string, but not one this protocol version knows' },
  BAD_REQUEST: { http: 400, close: null, meaning: 'a field is missing, of the wrong type or out of range; the message names the field' },
  UNAUTHORIZED: { http: 401, close: 4401, meaning: 'no token, or a token that is not valid (the socket upgrade is refused with 401); an open socket whose tenant was removed from the tokens file closes with 4401' },
  FORBIDDEN: { http: 403, close: null, meaning: 'the browser Origin of the upgrade is not in VMSTREAM_ORIGINS (the socket is refused with 403); on the Jupyter API also a token no tenant has' },
  NOT_FOUND: { http: 404, close: null, meaning: 'no session or execution with that id (or it has expired); over HTTP also a path that is no route' },
  METHOD_NOT_ALLOWED: { http: 405, close: null, meaning: 'HTTP only: the path exists, but not for this method (the Allow header lists those it takes)' },
  UPGRADE_REQUIRED: { http: 426, close: null, meaning: 'HTTP only: a plain GET of the socket path, which speaks only WebSocket (the Upgrade header says so)' },
  SESSION_CLOSED: { http: 409, close: null, meaning: 'the session was closed; it takes no more executions' },
  PAYLOAD_TOO_LARGE: { http: 413, close: 1009, meaning: 'a request body over the frame size limit (VMSTREAM_MAX_FRAME_BYTES) gets 413; a socket message over it closes the socket with 1009 (message too big)' },
  LIMIT_EXCEEDED: { http: 429, close: null, meaning: 'a configured limit was reached (open sessions per tenant, queued executions per session, frames per second per socket, run-file size); the message says which' },
  SHUTTING_DOWN: { http: 503, close: 1001, meaning: 'the server is shutting down and accepts no new work; once it is done every socket closes with 1001 (going away)' },
  LOG_DELETED: { http: 410, close: null, meaning: 'a subscription ended without its `done`: the execution\'s log was deleted (retention) while it was read; subscribing again gets NOT_FOUND' },
  LOG_UNREADABLE: { http: 500, close: null, meaning: 'a subscription ended without its `done`: its log could not be read (a store error, or a gap); subscribing again from the last seq received may succeed' },
  LOG_REFUSED: { http: 500, close: null, meaning: 'a subscription ended without its `done`: the store refused the execution\'s events for good, so it was stopped (`crashed`, reason `store_refused`) and its log ends with what was stored before; subscribing again does not help' },
  INTERNAL: { http: 500, close: null, meaning: 'the server failed in a way that is not the request\'s fault; the server keeps running' },
} as const);

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error that knows which wire code it becomes. Only transport/ and http/ turn it into a frame. */
export class ProtocolError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** The codes that end a socket: those with a close code. */
export type ClosingCode = { [C in ErrorCode]: (typeof ERROR_CODES)[C]['close'] extends number ? C : never }[ErrorCode];

/** An error as it leaves the server, by whichever door: an `error` frame, an HTTP envelope, a close. */
export interface WireError {
  code: ErrorCode;
  /** For people. An internal error's own text stays in the server's log. */
  message: string;
  status: number;
  close: number | null;
  /** Not a ProtocolError: the server's fault, which the caller reports to its log. */
  internal: boolean;
}

/** The one builder: a ProtocolError keeps its code and message, anything else is INTERNAL. */
export function wireError(error: unknown): WireError {
  const internal = !(error instanceof ProtocolError);
  const code: ErrorCode = internal ? 'INTERNAL' : error.code;
  const { http, close } = ERROR_CODES[code];
  return { code, message: internal ? 'internal error' : error.message, status: http, close, internal };
}

/** The HTTP body of an error: `{"error": {"code", "message"}}`. */
export function errorEnvelope(wire: WireError): { error: { code: ErrorCode; message: string } } {
  return { error: { code: wire.code, message: wire.message } };
}

/**
 * The socket's `error` frame; `id` only when the request's id could be read; `executionId` for an
 * error about an execution's subscription rather than a request's reply.
 */
export function errorFrame(wire: WireError, id: RequestId | undefined, executionId?: string): ErrorFrame {
  const frame: ErrorFrame = id === undefined ? { op: 'error', code: wire.code, message: wire.message } : { op: 'error', id, code: wire.code, message: wire.message };
  if (executionId !== undefined) frame.execution_id = executionId;
  return frame;
}

/** RFC 6455 §5.5: a close frame's reason fits in 123 bytes of UTF-8. */
const CLOSE_REASON_BYTES = 123;
const utf8 = new TextEncoder();

/** How a socket is ended for a closing error: its close code, and its message as the reason. */
export function socketClose(code: ClosingCode, message: string): { code: number; reason: string } {
  let reason = message.slice(0, CLOSE_REASON_BYTES);
  while (utf8.encode(reason).length > CLOSE_REASON_BYTES) reason = reason.slice(0, -1);
  return { code: ERROR_CODES[code].close, reason };
}
