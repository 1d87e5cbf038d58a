/**
 * Configured quotas: open sessions (VMSTREAM_MAX_SESSIONS), queued executions per session
 * (VMSTREAM_MAX_QUEUED) and frames per second per socket (VMSTREAM_MAX_FRAMES_PER_SEC). Past each,
 * LIMIT_EXCEEDED — and nothing else breaks.
 */
import t, { type Test } from 'tap';
import { pack, type TestClient } from './helpers/client.js';
import { clientFor, serverFor, sync } from './helpers/util.js';
import { runRepl } from './helpers/loose.js';

async function setup(t: Test, env: Record<string, string>) {
  const server = await serverFor(t, { env });
  const client = await clientFor(t, server);
  return { server, client };
}

t.test('VMSTREAM_MAX_SESSIONS=3: the 4th session.create is LIMIT_EXCEEDED', async (t) => {
  const { server, client } = await setup(t, { VMSTREAM_MAX_SESSIONS: '3' });
  const other = await clientFor(t, server);
  const ids = [await client.createSession('1'), await other.createSession('2'), await client.createSession('3')];
  const fourth = await client.request({ op: 'session.create', name: '4' });
  t.equal(fourth.op, 'error');
  t.equal(fourth.code, 'LIMIT_EXCEEDED', 'the limit counts sessions of every socket');
  t.match(fourth.message, /session/i, 'the message says which limit');
  const fifth = await other.request({ op: 'session.create' });
  t.equal(fifth.code, 'LIMIT_EXCEEDED', 'from another socket too');
  const listed = (await client.expect('sessions', { op: 'session.list' })).items;
  t.equal(listed.length, 3, 'no session was created by the refused requests');

  // Closing one makes room; the others still work.
  await client.expect('session', { op: 'session.close', session_id: ids[0] });
  const again = await client.request({ op: 'session.create', name: 'again' });
  t.equal(again.op, 'session', 'a closed session frees its place');
  const run = await runRepl(other, ids[1]!, '1 + 1');
  t.equal(run.done.payload.status, 'ok');
  t.equal((await client.request({ op: 'session.create' })).code, 'LIMIT_EXCEEDED', 'and the limit holds again');
});

t.test('VMSTREAM_MAX_QUEUED=2: the 3rd queued execute is LIMIT_EXCEEDED', async (t) => {
  const { client } = await setup(t, { VMSTREAM_MAX_QUEUED: '2' });
  const s = await client.createSession();
  const running = (await client.expect('execution', {
    op: 'execute', session_id: s, kind: 'repl', code: "console.log('running'); await new Promise((r) => setTimeout(r, 60000))",
  })).execution.execution_id;
  await client.waitFor((f) => f.op === 'event' && f.execution_id === running && f.type === 'console');
  const q1 = await client.expect('execution', { op: 'execute', session_id: s, kind: 'repl', code: "'q1'" });
  const q2 = await client.expect('execution', { op: 'execute', session_id: s, kind: 'repl', code: "'q2'" });
  t.equal(q1.execution.status, 'queued');
  t.equal(q2.execution.status, 'queued');
  const q3 = await client.request({ op: 'execute', session_id: s, kind: 'repl', code: "'q3'", execution_id: 'limits-q3' });
  t.equal(q3.op, 'error');
  t.equal(q3.code, 'LIMIT_EXCEEDED', 'a third queued execution is refused');
  t.match(q3.message, /queue/i, 'the message says which limit');
  const missing = await client.request({ op: 'execution.get', execution_id: 'limits-q3' });
  t.equal(missing.code, 'NOT_FOUND', 'the refused execution does not exist');

  // Another session has its own queue.
  const s2 = await client.createSession();
  t.equal((await runRepl(client, s2, "'other'")).done.payload.status, 'ok');

  // Once the queue moves, there is room again; numbering has no hole for the refused one.
  await client.expect('execution', { op: 'cancel', execution_id: running });
  await client.untilDone(q1.execution.execution_id);
  const q4 = await client.expect('execution', { op: 'execute', session_id: s, kind: 'repl', code: "'q4'" });
  t.equal(q4.execution.number, q2.execution.number + 1, 'the refused execute used no number');
  await client.untilDone(q4.execution.execution_id);
  const records = (await client.expect('executions', { op: 'execution.list', session_id: s })).items;
  t.same(records.map((r: any) => r.status).sort(), ['cancelled', 'ok', 'ok', 'ok'], 'everything accepted ran or was cancelled');
});

/** Sends `count` pings with ids `${tag}-<n>` in one burst; resolves with the next `count` frames received. */
async function pingBurst(client: TestClient, count: number, tag: string): Promise<Array<Record<string, any>>> {
  const before = client.frames.length;
  for (let n = 0; n < count; n++) client.sendRaw(pack({ op: 'ping', id: `${tag}-${n}` }));
  await client.waitFor(() => client.frames.length >= before + count);
  return client.frames.slice(before, before + count);
}

t.test('VMSTREAM_MAX_FRAMES_PER_SEC=50: a burst of 200 pings is rate limited, the socket recovers', async (t) => {
  const { server, client } = await setup(t, { VMSTREAM_MAX_FRAMES_PER_SEC: '50' });
  const bystander = await clientFor(t, server);
  const replies = await pingBurst(client, 200, 'burst');
  const pongs = replies.filter((r) => r.op === 'pong');
  const limited = replies.filter((r) => r.op === 'error' && r.code === 'LIMIT_EXCEEDED');
  t.comment(`${pongs.length} pongs, ${limited.length} LIMIT_EXCEEDED`);
  t.equal(pongs.length + limited.length, 200, 'every ping got one reply: pong or LIMIT_EXCEEDED');
  t.ok(limited.length > 0, 'some were rate limited');
  t.ok(pongs.length >= 50, 'the first bucketful was served');
  t.ok(pongs.length < 200, 'not all of them');
  t.equal(new Set(pongs.map((p) => p.id)).size, pongs.length, 'each served ping answered once, under its own id');
  t.ok(limited.every((r) => !('id' in r)), 'a refused frame is not decoded, so its error has no id');
  t.match(limited[0]?.message, /frames per second/, 'the message says which limit');
  await sync(bystander);
  t.pass('another socket has its own budget');

  // After a pause the bucket is full again: a burst within it is served in full.
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the bucket refills at 50 frames/s
  const after = await pingBurst(client, 40, 'after');
  t.same(after.filter((r) => r.op !== 'pong'), [], 'the socket works again: 40 of 40 served');
  t.equal(client.socket.readyState, client.socket.OPEN, 'the socket was never closed');
});

t.test('VMSTREAM_MAX_FRAMES_PER_SEC=50: frames that fail to decode count against the budget too', async (t) => {
  const { client } = await setup(t, { VMSTREAM_MAX_FRAMES_PER_SEC: '50' });
  // 200 undecodable frames in one burst: each gets one error; the budget is 50 frames per second.
  const garbage = Buffer.from([0xc1]);
  const before = client.frames.length;
  for (let i = 0; i < 200; i++) client.sendRaw(garbage);
  await client.waitFor(() => client.frames.length >= before + 200);
  const replies = client.frames.slice(before);
  const codes = new Set(replies.map((r) => r.code));
  t.ok(replies.every((r) => r.op === 'error'), 'every frame got an error');
  t.ok([...codes].every((c) => c === 'BAD_FRAME' || c === 'LIMIT_EXCEEDED'), `codes: ${[...codes].join(', ')}`);
  t.ok(replies.some((r) => r.code === 'LIMIT_EXCEEDED'), 'frames past the budget are refused as such, whatever they hold');
  // And a burst of text frames, likewise.
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the bucket refills
  const before2 = client.frames.length;
  for (let i = 0; i < 200; i++) client.sendRaw('not msgpack');
  await client.waitFor(() => client.frames.length >= before2 + 200);
  t.ok(client.frames.slice(before2).some((r) => r.code === 'LIMIT_EXCEEDED'), 'text frames count too');
});
