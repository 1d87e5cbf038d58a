import t from 'tap';
import { doneOf, TestClient } from './helpers/client.js';
import { doneProblems, plain, replay, seqProblem, serverFor, startExecution, waitEvent } from './helpers/util.js';

t.test('kill -9 mid-stream, restart: everything seen is replayed identically, the running execution is crashed', async (t) => {
  const first = await serverFor(t);
  const client = await TestClient.connect(first.url, first.token);
  const session = await client.createSession('durable');
  const finished = await client.run(session, 'let x = 41; console.log("finished run"); x + 1');
  const finishedId = finished.execution.execution_id;
  const reply = await startExecution(client, session, [
    'for (let i = 0; ; i++) {',
    '  console.log("stream " + i);',
    '  if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));',
    '}',
  ].join('\n'), { timeout_ms: 120000 });
  const id = reply.execution.execution_id;
  const queued = await startExecution(client, session, 'console.log("never runs")');
  const queuedId = queued.execution.execution_id;
  t.equal(queued.execution.status, 'queued');
  await waitEvent(client, id, (e) => e.seq >= 300);
  await first.kill();
  await client.closed;
  const seen = plain(client.events.get(id)!);
  const seenFinished = plain(client.events.get(finishedId)!);
  t.equal(seqProblem(seen.map((e) => e.seq), 1), null, 'before the kill: contiguous from 1');
  t.notOk(seen.some((e) => e.type === 'done'));

  const second = await serverFor(t, { dataDir: first.dataDir, workspaceDir: first.workspaceDir });
  const after = await TestClient.connect(second.url, second.token);
  t.teardown(() => after.close());

  const record = await after.expect('execution', { op: 'execution.get', execution_id: id });
  t.equal(record.execution.status, 'crashed', 'the execution running at the kill is recorded as crashed');
  t.ok(record.execution.last_seq >= seen.length);

  const replayed = await replay(after, id);
  t.equal(seqProblem(replayed.map((e) => e.seq), 1), null, 'after restart: contiguous from 1');
  t.same(plain(replayed.slice(0, seen.length)), seen, 'every event received before the kill is replayed with identical content');
  t.equal(doneProblems(replayed), null);
  const done = replayed[replayed.length - 1]!;
  t.equal(done.type, 'done');
  t.equal(doneOf(replayed).status, 'crashed');
  t.equal(record.execution.last_seq, done.seq, 'record last_seq is the done seq');

  // Resuming from the last seq seen gives the rest, ending with that done, exactly once.
  const rest = await replay(after, id, seen[seen.length - 1].seq);
  t.equal(seqProblem(rest.map((e) => e.seq), seen.length + 1), null);
  t.same(plain(rest), plain(replayed.slice(seen.length)));

  const replayedFinished = await replay(after, finishedId);
  t.same(plain(replayedFinished), seenFinished, 'a finished execution is replayed identically');
  const finishedRecord = await after.expect('execution', { op: 'execution.get', execution_id: finishedId });
  t.equal(finishedRecord.execution.status, 'ok');

  const queuedRecord = await after.expect('execution', { op: 'execution.get', execution_id: queuedId });
  t.equal(queuedRecord.execution.status, 'crashed', 'an execution queued at the kill is terminal too');
  const queuedReplay = await replay(after, queuedId);
  t.same(queuedReplay.map((e) => [e.seq, e.type, e.type === 'done' ? e.payload.status : undefined]), [[1, 'done', 'crashed']]);

  const listed = await after.expect('executions', { op: 'execution.list', session_id: session });
  t.same(listed.items.map((r: { execution_id: string }) => r.execution_id), [queuedId, id, finishedId]);
  t.same(listed.items.map((r: { status: string }) => r.status), ['crashed', 'crashed', 'ok']);
});

t.test('SIGTERM shuts down cleanly (exit 0) and the data is there after restart', async (t) => {
  const first = await serverFor(t, { env: { VMSTREAM_SHUTDOWN_GRACE_MS: '200' } });
  const client = await TestClient.connect(first.url, first.token);
  const session = await client.createSession('graceful');
  const finished = await client.run(session, 'let kept = "yes"; console.log("logged"); kept');
  const finishedId = finished.execution.execution_id;
  const running = await startExecution(client, session, 'console.log("waiting"); await new Promise((r) => setTimeout(r, 60000))', { timeout_ms: 120000 });
  const runningId = running.execution.execution_id;
  await waitEvent(client, runningId, (e) => e.type === 'console');

  const code = await first.stop('SIGTERM');
  t.equal(code, 0, 'exit code 0');
  await client.closed;
  const seenRunning = plain(client.events.get(runningId)!);

  const second = await serverFor(t, { dataDir: first.dataDir, workspaceDir: first.workspaceDir });
  const after = await TestClient.connect(second.url, second.token);
  t.teardown(() => after.close());

  const sessions = await after.expect('sessions', { op: 'session.list' });
  t.ok(sessions.items.some((s: { session_id: string }) => s.session_id === session), 'the session is still there');
  const replayedFinished = await replay(after, finishedId);
  t.same(plain(replayedFinished), plain(finished.events), 'the finished execution is replayed identically');

  const runningRecord = await after.expect('execution', { op: 'execution.get', execution_id: runningId });
  t.ok(['cancelled', 'crashed'].includes(runningRecord.execution.status), `the execution running at SIGTERM is terminal (${runningRecord.execution.status})`);
  const replayedRunning = await replay(after, runningId);
  t.equal(seqProblem(replayedRunning.map((e) => e.seq), 1), null);
  t.equal(doneProblems(replayedRunning), null);
  t.same(plain(replayedRunning.slice(0, seenRunning.length)), seenRunning, 'what the client saw before SIGTERM is replayed identically');
  t.equal(doneOf(replayedRunning).status, runningRecord.execution.status);
});

t.test('after a restart the session still runs code with its state rebuilt', async (t) => {
  const first = await serverFor(t);
  const client = await TestClient.connect(first.url, first.token);
  const session = await client.createSession('rebuilt');
  const closedSession = await client.createSession('closed-before-restart');
  await client.expect('session', { op: 'session.close', session_id: closedSession });
  await client.run(session, 'let base = 40');
  await client.run(session, 'const more = await Promise.resolve(2)');
  await first.kill();
  await client.closed;

  const second = await serverFor(t, { dataDir: first.dataDir, workspaceDir: first.workspaceDir });
  const after = await TestClient.connect(second.url, second.token);
  t.teardown(() => after.close());
  const stillClosed = await after.request({ op: 'execute', session_id: closedSession, kind: 'repl', code: '1' });
  t.equal(stillClosed.code, 'SESSION_CLOSED', 'a closed session stays closed across a restart');
  const run = await after.run(session, 'base + more');
  t.equal(run.done.payload.status, 'ok');
  t.equal(run.events.find((e) => e.type === 'value')?.payload.preview, '42');
  t.equal(seqProblem(run.events.map((e) => e.seq), 1), null);
});

t.test('a rebuild is said as it starts, and does not wait out its inputs\' timers again', async (t) => {
  // The rebuild must end within 3 s although its input waited 5 s the first time: timers fire at once while restoring.
  const env = { VMSTREAM_RESTORE_TIMEOUT_MS: '3000' };
  const first = await serverFor(t, { env, keepDirs: true });
  const client = await TestClient.connect(first.url, first.token);
  const session = await client.createSession('timers');
  const waited = await client.run(session, 'let order = []; setTimeout(() => order.push("late"), 5000); setTimeout(() => order.push("early"), 10); await new Promise((r) => { const poll = setInterval(() => { if (order.length === 2) { clearInterval(poll); r(); } }, 50); })', { timeout_ms: 20000 });
  t.equal(waited.done.payload.status, 'ok');
  await client.close();
  await first.stop();

  const second = await serverFor(t, { env, dataDir: first.dataDir, workspaceDir: first.workspaceDir });
  const after = await TestClient.connect(second.url, second.token);
  t.teardown(() => after.close());
  const next = await after.run(session, 'order.join(" then ")');
  t.same(next.events.map((e) => e.type), ['session.restoring', 'session.restored', 'value', 'done'], 'restoring first, then restored: not lost to the restore timeout');
  t.same(next.events[0]!.payload, { session_id: session, inputs: 1, replayed: 0 });
  t.equal((next.events[2]!.payload as { preview: string }).preview, "'early then late'", 'the callbacks ran in their order');
});
