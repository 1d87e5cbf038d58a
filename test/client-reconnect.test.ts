/**
 * The SDK when the connection breaks: a proxy cuts it at an exact frame (mid-stream, on a lost
 * execute reply, on a lost session.create), repeats and reorders frames, swallows a reply; and the
 * real server is killed and restarted on its port in the middle of an execution. Each time the
 * application must see every event once, in order, and no code may run twice.
 */
import t from 'tap';
import { ConnectionError, RequestTimeoutError, type EventFrame } from 'vmstream/client';
import { FrameProxy, seqsOf } from './helpers/proxy.js';
import { connect, consoleTexts, linesCode, restart, startOnFixedPort } from './helpers/sdk.js';
import { startServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test('a drop mid-stream resumes from the last delivered seq', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  let batches = 0;
  proxy.filter = (frame, raw, connection) => {
    if (frame.op === 'events') batches++;
    return connection === 1 && seqsOf(frame).includes(5) ? 'cut' : [raw];
  };
  const { client, statuses, until } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession();
  const events: EventFrame[] = [];
  const record = await client.execute(session, linesCode(20), { onEvent: (e) => events.push(e) });
  t.equal(record.status, 'ok');
  t.same(events.map((e) => e.seq), range(22), 'every seq once, in order');
  t.same(consoleTexts(events), range(20).map((i) => `line ${i}`));
  t.equal(proxy.upgrades, 2, 'one reconnect');
  t.ok(batches > 0, 'the SDK asked for events frames, and got them');
  await until('connected', 2);
  t.same(statuses.map((s) => s.type).filter((type, i, all) => type !== all[i - 1]), ['connected', 'disconnected', 'reconnecting', 'connected']);
  t.match(statuses.at(-1), { type: 'connected', reconnect: true, resumed: 1 });
});

t.test('an execute whose reply was lost is sent again and runs once', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  const { client } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession();
  proxy.filter = (frame, raw, connection) => (connection === 1 && frame.op === 'execution' ? 'cut' : [raw]);
  const events: EventFrame[] = [];
  const record = await client.execute(session, 'globalThis.runs = (globalThis.runs ?? 0) + 1; console.log("run " + runs); runs', {
    executionId: 'chosen-by-the-client',
    onEvent: (e) => events.push(e),
  });
  t.equal(proxy.upgrades, 2, 'the reply was lost with the connection');
  t.equal(record.execution_id, 'chosen-by-the-client');
  t.equal(record.status, 'ok');
  t.same(events.map((e) => e.seq), [1, 2, 3]);
  t.same(consoleTexts(events), ['run 1']);
  const check: EventFrame[] = [];
  await client.execute(session, 'runs', { onEvent: (e) => check.push(e) });
  t.equal((check[0] as EventFrame<'value'>).payload.preview, '1', 'the code ran once');
  t.equal((await client.listExecutions(session)).length, 2);
});

t.test('repeated and reordered event frames reach the application once, in order', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  let held: Buffer | null = null;
  // The SDK asks for `events` frames: the one that carries seq 3 is held back (unless nothing
  // follows it) and comes twice after the next one, itself sent twice.
  let released = false;
  proxy.filter = (frame, raw) => {
    const seqs = seqsOf(frame);
    if (seqs.length === 0) return [raw];
    if (seqs.includes(3) && held === null && !seqs.includes(12)) return (held = raw), [];
    if (seqs[0]! > 3 && held && !released) {
      released = true;
      return [raw, raw, held, held];
    }
    return [raw, raw];
  };
  const { client } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession();
  const execution = client.start(session, linesCode(10, 1));
  const seqs: number[] = [];
  for await (const event of execution) seqs.push(event.seq);
  t.same(seqs, range(12));
  t.equal((await execution.result).status, 'ok');
});

t.test('a server killed mid-stream and restarted: the log is resumed, no event lost or repeated', async (t) => {
  let server = await startOnFixedPort();
  t.teardown(() => server.stop());
  const { client, until } = await connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession();
  await client.execute(session, 'let kept = "from before the restart"');
  const events: EventFrame[] = [];
  let restarted: Promise<unknown> | null = null;
  const record = await client.execute(session, linesCode(400, 5), {
    onEvent: (event) => {
      events.push(event);
      if (event.seq === 10) restarted = server.kill().then(async () => (server = await restart(server)));
    },
  });
  await restarted;
  await until('connected', 2);
  t.equal(record.status, 'crashed');
  t.equal(record.reason, 'server_restart');
  const seqs = events.map((e) => e.seq);
  t.same(seqs, range(seqs.length), 'contiguous from 1, each once');
  t.equal(events.at(-1)!.type, 'done');

  // What the log holds is exactly what the application was given.
  const direct = await TestClient.connect(server.url, server.token);
  t.teardown(() => direct.close());
  await direct.expect('subscribed', { op: 'subscribe', execution_id: record.execution_id, after_seq: 0 });
  t.same(await direct.untilDone(record.execution_id), events);

  const after: EventFrame[] = [];
  await client.execute(session, 'kept', { onEvent: (e) => after.push(e) });
  t.same(after.map((e) => e.type), ['session.restoring', 'session.restored', 'value', 'done'], 'the session comes back, announced as the rebuild starts and when it is done');
  t.equal((after[2] as EventFrame<'value'>).payload.preview, "'from before the restart'");
});

t.test('requests while disconnected wait for the socket; a lost session.create fails, typed', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  proxy.filter = (frame, raw, connection) => (connection === 1 && frame.op === 'session' ? 'cut' : [raw]);
  const { client } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token);
  t.teardown(() => client.close());
  const lost = await client.createSession('lost').catch((e: unknown) => e);
  t.ok(lost instanceof ConnectionError);
  t.equal((lost as ConnectionError).code, 'CONNECTION_LOST', 'not sent twice: it is not idempotent');
  const sessions = await client.listSessions();
  t.equal(proxy.upgrades, 2);
  t.same(sessions.map((s) => s.name), ['lost'], 'the server did create it once');
});

t.test('a reply that never comes times out', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  proxy.filter = (frame, raw) => (frame.op === 'pong' ? [] : [raw]);
  const { client } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token, { requestTimeoutMs: 200 });
  t.teardown(() => client.close());
  const error = await client.ping().catch((e: unknown) => e);
  t.ok(error instanceof RequestTimeoutError);
  t.equal((error as RequestTimeoutError).code, 'REQUEST_TIMEOUT');
  t.same(await client.listSessions(), [], 'the socket is still fine');
});

t.test('reconnect attempts run out: closed() and the followers say why', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  const { client, statuses } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token, { maxReconnectAttempts: 2 });
  const session = await client.createSession();
  const execution = client.start(session, 'await new Promise(() => {})');
  await execution.accepted;
  await server.kill();
  const error = await client.closed();
  t.ok(error instanceof ConnectionError);
  t.equal(error!.code, 'CONNECTION_FAILED');
  t.match(error!.message, /after 2 attempts/);
  await t.rejects(execution.result, { code: 'CONNECTION_FAILED' });
  t.same(statuses.filter((s) => s.type === 'reconnecting').map((s) => (s as { attempt: number }).attempt), [1, 2]);
  t.equal(statuses.at(-1)!.type, 'closed');
});
