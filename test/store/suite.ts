/**
 * The EventStore contract (src/store/event-store.ts), as one suite every backend runs, the way
 * abstract-level's test/index.js runs for classic-level and memory-level alike. A backend's own
 * test file only supplies a factory; whatever is backend-specific (LevelDB options, files) is tested
 * beside it, not here.
 *
 * The factory returns a new store over a new, empty location and does NOT open it: the suite opens
 * it, so that it can also check what happens before `open()`.
 */
import type { Test } from 'tap';
import type { ExecutionRecord, ExecutionStatus, SessionRecord } from '../../protocol/types.js';
import type { CommitBatch, EventStore, StoredEvent } from '../../src/store/event-store.js';

export type StoreFactory = () => Promise<EventStore>;

/** More than the LevelDB backend's chunk size (256 frames per entry), so chunks get split. */
const BIG = 600;
/** A plausible epoch-ms base, so that ended_at values have the width real ones have. */
const T0 = 1_700_000_000_000;

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** The frame of `executionId`'s event `seq`: its bytes say whose and which it is. */
function frame(executionId: string, seq: number): Uint8Array {
  return utf8.encode(`${executionId}#${seq}`);
}

function frames(executionId: string, firstSeq: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => frame(executionId, firstSeq + index));
}

function chunk(executionId: string, firstSeq: number, count: number): CommitBatch['events'][number] {
  return { executionId, firstSeq, frames: frames(executionId, firstSeq, count) };
}

/** Events as `id#seq` strings, checking on the way that each frame belongs to its seq. */
function decoded(events: StoredEvent[]): string[] {
  return events.map((event) => text.decode(event.frame));
}

function expected(executionId: string, fromSeq: number, toSeq: number): string[] {
  const out: string[] = [];
  for (let seq = fromSeq; seq <= toSeq; seq++) out.push(`${executionId}#${seq}`);
  return out;
}

function session(sessionId: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    session_id: sessionId,
    tenant: 'default',
    name: `name of ${sessionId}`,
    status: 'ready',
    created_at: T0,
    execution_count: 0,
    ...extra,
  } as SessionRecord;
}

function execution(executionId: string, sessionId: string, number: number, status: ExecutionStatus = 'queued', extra: Partial<ExecutionRecord> = {}): ExecutionRecord {
  const record: ExecutionRecord = {
    execution_id: executionId,
    session_id: sessionId,
    number,
    kind: 'repl',
    status,
    created_at: T0 + number,
    last_seq: 0,
    timeout_ms: 30_000,
    code: `${number} + 1`,
    ...extra,
  };
  if (status !== 'queued' && record.started_at === undefined) record.started_at = T0 + number;
  return record;
}

/** A terminal record, ended at `endedAt`. */
function ended(executionId: string, sessionId: string, number: number, endedAt: number, status: ExecutionStatus = 'ok'): ExecutionRecord {
  return execution(executionId, sessionId, number, status, { ended_at: endedAt });
}

function batch(parts: Partial<CommitBatch>): CommitBatch {
  return { sessions: [], executions: [], events: [], ...parts };
}

const ids = (records: Array<{ execution_id: string }>) => records.map((record) => record.execution_id);
const sorted = (values: string[]) => [...values].sort();

export function runStoreSuite(t: Test, name: string, factory: StoreFactory): void {
  /** A fresh store, opened, and closed when the test ends. */
  async function openStore(t: Test): Promise<EventStore> {
    const store = await factory();
    t.teardown(() => store.close());
    await store.open();
    return store;
  }

  t.test(name, async (t) => {
    t.test('commit and readEvents: one chunk', async (t) => {
      const store = await openStore(t);
      await store.commit(batch({ events: [chunk('x1', 1, 10)] }));
      t.same(decoded(await store.readEvents('x1', 0, 100)), expected('x1', 1, 10), 'all events, in order');
      t.same((await store.readEvents('x1', 0, 100)).map((event) => event.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'seqs match frames');
      t.same(decoded(await store.readEvents('x1', 4, 100)), expected('x1', 5, 10), 'afterSeq in the middle of a chunk');
      t.same(decoded(await store.readEvents('x1', 2, 3)), expected('x1', 3, 5), 'limit');
      t.same(decoded(await store.readEvents('x1', 9, 1)), ['x1#10'], 'the last event');
      t.same(await store.readEvents('x1', 10, 100), [], 'afterSeq at the end: nothing');
      t.same(await store.readEvents('x1', 50, 100), [], 'afterSeq past the end: nothing');
      t.same(await store.readEvents('nobody', 0, 100), [], 'an unknown execution has no events');
    });

    t.test('commit and readEvents: a chunk larger than 256 frames', async (t) => {
      const store = await openStore(t);
      await store.commit(batch({ events: [chunk('big', 1, BIG)] }));
      const all = await store.readEvents('big', 0, 10_000);
      t.equal(all.length, BIG);
      t.same(decoded(all), expected('big', 1, BIG), 'every frame, in order');
      t.ok(all.every((event, index) => event.seq === index + 1), 'seqs are contiguous from 1');
      for (const afterSeq of [1, 254, 255, 256, 257, 511, 512, 513, BIG - 1]) {
        const to = Math.min(BIG, afterSeq + 300);
        t.same(decoded(await store.readEvents('big', afterSeq, 300)), expected('big', afterSeq + 1, to), `300 after ${afterSeq}`);
      }
      t.same(decoded(await store.readEvents('big', 250, 10)), expected('big', 251, 260), 'a page across a chunk boundary');
      t.same(await pageThrough(store, 'big', 37), expected('big', 1, BIG), 'paging with limit 37 and the last seq as cursor');
    });

    t.test('readEvents: order across several commits', async (t) => {
      const store = await openStore(t);
      // Chunks of one execution spread over commits, interleaved with another execution's.
      await store.commit(batch({ events: [chunk('run', 1, 3), chunk('other', 1, 2)] }));
      await store.commit(batch({ events: [chunk('run', 4, 1)] }));
      await store.commit(batch({ events: [chunk('other', 3, 5), chunk('run', 5, 296)] }));
      await store.commit(batch({ events: [chunk('run', 301, 2)] }));
      await store.commit(batch({ events: [chunk('run', 303, BIG)] }));
      const last = 302 + BIG;
      t.same(decoded(await store.readEvents('run', 0, 10_000)), expected('run', 1, last), 'one contiguous log');
      t.same(decoded(await store.readEvents('run', 2, 3)), expected('run', 3, 5), 'a page across three commits');
      t.same(decoded(await store.readEvents('run', 299, 5)), expected('run', 300, 304), 'a page across commits and a split chunk');
      for (const limit of [1, 2, 7, 256, 257, 1000]) {
        t.same(await pageThrough(store, 'run', limit), expected('run', 1, last), `paging with limit ${limit}`);
      }
      t.same(decoded(await store.readEvents('other', 0, 100)), expected('other', 1, 7), 'the other execution');
    });

    t.test('readEvents: executions are never mixed, even when one id is a prefix of another', async (t) => {
      const store = await openStore(t);
      // Plain ids, and ids as the service stores them (`<tenant>/<execution_id>`).
      const family = ['a', 'a-1', 'a1', 'a.1', 'a:1', 'a_1', 'aa', 'A', 'a-1-2', 'a-', 't/a', 't/a-1', 't-2/a', 't/a/b'];
      await store.commit(batch({ events: family.map((id, index) => chunk(id, 1, 3 + index)) }));
      await store.commit(batch({ events: family.map((id, index) => chunk(id, 4 + index, 300)) }));
      for (const [index, id] of family.entries()) {
        const last = 3 + index + 300;
        t.same(decoded(await store.readEvents(id, 0, 10_000)), expected(id, 1, last), `only ${id}'s events`);
        t.same(decoded(await store.readEvents(id, last - 1, 10)), [`${id}#${last}`], `${id}: reading near its end stops at its end`);
      }
    });

    t.test('getSession and getExecution', async (t) => {
      const store = await openStore(t);
      t.equal(await store.getSession('s1'), undefined, 'no session yet');
      t.equal(await store.getExecution('x1'), undefined, 'no execution yet');
      const s1 = session('s1');
      const x1 = execution('x1', 's1', 1);
      await store.commit(batch({ sessions: [s1], executions: [x1] }));
      t.same(await store.getSession('s1'), s1, 'the session as committed');
      t.same(await store.getExecution('x1'), x1, 'the execution as committed');
      t.equal(await store.getSession('s'), undefined, 'a prefix of an id finds nothing');
      t.equal(await store.getExecution('x'), undefined, 'a prefix of an id finds nothing');
      t.equal(await store.getExecution('s1'), undefined, 'sessions and executions are apart');
      t.equal(await store.getSession('x1'), undefined, 'sessions and executions are apart');

      const closed = session('s1', { status: 'closed', closed_at: T0 + 10, execution_count: 1 });
      const done = ended('x1', 's1', 1, T0 + 9, 'error');
      done.reason = 'output_limit';
      done.last_seq = 12;
      await store.commit(batch({ sessions: [closed], executions: [done] }));
      t.same(await store.getSession('s1'), closed, 'a later commit replaces the session');
      t.same(await store.getExecution('x1'), done, 'a later commit replaces the execution');
    });

    t.test('listSessions', async (t) => {
      const store = await openStore(t);
      t.same(await store.listSessions(), [], 'none in a new store');
      await store.commit(batch({ sessions: [session('s2'), session('s10')] }));
      await store.commit(batch({ sessions: [session('s1'), session('s1-a')] }));
      await store.commit(batch({ sessions: [session('s2', { status: 'closed', closed_at: T0 + 5 })] }));
      const listed = await store.listSessions();
      t.same(sorted(listed.map((s) => s.session_id)), ['s1', 's1-a', 's10', 's2'], 'each session once');
      t.equal(listed.find((s) => s.session_id === 's2')?.status, 'closed', 'its latest state');
      await store.commit(batch({ executions: [execution('x1', 's1', 1)] }));
      t.equal((await store.listSessions()).length, 4, 'executions are not sessions');
    });

    t.test('listExecutions: newest or oldest first, with a limit', async (t) => {
      const store = await openStore(t);
      const numbers = [1, 2, 9, 10, 16, 100, 255, 256, 4096];
      const records = numbers.map((number) => execution(`x${number}`, 's', number));
      // Committed out of order and over several commits: order comes from `number`.
      await store.commit(batch({ executions: [records[4]!, records[0]!, records[8]!] }));
      await store.commit(batch({ executions: [records[2]!, records[7]!, records[1]!] }));
      await store.commit(batch({ executions: [records[6]!, records[3]!, records[5]!] }));
      // Another session, and one whose id the first one's is a prefix of.
      await store.commit(batch({ executions: [execution('y1', 's-1', 1), execution('y2', 'S', 2), execution('y3', 's1', 3)] }));

      const oldest = numbers.map((number) => `x${number}`);
      const newest = [...oldest].reverse();
      t.same(ids(await store.listExecutions('s', { limit: 100 })), newest, 'newest first by default');
      t.same(ids(await store.listExecutions('s', { limit: 100, order: 'newest' })), newest, 'newest first');
      t.same(ids(await store.listExecutions('s', { limit: 100, order: 'oldest' })), oldest, 'oldest first');
      t.same(ids(await store.listExecutions('s', { limit: 2 })), newest.slice(0, 2), 'limit, newest');
      t.same(ids(await store.listExecutions('s', { limit: 3, order: 'oldest' })), oldest.slice(0, 3), 'limit, oldest');
      t.same(ids(await store.listExecutions('s', { limit: 1 })), ['x4096'], 'limit 1');
      t.same(ids(await store.listExecutions('s-1', { limit: 100 })), ['y1'], 'only that session');
      t.same(ids(await store.listExecutions('s1', { limit: 100 })), ['y3'], 'only that session');
      t.same(await store.listExecutions('nobody', { limit: 100 }), [], 'an unknown session has none');

      // What the engine asks for when it rebuilds a session: everything, oldest first.
      t.same(ids(await store.listExecutions('s', { limit: Number.MAX_SAFE_INTEGER, order: 'oldest' })), oldest, 'limit MAX_SAFE_INTEGER: all');
      t.same(ids(await store.listExecutions('s', { limit: 2 ** 32, order: 'oldest' })), oldest, 'limit 2^32: all');
      t.same(ids(await store.listExecutions('s', { limit: 2 ** 32 + 1, order: 'oldest' })), oldest, 'limit 2^32 + 1: all');

      // A record committed again (it ran, it ended) is listed once, in its latest state.
      await store.commit(batch({ executions: [ended('x9', 's', 9, T0 + 50)] }));
      const listed = await store.listExecutions('s', { limit: 100, order: 'oldest' });
      t.same(ids(listed), oldest, 'still once each');
      t.equal(listed.find((record) => record.execution_id === 'x9')?.status, 'ok', 'in its latest state');
    });

    t.test('listUnfinishedExecutions: records without ended_at', async (t) => {
      const store = await openStore(t);
      t.same(await store.listUnfinishedExecutions(), [], 'none in a new store');
      await store.commit(batch({
        executions: [
          execution('queued', 's', 1),
          execution('running', 's', 2, 'running'),
          ended('ok', 's', 3, T0 + 3),
          ended('error', 's', 4, T0 + 4, 'error'),
          ended('cancelled', 's', 5, T0 + 5, 'cancelled'),
          ended('crashed', 't', 1, T0 + 6, 'crashed'),
          execution('other-running', 't', 2, 'running'),
        ],
      }));
      t.same(sorted(ids(await store.listUnfinishedExecutions())), ['other-running', 'queued', 'running'], 'queued and running, of every session');
      await store.commit(batch({ executions: [ended('running', 's', 2, T0 + 20, 'timeout')] }));
      await store.commit(batch({ executions: [execution('queued', 's', 1, 'running')] }));
      const unfinished = await store.listUnfinishedExecutions();
      t.same(sorted(ids(unfinished)), ['other-running', 'queued'], 'an execution leaves the list when it ends');
      t.equal(unfinished.find((record) => record.execution_id === 'queued')?.status, 'running', 'records in their latest state');
    });

    t.test('listEndedBefore: terminal executions, oldest first', async (t) => {
      const store = await openStore(t);
      t.same(await store.listEndedBefore(T0 * 2, 10), [], 'none in a new store');
      await store.commit(batch({
        executions: [
          ended('e3', 's', 3, T0 + 3000),
          ended('e1', 's', 1, T0 + 1000, 'error'),
          ended('e2', 't', 2, T0 + 2000, 'crashed'),
          execution('running', 's', 4, 'running'),
          execution('queued', 's', 5),
        ],
      }));
      t.same(ids(await store.listEndedBefore(T0 + 2500, 10)), ['e1', 'e2'], 'ended before, oldest first');
      t.same(ids(await store.listEndedBefore(T0 + 2000, 10)), ['e1'], 'strictly before');
      t.same(ids(await store.listEndedBefore(T0 + 2001, 10)), ['e1', 'e2'], 'one ms after');
      t.same(ids(await store.listEndedBefore(T0 + 10_000, 2)), ['e1', 'e2'], 'limit');
      t.same(ids(await store.listEndedBefore(T0 + 10_000, 10)), ['e1', 'e2', 'e3'], 'unfinished ones never');
      t.same(await store.listEndedBefore(T0, 10), [], 'nothing ended that early');
      await store.commit(batch({ executions: [ended('running', 's', 4, T0 + 500, 'timeout')] }));
      t.same(ids(await store.listEndedBefore(T0 + 2500, 10)), ['running', 'e1', 'e2'], 'an execution that ended joins the list');
    });

    t.test('deleteExecution: the record, its index entries and its events', async (t) => {
      const store = await openStore(t);
      await store.commit(batch({
        sessions: [session('s')],
        executions: [ended('gone', 's', 1, T0 + 100), ended('gone-2', 's', 2, T0 + 200), execution('live', 's', 3, 'running')],
        events: [chunk('gone', 1, BIG), chunk('gone-2', 1, 5), chunk('live', 1, 4)],
      }));
      await store.deleteExecution('gone');
      t.equal(await store.getExecution('gone'), undefined, 'record gone');
      t.same(await store.readEvents('gone', 0, 10_000), [], 'events gone');
      t.same(ids(await store.listExecutions('s', { limit: 100, order: 'oldest' })), ['gone-2', 'live'], 'gone from its session\'s list');
      t.same(ids(await store.listEndedBefore(T0 + 10_000, 10)), ['gone-2'], 'gone from the ended index');
      t.same(decoded(await store.readEvents('gone-2', 0, 100)), expected('gone-2', 1, 5), 'an id it prefixes keeps its events');
      t.ok(await store.getSession('s'), 'the session stays');

      await store.deleteExecution('live');
      t.equal(await store.getExecution('live'), undefined, 'an unfinished one can be deleted');
      t.same(await store.listUnfinishedExecutions(), [], 'gone from the unfinished index');
      t.same(await store.readEvents('live', 0, 100), [], 'its events gone');

      await store.deleteExecution('nobody');
      await store.deleteExecution('gone');
      t.pass('deleting an unknown or already deleted execution is a no-op');

      // The id can be used again, from scratch.
      await store.commit(batch({ executions: [execution('gone', 's', 9)], events: [chunk('gone', 1, 2)] }));
      t.same(decoded(await store.readEvents('gone', 0, 100)), expected('gone', 1, 2), 'no old events come back');
    });

    t.test('state: STORE_NOT_OPEN before open and after close', async (t) => {
      const store = await factory();
      t.teardown(() => store.close());
      t.equal(store.isOpen, false, 'a new store is not open');
      await assertAll(t, store, 'STORE_NOT_OPEN', 'before open');
      await store.close();
      t.equal(store.isOpen, false, 'closing a store that was never opened does nothing');
      await store.open();
      t.equal(store.isOpen, true, 'open');
      await store.open();
      t.equal(store.isOpen, true, 'opening twice is fine');
      await store.commit(batch({ executions: [execution('x1', 's', 1)] }));
      await store.close();
      t.equal(store.isOpen, false, 'closed');
      await assertAll(t, store, 'STORE_NOT_OPEN', 'after close');
      await store.close();
      t.pass('closing twice is fine');
    });

    t.test('arguments: STORE_BAD_ARGUMENT', async (t) => {
      const store = await openStore(t);
      const bad = { name: 'StoreError', code: 'STORE_BAD_ARGUMENT' };
      for (const afterSeq of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1' as unknown as number]) {
        await t.rejects(store.readEvents('x', afterSeq, 10), bad, `readEvents afterSeq ${String(afterSeq)}`);
      }
      for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await t.rejects(store.readEvents('x', 0, limit), bad, `readEvents limit ${limit}`);
        await t.rejects(store.listExecutions('s', { limit }), bad, `listExecutions limit ${limit}`);
        await t.rejects(store.listEndedBefore(T0, limit), bad, `listEndedBefore limit ${limit}`);
      }
      for (const endedBefore of [-1, 1.5, Number.NaN]) {
        await t.rejects(store.listEndedBefore(endedBefore, 10), bad, `listEndedBefore endedBefore ${endedBefore}`);
      }
      for (const firstSeq of [0, -1, 1.5, Number.NaN]) {
        await t.rejects(store.commit(batch({ events: [{ executionId: 'x', firstSeq, frames: [frame('x', 1)] }] })), bad, `commit firstSeq ${firstSeq}`);
      }
      await t.rejects(store.commit(batch({ events: [{ executionId: 'x', firstSeq: 1, frames: [] }] })), bad, 'commit: an empty chunk');

      // A batch with one bad chunk writes nothing at all.
      await t.rejects(store.commit(batch({
        sessions: [session('s')],
        executions: [execution('x', 's', 1)],
        events: [chunk('x', 1, 3), { executionId: 'x', firstSeq: 0, frames: [frame('x', 0)] }],
      })), bad, 'a batch with one bad chunk');
      t.equal(await store.getSession('s'), undefined, 'none of its sessions');
      t.equal(await store.getExecution('x'), undefined, 'none of its executions');
      t.same(await store.readEvents('x', 0, 10), [], 'none of its events');

      await store.commit(batch({}));
      t.pass('an empty batch is fine');
    });

    t.test('persistence: everything is there again after close and open', async (t) => {
      const store = await openStore(t);
      const s1 = session('s1', { execution_count: 3 });
      const s2 = session('s2', { status: 'closed', closed_at: T0 + 9 });
      const records = [ended('x1', 's1', 1, T0 + 100), ended('x2', 's1', 2, T0 + 200, 'error'), execution('x3', 's1', 3, 'running')];
      await store.commit(batch({ sessions: [s1, s2], executions: records, events: [chunk('x1', 1, BIG), chunk('x3', 1, 2)] }));
      await store.commit(batch({ events: [chunk('x3', 3, 300)] }));
      await store.close();
      await store.open();
      t.same(await store.getSession('s1'), s1, 'session');
      t.same(sorted((await store.listSessions()).map((s) => s.session_id)), ['s1', 's2'], 'sessions');
      t.same(await store.getExecution('x2'), records[1], 'execution');
      t.same(ids(await store.listExecutions('s1', { limit: 10 })), ['x3', 'x2', 'x1'], 'session index');
      t.same(ids(await store.listUnfinishedExecutions()), ['x3'], 'unfinished index');
      t.same(ids(await store.listEndedBefore(T0 + 1000, 10)), ['x1', 'x2'], 'ended index');
      t.same(decoded(await store.readEvents('x1', 0, 10_000)), expected('x1', 1, BIG), 'events of one commit');
      t.same(decoded(await store.readEvents('x3', 0, 10_000)), expected('x3', 1, 302), 'events of two commits');
      await store.commit(batch({ events: [chunk('x3', 303, 1)] }));
      t.same(decoded(await store.readEvents('x3', 300, 10)), expected('x3', 301, 303), 'and it takes more');
    });
  });
}

/** Reads a whole log a page at a time, each page starting after the last seq of the one before. */
async function pageThrough(store: EventStore, executionId: string, limit: number): Promise<string[]> {
  const out: string[] = [];
  let cursor = 0;
  for (;;) {
    const page = await store.readEvents(executionId, cursor, limit);
    if (page.length === 0) return out;
    if (page.length > limit) throw new Error(`readEvents returned ${page.length} events for limit ${limit}`);
    out.push(...decoded(page));
    cursor = page[page.length - 1]!.seq;
  }
}

/** Every public method rejects with `code`. */
async function assertAll(t: Test, store: EventStore, code: string, when: string): Promise<void> {
  const wanted = { name: 'StoreError', code };
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['commit', () => store.commit(batch({ executions: [execution('x', 's', 1)] }))],
    ['readEvents', () => store.readEvents('x', 0, 10)],
    ['getSession', () => store.getSession('s')],
    ['getExecution', () => store.getExecution('x')],
    ['listSessions', () => store.listSessions()],
    ['listExecutions', () => store.listExecutions('s', { limit: 10 })],
    ['listUnfinishedExecutions', () => store.listUnfinishedExecutions()],
    ['listEndedBefore', () => store.listEndedBefore(T0, 10)],
    ['deleteExecution', () => store.deleteExecution('x')],
  ];
  for (const [method, call] of calls) await t.rejects(call, wanted, `${method} ${when}`);
}
