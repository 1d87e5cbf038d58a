/**
 * What an HTTP user reaches for first: `?wait=MS` / `Prefer: wait=N` on the execute routes (the
 * finished record with its events in one request, else the record as it stands), and a plain GET
 * of the socket path told to upgrade (426) instead of a 404.
 */
import t from 'tap';
import { HttpClient } from './helpers/http.js';
import { removeEvents } from './helpers/level-log.js';
import { removeDir } from './helpers/server.js';
import { serverFor } from './helpers/util.js';

const server = await serverFor(t);
const api = HttpClient.of(server);
const session = await api.createSession('wait');

t.test('?wait=MS: the finished record with its events when it ends in time', async (t) => {
  const reply = await api.post('/api/v1/executions/repl?wait=10000', { session_id: session, code: 'console.log("hi"); 6 * 7' });
  t.equal(reply.status, 201);
  t.equal(reply.body.status, 'ok');
  t.type(reply.body.ended_at, 'number');
  t.same(reply.body.events.map((event: { type: string }) => event.type), ['console', 'value', 'done']);
  t.equal(reply.body.events[1].payload.preview, '42');
  t.same(reply.body.events.map((event: { seq: number }) => event.seq), [1, 2, 3]);
  t.equal(reply.body.last_seq, 3);

  const again = await api.post('/api/v1/executions/repl?wait=10000', { session_id: session, code: 'ignored', execution_id: reply.body.execution_id });
  t.equal(again.status, 200, 'a known execution_id: nothing new runs');
  t.same(again.body.events, reply.body.events, 'and its events are the same');
});

t.test('it does not end in time: the record as it stands, no events', async (t) => {
  const reply = await api.post('/api/v1/executions/repl?wait=50', { session_id: session, code: 'await new Promise(() => {})' });
  t.equal(reply.status, 201);
  t.equal(reply.body.status, 'running');
  t.notOk('events' in reply.body);
  await api.post(`/api/v1/executions/${reply.body.execution_id}/cancel`);
});

t.test('Prefer: wait=N (seconds) works too, and says it was applied; an error ends it as well', async (t) => {
  const reply = await api.post('/api/v1/executions/repl', { session_id: session, code: 'throw new RangeError("no")' }, { headers: { prefer: 'wait=5' } });
  t.equal(reply.status, 201);
  t.equal(reply.headers.get('preference-applied'), 'wait=5');
  t.equal(reply.body.status, 'error');
  t.match(reply.body.events[0], { type: 'exception', payload: { name: 'RangeError', message: 'no' } });
  const capped = await api.post('/api/v1/executions/repl', { session_id: session, code: '1' }, { headers: { prefer: 'respond-async, wait=3600' } });
  t.equal(capped.headers.get('preference-applied'), 'wait=60', 'lowered to the limit');
  t.equal(capped.body.status, 'ok');
  const bad = await api.post('/api/v1/executions/repl?wait=600000', { session_id: session, code: '1' });
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /wait/);
});

t.test('the waiting cannot reach the `done` (its log has lost its events): the error, not a record that seems to have stopped', { skip: process.env.VMSTREAM_TEST_TARGET === 'cluster' && 'LevelDB surgery: a single process' }, async (t) => {
  const first = await serverFor(t, { keepDirs: true });
  t.teardown(() => {
    removeDir(first.dataDir);
    removeDir(first.workspaceDir);
  });
  const firstApi = HttpClient.of(first);
  const ran = await firstApi.post('/api/v1/executions/repl?wait=10000', { session_id: await firstApi.createSession('cut'), code: 'console.log("hi"); 1' });
  t.equal(ran.body.status, 'ok');
  const id = ran.body.execution_id as string;
  await first.stop();
  t.ok(await removeEvents(first.dataDir, id) > 0, 'its stored events removed, its record kept');

  const second = await serverFor(t, { dataDir: first.dataDir, workspaceDir: first.workspaceDir });
  // The same execution_id: nothing new runs, the waiting follows the stored log from seq 1, which is
  // read again and again (8 times, 250 ms apart) before the server gives up on it.
  const reply = await HttpClient.of(second).post('/api/v1/executions/repl?wait=30000', { session_id: ran.body.session_id, code: 'ignored', execution_id: id });
  t.equal(reply.status, 500);
  t.equal(reply.body.error.code, 'LOG_UNREADABLE');
  t.match(reply.body.error.message, new RegExp(`execution \`${id}\``));
});

t.test('a plain GET of /v1/ws: 426 with Upgrade: websocket', async (t) => {
  const reply = await api.get('/v1/ws', { token: null });
  t.equal(reply.status, 426);
  t.equal(reply.headers.get('upgrade'), 'websocket');
  t.equal(reply.body.error.code, 'UPGRADE_REQUIRED');
});
