/**
 * A server on the JetStream store (VMSTREAM_STORE=jetstream), one node: executions stream and
 * replay from JetStream; a kill -9 of nats-server and its restart on the same port and store is
 * survived by a running execution (it ends ok, every seq once, live and in replay) while /readyz
 * says 503; a kill -9 of the server itself leaves a replay identical to what clients saw.
 */
import t from 'tap';
import { TestClient } from './helpers/client.js';
import { HttpClient } from './helpers/http.js';
import { natsFor } from './helpers/nats.js';
import { doneProblems, plain, replay, seqProblem, serverFor, startExecution, waitEvent } from './helpers/util.js';

/** Asks /readyz until its store check is `wanted` (no clock: each answer comes from the server). */
/**
 * The first /readyz answer whose store check says `wanted`; when the store is back, also every other
 * check (a node's own heartbeat is written a moment after NATS returns, and readiness waits for it).
 */
async function storeReadiness(api: HttpClient, wanted: boolean): Promise<{ status: number; body: any }> {
  for (;;) {
    const reply = await api.get('/readyz');
    const checks = Object.values(reply.body.checks ?? {});
    if (reply.body.checks.store === wanted && (!wanted || checks.every((check) => check !== false))) return reply;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const STREAM = [
  'for (let i = 0; i < 3000; i++) {',
  '  console.log("line " + i);',
  '  if (i % 25 === 0) await new Promise((r) => setTimeout(r, 2));',
  '}',
  '"finished"',
].join('\n');

t.test('nats-server killed and restarted mid-stream: the execution ends ok, every seq once; /readyz 503 meanwhile', async (t) => {
  const nats = await natsFor(t);
  const env = { VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: 'natsloss' };
  const server = await serverFor(t, { env });
  const api = HttpClient.of(server, null);
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('on jetstream');
  const warm = await client.run(session, 'let x = 41; x + 1');
  t.equal(warm.done.payload.status, 'ok', 'an execution runs on the JetStream store');

  const reply = await startExecution(client, session, STREAM, { timeout_ms: 120_000 });
  const id = reply.execution.execution_id;
  await waitEvent(client, id, (e) => e.seq >= 200);
  await nats.kill();
  t.equal((await storeReadiness(api, false)).status, 503, '/readyz answers 503 while NATS is gone');
  await nats.start();
  t.equal((await storeReadiness(api, true)).status, 200, 'and 200 once it is back');
  const done = await waitEvent(client, id, (e) => e.type === 'done', 120_000);
  t.equal(done.payload.status, 'ok', 'the running execution ended ok');
  const live = client.events.get(id)!;
  t.equal(seqProblem(live.map((e) => e.seq), 1), null, 'live: every seq once, from 1');
  t.equal(doneProblems(live), null, 'live: one done, last');

  const reader = await TestClient.connect(server.url, server.token);
  t.teardown(() => reader.close());
  const replayed = await replay(reader, id);
  t.same(plain(replayed), plain(live), 'a replay from JetStream is what was seen live');
  const middle = await replay(reader, id, 1500);
  t.same(plain(middle), plain(live.slice(1500)), 'and from the middle');
});

t.test('server killed (-9) mid-stream and restarted on the same JetStream prefix: replay identical, execution crashed', async (t) => {
  const nats = await natsFor(t);
  const env = { VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: 'restart' };
  const first = await serverFor(t, { env });
  const client = await TestClient.connect(first.url, first.token);
  const session = await client.createSession('durable');
  const reply = await startExecution(client, session, STREAM.replace('i < 3000', 'i < 1e9'), { timeout_ms: 120_000 });
  const id = reply.execution.execution_id;
  await waitEvent(client, id, (e) => e.seq >= 300);
  await first.kill();
  await client.closed;
  const seen = plain(client.events.get(id)!);

  const second = await serverFor(t, { env });
  const after = await TestClient.connect(second.url, second.token);
  t.teardown(() => after.close());
  const record = await after.expect('execution', { op: 'execution.get', execution_id: id });
  t.equal(record.execution.status, 'crashed', 'recovered as crashed');
  const replayed = await replay(after, id);
  t.equal(seqProblem(replayed.map((e) => e.seq), 1), null, 'contiguous from 1');
  t.same(plain(replayed.slice(0, seen.length)), seen, 'every event seen before the kill, identical');
  t.equal(doneProblems(replayed), null, 'one done, last');
  t.equal(record.execution.last_seq, replayed[replayed.length - 1]!.seq, 'the record counts the done');
  const again = await after.run(session, '1 + 1');
  t.equal(again.done.payload.status, 'ok', 'the session runs again');
});
