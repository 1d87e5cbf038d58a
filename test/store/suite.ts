/**
 * The EventStore contract (src/store/event-store.ts), as one suite every backend runs, the way
 * abstract-level's test/index.js runs for classic-level and memory-level alike. A backend's own
 * test file only supplies a factory; whatever is backend-specific (LevelDB options, files) is tested
 * beside it, not here.
 *
 * The factory returns a new store over a new, empty location and does NOT open it: the suite opens
 * it, so that it can also check what happens before `open()`. Given a store, it returns a second
 * instance over that store's location (asked only of backends that declare `sharedLocation`).
 *
 * Cases that need a capability a backend does not declare in `supports` are skipped by name, so a
 * run shows what was not checked.
 */
import type { Test } from 'tap';
import type { ExecutionRecord, ExecutionStatus, SessionRecord } from '../../protocol/types.js';
import type { CommitBatch, EventStore, StoredEvent, StoreSupports } from '../../src/store/event-store.js';

export type StoreFactory = (sameLocationAs?: EventStore) => Promise<EventStore>;

/** More than the LevelDB backend's chunk size (256 frames per entry), so chunks get split. */
const BIG = 600;
/** A log longer than two pages of 1 024 events (a paged remote log's unit), so reads cross pages. */
const LONG = 2_500;
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

/** The test option that skips a case, visibly, when the backend lacks `capability`. */
function needs(supports: StoreSupports, capability: keyof StoreSupports, name: string): { skip: string | false } {
  return { skip: supports[capability] ? false : `${name} does not support ${capability}` };
}

/** The commit's failures as `kind id code` strings, sorted. */
async function failures(result: Promise<{ failed: Array<{ kind: string; id: string; error: { code: string } }> }>): Promise<string[]> {
  return (await result).failed.map((failure) => `${failure.kind} ${failure.id} ${failure.error.code}`).sort();
}

export function runStoreSuite(t: Test, name: string, factory: StoreFactory): void {
  /** A fresh store, opened, and closed when the test ends. */
  async function openStore(t: Test): Promise<EventStore> {
    const store = await factory();
    t.teardown(() => store.close());
    await store.open();
    return store;
  }

  t.test(name, async (t) => {
    // Read from an instance that is never opened: the manifest is known before open().
    const { supports } = await factory();

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

    t.test('getExecution', async (t) => {
      const store = await openStore(t);
      t.equal(await store.getExecution('x1'), undefined, 'no execution yet');
      const x1 = execution('x1', 's1', 1);
      await store.commit(batch({ sessions: [session('s1')], creates: [x1] }));
      t.same(await store.getExecution('x1'), x1, 'the execution as committed');
      t.equal(await store.getExecution('x'), undefined, 'a prefix of an id finds nothing');
      t.equal(await store.getExecution('s1'), undefined, 'sessions and executions are apart');

      const done = ended('x1', 's1', 1, T0 + 9, 'error');
      done.reason = 'output_limit';
      done.last_seq = 12;
      await store.commit(batch({ executions: [done] }));
      t.same(await store.getExecution('x1'), done, 'a later commit replaces the execution');
    });

    t.test('createExecution: a conditional create', async (t) => {
      const store = await openStore(t);
      const first = execution('c1', 's', 1);
      t.same(await store.createExecution(first), { created: true, record: first }, 'a new id is created');
      t.same(await store.getExecution('c1'), first, 'and stored');
      t.same(ids(await store.listExecutions('s', { limit: 10 })), ['c1'], 'in its session\'s list');
      t.same(ids(await store.listUnfinished({})), ['c1'], 'and unfinished');

      const again = execution('c1', 'other', 7, 'queued', { code: 'something else' });
      t.same(await store.createExecution(again), { created: false, record: first }, 'an existing id: the stored record, unchanged');
      t.same(await store.listExecutions('other', { limit: 10 }), [], 'the loser wrote nothing');

      // Concurrent creates of one id, each with its own record: exactly one wins, all get its record.
      const racers = Array.from({ length: 8 }, (_, index) => execution('race', `s${index}`, index + 1));
      const results = await Promise.all(racers.map((record) => store.createExecution(record)));
      t.equal(results.filter((result) => result.created).length, 1, 'exactly one created');
      const winner = results.find((result) => result.created)!.record;
      t.ok(results.every((result) => JSON.stringify(result.record) === JSON.stringify(winner)), 'every caller gets the winner\'s record');
      t.same(await store.getExecution('race'), winner, 'the winner\'s record is stored');

      await t.rejects(store.createExecution(ended('e', 's', 9, T0)), { code: 'STORE_BAD_ARGUMENT' }, 'a record that has ended is not new');
    });

    t.test('createExecution: two instances over one location race', needs(supports, 'sharedLocation', name), async (t) => {
      const one = await openStore(t);
      const two = await factory(one);
      t.teardown(() => two.close());
      await two.open();
      for (let round = 0; round < 10; round++) {
        const id = `shared-${round}`;
        const results = await Promise.all([one.createExecution(execution(id, 'a', round)), two.createExecution(execution(id, 'b', round))]);
        t.equal(results.filter((result) => result.created).length, 1, `round ${round}: exactly one created`);
        t.same(results[0]!.record, results[1]!.record, `round ${round}: both see one record`);
      }
    });

    t.test('follow: another instance\'s appends, from afterSeq, each seq once, across pages', needs(supports, 'follow', name), async (t) => {
      const writer = await openStore(t);
      const reader = await factory(writer);
      t.teardown(() => reader.close());
      await reader.open();
      const got: string[] = [];
      let wanted = 0;
      let arrived = () => {};
      const until = (count: number) => new Promise<void>((resolve) => {
        wanted = count;
        arrived = resolve;
        if (got.length >= wanted) resolve();
      });
      const follow = (afterSeq: number) => reader.follow('tailed', afterSeq, {
        chunk: (chunk) => {
          chunk.frames.forEach((bytes, index) => got.push(`${new TextDecoder().decode(bytes)}@${chunk.firstSeq + index}`));
          if (got.length >= wanted) arrived();
        },
        error: (error) => t.fail(String(error)),
      });
      // Followed before its log exists: the first append is not missed.
      const early = follow(0);
      await writer.commit(batch({ events: [chunk('tailed', 1, 5)] }));
      await until(5);
      await writer.commit(batch({ events: [chunk('tailed', 6, 1_095)] }));
      await until(1_100);
      early.stop();
      t.same(got, expected('tailed', 1, 1_100).map((text, index) => `${text}@${index + 1}`), 'every seq once, in order, across a page boundary');
      got.length = 0;
      // From the middle of a stored chunk, then on past it live.
      const late = follow(1_050);
      await until(50);
      await writer.commit(batch({ events: [chunk('tailed', 1_101, 10)] }));
      await until(60);
      late.stop();
      t.same(got, expected('tailed', 1_051, 1_110).map((text, index) => `${text}@${index + 1_051}`), 'from afterSeq + 1 on');
    });

    t.test('reserveExecution: decided at once, written by the winner (now, or in a commit\'s creates)', async (t) => {
      const store = await openStore(t);
      const racers = Array.from({ length: 8 }, (_, index) => execution('r1', `s${index}`, index + 1));
      const results = await Promise.all(racers.map((record) => store.reserveExecution(record)));
      t.equal(results.filter((result) => result.created).length, 1, 'of concurrent reservations of one id, exactly one wins');
      const winner = results.find((result) => result.created)!;
      t.ok(results.every((result) => result.record.session_id === winner.record.session_id), 'every caller gets the winner\'s record');
      t.same((await store.createExecution(execution('r1', 'late', 9))).created, false, 'a create of a reserved id loses, written or not');
      t.same((await store.reserveExecution(execution('r1', 'late', 9))).created, false, 'and so does another reservation');
      // What the commit log does: the winner's record goes out with the run's first events.
      const running = { ...winner.record, status: 'running' as const, started_at: T0 };
      const written = await store.commit(batch(winner.written ? { executions: [running], events: [chunk('r1', 1, 2)] } : { creates: [running], events: [chunk('r1', 1, 2)] }));
      t.same(written.failed, [], 'written');
      t.same(await store.getExecution('r1'), running, 'stored');
      t.same(ids(await store.listExecutions(winner.record.session_id, { limit: 10 })), ['r1'], 'in its session\'s list');
      t.same(ids(await store.listUnfinished({})), ['r1'], 'and unfinished');
      t.same((await store.reserveExecution(execution('r1', 'late', 9))).created, false, 'once written, the id is still taken');
      await t.rejects(store.reserveExecution(ended('r2', 's', 9, T0)), { code: 'STORE_BAD_ARGUMENT' }, 'a record that has ended is not new');
    });

    t.test('reserveExecution of a fresh id (made up by its caller): won, and written as any winner\'s', async (t) => {
      const store = await openStore(t);
      const record = execution('fresh1', 's', 1);
      const won = await store.reserveExecution(record, { fresh: true });
      t.ok(won.created, 'won');
      t.same(won.record, record, 'with the caller\'s record');
      const short = { ...ended('fresh1', 's', 1, T0 + 5), last_seq: 2 };
      const written = await store.commit(batch(won.written ? { executions: [short], events: [chunk('fresh1', 1, 2)] } : { creates: [short], events: [chunk('fresh1', 1, 2)] }));
      t.same(written.failed, [], 'its create (or end) committed with its events');
      t.same(await store.getExecution('fresh1'), short, 'stored');
      t.same(ids(await store.listExecutions('s', { limit: 10 })), ['fresh1'], 'in its session\'s list');
      t.same((await store.reserveExecution(execution('fresh1', 'late', 9))).created, false, 'the id is taken like any other');
    });

    t.test('a short run: its create, events and end in one commit', async (t) => {
      const store = await openStore(t);
      const short = { ...ended('short', 's', 1, T0 + 5), last_seq: 2 };
      t.same((await store.commit(batch({ creates: [short], events: [chunk('short', 1, 2)] }))).failed, [], 'one commit');
      await store.close();
      await store.open();
      t.same(await store.getExecution('short'), short, 'the record');
      t.same(decoded(await store.readEvents('short', 0, 10)), expected('short', 1, 2), 'its events');
      t.same(decoded(await store.readEvents('short', 1, 10)), expected('short', 2, 2), 'read from the middle');
      t.same(decoded(await store.readEvents('short', 0, 1)), expected('short', 1, 1), 'with a limit');
      t.same(await store.readEvents('short', 2, 10), [], 'after the end: none');
      t.equal(await store.lastSeq('short'), 2, 'the log\'s end');
      t.same(ids(await store.listExecutions('s', { limit: 10 })), ['short'], 'listed');
      t.same(await store.listUnfinished({}), [], 'never unfinished');
      t.equal(await store.expireEndedBefore(T0 + 6, 10), 1, 'retained until it expires');
      t.same(await store.readEvents('short', 0, 10), [], 'then its events are gone');
      t.equal(await store.lastSeq('short'), 0, 'and its log');
    });

    t.test('a long run\'s end: its last chunk with its terminal record, after the others', async (t) => {
      const store = await openStore(t);
      await store.commit(batch({ creates: [execution('long', 's', 1)], events: [chunk('long', 1, 300)] }));
      const done = { ...ended('long', 's', 1, T0 + 9), last_seq: 302 };
      await store.commit(batch({ executions: [done], events: [chunk('long', 301, 2)] }));
      t.same(await store.getExecution('long'), done, 'the terminal record');
      t.equal(await store.lastSeq('long'), 302, 'the log\'s end');
      t.same(decoded(await store.readEvents('long', 298, 10)), expected('long', 299, 302), 'a read across the last commit');
      t.same(decoded(await store.readEvents('long', 301, 10)), expected('long', 302, 302), 'a read of the last event');
      t.same(await pageThrough(store, 'long', 7), expected('long', 1, 302), 'the whole log, a page at a time');
      t.same(await store.listUnfinished({}), [], 'no longer unfinished');
    });

    t.test('readRun: the events readEvents returns, as one run from afterSeq + 1', async (t) => {
      const store = await openStore(t);
      // Chunks over several commits, a chunk cut into entries, and a last chunk carried by the terminal record.
      await store.commit(batch({ creates: [execution('run', 's', 1)], events: [chunk('run', 1, 3)] }));
      await store.commit(batch({ events: [chunk('run', 4, 300)] }));
      await store.commit(batch({ executions: [{ ...ended('run', 's', 1, T0 + 9), last_seq: 305 }], events: [chunk('run', 304, 2)] }));
      for (const [afterSeq, limit] of [[0, 10_000], [0, 1], [2, 3], [3, 256], [250, 60], [302, 10], [304, 1], [305, 10], [400, 10]] as const) {
        const run = await store.readRun('run', afterSeq, limit);
        t.equal(run.firstSeq, afterSeq + 1, `after ${afterSeq}, at most ${limit}: it starts at afterSeq + 1`);
        t.same(run.frames.map((frame) => text.decode(frame)), decoded(await store.readEvents('run', afterSeq, limit)), `after ${afterSeq}, at most ${limit}: readEvents' frames`);
      }
      t.same((await store.readRun('nobody', 0, 10)).frames, [], 'an unknown execution: no frames');
      await t.rejects(store.readRun('run', -1, 10), { code: 'STORE_BAD_ARGUMENT' }, 'a negative afterSeq');
      await t.rejects(store.readRun('run', 0, 0), { code: 'STORE_BAD_ARGUMENT' }, 'a limit of 0');
    });

    t.test('lastSeq: read from the log, whatever the record says', async (t) => {
      const store = await openStore(t);
      t.equal(await store.lastSeq('nobody'), 0, 'no log: 0');
      await store.commit(batch({ creates: [execution('x', 's', 1)], events: [chunk('x', 1, 3)] }));
      t.equal(await store.lastSeq('x'), 3, 'after one chunk');
      // The record is committed with an older last_seq than its log: the log is what counts.
      await store.commit(batch({ executions: [execution('x', 's', 1, 'running', { last_seq: 1 })], events: [chunk('x', 4, LONG - 3)] }));
      t.equal(await store.lastSeq('x'), LONG, 'after a long chunk');
      t.equal((await store.getExecution('x'))?.last_seq, 1, 'the record says what it was given');
      t.equal(await store.lastSeq('x-'), 0, 'an id it prefixes has no log');
      await store.commit(batch({ events: [chunk('x-', 1, 1), chunk('x', LONG + 1, 1)] }));
      t.equal(await store.lastSeq('x'), LONG + 1, 'one more');
      t.equal(await store.lastSeq('x-'), 1, 'the other log');
      t.same(decoded(await store.readEvents('x', 1_020, 10)), expected('x', 1_021, 1_030), 'a read across the first page boundary');
      t.same(decoded(await store.readEvents('x', 2_040, 10)), expected('x', 2_041, 2_050), 'and the second');
      t.same(await pageThrough(store, 'x', 700), expected('x', 1, LONG + 1), 'the whole log, a page at a time');
    });

    t.test('commit: each item fails alone', async (t) => {
      const store = await openStore(t);
      const result = store.commit(batch({
        sessions: [session('s')],
        creates: [execution('good', 's', 1), execution('bad', 's', 2)],
        events: [chunk('good', 1, 3), { executionId: 'bad', firstSeq: 0, frames: [frame('bad', 0)] }, { executionId: 'empty', firstSeq: 1, frames: [] }],
      }));
      t.same(await failures(result), ['events bad STORE_BAD_ARGUMENT', 'events empty STORE_BAD_ARGUMENT', 'execution bad STORE_BAD_ARGUMENT'], 'the bad chunks, and the record that would count one');
      t.equal((await store.listSessions({})).length, 1, 'the session landed');
      t.ok(await store.getExecution('good'), 'the good record landed');
      t.same(decoded(await store.readEvents('good', 0, 10)), expected('good', 1, 3), 'the good events landed');
      t.equal(await store.getExecution('bad'), undefined, 'not the record of the bad chunk');
      t.same(await store.readEvents('bad', 0, 10), [], 'nothing of the bad chunk');
      t.same((await store.commit(batch({}))).failed, [], 'an empty batch is fine');
    });

    t.test('commit: a chunk that does not continue its log is fenced', needs(supports, 'fencing', name), async (t) => {
      const store = await openStore(t);
      await store.commit(batch({ creates: [execution('f', 's', 1)], events: [chunk('f', 1, 5)] }));
      // A writer that has not read the end of the log (a stale owner) appends from seq 3.
      const stale = store.commit(batch({ events: [chunk('f', 3, 2), chunk('g', 1, 2)] }));
      t.same(await failures(stale), ['events f STORE_FENCED'], 'only the stale chunk fails');
      t.same(await failures(store.commit(batch({ events: [chunk('f', 7, 1)] }))), ['events f STORE_FENCED'], 'a chunk past the end fails too');
      t.same(decoded(await store.readEvents('f', 0, 10)), expected('f', 1, 5), 'the log is as it was');
      t.same(decoded(await store.readEvents('g', 0, 10)), expected('g', 1, 2), 'the other execution landed');
      t.same((await store.commit(batch({ events: [chunk('f', 1, 5)] }))).failed, [], 'a resent chunk that is stored is no failure');
      t.same(decoded(await store.readEvents('f', 0, 10)), expected('f', 1, 5), 'and is not stored twice');
    });

    t.test('listSessions: all of them, or one tenant\'s', async (t) => {
      const store = await openStore(t);
      t.same(await store.listSessions({}), [], 'none in a new store');
      await store.commit(batch({ sessions: [session('s2'), session('s10', { tenant: 'acme' })] }));
      await store.commit(batch({ sessions: [session('s1'), session('s1-a', { tenant: 'acme-2' })] }));
      await store.commit(batch({ sessions: [session('s2', { status: 'closed', closed_at: T0 + 5 })] }));
      const listed = await store.listSessions({});
      t.same(sorted(listed.map((s) => s.session_id)), ['s1', 's1-a', 's10', 's2'], 'each session once');
      t.equal(listed.find((s) => s.session_id === 's2')?.status, 'closed', 'its latest state');
      t.same(sorted((await store.listSessions({ tenant: 'default' })).map((s) => s.session_id)), ['s1', 's2'], 'one tenant\'s');
      t.same((await store.listSessions({ tenant: 'acme' })).map((s) => s.session_id), ['s10'], 'a tenant whose name prefixes another\'s');
      t.same(await store.listSessions({ tenant: 'nobody' }), [], 'an unknown tenant has none');
      await store.commit(batch({ creates: [execution('x1', 's1', 1)] }));
      t.equal((await store.listSessions({})).length, 4, 'executions are not sessions');
    });

    t.test('listExecutions: newest or oldest first, with a limit', async (t) => {
      const store = await openStore(t);
      const numbers = [1, 2, 9, 10, 16, 100, 255, 256, 4096];
      const records = numbers.map((number) => execution(`x${number}`, 's', number));
      // Committed out of order and over several commits: order comes from `number`.
      await store.commit(batch({ creates: [records[4]!, records[0]!, records[8]!] }));
      await store.commit(batch({ creates: [records[2]!, records[7]!, records[1]!] }));
      await store.commit(batch({ creates: [records[6]!, records[3]!, records[5]!] }));
      // Another session, and one whose id the first one's is a prefix of.
      await store.commit(batch({ creates: [execution('y1', 's-1', 1), execution('y2', 'S', 2), execution('y3', 's1', 3)] }));

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

    t.test('listUnfinished: records without ended_at, of a session or all', async (t) => {
      const store = await openStore(t);
      t.same(await store.listUnfinished({}), [], 'none in a new store');
      // Created in every state: some ended before their create was written (a short run's one write).
      await store.commit(batch({
        creates: [
          execution('queued', 's', 1),
          execution('running', 's', 2, 'running'),
          ended('ok', 's', 3, T0 + 3),
          ended('error', 's', 4, T0 + 4, 'error'),
          ended('cancelled', 's', 5, T0 + 5, 'cancelled'),
          ended('crashed', 't', 1, T0 + 6, 'crashed'),
          execution('other-running', 't', 2, 'running'),
        ],
      }));
      t.same(sorted(ids(await store.listUnfinished({}))), ['other-running', 'queued', 'running'], 'queued and running, of every session');
      t.same(sorted(ids(await store.listUnfinished({ sessionId: 's' }))), ['queued', 'running'], 'of one session');
      t.same(await store.listUnfinished({ sessionId: 'nobody' }), [], 'of an unknown session: none');
      await store.commit(batch({ executions: [ended('running', 's', 2, T0 + 20, 'timeout')] }));
      await store.commit(batch({ executions: [execution('queued', 's', 1, 'running')] }));
      const unfinished = await store.listUnfinished({});
      t.same(sorted(ids(unfinished)), ['other-running', 'queued'], 'an execution leaves the list when it ends');
      t.equal(unfinished.find((record) => record.execution_id === 'queued')?.status, 'running', 'records in their latest state');
    });

    t.test('expireEndedBefore: what is gone and what stays', async (t) => {
      const store = await openStore(t);
      t.equal(await store.expireEndedBefore(T0 * 2, 10), 0, 'nothing in a new store');
      await store.commit(batch({
        sessions: [session('s')],
        creates: [
          ended('old', 's', 1, T0 + 1000),
          ended('old-2', 's', 2, T0 + 2000, 'crashed'),
          ended('edge', 's', 3, T0 + 3000, 'error'),
          ended('new', 's', 4, T0 + 9000),
          execution('running', 's', 5, 'running'),
          execution('queued', 's', 6),
        ],
        events: [chunk('old', 1, BIG), chunk('old-2', 1, 5), chunk('edge', 1, 2), chunk('new', 1, 2), chunk('running', 1, 4)],
      }));
      t.equal(await store.expireEndedBefore(T0 + 3000, 10), 2, 'two ended strictly before the cutoff');
      for (const gone of ['old', 'old-2']) {
        t.equal(await store.getExecution(gone), undefined, `${gone}: record gone`);
        t.same(await store.readEvents(gone, 0, 10_000), [], `${gone}: events gone`);
        t.equal(await store.lastSeq(gone), 0, `${gone}: log gone`);
      }
      t.same(ids(await store.listExecutions('s', { limit: 100, order: 'oldest' })), ['edge', 'new', 'running', 'queued'], 'gone from the session\'s list; the rest stays');
      t.same(decoded(await store.readEvents('edge', 0, 10)), expected('edge', 1, 2), 'one that ended at the cutoff keeps its events');
      t.same(sorted(ids(await store.listUnfinished({}))), ['queued', 'running'], 'unfinished ones are never expired');
      t.equal((await store.listSessions({})).length, 1, 'the session stays');
      t.equal(await store.expireEndedBefore(T0 + 3000, 10), 0, 'expiring again finds nothing');

      // Far in the future: everything terminal goes, a page at a time; running ones stay.
      await store.commit(batch({ executions: [ended('running', 's', 5, T0 + 500, 'timeout')] }));
      let pages = 0;
      while ((await store.expireEndedBefore(T0 * 2, 1)) === 1) pages++;
      t.equal(pages, 3, 'three more, one per call with limit 1');
      t.same(ids(await store.listExecutions('s', { limit: 100 })), ['queued'], 'only the unfinished one is left');
      t.same(await store.readEvents('running', 0, 10), [], 'an execution that ended later expires too');

      // An expired id can be used again, from scratch.
      t.same((await store.createExecution(execution('old', 's', 9))).created, true, 'an expired id is free');
      await store.commit(batch({ events: [chunk('old', 1, 2)] }));
      t.same(decoded(await store.readEvents('old', 0, 100)), expected('old', 1, 2), 'no old events come back');
    });

    t.test('expireEndedBefore: a limit takes the earliest ended first', needs(supports, 'orderedScans', name), async (t) => {
      const store = await openStore(t);
      await store.commit(batch({
        creates: [ended('e3', 's', 3, T0 + 3000), ended('e1', 's', 1, T0 + 1000), ended('e2', 't', 2, T0 + 2000, 'crashed')],
      }));
      t.equal(await store.expireEndedBefore(T0 + 10_000, 2), 2, 'a full page');
      t.same(ids(await store.listExecutions('s', { limit: 10 })), ['e3'], 'the two that ended first are gone');
      t.equal(await store.getExecution('e2'), undefined, 'whatever their session');
    });

    t.test('ids: executions are never mixed in records, lists or expiry', async (t) => {
      const store = await openStore(t);
      const family = ['a', 'a-1', 'a.1', 'a:1', 't/a', 't/a-1', 't/a/b'];
      await store.commit(batch({ creates: family.map((id, index) => ended(id, 's', index + 1, T0 + 100 * (index + 1))), events: family.map((id) => chunk(id, 1, 3)) }));
      t.equal(await store.expireEndedBefore(T0 + 150, 10), 1, 'only the first ended before the cutoff');
      t.same(await store.readEvents('a', 0, 10), [], 'its events are gone');
      for (const id of family.slice(1)) t.same(decoded(await store.readEvents(id, 0, 10)), expected(id, 1, 3), `${id} keeps its events`);
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
      await store.commit(batch({ creates: [execution('x1', 's', 1)] }));
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
        await t.rejects(store.expireEndedBefore(T0, limit), bad, `expireEndedBefore limit ${limit}`);
      }
      for (const endedBefore of [-1, 1.5, Number.NaN]) {
        await t.rejects(store.expireEndedBefore(endedBefore, 10), bad, `expireEndedBefore endedBefore ${endedBefore}`);
      }
      for (const firstSeq of [0, -1, 1.5, Number.NaN]) {
        const result = store.commit(batch({ events: [{ executionId: 'x', firstSeq, frames: [frame('x', 1)] }] }));
        t.same(await failures(result), ['events x STORE_BAD_ARGUMENT'], `commit firstSeq ${firstSeq}: that chunk fails`);
      }
    });

    t.test('persistence: everything is there again after close and open', async (t) => {
      const store = await openStore(t);
      const s1 = session('s1', { execution_count: 3 });
      const s2 = session('s2', { status: 'closed', closed_at: T0 + 9 });
      const records = [ended('x1', 's1', 1, T0 + 100), ended('x2', 's1', 2, T0 + 200, 'error'), execution('x3', 's1', 3, 'running')];
      await store.commit(batch({ sessions: [s1, s2], creates: records, events: [chunk('x1', 1, BIG), chunk('x3', 1, 2)] }));
      await store.commit(batch({ events: [chunk('x3', 3, 300)] }));
      await store.close();
      await store.open();
      t.same(sorted((await store.listSessions({})).map((s) => s.session_id)), ['s1', 's2'], 'sessions');
      t.same((await store.listSessions({})).find((s) => s.session_id === 's1'), s1, 'a session as committed');
      t.same(await store.getExecution('x2'), records[1], 'execution');
      t.same(ids(await store.listExecutions('s1', { limit: 10 })), ['x3', 'x2', 'x1'], 'session index');
      t.same(ids(await store.listUnfinished({})), ['x3'], 'unfinished index');
      t.equal(await store.lastSeq('x3'), 302, 'the log\'s end');
      t.same(decoded(await store.readEvents('x1', 0, 10_000)), expected('x1', 1, BIG), 'events of one commit');
      t.same(decoded(await store.readEvents('x3', 0, 10_000)), expected('x3', 1, 302), 'events of two commits');
      await store.commit(batch({ events: [chunk('x3', 303, 1)] }));
      t.same(decoded(await store.readEvents('x3', 300, 10)), expected('x3', 301, 303), 'and it takes more');
      t.equal(await store.expireEndedBefore(T0 + 1000, 10), 2, 'the ended index');
      t.same(ids(await store.listExecutions('s1', { limit: 10 })), ['x3'], 'what it expired is gone');
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
    ['createExecution', () => store.createExecution(execution('x', 's', 1))],
    ['lastSeq', () => store.lastSeq('x')],
    ['getExecution', () => store.getExecution('x')],
    ['listSessions', () => store.listSessions({})],
    ['listExecutions', () => store.listExecutions('s', { limit: 10 })],
    ['listUnfinished', () => store.listUnfinished({})],
    ['expireEndedBefore', () => store.expireEndedBefore(T0, 10)],
  ];
  for (const [method, call] of calls) await t.rejects(call, wanted, `${method} ${when}`);
}
