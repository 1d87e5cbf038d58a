/**
 * The engine against a store that fails on demand (test/helpers/memory-store.ts) and a FakeSandbox,
 * in process: what the engine does with the store's per-item answers — a conditional create that
 * loses, an execution the store refuses for good, writes that fail for a while.
 */
import t from 'tap';
import type { SessionRecord } from '../protocol/types.js';
import { DEFAULTS, type Config } from '../src/config.js';
import type { EndReason, EventSink } from '../src/events/subscription-hub.js';
import { decodeValue } from '../protocol/codec.js';
import { Engine } from '../src/sessions/engine.js';
import { Workspace } from '../src/sessions/workspace.js';
import { FakeSandbox } from './helpers/fake-sandbox.js';
import type { AnyEvent } from './helpers/loose.js';
import { MemoryEventStore } from './helpers/memory-store.js';
import { removeDir, tempDir } from './helpers/server.js';

async function rig(t: Pick<typeof import('tap').default, 'teardown'>, options: { reserve?: boolean } = {}) {
  const dir = tempDir('engine-store');
  const store = new MemoryEventStore(undefined, options);
  await store.open();
  const config: Config = { ...DEFAULTS, dataDir: dir, workspaceDir: dir };
  const errors: string[] = [];
  let fake!: FakeSandbox;
  const engine = new Engine(config, store, Workspace.of(config), (listener) => (fake = new FakeSandbox(listener)), {
    onError: (context) => errors.push(context),
  });
  t.teardown(async () => {
    store.fault = () => null;
    await engine.shutdown(0);
    await store.close();
    removeDir(dir);
  });
  for (const sessionId of ['s1', 's2']) {
    const record: SessionRecord = { session_id: sessionId, tenant: 't', name: '', status: 'ready', created_at: Date.now(), execution_count: 0 };
    await engine.openSession(record);
  }
  return { engine, fake, store, errors };
}

interface Recorder {
  sink: EventSink;
  /** Resolves at the first event delivered. */
  first: Promise<void>;
  /** Every event, once the subscription ends. */
  all: Promise<AnyEvent[]>;
  /** Why it ended. */
  reason: Promise<EndReason>;
}

/** Subscribes from seq 0. */
function follow(engine: Engine, id: string): Recorder {
  const recorder = record();
  engine.attach(recorder.sink, id, 0, null);
  return recorder;
}

/** A sink that records what it is sent and why its subscription ended. */
function record(): Recorder {
  let first!: () => void;
  const firstDelivered = new Promise<void>((resolve) => (first = resolve));
  let ended!: (reason: EndReason) => void;
  const reason = new Promise<EndReason>((resolve) => (ended = resolve));
  const frames: AnyEvent[] = [];
  const sink: EventSink = {
    send: (frame) => {
      frames.push(decodeValue(frame) as AnyEvent);
      first();
      return 0;
    },
    cork: (fn) => fn(),
    ended: (_id, why) => ended(why),
  };
  return { sink, first: firstDelivered, all: reason.then(() => frames), reason };
}

const input = (executionId: string, sessionId: string, code = '1') => ({ executionId, sessionId, kind: 'repl' as const, code, source: code, timeoutMs: 60_000 });

t.test('two submits of one id at once: one record, one run, the session numbered once', async (t) => {
  const { engine, fake, store } = await rig(t);
  const results = await Promise.all([engine.submit(input('t/same', 's1', 'a')), engine.submit(input('t/same', 's1', 'b'))]);
  t.equal(results.filter((result) => result.created).length, 1, 'exactly one created');
  const identity = ({ execution_id, number, code }: { execution_id: string; number: number; code?: string }) => ({ execution_id, number, code });
  t.same(identity(results[0]!.record), identity(results[1]!.record), 'both got the same record');
  t.equal((await fake.take('run')).executionId, 't/same');
  fake.done('t/same');
  const next = await engine.submit(input('t/next', 's1'));
  t.equal(next.record.number, 2, 'the loser\'s number was given back');
  t.equal(fake.calls.filter((call) => call.op === 'run' && call.executionId === 't/same').length, 1, 'it ran once');
  t.equal((await store.listExecutions('s1', { limit: 10 })).length, 2);
});

t.test('an execute writes its create and its end; not its start, nor the session\'s counter', async (t) => {
  const { engine, fake, store } = await rig(t);
  const { created, record } = await engine.submit(input('t/one', 's1'));
  t.ok(created);
  t.equal((await store.getExecution('t/one'))?.number, record.number, 'the create made the record durable');
  const events = follow(engine, 't/one');
  await fake.take('run');
  fake.value('t/one', { preview: '1', type: 'number' });
  fake.done('t/one');
  t.same((await events.all).map((event) => event.type), ['value', 'done']);
  t.equal((await store.getExecution('t/one'))?.status, 'ok', 'the end is stored');
  t.equal(store.location.sessions.get('s1')?.execution_count, 0, 'the counter is not written per execute (recover recounts it)');
});

t.test('a store that reserves creates: a short run is one store write, its reply once it is durable', async (t) => {
  const { engine, fake, store } = await rig(t, { reserve: true });
  const before = store.commits;
  const submitted = engine.submit(input('t/short', 's1'));
  const events = follow(engine, 't/short');
  await fake.take('run');
  t.equal(await store.getExecution('t/short'), undefined, 'running before its record is written');
  fake.value('t/short', { preview: '1', type: 'number' });
  fake.done('t/short');
  const { created } = await submitted;
  t.ok(created);
  t.equal((await store.getExecution('t/short'))?.status, 'ok', 'durable, ended, when the reply is');
  t.same((await events.all).map((event) => event.type), ['value', 'done']);
  t.equal(store.commits - before, 1, 'create, events and end in one commit');
  // The same id again, while and after: one record, one run.
  const again = await engine.submit(input('t/short', 's2'));
  t.equal(again.created, false, 'an id that exists is not created again');
  const both = await Promise.all([engine.submit(input('t/twice', 's2')), engine.submit(input('t/twice', 's2'))]);
  t.equal(both.filter((result) => result.created).length, 1, 'of two concurrent submits, one creates');
  await fake.take('run');
  fake.done('t/twice');
  t.equal(fake.calls.filter((call) => call.op === 'run' && call.executionId === 't/twice').length, 1, 'it ran once');
});

t.test('an id the service made up (fresh): reserved without a lookup, and still one commit, the reply once it is durable', async (t) => {
  const { engine, fake, store } = await rig(t, { reserve: true });
  const before = store.commits;
  const submitted = engine.submit({ ...input('t/fresh', 's1'), fresh: true });
  const events = follow(engine, 't/fresh');
  await fake.take('run');
  t.equal(await store.getExecution('t/fresh'), undefined, 'running before its record is written');
  fake.value('t/fresh', { preview: '1', type: 'number' });
  fake.done('t/fresh');
  t.ok((await submitted).created);
  t.equal((await store.getExecution('t/fresh'))?.status, 'ok', 'durable, ended, when the reply is');
  t.same((await events.all).map((event) => event.type), ['value', 'done']);
  t.equal(store.commits - before, 1, 'create, events and end in one commit');
});

t.test('an execution the store refuses for good is stopped alone; its subscribers end at what was stored, told it was refused', async (t) => {
  const { engine, fake, store, errors } = await rig(t);
  // The execute's own subscription, held until its reply went out (as a socket's is).
  const own = record();
  await engine.submit(input('t/bad', 's1'), own.sink);
  engine.release(own.sink, 't/bad');
  await engine.submit(input('t/good', 's2'));
  const bad = follow(engine, 't/bad');
  const good = follow(engine, 't/good');
  await fake.take('run');
  await fake.take('run');
  fake.console('t/bad', 'stored');
  fake.console('t/good', 'one');
  await bad.first;
  store.fault = (item) => (item.id === 't/bad' && item.kind === 'events' ? 'STORE_FENCED' : null);
  fake.console('t/bad', 'refused');
  const abort = await fake.take('abort');
  t.equal(abort.executionId, 't/bad', 'its run is stopped');
  fake.console('t/good', 'two');
  fake.done('t/bad', 'cancelled');
  fake.done('t/good');
  const badEvents = await bad.all;
  t.ok(badEvents.every((event) => event.type === 'console' && event.payload.text === 'stored'), 'its subscriber got what was stored, and ended');
  t.equal(badEvents.length, 1, `one event: ${JSON.stringify(badEvents)}`);
  t.equal(await bad.reason, 'refused', 'told its log ends there without a `done`, not complete');
  t.same((await own.all).map((event) => event.payload.text), ['stored'], 'the execute\'s own subscription: what was stored…');
  t.equal(await own.reason, 'refused', '…then told the same');
  const late = follow(engine, 't/bad');
  t.same((await late.all).map((event) => event.payload.text), ['stored'], 'a subscriber that comes later reads what was stored…');
  t.equal(await late.reason, 'refused', '…and is told the same: its log will never get a `done`');
  const goodEvents = await good.all;
  t.same(goodEvents.map((event) => event.type), ['console', 'console', 'done'], 'the other execution was not held back');
  t.equal(await good.reason, 'complete');
  t.ok(errors.some((context) => context.includes('t/bad')), 'the drop was reported');
  t.equal(engine.stats().store.waiting, 0, 'nothing waits for a retry');
  // Its session is free again.
  await engine.submit(input('t/after', 's1'));
  t.equal((await fake.take('run')).executionId, 't/after', 'the session runs its next execution');
});

t.test('a `done` that was stored, with the record beside it refused for good: its subscribers end complete, with no error after the `done`', async (t) => {
  const { engine, fake, store } = await rig(t);
  await engine.submit(input('t/ended', 's1'));
  const live = follow(engine, 't/ended');
  await fake.take('run');
  fake.console('t/ended', 'one');
  await live.first;
  // Its final record is refused; the chunk with its `done`, in the same commit, lands.
  store.fault = (item) => (item.id === 't/ended' && item.kind === 'execution' ? 'STORE_BAD_ARGUMENT' : null);
  fake.done('t/ended');
  t.same((await live.all).map((event) => event.type), ['console', 'done']);
  t.equal(await live.reason, 'complete', 'its log ends with its `done`: not told it was refused');
  const late = follow(engine, 't/ended');
  t.same((await late.all).map((event) => event.type), ['console', 'done'], 'a later subscriber reads the same log…');
  t.equal(await late.reason, 'complete', '…and ends the same way');
});

t.test('an execution whose first events the store refuses: its own subscription, still held for the reply, is told once released', async (t) => {
  const { engine, fake, store } = await rig(t);
  store.fault = (item) => (item.id === 't/unborn' ? 'STORE_BAD_ARGUMENT' : null);
  const own = record();
  await engine.submit(input('t/unborn', 's1'), own.sink);
  await fake.take('run');
  fake.console('t/unborn', 'never stored');
  t.equal((await fake.take('abort')).executionId, 't/unborn', 'its run is stopped');
  fake.done('t/unborn', 'cancelled');
  t.equal(engine.execution('t/unborn'), undefined, 'it left the engine, its subscription still held');
  engine.release(own.sink, 't/unborn');
  t.equal(await own.reason, 'refused');
  t.same(await own.all, [], 'nothing was stored, nothing is sent');
});

t.test('writes that fail for a while: the events arrive late, complete and in order', async (t) => {
  const { engine, fake, store } = await rig(t);
  await engine.submit(input('t/slow', 's1'));
  const events = follow(engine, 't/slow');
  await fake.take('run');
  let failures = 2;
  store.fault = (item) => (item.id === 't/slow' && failures-- > 0 ? 'STORE_UNAVAILABLE' : null);
  for (let i = 0; i < 5; i++) fake.console('t/slow', `line ${i}`);
  fake.done('t/slow');
  const received = await events.all;
  t.same(received.map((event) => event.seq), [1, 2, 3, 4, 5, 6], 'every seq once');
  t.equal(received.at(-1)?.type, 'done');
  t.ok(engine.stats().store.failures >= 2, 'the failures were counted');
  t.equal(engine.stats().store.stalled, false);
});

t.test('after a crash that left the session record behind its executions, numbering resumes after the newest stored one', async (t) => {
  const dir = tempDir('engine-store');
  const store = new MemoryEventStore();
  await store.open();
  const config: Config = { ...DEFAULTS, dataDir: dir, workspaceDir: dir };
  let fake!: FakeSandbox;
  const engine = new Engine(config, store, Workspace.of(config), (listener) => (fake = new FakeSandbox(listener)), { onError: () => undefined });
  t.teardown(async () => {
    await engine.shutdown(0);
    await store.close();
    removeDir(dir);
  });
  // What a process killed right after a create leaves: the record numbered, the session's counter not yet written.
  const session: SessionRecord = { session_id: 's1', tenant: 't', name: '', status: 'ready', created_at: Date.now(), execution_count: 0 };
  await store.commit({ sessions: [session], executions: [], events: [] });
  await store.createExecution({ execution_id: 't/before', session_id: 's1', number: 1, kind: 'repl', status: 'queued', created_at: Date.now(), last_seq: 0, timeout_ms: 1000, code: '1' });
  t.same(await engine.recover(), { crashed: 1, sessions: 1 });
  const next = await engine.submit(input('t/after', 's1'));
  t.equal(next.record.number, 2, 'number 1 is not given twice');
  // The session is rebuilt before it runs (nothing to replay: its one execution crashed).
  t.same((await fake.take('restore')).inputs, []);
  fake.restored('s1', { ok: true, replayed: 0 });
  t.equal((await fake.take('run')).filename, 'REPL2');
});

t.test('a session record the store refuses as fenced (another node writes it now): not retried, and the change is refused', async (t) => {
  const { engine, store, errors } = await rig(t);
  store.fault = (item) => (item.kind === 'session' && item.id === 's1' ? 'STORE_FENCED' : null);
  await t.rejects(engine.renameSession('s1', 'renamed'), { code: 'STORE_FENCED' }, 'the rename did not happen: the caller hears so');
  t.same(errors, ['commit of session s1 (dropped)'], 'reported once, as dropped');
  t.equal(engine.stats().store.waiting, 0, 'not waiting for a retry that cannot succeed');
  t.equal((await engine.renameSession('s2', 'fine'))?.name, 'fine', "another session's record is written");
});
