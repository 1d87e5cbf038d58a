/**
 * The engine alone, in this process, against a FakeSandbox the test plays the host of: the
 * watchdog, lost hosts, requeues, rebuilds, cancels and output limits, without a server, a socket
 * or a worker thread. The store is the real LevelDB one, in a temporary folder.
 */
import t from 'tap';
import path from 'node:path';
import type { SessionRecord } from '../protocol/types.js';
import { DEFAULTS, type Config } from '../src/config.js';
import type { EventSink } from '../src/events/subscription-hub.js';
import { decodeValue } from '../protocol/codec.js';
import { Engine } from '../src/sessions/engine.js';
import { Workspace } from '../src/sessions/workspace.js';
import { LevelEventStore } from '../src/store/level-store.js';
import { FakeSandbox } from './helpers/fake-sandbox.js';
import type { AnyEvent } from './helpers/loose.js';
import { removeDir, tempDir } from './helpers/server.js';

interface Rig { engine: Engine; fake: FakeSandbox }
type Test = Pick<typeof t, 'fail' | 'teardown'>;

async function rig(t: Test, overrides: Partial<Config> = {}): Promise<Rig> {
  const dir = tempDir('engine');
  const store = new LevelEventStore(path.join(dir, 'events'));
  await store.open();
  const config: Config = { ...DEFAULTS, dataDir: dir, workspaceDir: dir, ...overrides };
  let fake!: FakeSandbox;
  const engine = new Engine(config, store, Workspace.of(config), (listener) => (fake = new FakeSandbox(listener)), {
    onError: (context, error) => t.fail(`${context}: ${String(error)}`),
  });
  t.teardown(async () => {
    await engine.shutdown(0);
    await store.close();
    removeDir(dir);
  });
  return { engine, fake };
}

async function openSession(engine: Engine, sessionId: string): Promise<void> {
  const record: SessionRecord = { session_id: sessionId, tenant: 't', name: '', status: 'ready', created_at: Date.now(), execution_count: 0 };
  await engine.openSession(record);
}

let next = 0;

/** Submits a repl execution; `events` resolves with all of its events once `done` is delivered. */
async function submit(engine: Engine, sessionId: string, code = '1', timeoutMs = 60_000): Promise<{ id: string; events: Promise<AnyEvent[]> }> {
  const id = `t/x${++next}`;
  await engine.submit({ executionId: id, sessionId, kind: 'repl', code, source: code, timeoutMs });
  const events = new Promise<AnyEvent[]>((resolve) => {
    const frames: AnyEvent[] = [];
    const sink: EventSink = {
      send: (frame) => (frames.push(decodeValue(frame) as AnyEvent), 0),
      cork: (fn) => fn(),
      ended: () => resolve(frames),
    };
    engine.attach(sink, id, 0, null);
  });
  return { id, events };
}

/** Runs one execution to `ok` through the fake host. */
async function runOk(engine: Engine, fake: FakeSandbox, sessionId: string, code: string): Promise<void> {
  const x = await submit(engine, sessionId, code);
  t.equal((await fake.take('run')).executionId, x.id);
  fake.done(x.id, 'ok');
  await x.events;
}

t.test('a run that times out is aborted, then its host killed after the grace; the next run rebuilds', async (t) => {
  const { engine, fake } = await rig(t, { stopGraceMs: 10 });
  await openSession(engine, 's1');
  const x = await submit(engine, 's1', 'while (true) {}', 10);
  t.equal((await fake.take('run')).executionId, x.id);
  t.match(await fake.take('abort'), { sessionId: 's1', executionId: x.id, status: 'timeout' }, 'asked first');
  t.match(await fake.take('kill'), { sessionId: 's1', reason: 'timeout' }, 'then killed: the run did not hear');
  const events = await x.events;
  t.same(events.map((e) => e.type), ['done']);
  t.match(events[0]!.payload, { status: 'timeout', reason: 'timeout', session: 'rebuilt' });
  t.equal(engine.stats().sandbox.restarts, 1);

  const y = await submit(engine, 's1', '2');
  t.same((await fake.take('restore')).inputs, [], 'a timed-out input is not replayed');
  fake.restored('s1', { ok: true, replayed: 0 });
  t.equal((await fake.take('run')).executionId, y.id);
  fake.done(y.id);
  t.same((await y.events).map((e) => [e.seq, e.type]), [[1, 'session.restored'], [2, 'done']]);
});

t.test('a lost host ends the running execution crashed, and the session is rebuilt before its next one', async (t) => {
  const { engine, fake } = await rig(t);
  await openSession(engine, 's1');
  await runOk(engine, fake, 's1', 'let a = 1');
  const running = await submit(engine, 's1', 'console.log(a); for (;;);');
  await fake.take('run');
  fake.console(running.id, '1');
  const queued = await submit(engine, 's1', 'a');
  fake.lose('worker_exit');
  const lost = await running.events;
  t.same(lost.map((e) => e.type), ['console', 'done'], 'what it printed before the loss stays');
  t.match(lost[1]!.payload, { status: 'crashed', reason: 'worker_exit', session: 'rebuilt' });

  const restore = await fake.take('restore');
  t.same(restore.inputs, [{ kind: 'repl', code: 'let a = 1', filename: 'REPL1', ended: 'ok' }], 'inputs that ran to their end, in order');
  t.notOk(fake.calls.some((call) => call.op === 'run' && call.executionId === queued.id), 'nothing runs before the rebuild ends');
  fake.restored('s1', { ok: true, replayed: 1 });
  t.equal((await fake.take('run')).executionId, queued.id);
  fake.value(queued.id, { type: 'number', preview: '1' });
  fake.done(queued.id);
  const events = await queued.events;
  t.same(events.map((e) => [e.seq, e.type]), [[1, 'session.restoring'], [2, 'session.restored'], [3, 'value'], [4, 'done']]);
  t.same(events[0]!.payload, { session_id: 's1', inputs: 1, replayed: 0 }, 'said as the rebuild starts, before it ends');
  t.same(events[1]!.payload, { session_id: 's1', replayed: 1 });
});

t.test('killing a host requeues the other sessions\' runs that produced nothing', async (t) => {
  const { engine, fake } = await rig(t, { stopGraceMs: 10 });
  await openSession(engine, 'runaway');
  await openSession(engine, 'bystander');
  const runaway = await submit(engine, 'runaway', 'for (;;);');
  await fake.take('run');
  const bystander = await submit(engine, 'bystander', '1 + 1');
  t.equal((await fake.take('run')).executionId, bystander.id);
  // Stopped only once the bystander runs beside it (a timeout could fire before, on a slow machine).
  const cancelled = engine.cancel(runaway.id);
  await fake.take('kill');
  t.match((await runaway.events).at(-1)!.payload, { status: 'cancelled', session: 'rebuilt' });
  t.equal((await cancelled)?.status, 'cancelled');

  const restore = await fake.take('restore');
  t.equal(restore.sessionId, 'bystander', 'only the session with work waiting is rebuilt now');
  fake.restored('bystander', { ok: true, replayed: 0 });
  t.equal((await fake.take('run')).executionId, bystander.id, 'the collateral run runs again, from the start');
  fake.done(bystander.id);
  const events = await bystander.events;
  t.same(events.map((e) => [e.seq, e.type]), [[1, 'session.restored'], [2, 'done']]);
  t.equal(events[1]!.payload.status, 'ok');
  t.notOk('session' in events[1]!.payload, 'it ended by itself');
});

t.test('a rebuild that fails is said with session.lost, and the session carries on', async (t) => {
  const { engine, fake } = await rig(t);
  await openSession(engine, 's1');
  await runOk(engine, fake, 's1', 'globalThis.big = 1');
  fake.lose('out_of_memory');
  const x = await submit(engine, 's1', 'big');
  await fake.take('restore');
  fake.restored('s1', { ok: false, replayed: 0, reason: 'input 1 of 1 ended with timeout' });
  t.equal((await fake.take('run')).executionId, x.id);
  fake.done(x.id, 'error');
  const events = await x.events;
  t.same(events.map((e) => [e.seq, e.type]), [[1, 'session.restoring'], [2, 'session.lost'], [3, 'done']]);
  t.same(events[1]!.payload, { session_id: 's1', reason: 'input 1 of 1 ended with timeout' });
});

t.test('cancel: a queued execution ends at once, a running one once its host stopped it', async (t) => {
  const { engine, fake } = await rig(t);
  await openSession(engine, 's1');
  const running = await submit(engine, 's1', 'await new Promise(() => {})');
  await fake.take('run');
  const queued = await submit(engine, 's1', '2');

  t.equal((await engine.cancel(queued.id))?.status, 'cancelled');
  const queuedEvents = await queued.events;
  t.same(queuedEvents.map((e) => e.type), ['done']);
  t.same(queuedEvents[0]!.payload, { status: 'cancelled', duration_ms: 0, reason: 'cancelled' }, 'no session field: it never ran');
  t.notOk(fake.calls.some((call) => call.op === 'run' && call.executionId === queued.id), 'it never ran');

  const cancelled = engine.cancel(running.id);
  t.match(await fake.take('abort'), { executionId: running.id, status: 'cancelled' });
  fake.done(running.id, 'cancelled');
  t.equal((await cancelled)?.status, 'cancelled');
  t.match((await running.events).at(-1)!.payload, { status: 'cancelled', reason: 'cancelled', session: 'kept' });
  t.equal(await engine.cancel(running.id), undefined, 'an ended execution is no longer live');
});

t.test('past the output limit: a marker, the run is stopped, done says output_limit', async (t) => {
  const { engine, fake } = await rig(t, { maxEventsPerExecution: 5 });
  await openSession(engine, 's1');
  const x = await submit(engine, 's1', 'for (;;) console.log(1)');
  await fake.take('run');
  for (let i = 0; i < 10; i++) fake.console(x.id, `line ${i}`);
  t.match(await fake.take('abort'), { executionId: x.id, status: 'error' });
  fake.done(x.id, 'error');
  const events = await x.events;
  t.same(events.map((e) => e.type), ['console', 'console', 'console', 'console', 'done']);
  t.same(events.slice(0, 3).map((e) => e.payload.text), ['line 0', 'line 1', 'line 2']);
  t.match(events[3]!.payload, { level: 'warn', text: /output limit reached/ });
  t.match(events[4]!.payload, { status: 'error', reason: 'output_limit', session: 'kept' });
});

t.test('a rebuild that does not answer in time kills its host, and the run goes on with session.lost', async (t) => {
  const { engine, fake } = await rig(t, { restoreTimeoutMs: 10 });
  await openSession(engine, 's1');
  fake.lose('worker_exit');
  const x = await submit(engine, 's1', '1');
  await fake.take('restore');
  t.match(await fake.take('kill'), { sessionId: 's1', reason: 'restore_timeout' });
  t.equal((await fake.take('run')).executionId, x.id);
  fake.done(x.id);
  const events = await x.events;
  t.same(events.map((e) => e.type), ['session.lost', 'done']);
  t.match(events[0]!.payload, { reason: /restore_timeout/ });
});

t.test('closing a session cancels its run, and drops its context only once the run has ended', async (t) => {
  const { engine, fake } = await rig(t);
  await openSession(engine, 's1');
  const x = await submit(engine, 's1', 'await new Promise(() => {})');
  await fake.take('run');
  t.equal((await engine.closeSession('s1'))?.status, 'closed');
  t.match(await fake.take('abort'), { executionId: x.id, status: 'cancelled' });
  t.notOk(fake.calls.some((call) => call.op === 'close'), 'the context stays while the run may still need killing');
  fake.done(x.id, 'cancelled');
  t.equal((await fake.take('close')).sessionId, 's1');
  const events = await x.events;
  t.same(events.map((e) => e.type), ['done']);
  t.same(events[0]!.payload, { status: 'cancelled', duration_ms: events[0]!.payload.duration_ms, reason: 'session_closed' }, 'no session field: there is none left');
});
