/**
 * `GET /executions/{id}/events` with `Accept: text/event-stream`: a live stream whose `id:` is the
 * seq, resumed by Last-Event-ID, ended after `done`, 204 once there is nothing left; and a reader
 * that does not read gets paused (backpressure) and still receives every event, in order.
 */
import http from 'node:http';
import t, { type Test } from 'tap';
import { HttpClient, openSse, type SseMessage } from './helpers/http.js';
import { startServer } from './helpers/server.js';

const server = await startServer();
t.teardown(() => server.stop());
const api = HttpClient.of(server);
const session = await api.createSession('sse');
const eventsUrl = (id: string, query = '') => `${api.base}/api/v1/executions/${id}/events${query}`;

/** Each message's id is its event's seq, and they run on from `from` without a gap to a `done`. */
function checkMessages(t: Test, messages: SseMessage[], from: number): void {
  const events = messages.map((message) => JSON.parse(message.data));
  t.same(messages.map((m) => Number(m.id)), events.map((e) => e.seq), 'id: is the seq');
  t.same(messages.map((m) => m.event), events.map((e) => e.type), 'event: is the event type');
  t.same(events.map((e) => e.seq), events.map((_, index) => from + index), `contiguous from ${from}`);
  t.equal(events.at(-1)?.type, 'done', 'ends with done');
}

/** A gauge of the server; on a cluster, summed over its nodes (each counts only what it serves). */
async function metric(name: string): Promise<number> {
  let sum = 0;
  for (const node of server.nodes ?? [server]) {
    const text = (await HttpClient.of(node).get('/metrics', { token: null })).body as string;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    sum += Number(line?.split(' ')[1]);
  }
  return sum;
}

t.test('live: events as they happen, then the stream ends after done', async (t) => {
  const record = await api.repl(session, 'for (let i = 0; i < 5; i++) { console.log(i); await new Promise((r) => setTimeout(r, 15)); }');
  const stream = await openSse(eventsUrl(record.execution_id), server.token);
  t.equal(stream.status, 200);
  t.match(stream.headers.get('content-type'), /^text\/event-stream/);
  t.equal(stream.headers.get('cache-control'), 'no-cache');
  const messages = await stream.messages;
  checkMessages(t, messages, 1);
  t.same(messages.slice(0, 5).map((m) => JSON.parse(m.data).payload.text), ['0', '1', '2', '3', '4']);
});

t.test('resume: Last-Event-ID, or after_seq; Last-Event-ID wins', async (t) => {
  const record = await api.repl(session, 'for (let i = 0; i < 6; i++) console.log(i)');
  await api.untilDone(record.execution_id);
  checkMessages(t, await (await openSse(eventsUrl(record.execution_id), server.token, { 'last-event-id': '3' })).messages, 4);
  checkMessages(t, await (await openSse(eventsUrl(record.execution_id, '?after_seq=2'), server.token)).messages, 3);
  checkMessages(t, await (await openSse(eventsUrl(record.execution_id, '?after_seq=1'), server.token, { 'last-event-id': '5' })).messages, 6);
});

t.test('reconnecting in the middle of a live execution misses nothing', async (t) => {
  const record = await api.repl(session, 'for (let i = 0; i < 12; i++) { console.log(i); await new Promise((r) => setTimeout(r, 10)); }');
  const first = await openSse(eventsUrl(record.execution_id), server.token);
  await first.waitFor(3);
  first.abort();
  const seen = [...first.received];
  const lastId = seen.at(-1)!.id!;
  const second = await openSse(eventsUrl(record.execution_id), server.token, { 'last-event-id': lastId });
  const rest = await second.messages;
  checkMessages(t, [...seen, ...rest], 1);
});

t.test('nothing left: 204, so an EventSource stops reconnecting', async (t) => {
  const record = await api.repl(session, '1');
  const events = await api.untilDone(record.execution_id);
  const last = String(events.at(-1).seq);
  const stream = await openSse(eventsUrl(record.execution_id), server.token, { 'last-event-id': last });
  t.equal(stream.status, 204);
  t.same(await stream.messages, []);
});

t.test('a reader that does not read is paused, then gets every event in order', async (t) => {
  const lines = 50_000;
  const record = await api.repl(session, `for (let i = 0; i < ${lines}; i++) console.log(String(i).padStart(6, '0') + ' ' + 'x'.repeat(90))`);
  const pausesBefore = await metric('vmstream_backpressure_pauses_total');
  // Read nothing until the server has had to pause this stream.
  const paused = (async () => {
    while ((await metric('vmstream_backpressure_pauses_total')) === pausesBefore) await new Promise((r) => setImmediate(r));
  })();
  const stream = await openSse(eventsUrl(record.execution_id), server.token, {}, paused);
  const messages = await stream.messages;
  t.equal(messages.length, lines + 2, 'the lines, the completion value, done');
  checkMessages(t, messages, 1);
  t.ok((await metric('vmstream_backpressure_pauses_total')) > pausesBefore, 'the stream was paused');
});

/**
 * Counts the messages of a stream read by node's strict HTTP parser, `pauseMs` between reads, so the
 * server's socket stays full while it writes.
 */
function readSlowly(url: string, pauseMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${server.token}`, accept: 'text/event-stream' };
    http.get(url, { headers }, (response) => {
      let count = 0;
      let rest = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        const blocks = (rest + chunk).split('\n\n');
        rest = blocks.pop()!;
        count += blocks.filter((block) => /^id: /m.test(block)).length;
        response.pause();
        setTimeout(() => response.resume(), pauseMs);
      });
      response.on('end', () => resolve(count));
      response.on('error', reject);
    }).on('error', reject);
  });
}

t.test('a slow reader of a finished log gets intact chunked framing', async (t) => {
  // Pages from the store are far larger than uWS's 16 KB cork buffer, and a slow reader keeps the
  // socket full while one is written: uWS 20.30 dropped the write that overflowed the cork buffer
  // then (HPE_STRICT / HPE_INVALID_CHUNK_SIZE here, or a stream that never ends).
  const lines = 50_000;
  const record = await api.repl(session, `for (let i = 0; i < ${lines}; i++) console.log(String(i).padStart(6, '0') + ' ' + 'x'.repeat(90))`);
  await api.untilDone(record.execution_id);
  for (const pauseMs of [1, 5]) t.equal(await readSlowly(eventsUrl(record.execution_id), pauseMs), lines + 2, `every message, ${pauseMs} ms between reads`);
});

t.test('a client that goes away ends its stream', async (t) => {
  const record = await api.repl(session, 'console.log("start"); await new Promise((r) => setTimeout(r, 20000))');
  const stream = await openSse(eventsUrl(record.execution_id), server.token);
  await stream.waitFor(1);
  t.equal(await metric('vmstream_event_streams_open'), 1);
  stream.abort();
  while ((await metric('vmstream_event_streams_open')) !== 0) await new Promise((r) => setImmediate(r));
  t.pass('the stream closed on the server');
  await api.post(`/api/v1/executions/${record.execution_id}/cancel`);
});
