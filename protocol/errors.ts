/**
 * The one table of error codes that cross the wire. Each code carries the HTTP status it maps to
 * (for the HTTP API beside the socket) and what it means; protocol/README.md lists the same rows and
 * test/protocol-errors.test.ts checks the two against each other in both directions.
 */
export const ERROR_CODES = Object.freeze({
  BAD_FRAME: { http: 400, meaning: 'the frame is not a binary msgpack map with a string `op` (text frame, undecodable bytes, trailing bytes, another type)' },
  UNKNOWN_OP: { http: 400, meaning: 'the `op` is a string, but not one this protocol version knows' },
  BAD_REQUEST: { http: 400, meaning: 'a field is missing, of the wrong type or out of range; the message names the field' },
  UNAUTHORIZED: { http: 401, meaning: 'no token, or a token that is not valid (HTTP only: the socket upgrade is refused with 401 instead)' },
  FORBIDDEN: { http: 403, meaning: 'the browser Origin of the upgrade is not in VMSTREAM_ORIGINS (the socket is refused with 403)' },
  NOT_FOUND: { http: 404, meaning: 'no session or execution with that id (or it has expired); over HTTP also a path that is no route' },
  METHOD_NOT_ALLOWED: { http: 405, meaning: 'HTTP only: the path exists, but not for this method (the Allow header lists those it takes)' },
  UPGRADE_REQUIRED: { http: 426, meaning: 'HTTP only: a plain GET of the socket path, which speaks only WebSocket (the Upgrade header says so)' },
  SESSION_CLOSED: { http: 409, meaning: 'the session was closed; it takes no more executions' },
  PAYLOAD_TOO_LARGE: { http: 413, meaning: 'HTTP only: the request body is over the frame size limit (VMSTREAM_MAX_FRAME_BYTES); the socket closes with 1009 instead' },
  LIMIT_EXCEEDED: { http: 429, meaning: 'a configured limit was reached (open sessions per tenant, queued executions per session, frames per second per socket, run-file size); the message says which' },
  SHUTTING_DOWN: { http: 503, meaning: 'the server is shutting down and accepts no new work' },
  INTERNAL: { http: 500, meaning: 'the server failed in a way that is not the request\'s fault; the server keeps running' },
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

/** The close code for a frame over the size limit (RFC 6455 §7.4.1: message too big). */
export const CLOSE_FRAME_TOO_LARGE = 1009;
/** The close code sent to every socket when the server shuts down (RFC 6455: going away). */
export const CLOSE_GOING_AWAY = 1001;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
