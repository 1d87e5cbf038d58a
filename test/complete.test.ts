/**
 * The `complete` request over a real socket: names from the session's live context (its declared
 * bindings, the global's names, an object's properties after a `.`), its errors, and a hostile
 * object that cannot hold the session.
 */
import t from 'tap';
import { runRepl } from './helpers/loose.js';
import { connect } from './helpers/sdk.js';
import { clientFor, sharedServer } from './helpers/util.js';

const shared = sharedServer(t);

t.test('complete: declared bindings, globals and properties after a dot', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('complete');
  t.equal((await runRepl(client, session, 'let fooBar = 1; const fooBaz = 2; var fooVar = 3')).done.payload.status, 'ok');

  const foo = await client.expect('completion', { op: 'complete', session_id: session, code: 'foo', cursor: 3 });
  t.same(foo.matches, ['fooBar', 'fooBaz', 'fooVar'], 'let, const and var bindings of earlier inputs');
  t.same([foo.start, foo.end], [0, 3], 'they replace the identifier being typed');

  const max = await client.expect('completion', { op: 'complete', session_id: session, code: 'x = Math.ma', cursor: 11 });
  t.same(max.matches, ['max']);
  t.same([max.start, max.end], [9, 11]);

  const middle = await client.expect('completion', { op: 'complete', session_id: session, code: 'Math.ma + 1', cursor: 7 });
  t.same(middle.matches, ['max'], 'only the text before the cursor counts');

  const globals = await client.expect('completion', { op: 'complete', session_id: session, code: 'JSO', cursor: 3 });
  t.same(globals.matches, ['JSON'], 'the global\'s own names');

  await runRepl(client, session, 'let target = 4; let names = 5');
  const shadowed = await client.expect('completion', { op: 'complete', session_id: session, code: 'targ', cursor: 4 });
  t.same(shadowed.matches, ['target'], 'a binding named like a variable of the completer itself');

  const none = await client.expect('completion', { op: 'complete', session_id: session, code: 'zzzNothing', cursor: 10 });
  t.same(none.matches, []);
});

// The context is made when the session is opened, not by its first execute (issue 15: the first
// event of a fresh session's first run should not wait for a context to be built). A completion
// goes to the same worker, in order after the session's `open`, and answers from the context.
t.test('complete: a new session\'s context exists before its first execute', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('no-run-yet');
  const globals = await client.expect('completion', { op: 'complete', session_id: session, code: 'JSO', cursor: 3 });
  t.same(globals.matches, ['JSON'], 'the new context\'s global answers before any run');
  const first = await runRepl(client, session, '40 + 2');
  t.equal(first.done.payload.status, 'ok');
  t.equal(first.events.find((e) => e.type === 'value')?.payload.preview, '42');
});

t.test('complete: a hostile object answers nothing, and the session still works', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('hostile');
  await client.run(session, 'globalThis.trap = new Proxy({}, { ownKeys() { for (;;); } }); globalThis.getter = { get deep() { for (;;); } }');
  const trapped = await client.expect('completion', { op: 'complete', session_id: session, code: 'trap.', cursor: 5 });
  t.same(trapped.matches, [], 'a looping ownKeys trap gives no names');
  const deep = await client.expect('completion', { op: 'complete', session_id: session, code: 'getter.deep.x', cursor: 13 });
  t.same(deep.matches, [], 'a looping getter on the path gives no names');
  const after = await runRepl(client, session, '40 + 2');
  t.equal(after.done.payload.status, 'ok');
  t.equal(after.events.find((e) => e.type === 'value')?.payload.preview, '42');
});

t.test('complete: errors', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('errors');
  const past = await client.request({ op: 'complete', session_id: session, code: 'ab', cursor: 3 });
  t.match(past, { op: 'error', code: 'BAD_REQUEST', message: /cursor/ });
  const missing = await client.request({ op: 'complete', session_id: 'no-such-session', code: 'a', cursor: 1 });
  t.match(missing, { op: 'error', code: 'NOT_FOUND' });
  const noCursor = await client.request({ op: 'complete', session_id: session, code: 'a' });
  t.match(noCursor, { op: 'error', code: 'BAD_REQUEST', message: /cursor/ });
  await client.expect('session', { op: 'session.close', session_id: session });
  const closed = await client.request({ op: 'complete', session_id: session, code: 'a', cursor: 1 });
  t.match(closed, { op: 'error', code: 'SESSION_CLOSED' });
});

t.test('complete: answers, empty, while the session\'s worker is stuck in a loop', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('stuck');
  const stuck = await client.expect('execution', { op: 'execute', session_id: session, kind: 'repl', code: 'for (;;) {}' });
  const reply = await client.expect('completion', { op: 'complete', session_id: session, code: 'Math.ma', cursor: 7 });
  t.same(reply.matches, [], 'the worker cannot hear: the pool answers for it');
  await client.expect('execution', { op: 'cancel', execution_id: stuck.execution.execution_id });
  const after = await client.expect('completion', { op: 'complete', session_id: session, code: 'Math.ma', cursor: 7 });
  t.same(after.matches, ['max'], 'the replacement worker answers (from the session\'s reopened context)');
});

t.test('complete through the SDK: client.complete(session, code, cursor)', async (t) => {
  const server = await shared();
  const { client } = await connect(`ws://127.0.0.1:${server.port}/v1/ws`, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('sdk-complete');
  await client.execute(session, 'const user = { address: { city: "Oslo", country: "NO" } }');
  t.same(await client.complete(session, 'user.address.ci', 15), { matches: ['city'], start: 13, end: 15 });
  await t.rejects(client.complete(session, 'ab', 3), { code: 'BAD_REQUEST' });
});
