/**
 * A subscription that cannot reach its execution's `done` tells its client instead of leaving it
 * waiting: a reader too slow to keep up with a long log, whose log retention deletes while it is
 * paused, gets what was sent before and then a LOG_DELETED error (an `error` frame carrying the
 * execution_id on the socket, an `event: error` message on an event stream), never a `done`.
 */
import http from 'node:http';
import t from 'tap';
import { HttpClient, parseBlock, type SseMessage } from './helpers/http.js';
import { TestClient } from './helpers/client.js';
import { serverFor } from './helpers/util.js';

const LINES = 50_000;
/** Far more than the socket's buffers and the kernel's hold for a reader that does not read. */
const LINE_CHARS = 200;
const TOTAL = LINES + 2;

const server = await serverFor(t, {
  env: {
    VMSTREAM_RETENTION_MS: '2000',
    VMSTREAM_RETENTION_SWEEP_MS: '200',
    VMSTREAM_BACKPRESSURE_BYTES: '65536',
    VMSTREAM_MAX_OUTPUT_BYTES: String(64 * 1024 * 1024),
  },
});
const api = HttpClient.of(server);
const session = await api.createSession('ended');

/** Polls the record until `check` holds of its answer: the status, then the body. */
async function poll(executionId: string, check: (status: number, body: any) => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!check(...(await recordOf(executionId)))) {
    if (Date.now() > deadline) throw new Error(`${executionId}: the record never changed as expected`);
    await new Promise((resolve) => setTimeout(resolve, 100)); // poll interval
  }
}

async function recordOf(executionId: string): Promise<[number, any]> {
  const reply = await api.get(`/api/v1/executions/${executionId}`);
  return [reply.status, reply.body];
}

/** A long log, ended; resolves with its id. Retention deletes it about 2 s after its end. */
async function longLog(): Promise<string> {
  // A block, so the session's next run may declare `pad` again.
  const code = `{ const pad = 'p'.repeat(${LINE_CHARS}); for (let i = 1; i <= ${LINES}; i++) console.log(i + ' ' + pad) }`;
  const id = (await api.repl(session, code, { timeout_ms: 120_000 })).execution_id as string;
  // The live record says it ended before its last events are stored: its last_seq counts only those.
  await poll(id, (status, body) => status === 200 && body.ended_at !== undefined && body.last_seq === TOTAL);
  const [, record] = await recordOf(id);
  if (record.status !== 'ok') throw new Error(`the long log ended ${JSON.stringify(record)}`);
  return id;
}

const deleted = (executionId: string) => poll(executionId, (status) => status === 404);

/**
 * An event stream's messages, read by node's HTTP client (which, paused, stops reading its socket:
 * fetch's body buffers far ahead) only once `startReading` settled, to its end.
 */
function readSse(url: string, startReading: Promise<unknown>): Promise<{ status: number; messages: SseMessage[] }> {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${server.token}`, accept: 'text/event-stream' };
    http.get(url, { headers }, (response) => {
      response.pause();
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const messages = text.split('\n\n').map(parseBlock).filter((message) => message !== null);
        resolve({ status: response.statusCode!, messages });
      });
      response.on('error', reject);
      startReading.then(() => response.resume(), reject);
    }).on('error', reject);
  });
}

t.test('socket: a paused subscriber whose log is deleted gets LOG_DELETED with the execution_id after its last event', async (t) => {
  const id = await longLog();
  const slow = await TestClient.connect(server.url, server.token);
  t.teardown(() => slow.socket.terminate());
  await slow.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  // Stop reading: the server fills the socket and pauses the subscription.
  (slow.socket as any)._socket.pause();
  await deleted(id);
  (slow.socket as any)._socket.resume();
  const error = await slow.waitFor((frame) => frame.op === 'error' && frame.execution_id === id, 60_000);
  t.equal(error.code, 'LOG_DELETED');
  t.notOk('id' in error, 'no request id: no request caused it');
  t.match(error.message, /deleted/);
  const events = slow.events.get(id) ?? [];
  t.ok(events.length > 0 && events.length < TOTAL, `sent before the deletion: ${events.length} of ${TOTAL} events`);
  t.same(events.map((event) => event.seq), events.map((_, index) => index + 1), 'contiguous from 1');
  t.notOk(events.some((event) => event.type === 'done'), 'no done');
  t.equal(slow.frames.at(-1), error, 'nothing after the error');
  const again = await slow.request({ op: 'subscribe', execution_id: id, after_seq: events.length });
  t.equal(again.code, 'NOT_FOUND', 'a new subscribe finds nothing: the log is gone');
});

t.test('event stream: a paused reader whose log is deleted gets an `event: error` LOG_DELETED, then the end', async (t) => {
  const id = await longLog();
  const { status, messages } = await readSse(`${api.base}/api/v1/executions/${id}/events`, deleted(id));
  t.equal(status, 200);
  const last = messages.at(-1)!;
  t.equal(last.event, 'error', 'the last message is the error');
  t.match(JSON.parse(last.data), { error: { code: 'LOG_DELETED' } });
  const events = messages.slice(0, -1).map((message) => JSON.parse(message.data));
  t.ok(events.length > 0 && events.length < TOTAL, `sent before the deletion: ${events.length} of ${TOTAL} events`);
  t.same(events.map((event) => event.seq), events.map((_, index) => index + 1), 'contiguous from 1');
  t.notOk(events.some((event) => event.type === 'done'), 'no done');
});
