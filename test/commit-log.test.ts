/**
 * The commit log (src/events/commit-log.ts) against a store that fails items on demand
 * (test/helpers/memory-store.ts): in process, no server. One execution's failing writes must not
 * hold the others back; what fails is retried exactly as it was, what it appended meanwhile follows
 * in order; a record never counts events that are not stored; a store that keeps failing shows.
 */
import t, { type Test } from 'tap';
import type { ExecutionRecord, SessionRecord } from '../protocol/types.js';
import { CommitLog, type CommitTarget, type CommittedChunk } from '../src/events/commit-log.js';
import type { CommitBatch, StoreError, StoreErrorCode } from '../src/store/event-store.js';
import { MemoryEventStore, type Fault } from './helpers/memory-store.js';

const utf8 = new TextEncoder();
const text = new TextDecoder();
const frame = (id: string, seq: number) => utf8.encode(`${id}#${seq}`);

function target(id: string): CommitTarget & { assigned: number } {
  const record: ExecutionRecord = { execution_id: id, session_id: 's', number: 1, kind: 'repl', status: 'running', created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' };
  return { record, committedSeq: 0, assigned: 0 };
}

/** Ends `execution` (ok) and hands its terminal record to the log. */
function end(log: CommitLog, execution: ReturnType<typeof target>): void {
  execution.record.status = 'ok';
  execution.record.ended_at = 5;
  log.saveExecution(execution);
}

/** Appends `count` more events to `execution`. */
function emit(log: CommitLog, execution: ReturnType<typeof target>, count: number): void {
  for (let i = 0; i < count; i++) log.appendEvent(execution, ++execution.assigned, frame(execution.record.execution_id, execution.assigned));
}

interface Harness {
  store: MemoryEventStore;
  log: CommitLog;
  /** Every delivered event, per execution, as `id#seq`. */
  delivered: Map<string, string[]>;
  retries: Array<{ code: StoreErrorCode; attempt: number }>;
  dropped: Array<{ id: string; code: StoreErrorCode }>;
  /** Writes that ended (onWritten). */
  written: number;
  /** The first seq of every chunk the store was asked to write, per execution. */
  offered: Map<string, number[]>;
  /** Every batch the store was asked to write (recordBatches). */
  batches: string[];
  /** Resolves once `ready()` holds, re-checked whenever the log reports anything. */
  until(ready: () => boolean): Promise<void>;
  /** Sets which items fail; null lets everything land. */
  failWith(fault: Fault | null): void;
}

async function harness(t: Test): Promise<Harness> {
  const store = new MemoryEventStore();
  await store.open();
  t.teardown(() => store.close());
  const delivered = new Map<string, string[]>();
  const retries: Harness['retries'] = [];
  const dropped: Harness['dropped'] = [];
  const offered = new Map<string, number[]>();
  let checks: Array<() => void> = [];
  const notify = () => { for (const check of checks) check(); };
  let fault: Fault | null = null;
  store.fault = (item) => {
    assertRecordsCountStoredEvents(t, store);
    if (item.kind === 'events') offered.set(item.id, [...(offered.get(item.id) ?? []), item.firstSeq!]);
    return fault?.(item) ?? null;
  };
  const log = new CommitLog(store, {
    onCommitted(chunks: CommittedChunk[]) {
      for (const chunk of chunks) {
        const list = delivered.get(chunk.executionId) ?? [];
        list.push(...chunk.frames.map((f) => text.decode(f)));
        delivered.set(chunk.executionId, list);
      }
      notify();
    },
    onRetry(error: StoreError, attempt: number) { retries.push({ code: error.code, attempt }); notify(); },
    onDropped(id: string, error: StoreError) { dropped.push({ id, code: error.code }); notify(); },
    onWritten() { harnessed.written++; notify(); },
    // Ids are `<tenant>/<id>`, as the engine's are (an id without one is a group of its own).
    groupOf: (id: string) => id.split('/')[0]!,
  });
  const harnessed: Harness = {
    store, log, delivered, retries, dropped, offered, written: 0, batches: recordBatches(store),
    until: (ready) => new Promise<void>((resolve) => {
      const check = () => { if (ready()) { checks = checks.filter((c) => c !== check); resolve(); } };
      checks.push(check);
      check();
    }),
    failWith(next) { fault = next; },
  };
  return harnessed;
}

/** The contract's promise, checked before every item the store writes: no record counts events it does not hold. */
function assertRecordsCountStoredEvents(t: Test, store: MemoryEventStore): void {
  for (const [id, record] of store.location.executions) {
    const log = store.location.logs.get(id) ?? [];
    const last = log.length === 0 ? 0 : log[log.length - 1]!.seq;
    if (record.last_seq > last) t.fail(`${id}: the record says last_seq ${record.last_seq}, the log ends at ${last}`);
    if (record.ended_at !== undefined && record.last_seq !== last) t.fail(`${id}: a terminal record with last_seq ${record.last_seq}, the log ends at ${last}`);
  }
}

const seqs = (id: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${id}#${from + i}`);

t.test('a commit writes every execution\'s chunk and record, then delivers, in one store write', async (t) => {
  const h = await harness(t);
  const a = target('a');
  const b = target('b');
  emit(h.log, a, 3);
  emit(h.log, b, 2);
  h.log.saveExecution(a);
  h.log.saveSession({ session_id: 's', tenant: 't', name: '', status: 'ready', created_at: 1, execution_count: 1 } as SessionRecord);
  await h.log.flushed();
  t.equal(h.store.commits, 1, 'one store write');
  t.same(h.delivered.get('a'), seqs('a', 1, 3));
  t.same(h.delivered.get('b'), seqs('b', 1, 2));
  t.equal(a.committedSeq, 3, 'committedSeq advanced');
  t.equal((await h.store.getExecution('a'))?.last_seq, 3, 'the record counts its events');
  t.equal(h.log.backlogBytes, 0, 'nothing waiting');
});

for (const code of ['STORE_BAD_ARGUMENT', 'STORE_FENCED'] as const) {
  t.test(`${code}: that execution is dropped alone, the rest lands`, async (t) => {
    const h = await harness(t);
    const bad = target('bad');
    const good = target('good');
    h.failWith((item) => (item.id === 'bad' && item.kind === 'events' ? code : null));
    emit(h.log, bad, 2);
    emit(h.log, good, 2);
    h.log.saveExecution(bad);
    await h.log.flushed();
    t.same(h.delivered.get('good'), seqs('good', 1, 2), 'the good execution was delivered');
    t.same(h.dropped, [{ id: 'bad', code }], 'the bad one reported dropped');
    t.equal(h.delivered.get('bad'), undefined, 'nothing of it delivered');
    t.equal(await h.store.getExecution('bad'), undefined, 'nor its record written');
    emit(h.log, bad, 2);
    emit(h.log, good, 1);
    await h.log.flushed();
    t.same(h.offered.get('bad'), [1], 'what it appends afterwards is never offered to the store');
    t.same(h.delivered.get('good'), seqs('good', 1, 3), 'the good one goes on');
    t.equal(h.log.waiting, 0, 'nothing to retry');
    t.equal(h.log.failures, 1, 'one failure counted');
  });
}

t.test('a transient failure: retried exactly, newer events wait behind it, the others go on', async (t) => {
  const h = await harness(t);
  const slow = target('slow');
  const fast = target('fast');
  let failuresLeft = 2;
  h.failWith((item) => (item.id === 'slow' && item.kind === 'events' && failuresLeft-- > 0 ? 'STORE_UNAVAILABLE' : null));
  emit(h.log, slow, 3);
  emit(h.log, fast, 3);
  h.log.saveExecution(slow);
  const flushed = h.log.flushed();
  await h.until(() => h.retries.length === 1);
  t.same(h.delivered.get('fast'), seqs('fast', 1, 3), 'the other execution was delivered at once');
  t.equal(h.log.waiting, 1, 'one item waits for its retry');
  t.ok(h.log.backlogBytes > 0, 'its frames still count as backlog');
  // More output of both while the slow one waits: the fast one's goes out, the slow one's waits.
  emit(h.log, slow, 2);
  emit(h.log, fast, 2);
  end(h.log, slow);
  await h.until(() => (h.delivered.get('fast')?.length ?? 0) === 5);
  t.equal(h.delivered.get('slow'), undefined, 'nothing of the slow one yet');
  await flushed;
  await h.log.flushed();
  t.same(h.retries, [{ code: 'STORE_UNAVAILABLE', attempt: 1 }, { code: 'STORE_UNAVAILABLE', attempt: 2 }], 'two retries, counted');
  t.same(h.offered.get('slow'), [1, 1, 1, 4], 'the failed chunk resent exactly as it was, then the newer events');
  t.same(h.delivered.get('slow'), seqs('slow', 1, 5), 'every event once, in order');
  const stored = await h.store.getExecution('slow');
  t.equal(stored?.status, 'ok', 'the final record landed');
  t.equal(stored?.last_seq, 5, 'counting every event');
  t.equal(h.log.waiting, 0);
  t.equal(h.log.backlogBytes, 0);
});

t.test('a record that fails alone is retried alone; its events are delivered', async (t) => {
  const h = await harness(t);
  const x = target('x');
  let failuresLeft = 1;
  h.failWith((item) => (item.id === 'x' && item.kind === 'execution' && failuresLeft-- > 0 ? 'STORE_UNAVAILABLE' : null));
  emit(h.log, x, 4);
  h.log.saveExecution(x);
  const flushed = h.log.flushed();
  await h.until(() => h.retries.length === 1);
  t.same(h.delivered.get('x'), seqs('x', 1, 4), 'the events landed and were delivered');
  await flushed;
  t.same(h.offered.get('x'), [1], 'the events were not resent');
  t.equal((await h.store.getExecution('x'))?.last_seq, 4, 'the record landed on its retry');
});

t.test('an execution\'s first commit is small and starts at once; its later commits grow', async (t) => {
  const h = await harness(t);
  const big = target('big');
  emit(h.log, big, 1000);
  end(h.log, big);
  await null;
  t.equal(h.store.commits, 1, 'the first write began before the next turn of the event loop');
  await h.log.flushed();
  t.same(h.offered.get('big'), [1, 65, 129, 257, 513], 'chunks of 64, 64, 128, 256 and the rest');
  t.same(h.delivered.get('big'), seqs('big', 1, 1000), 'every event once, in order');
  t.equal((await h.store.getExecution('big'))?.last_seq, 1000, 'the final record went with the last chunk');
  t.equal(h.log.backlogBytes, 0);
});

t.test('a flooding run\'s first lines hold output reading back until their commit is written; a short run\'s do not', async (t) => {
  const h = await harness(t);
  const short = target('short');
  emit(h.log, short, 3);
  t.notOk(h.log.firstLinesWaiting(), 'a few first events: output is read on');
  const big = target('big');
  emit(h.log, big, 1000);
  t.ok(h.log.firstLinesWaiting(), 'more first events than a first commit takes: reading waits');
  await null;
  t.equal(h.store.commits, 1, 'the first commit is under way');
  t.ok(h.log.firstLinesWaiting(), 'reading still waits for it');
  let waitingAtDelivery: boolean | undefined;
  await h.until(() => {
    if (!h.delivered.has('big')) return false;
    waitingAtDelivery ??= h.log.firstLinesWaiting();
    return true;
  });
  t.same(h.delivered.get('big'), seqs('big', 1, 64), 'its first 64 lines are delivered first');
  t.equal(waitingAtDelivery, false, 'reading goes on once they are durable, with 936 still to write');
  await h.log.flushed();
  t.same(h.delivered.get('big'), seqs('big', 1, 1000), 'every event once, in order');
});

t.test('a flood\'s first lines hold back its own tenant\'s output reading only', async (t) => {
  const h = await harness(t);
  emit(h.log, target('b/short'), 3);
  emit(h.log, target('a/big'), 1000);
  t.ok(h.log.firstLinesWaiting('a'), 'the flooding tenant\'s reading waits');
  t.notOk(h.log.firstLinesWaiting('b'), 'another tenant\'s goes on');
  t.ok(h.log.firstLinesWaiting(), 'a reader of every tenant\'s output (in-process workers) waits');
  await null;
  t.equal(h.store.commits, 1, 'the first commit is under way');
  t.ok(h.log.firstLinesWaiting('a'), 'while it is under way');
  t.notOk(h.log.firstLinesWaiting('b'));
  let waitingAtDelivery: boolean | undefined;
  await h.until(() => {
    if (!h.delivered.has('a/big')) return false;
    waitingAtDelivery ??= h.log.firstLinesWaiting();
    return true;
  });
  t.equal(waitingAtDelivery, false, 'nobody waits once its first lines are durable');
  emit(h.log, target('b/big'), 1000);
  t.ok(h.log.firstLinesWaiting('b'), 'a flood of the other tenant holds back its own reading');
  t.notOk(h.log.firstLinesWaiting('a'), 'a run past its first commit holds nothing back');
  await h.log.flushed();
  t.notOk(h.log.firstLinesWaiting(), 'nothing waits once everything is written');
  t.same(h.delivered.get('a/big'), seqs('a/big', 1, 1000), 'every event once, in order');
  t.same(h.delivered.get('b/big'), seqs('b/big', 1, 1000));
});

t.test('a flooding run\'s first commit that fails holds nothing back while it waits for its retry', async (t) => {
  const h = await harness(t);
  let failuresLeft = 1;
  h.failWith((item) => (item.id === 'big' && item.kind === 'events' && failuresLeft-- > 0 ? 'STORE_UNAVAILABLE' : null));
  const big = target('big');
  emit(h.log, big, 1000);
  await h.until(() => h.retries.length === 1);
  t.notOk(h.log.firstLinesWaiting(), 'output is read on during the retry\'s backoff');
  await h.until(() => (h.delivered.get('big')?.length ?? 0) === 1000);
  t.same(h.delivered.get('big'), seqs('big', 1, 1000), 'every event once, in order, after the retry');
});

t.test('a flooding run\'s first commit discarded and failed while under way (its session moved): output is read again', async (t) => {
  const h = await harness(t);
  h.failWith((item) => {
    if (item.id !== 'big' || item.kind !== 'events') return null;
    h.log.discard('big'); // another node took the session over while its first commit was being written
    return 'STORE_FENCED';
  });
  emit(h.log, target('big'), 1000);
  t.ok(h.log.firstLinesWaiting(), 'its first lines hold reading back');
  await h.until(() => h.written === 1);
  t.notOk(h.log.firstLinesWaiting(), 'no longer once that write ended');
  t.same(h.dropped, [], 'neither retried nor reported as dropped');
  t.equal(h.delivered.get('big'), undefined, 'nothing of it delivered');
});

t.test('a store that keeps failing: stalled, counted, waiting; it recovers when the store does', async (t) => {
  const h = await harness(t);
  const x = target('x');
  const y = target('y');
  h.failWith(() => 'STORE_UNAVAILABLE');
  emit(h.log, x, 2);
  emit(h.log, y, 1);
  h.log.saveSession({ session_id: 's', tenant: 't', name: '', status: 'ready', created_at: 1, execution_count: 0 } as SessionRecord);
  let settled = false;
  const flushed = h.log.flushed().then(() => (settled = true));
  await h.until(() => h.log.stalled);
  t.equal(h.log.waiting, 3, 'two executions and a session wait');
  t.ok(h.log.failures >= 9, 'every failed attempt counted');
  t.equal(settled, false, 'flushed() waits for them');
  t.equal(h.delivered.size, 0, 'nothing delivered');
  h.failWith(null);
  await flushed;
  t.equal(h.log.stalled, false, 'no longer stalled');
  t.equal(h.log.waiting, 0);
  t.same(h.delivered.get('x'), seqs('x', 1, 2));
  t.same(h.delivered.get('y'), seqs('y', 1, 1));
  t.equal((await h.store.listSessions({})).length, 1, 'the session landed');
});

/** Every batch the store is asked to write, as `creates / executions / events` ids. */
function recordBatches(store: MemoryEventStore): string[] {
  const seen: string[] = [];
  const commit = store.commit.bind(store);
  store.commit = (batch: CommitBatch) => {
    const list = (records: Array<{ execution_id: string }>) => records.map((record) => record.execution_id).join(',');
    seen.push(`creates [${list(batch.creates ?? [])}] executions [${list(batch.executions)}] events [${batch.events.map((chunk) => chunk.executionId).join(',')}]`);
    return commit(batch);
  };
  return seen;
}

t.test('a create goes out with its run\'s first events and its end: one store write', async (t) => {
  const h = await harness(t);
  const a = target('a');
  const created = h.log.create(a);
  emit(h.log, a, 2);
  end(h.log, a);
  await created;
  t.same(h.batches, ['creates [a] executions [] events [a]'], 'create, events and terminal record in one batch');
  t.same(h.delivered.get('a'), seqs('a', 1, 2), 'delivered');
  t.same(await h.store.getExecution('a'), { ...a.record, last_seq: 2 }, 'the terminal record as created');
});

t.test('a create whose run says nothing goes out alone, after its linger', async (t) => {
  const h = await harness(t);
  const a = target('a');
  await h.log.create(a);
  t.same(h.batches, ['creates [a] executions [] events []'], 'written alone');
  t.equal((await h.store.getExecution('a'))?.status, 'running', 'durable when the promise resolves');
  emit(h.log, a, 1);
  end(h.log, a);
  await h.log.flushed();
  t.same(h.batches.at(-1), 'creates [] executions [a] events [a]', 'its end is an update');
});

t.test('first events that come while their create is written alone go in a write begun the moment it ends', async (t) => {
  const h = await harness(t);
  const commit = h.store.commit.bind(h.store);
  let goneAlone!: () => void;
  const alone = new Promise<void>((resolve) => (goneAlone = resolve));
  h.store.commit = (batch: CommitBatch) => {
    const result = commit(batch);
    goneAlone();
    return result;
  };
  const a = target('a');
  const created = h.log.create(a);
  await alone;
  emit(h.log, a, 1);
  // The memory store ends a write in the next turn's immediates; this one runs just after them: a
  // write the log began when the create's ended has been asked for by then, one scheduled for the
  // next turn (behind that turn's I/O) has not.
  const commitsByThen = new Promise<number>((resolve) => setImmediate(() => resolve(h.store.commits)));
  await created;
  t.equal(await commitsByThen, 2, 'the first event\'s write began as the create\'s ended');
  await h.log.flushed();
  t.same(h.batches, ['creates [a] executions [] events []', 'creates [] executions [] events [a]'], 'the create alone, then the event');
  t.same(h.delivered.get('a'), seqs('a', 1, 1));
});

t.test('flushed() does not wait out a create\'s linger', async (t) => {
  const h = await harness(t);
  const a = target('a');
  let durable = false;
  const created = h.log.create(a).then(() => (durable = true));
  await h.log.flushed();
  t.ok(durable, 'the create was written by the flush');
  await created;
});

t.test('a create discarded while it lingers (another node owns the execution now): settled, nothing written', async (t) => {
  const h = await harness(t);
  const a = target('a');
  const created = h.log.create(a);
  emit(h.log, a, 2);
  h.log.discard('a');
  await created;
  await h.log.flushed();
  t.same(h.batches, [], 'no store write');
  t.equal(await h.store.getExecution('a'), undefined, 'no record');
  t.equal(h.log.backlogBytes, 0, 'its frames no longer count');
  t.same(h.dropped, [], 'nothing reported as dropped');
  emit(h.log, a, 1);
  await h.log.flushed();
  t.same(h.batches, [], 'what it appends afterwards is not written either');
});

for (const second of ['lands', 'fails'] as const) {
  t.test(`a retry discarded while it is being written (${second}): its bytes leave the backlog once, it is not retried`, async (t) => {
    const h = await harness(t);
    const x = target('x');
    let attempts = 0;
    h.failWith((item) => {
      if (item.id !== 'x' || item.kind !== 'events') return null;
      // Another node took the execution over while its retry is under way.
      if (++attempts === 2) h.log.discard('x');
      return attempts === 1 || second === 'fails' ? 'STORE_UNAVAILABLE' : null;
    });
    emit(h.log, x, 3);
    t.ok(h.log.backlogBytes > 0, 'its frames count as backlog');
    await h.until(() => h.retries.length === 1);
    await h.log.flushed();
    t.equal(attempts, 2, 'its retry was written once');
    t.equal(h.log.backlogBytes, 0, 'nothing counts as backlog any more, and no less than nothing');
    t.equal(h.log.waiting, 0, 'nothing waits for a retry');
    t.same(h.offered.get('x'), [1, 1], 'no write after the discard');
    t.same(h.dropped, [], 'nothing reported as dropped');
    emit(h.log, x, 1);
    t.equal(h.log.backlogBytes, 0, 'what it appends afterwards is not counted either');
  });
}

t.test('a create that fails: none of its events is delivered before it lands', async (t) => {
  const h = await harness(t);
  const a = target('a');
  let failuresLeft = 1;
  // The store (not atomic) keeps the chunk and fails the create.
  h.failWith((item) => (item.id === 'a' && item.kind === 'execution' && failuresLeft-- > 0 ? 'STORE_UNAVAILABLE' : null));
  let storedAtDelivery: boolean | undefined;
  const delivered = h.until(() => {
    if (!h.delivered.has('a')) return false;
    storedAtDelivery ??= h.store.location.executions.has('a');
    return true;
  });
  const created = h.log.create(a);
  emit(h.log, a, 2);
  await created;
  await delivered;
  t.same(h.retries, [{ code: 'STORE_UNAVAILABLE', attempt: 1 }], 'retried once');
  t.equal(storedAtDelivery, true, 'the record was stored when its events were first delivered');
  t.same(h.delivered.get('a'), seqs('a', 1, 2), 'each event once');
  t.same(h.offered.get('a'), [1, 1], 'the chunk sent again with the create');
});

t.test('a create whose run printed past the first commit\'s cap goes with the first frames, not yet ended', async (t) => {
  const h = await harness(t);
  const a = target('a');
  a.record.started_at = 1;
  const created = h.log.create(a);
  emit(h.log, a, 100);
  end(h.log, a);
  await created;
  const first = structuredClone(h.store.location.executions.get('a'));
  await h.log.flushed();
  t.same(h.batches, ['creates [a] executions [] events [a]', 'creates [] executions [a] events [a]'], 'the create with the first frames, the end with the rest');
  t.match(first, { status: 'running', last_seq: 64 }, 'the create counts the first frames and has not ended');
  t.equal(first?.ended_at, undefined);
  t.match(await h.store.getExecution('a'), { status: 'ok', ended_at: 5, last_seq: 100 }, 'then the end');
  t.same(h.delivered.get('a'), seqs('a', 1, 100), 'every event once, in order');
});
