/**
 * Writing JSON responses, and the one place where an error becomes an HTTP response (an API answer
 * or a refused socket upgrade): the envelope `{error: {code, message}}` with the status
 * protocol/errors.ts gives each code.
 */
import { errorEnvelope, wireError } from '../../protocol/errors.js';
import type { HttpResponse } from './port.js';

const REASONS: Readonly<Record<number, string>> = Object.freeze({
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
});

export const JSON_TYPE = 'application/json; charset=utf-8';

export function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? 'Unknown'}`;
}

/** Writes a whole response (corked, as it may follow an await); a no-op once the client is gone. */
export function sendText(response: HttpResponse, status: number, contentType: string, body: string, headers?: Record<string, string>, close = false): void {
  response.cork(() => {
    response.writeStatus(statusLine(status));
    response.writeHeader('content-type', contentType);
    if (headers) for (const name in headers) response.writeHeader(name, headers[name]!);
    response.end(body, close);
  });
}

export function sendJson(response: HttpResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  sendText(response, status, JSON_TYPE, JSON.stringify(body), headers);
}

/**
 * Answers with the error envelope (protocol/errors.ts builds it). Errors that are not
 * ProtocolErrors are the server's fault: they are reported to `onInternalError` and their text
 * stays out of the response.
 */
export function sendError(response: HttpResponse, error: unknown, onInternalError: (error: unknown) => void, headers: Record<string, string> = {}): void {
  const wire = wireError(error);
  if (wire.internal) onInternalError(error);
  if (wire.status === 401) headers['www-authenticate'] = 'Bearer';
  // Past the body limit the rest of the body may still be on its way: the connection cannot be reused.
  sendText(response, wire.status, JSON_TYPE, JSON.stringify(errorEnvelope(wire)), headers, wire.code === 'PAYLOAD_TOO_LARGE');
}
