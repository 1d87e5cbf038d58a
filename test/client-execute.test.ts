/**
 * The SDK against a real server, with the connection undisturbed: executing, iterating,
 * subscribing, run-file, typed errors, aborting and closing.
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { AbortError, Client, ClientClosedError, ConnectionError, ServerError, VmstreamError, type EventFrame } from 'vmstream/client';
import { startServer, workspaceFile } from './helpers/server.js';
import { consoleTexts, linesCode } from './helpers/sdk.js';

const server = await startServer();
t.teardown(() => server.stop());
const client = await Client.connect(server.url, { token: server.token });
t.teardown(() => client.close());
const session = await client.createSession('sdk');

t.test('execute streams typed events in order and resolves with the final record', async (t) => {
  const events: EventFrame[] = [];
  const record = await client.execute(session, 'let x = 41; console.log("hi"); console.warn("careful"); x + 1', { onEvent: (event) => events.push(event) });
  t.same(events.map((e) => e.seq), [1, 2, 3, 4]);
  t.same(events.map((e) => e.type), ['console', 'console', 'value', 'done']);
  t.same(events[1]!.payload, { level: 'warn', text: 'careful' });
  t.equal((events[2] as EventFrame<'value'>).payload.preview, '42');
  t.equal(record.status, 'ok');
  t.equal(record.last_seq, 4);
  t.equal(record.session_id, session.session_id);
  t.type(record.ended_at, 'number');
  t.match(record.execution_id, /^[A-Za-z0-9]{15}$/, 'the SDK chose the id (protocol/ids.ts): 15 characters of A-Z a-z 0-9');
  t.ok(events.every((e) => e.execution_id === record.execution_id), 'its events carry it');
});

t.test('an executionId the caller chooses (a UUID, as earlier SDKs made) is used as given; reusing it runs nothing new', async (t) => {
  const executionId = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
  const code = 'globalThis.uuidRuns = (globalThis.uuidRuns ?? 0) + 1; console.log("run " + uuidRuns); uuidRuns';
  const events: EventFrame[] = [];
  const record = await client.execute(session, code, { executionId, onEvent: (event) => events.push(event) });
  t.equal(record.execution_id, executionId);
  t.ok(events.every((e) => e.execution_id === executionId), 'its events carry it');
  t.same(consoleTexts(events), ['run 1']);
  const again = await client.execute(session, code, { executionId });
  t.equal(again.created_at, record.created_at, 'the same execution');
  t.equal((await client.getExecution(executionId)).last_seq, record.last_seq);
  const check: EventFrame[] = [];
  await client.execute(session, 'uuidRuns', { onEvent: (e) => check.push(e) });
  t.equal((check[0] as EventFrame<'value'>).payload.preview, '1', 'the code ran once');
});

t.test('start() is async-iterable; subscribe() replays an ended execution from afterSeq', async (t) => {
  const execution = client.start(session, linesCode(5));
  const seen: number[] = [];
  for await (const event of execution) seen.push(event.seq);
  t.same(seen, [1, 2, 3, 4, 5, 6, 7]);
  t.equal((await execution.result).status, 'ok');
  t.throws(() => execution[Symbol.asyncIterator](), TypeError, 'one iteration per execution');

  const replay = client.subscribe(execution.id, { afterSeq: 3 });
  const replayed: EventFrame[] = [];
  for await (const event of replay) replayed.push(event);
  t.same(replayed.map((e) => e.seq), [4, 5, 6, 7]);
  t.same(consoleTexts(replayed), ['line 4', 'line 5']);
  t.equal((await replay.result).status, 'ok');

  const atEnd = client.subscribe(execution.id, { afterSeq: 7 });
  t.equal((await atEnd.result).status, 'ok', 'subscribing at the very end still ends');
});

t.test('a run-file execution reads the server workspace', async (t) => {
  writeFileSync(workspaceFile(server, 'hello.js'), 'console.log("from a file")');
  const events: EventFrame[] = [];
  const record = await client.execute(session, { path: 'hello.js' }, { onEvent: (e) => events.push(e) });
  t.equal(record.kind, 'run-file');
  t.same(consoleTexts(events), ['from a file']);
});

t.test('errors are typed, with the protocol code', async (t) => {
  const missing = await client.execute('no-such-session', '1').catch((error: unknown) => error);
  t.ok(missing instanceof ServerError && missing instanceof VmstreamError);
  t.equal((missing as ServerError).code, 'NOT_FOUND');
  const beyond = await client.subscribe((await client.listExecutions(session, { limit: 1 }))[0]!.execution_id, { afterSeq: 999 }).result.catch((e: unknown) => e);
  t.equal((beyond as ServerError).code, 'BAD_REQUEST');
  t.match((beyond as ServerError).message, /after_seq/);
  await t.rejects(client.getExecution('nope'), { code: 'NOT_FOUND', name: 'ServerError' });
  const refused = await Client.connect(server.url, { token: 'wrong-token-0000' }).catch((e: unknown) => e);
  t.ok(refused instanceof ConnectionError);
  t.equal((refused as ConnectionError).code, 'UNAUTHORIZED', 'a refused token has its own code');
  t.equal((refused as ConnectionError).status, 401);
  t.match((refused as ConnectionError).message, /the token was refused/);
});

t.test('aborting cancels on the server and rejects with the cancelled record', async (t) => {
  const controller = new AbortController();
  let events = 0;
  const error = await client.execute(session, 'for (;;) { console.log("tick"); await new Promise((r) => setTimeout(r, 5)); }', {
    signal: controller.signal,
    onEvent: () => {
      if (++events === 3) controller.abort(new Error('enough'));
    },
  }).catch((e: unknown) => e);
  t.ok(error instanceof AbortError);
  t.equal((error as AbortError).code, 'ABORTED');
  t.equal(((error as AbortError).cause as Error).message, 'enough');
  t.equal((error as AbortError).record?.status, 'cancelled');
  t.equal(events, 3, 'no event is delivered after the abort');
  const stored = await client.getExecution((error as AbortError).record!.execution_id);
  t.equal(stored.status, 'cancelled');

  const running = client.start(session, 'for (;;) { console.log("tock"); await new Promise((r) => setTimeout(r, 5)); }');
  await running.accepted;
  const watcher = await Client.connect(server.url, { token: server.token });
  t.teardown(() => watcher.close());
  const watching = new AbortController();
  const follower = watcher.subscribe(running.id, { signal: watching.signal });
  watching.abort();
  t.equal(((await follower.result.catch((e: unknown) => e)) as AbortError).code, 'ABORTED');
  t.equal((await client.getExecution(running.id)).status, 'running', 'aborting a subscription does not cancel the execution');
  await running.cancel();

  const before = (await client.listExecutions(session, { limit: 100 })).length;
  const already = await client.execute(session, 'console.log("never")', { signal: AbortSignal.abort() }).catch((e: unknown) => e);
  t.ok(already instanceof AbortError);
  t.equal((await client.listExecutions(session, { limit: 100 })).length, before, 'an aborted signal sends nothing');
});

t.test('cancel() by id, and close() fails what is pending', async (t) => {
  const other = await Client.connect(server.url, { token: server.token });
  const execution = other.start(session, 'await new Promise(() => {})');
  await execution.accepted;
  const cancelled = await client.cancel(execution.id);
  t.equal(cancelled.status, 'cancelled');
  t.equal((await execution.result).status, 'cancelled', 'the follower sees it end');
  const running = other.start(session, 'await new Promise(() => {})');
  await running.accepted;
  const pending = other.listSessions().catch((e: unknown) => e);
  await other.close();
  await t.rejects(running.result, ClientClosedError);
  t.ok((await pending) instanceof ClientClosedError, 'a request waiting for its reply');
  t.throws(() => other.start(session, '1'), ClientClosedError);
  t.equal(await other.closed(), undefined);
  await client.cancel(running.id);
});
