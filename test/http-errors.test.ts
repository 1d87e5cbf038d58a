/**
 * How the HTTP API fails: one envelope `{error: {code, message}}`, the socket's codes, and each
 * code's status from protocol/errors.ts. Against a real server, except INTERNAL (500), which no
 * request can provoke on purpose: its mapping is checked on src/http/respond.ts directly.
 */
import http from 'node:http';
import t, { type Test } from 'tap';
import { ERROR_CODES, ProtocolError, wireError, type ErrorCode } from '../protocol/errors.js';
import type { HttpResponse } from '../src/http/port.js';
import { sendError, statusLine } from '../src/http/respond.js';
import { HttpClient, type ApiResponse } from './helpers/http.js';
import { startServer } from './helpers/server.js';

const MAX_BODY = 2048;
const server = await startServer({ env: { VMSTREAM_MAX_FRAME_BYTES: String(MAX_BODY), VMSTREAM_MAX_SESSIONS: '3' } });
t.teardown(() => server.stop());
const api = HttpClient.of(server);
const session = await api.createSession('errors');

function isError(t: Test, reply: ApiResponse, status: number, code: ErrorCode, message?: RegExp): void {
  t.equal(reply.status, status, `status ${status}`);
  t.equal(ERROR_CODES[code].http, status, `${code} is ${status} in the table`);
  t.match(reply.headers.get('content-type'), /^application\/json/);
  t.same(Object.keys(reply.body), ['error']);
  t.same(Object.keys(reply.body.error).sort(), ['code', 'message']);
  t.equal(reply.body.error.code, code);
  if (message) t.match(reply.body.error.message, message);
}

t.test('400 BAD_REQUEST: bad JSON, not an object, fields named as on the socket', async (t) => {
  const repl = '/api/v1/executions/repl';
  isError(t, await api.post(repl, '{"session_id": '), 400, 'BAD_REQUEST', /not valid JSON/);
  isError(t, await api.post(repl, '[1, 2]'), 400, 'BAD_REQUEST', /must be a JSON object/);
  isError(t, await api.post(repl, { code: '1' }), 400, 'BAD_REQUEST', /body: missing field `session_id`/);
  isError(t, await api.post(repl, { session_id: session }), 400, 'BAD_REQUEST', /missing field `code`/);
  isError(t, await api.post(repl, { session_id: session, code: '1', timeout_ms: 'soon' }), 400, 'BAD_REQUEST', /field `timeout_ms` must be integer/);
  isError(t, await api.post(repl, { session_id: session, code: '1', execution_id: 'no spaces' }), 400, 'BAD_REQUEST', /field `execution_id`/);
  isError(t, await api.post('/api/v1/executions/run-file', { session_id: session, code: '1' }), 400, 'BAD_REQUEST', /missing field `path`/);
  isError(t, await api.post('/api/v1/executions/run-file', { session_id: session, path: '../outside.js' }), 400, 'BAD_REQUEST', /inside the workspace/);
  isError(t, await api.post('/api/v1/sessions', { name: 7 }), 400, 'BAD_REQUEST', /field `name`/);
  isError(t, await api.get('/api/v1/executions'), 400, 'BAD_REQUEST', /query: missing field `session_id`/);
  for (const limit of ['0', '101', 'ten', '1.5']) {
    isError(t, await api.get(`/api/v1/executions?session_id=${session}&limit=${limit}`), 400, 'BAD_REQUEST', /query: field `limit`/);
  }
  isError(t, await api.get('/api/v1/executions/bad%20id'), 400, 'BAD_REQUEST', /path: field `execution_id`/);
  const record = await api.repl(session, '1');
  await api.untilDone(record.execution_id);
  const events = `/api/v1/executions/${record.execution_id}/events`;
  isError(t, await api.get(`${events}?after_seq=-1`), 400, 'BAD_REQUEST', /field `after_seq`/);
  isError(t, await api.get(`${events}?limit=1001`), 400, 'BAD_REQUEST', /field `limit`/);
  isError(t, await api.get(`${events}?after_seq=99`), 400, 'BAD_REQUEST', /beyond the execution's last_seq/);
  isError(t, await api.get(events, { headers: { accept: 'text/event-stream', 'last-event-id': 'later' } }), 400, 'BAD_REQUEST', /Last-Event-ID/);
});

t.test('401 UNAUTHORIZED: no token, a wrong one, another scheme', async (t) => {
  for (const headers of [{}, { authorization: 'Bearer not-the-token' }, { authorization: `Basic ${server.token}` }] as Array<Record<string, string>>) {
    const reply = await api.get('/api/v1/sessions', { token: null, headers });
    isError(t, reply, 401, 'UNAUTHORIZED', /token/);
    t.equal(reply.headers.get('www-authenticate'), 'Bearer');
  }
  isError(t, await api.post('/api/v1/sessions', {}, { token: 'wrong-token-123' }), 401, 'UNAUTHORIZED');
  const viaQuery = await api.get(`/api/v1/sessions?token=${server.token}`, { token: null });
  t.equal(viaQuery.status, 200, '?token= works as on the socket (EventSource cannot set headers)');
  t.equal((await api.get('/healthz', { token: null })).status, 200, 'probes need no token');
});

t.test('404 NOT_FOUND: unknown routes and unknown ids', async (t) => {
  isError(t, await api.get('/nope'), 404, 'NOT_FOUND', /no route/);
  isError(t, await api.get('/api/v1/sessions/a/b'), 404, 'NOT_FOUND', /no route/);
  isError(t, await api.get('/api/v1/sessions/'), 404, 'NOT_FOUND', /no route/);
  isError(t, await api.get('/api/v1/executions/%E0%A4%A'), 404, 'NOT_FOUND', /no route/);
  isError(t, await api.get('/v1/ws'), 426, 'UPGRADE_REQUIRED', /WebSocket only/);
  isError(t, await api.get('/api/v1/sessions/no-such-session'), 404, 'NOT_FOUND', /no session/);
  isError(t, await api.delete('/api/v1/sessions/no-such-session'), 404, 'NOT_FOUND', /no session/);
  isError(t, await api.get('/api/v1/executions?session_id=no-such-session'), 404, 'NOT_FOUND', /no session/);
  isError(t, await api.post('/api/v1/executions/repl', { session_id: 'no-such-session', code: '1' }), 404, 'NOT_FOUND');
  isError(t, await api.get('/api/v1/executions/no-such-execution'), 404, 'NOT_FOUND', /no execution/);
  isError(t, await api.get('/api/v1/executions/no-such-execution/events'), 404, 'NOT_FOUND', /no execution/);
  isError(t, await api.get('/api/v1/executions/no-such-execution/events', { headers: { accept: 'text/event-stream' } }), 404, 'NOT_FOUND');
  isError(t, await api.post('/api/v1/executions/no-such-execution/cancel'), 404, 'NOT_FOUND', /no execution/);
  isError(t, await api.post('/api/v1/executions/run-file', { session_id: session, path: 'missing.js' }), 404, 'NOT_FOUND', /no file/);
});

t.test('405 METHOD_NOT_ALLOWED with Allow', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['PUT', '/api/v1/sessions', 'GET, POST'],
    ['POST', `/api/v1/sessions/${session}`, 'DELETE, GET'],
    ['DELETE', '/api/v1/executions/some-id', 'GET'],
    ['GET', '/api/v1/executions/some-id/cancel', 'POST'],
    ['PATCH', '/api/v1/executions/repl', 'GET, POST'],
    ['POST', '/metrics', 'GET'],
  ];
  for (const [method, url, allow] of cases) {
    const reply = await api.request(method, url);
    isError(t, reply, 405, 'METHOD_NOT_ALLOWED', new RegExp(`${method} is not allowed`));
    t.equal(reply.headers.get('allow'), allow, `${method} ${url}`);
  }
});

t.test('409 SESSION_CLOSED', async (t) => {
  const closed = await api.createSession();
  await api.delete(`/api/v1/sessions/${closed}`);
  isError(t, await api.post('/api/v1/executions/repl', { session_id: closed, code: '1' }), 409, 'SESSION_CLOSED', /is closed/);
  isError(t, await api.post('/api/v1/executions/run-file', { session_id: closed, path: 'x.js' }), 409, 'SESSION_CLOSED');
});

t.test('413 PAYLOAD_TOO_LARGE past the frame limit, by Content-Length or counted', async (t) => {
  const big = JSON.stringify({ session_id: session, code: 'x'.repeat(MAX_BODY) });
  isError(t, await api.post('/api/v1/executions/repl', big), 413, 'PAYLOAD_TOO_LARGE', new RegExp(`${MAX_BODY}-byte limit`));
  // No Content-Length: the body arrives chunked and is counted.
  const chunks = [new TextEncoder().encode(big.slice(0, 1500)), new TextEncoder().encode(big.slice(1500))];
  const body = new ReadableStream({ pull(controller) { const next = chunks.shift(); if (next) controller.enqueue(next); else controller.close(); } });
  const response = await fetch(`${api.base}/api/v1/executions/repl`, {
    method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${server.token}` },
  } as RequestInit);
  t.equal(response.status, 413);
  t.equal(((await response.json()) as { error: { code: string } }).error.code, 'PAYLOAD_TOO_LARGE');
  const fits = await api.post('/api/v1/executions/repl', { session_id: session, code: `"${'y'.repeat(MAX_BODY - 100)}".length` });
  t.equal(fits.status, 201, 'a body under the limit passes');
});

t.test('429 LIMIT_EXCEEDED: open sessions', async (t) => {
  const open = (await api.get('/api/v1/sessions')).body.items.length;
  const made: string[] = [];
  for (let index = open; index < 3; index++) made.push(await api.createSession());
  isError(t, await api.post('/api/v1/sessions', {}), 429, 'LIMIT_EXCEEDED', /sessions are open/);
  for (const id of made) await api.delete(`/api/v1/sessions/${id}`);
  t.equal((await api.post('/api/v1/sessions', {})).status, 201, 'room again once closed');
});

t.test('503 SHUTTING_DOWN, and /readyz 503, while the server drains', async (t) => {
  const draining = await startServer({ env: { VMSTREAM_SHUTDOWN_GRACE_MS: '10000' } });
  t.teardown(() => draining.kill());
  const client = HttpClient.of(draining);
  const sessionId = await client.createSession();
  const running = await client.repl(sessionId, 'await new Promise((resolve) => setTimeout(resolve, 20000))');
  // One kept-alive connection, opened before the listening socket closes, is still served.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const call = (method: string, url: string) => new Promise<{ status: number; body: any }>((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port: draining.port, method, path: url, agent, headers: { authorization: `Bearer ${draining.token}` } }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk) => (text += chunk)).on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(text) }));
    });
    request.on('error', reject);
    request.end();
  });
  // Ready once every worker thread has booted, which may be a moment after `listening`.
  let before = await call('GET', '/readyz');
  while (before.status !== 200 && before.body.checks.workers === false) before = await call('GET', '/readyz');
  t.equal(before.status, 200, JSON.stringify(before.body));
  const events = client.untilDone(running.execution_id);
  draining.process.kill('SIGTERM');
  // The execution gets the grace period; the first event the stream sees is the shutdown's `done`.
  let ready = await call('GET', '/readyz');
  while (ready.status === 200) ready = await call('GET', '/readyz');
  t.equal(ready.status, 503);
  t.same(ready.body, { status: 'not_ready', checks: { store: true, workers: true, accepting: false }, sandbox: ready.body.sandbox });
  const refused = await call('POST', '/api/v1/sessions');
  t.equal(refused.status, 503);
  t.same(refused.body.error.code, 'SHUTTING_DOWN');
  t.equal(ERROR_CODES.SHUTTING_DOWN.http, 503);
  await client.post(`/api/v1/executions/${running.execution_id}/cancel`).catch(() => undefined);
  await events.catch(() => undefined);
});

t.test('500 INTERNAL: an error that is not a ProtocolError, and every code\'s status line', async (t) => {
  const written: string[] = [];
  const reported: unknown[] = [];
  const response: HttpResponse = {
    aborted: false,
    ended: false,
    backpressured: false,
    cork: (fn) => fn(),
    writeStatus: (status) => written.push(status),
    writeHeader: (name, value) => written.push(`${name}: ${value}`),
    write: () => true,
    end: (body) => written.push(body ?? ''),
    onWritable: () => undefined,
    onAborted: () => undefined,
  };
  const failure = new Error('disk on fire at /secret/path');
  sendError(response, failure, (error) => reported.push(error));
  t.same(written, ['500 Internal Server Error', 'content-type: application/json; charset=utf-8', '{"error":{"code":"INTERNAL","message":"internal error"}}']);
  t.same(reported, [failure], 'reported to the log, kept out of the response');
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    const { status } = wireError(new ProtocolError(code, 'x'));
    t.equal(status, ERROR_CODES[code].http);
    t.notMatch(statusLine(status), /Unknown/, `${code}: ${statusLine(status)}`);
  }
});
