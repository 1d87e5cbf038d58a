/**
 * The shared store suite on the JetStream backend, and what only a remote log has: nats-server
 * killed (-9) and restarted under commits, two writers racing on one log, ids with `.`, `:` and `/`
 * in subjects and keys.
 */
import t, { type Test } from 'tap';
import type { ExecutionRecord, SessionRecord } from '../protocol/types.js';
import { StoreError, type CommitBatch, type EventChunk } from '../src/store/event-store.js';
import { CachedEventStore } from '../src/store/cached-store.js';
import { JetStreamEventStore } from '../src/store/jetstream/jetstream-store.js';
import { natsFor, type TestNats } from './helpers/nats.js';
import { runStoreSuite } from './store/suite.js';

// One nats-server for the file; each store gets a prefix of its own (a fresh, empty location).
const nats = await natsFor(t);
let stores = 0;

runStoreSuite(t, 'JetStreamEventStore', async (sameLocationAs) =>
  new JetStreamEventStore({ servers: [nats.url], prefix: (sameLocationAs as JetStreamEventStore | undefined)?.options.prefix ?? `s${++stores}` }),
);

const utf8 = new TextEncoder();
const text = new TextDecoder();

function chunk(executionId: string, firstSeq: number, count: number, writer = executionId): EventChunk {
  return { executionId, firstSeq, frames: Array.from({ length: count }, (_, i) => utf8.encode(`${writer}#${firstSeq + i}`)) };
}

function batch(parts: Partial<CommitBatch>): CommitBatch {
  return { sessions: [], executions: [], events: [], ...parts };
}

async function openStore(t: Test, server: TestNats, prefix: string, ackTimeoutMs?: number): Promise<JetStreamEventStore> {
  const store = new JetStreamEventStore({ servers: [server.url], prefix, ackTimeoutMs });
  t.teardown(() => store.close());
  await store.open();
  return store;
}

async function readAll(store: JetStreamEventStore, executionId: string): Promise<string[]> {
  return (await store.readEvents(executionId, 0, 1_000_000)).map((event) => `${event.seq}=${text.decode(event.frame)}`);
}

function expected(writer: string, last: number): string[] {
  return Array.from({ length: last }, (_, i) => `${i + 1}=${writer}#${i + 1}`);
}

t.test('kill -9 of nats-server during commits: every acked chunk is there once, commits resume', async (t) => {
  const own = await natsFor(t);
  const store = await openStore(t, own, 'crash', 500);
  const writers = 8;
  const chunksEach = 40;
  let acked = 0;
  let retried = 0;
  let reachedKill: () => void = () => {};
  const killPoint = new Promise<void>((resolve) => (reachedKill = resolve));
  // Each writer behaves like the commit log: an item that failed is resent exactly, later ones wait.
  const write = async (id: string): Promise<number> => {
    let seq = 0;
    for (let n = 0; n < chunksEach; n++) {
      const next = chunk(id, seq + 1, 1 + ((n * 37) % 60));
      for (;;) {
        const { failed } = await store.commit(batch({ events: [next] }));
        if (failed.length === 0) break;
        t.equal(failed[0]!.error.code, 'STORE_UNAVAILABLE', `${id}: a failed write is retryable, never fenced (${failed[0]!.error.message})`);
        retried++;
      }
      seq += next.frames.length;
      if (++acked === writers * 5) reachedKill();
    }
    return seq;
  };
  const ids = Array.from({ length: writers }, (_, i) => `crash.${i}:x/y`);
  const running = ids.map(write);
  await killPoint;
  await own.kill();
  await own.start();
  const lasts = await Promise.all(running);
  t.ok(retried > 0, `the kill hit commits in flight (${retried} retries)`);
  // A fresh connection reads what nats-server holds.
  const reader = await openStore(t, own, 'crash');
  for (const [index, id] of ids.entries()) {
    t.same(await readAll(reader, id), expected(id, lasts[index]!), `${id}: 1..${lasts[index]}, each once, in order`);
    t.equal(await reader.lastSeq(id), lasts[index], `${id}: lastSeq`);
  }
  t.same((await store.commit(batch({ events: [chunk(ids[0]!, lasts[0]! + 1, 3)] }))).failed, [], 'and the store takes more');
});

t.test('two writers racing on one log: exactly one chunk lands, the other is fenced', async (t) => {
  const one = await openStore(t, nats, 'race');
  const two = await openStore(t, nats, 'race');
  for (let round = 0; round < 10; round++) {
    const id = `race.${round}`;
    const results = await Promise.all([
      one.commit(batch({ events: [chunk(id, 1, 3, 'one')] })),
      two.commit(batch({ events: [chunk(id, 1, 3, 'two')] })),
    ]);
    const codes = results.map((result) => result.failed.map((failure) => failure.error.code).join(','));
    t.same([...codes].sort(), ['', 'STORE_FENCED'], `round ${round}: one landed, one fenced`);
    const winner = codes[0] === '' ? 'one' : 'two';
    t.same(await readAll(one, id), expected(winner, 3), `round ${round}: the log holds the winner's chunk only`);
    // The winner goes on; the loser, appending after what it wrote itself, is refused again.
    const [won, lost] = winner === 'one' ? [one, two] : [two, one];
    t.same((await won.commit(batch({ events: [chunk(id, 4, 2, winner)] }))).failed, [], `round ${round}: the winner continues`);
    const stale = await lost.commit(batch({ events: [chunk(id, 4, 2, 'stale')] }));
    t.same(stale.failed.map((failure) => failure.error.code), ['STORE_FENCED'], `round ${round}: a stale append is fenced`);
    t.same(await readAll(two, id), expected(winner, 5), `round ${round}: nothing of the stale writer`);
  }
});

t.test('a record ended by another instance (a taker) cannot be overwritten by its creator (a stale owner)', async (t) => {
  const owner = await openStore(t, nats, 'records');
  const taker = await openStore(t, nats, 'records');
  const record: ExecutionRecord = { execution_id: 't/x', session_id: 's', number: 1, kind: 'repl', status: 'queued', created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' };
  t.equal((await owner.createExecution(record)).created, true, 'created by its owner');
  const running = { ...record, status: 'running' as const, started_at: 2, last_seq: 1 };
  t.same((await owner.commit(batch({ executions: [running], events: [chunk('t/x', 1, 1)] }))).failed, [], 'its owner updates it');
  const ended = { ...running, status: 'crashed' as const, reason: 'node_lost', ended_at: 3, last_seq: 2 };
  t.same((await taker.commit(batch({ executions: [ended], events: [chunk('t/x', 2, 1)] }))).failed, [], 'another instance ends it');
  const stale = await owner.commit(batch({ executions: [{ ...running, last_seq: 1 }] }));
  t.same(stale.failed.map((failure) => `${failure.kind} ${failure.error.code}`), ['execution STORE_FENCED'], "the owner's next write of it is fenced");
  t.same(await owner.getExecution('t/x'), ended, "the taker's end stands");
  t.same(await taker.listUnfinished({ sessionId: 's' }), [], 'and it is not listed unfinished again');
});

t.test('a session record claimed by another instance (a taker) cannot be overwritten by its writer (a stale owner)', async (t) => {
  const owner = await openStore(t, nats, 'session-fence');
  const taker = await openStore(t, nats, 'session-fence');
  const session: SessionRecord = { session_id: 's', tenant: 't', name: 'first', status: 'ready', created_at: 1, execution_count: 0 };
  t.same((await owner.commit(batch({ sessions: [session] }))).failed, [], 'created by its owner');
  t.same((await owner.commit(batch({ sessions: [{ ...session, name: 'renamed' }] }))).failed, [], 'and written again by it');
  const claimed = await taker.claimSession({ ...session, name: 'a stale copy' });
  t.equal(claimed.name, 'renamed', 'the taker claims the record as stored, not its own copy');
  const stale = await owner.commit(batch({ sessions: [{ ...session, name: 'stale' }] }));
  t.same(stale.failed.map((failure) => `${failure.kind} ${failure.error.code}`), ['session STORE_FENCED'], "the owner's next write is fenced");
  t.same((await taker.commit(batch({ sessions: [{ ...claimed, status: 'closed', closed_at: 2 }] }))).failed, [], 'the taker writes it');
  t.same((await owner.commit(batch({ sessions: [{ ...session, name: 'later' }] }))).failed.map((failure) => failure.error.code), ['STORE_FENCED'], 'and the owner stays fenced');
  t.same((await owner.listSessions({ tenant: 't' })).map((record) => [record.name, record.status]), [['renamed', 'closed']], "the taker's record stands");
  const other = await openStore(t, nats, 'session-fence');
  t.same((await other.commit(batch({ sessions: [{ ...session, name: 'unclaimed' }] }))).failed.map((failure) => failure.error.code), ['STORE_FENCED'], 'an instance that never claimed it cannot write it either');
});

t.test('ids with `.`, `:` and `/` in tenants, sessions and executions stay apart', async (t) => {
  const store = await openStore(t, nats, 'ids');
  const tenants = ['a', 'a.b', 'a:b', 'a/b', 'a.>', '*'];
  const sessions: SessionRecord[] = tenants.map((tenant, i) => ({ session_id: `${tenant}/s.${i}`, tenant, name: 'n', status: 'ready', created_at: 1, execution_count: 0 }) as SessionRecord);
  const records: ExecutionRecord[] = sessions.map((session, i) => ({
    execution_id: `${session.tenant}/x.${i}:1`, session_id: session.session_id, number: 1, kind: 'repl', status: 'running', created_at: 1, started_at: 1, last_seq: 0, timeout_ms: 1000, code: '1',
  }));
  t.same((await store.commit(batch({ sessions, executions: records, events: records.map((record) => chunk(record.execution_id, 1, 2)) }))).failed, [], 'all written');
  for (const [i, tenant] of tenants.entries()) {
    t.same((await store.listSessions({ tenant })).map((s) => s.session_id), [sessions[i]!.session_id], `tenant ${tenant}: its own session only`);
    t.same((await store.listExecutions(sessions[i]!.session_id, { limit: 10 })).map((r) => r.execution_id), [records[i]!.execution_id], `session ${sessions[i]!.session_id}: its own execution`);
    t.same((await store.listUnfinished({ sessionId: sessions[i]!.session_id })).map((r) => r.execution_id), [records[i]!.execution_id], `session ${sessions[i]!.session_id}: unfinished`);
    t.same(await readAll(store, records[i]!.execution_id), expected(records[i]!.execution_id, 2), `${records[i]!.execution_id}: its own events`);
  }
});

t.test('a record whose code passes what one NATS message holds', async (t) => {
  const store = await openStore(t, nats, 'large');
  // 1 MiB of code, with multi-byte characters across the parts' boundaries.
  const code = `// ${'é'.repeat(300_000)}\n${'x'.repeat(448_574)}`;
  const record: ExecutionRecord = { execution_id: 't/big.1', session_id: 's', number: 1, kind: 'repl', status: 'queued', created_at: 1, last_seq: 0, timeout_ms: 1000, code };
  t.same(await store.createExecution(record), { created: true, record }, 'created');
  t.same(await store.getExecution('t/big.1'), record, 'read back whole');
  t.same(await store.createExecution({ ...record, code: 'other' }), { created: false, record }, 'a second create gets it whole');
  const ended = { ...record, status: 'ok' as const, started_at: 2, ended_at: 3, last_seq: 2 };
  t.same((await store.commit(batch({ executions: [ended], events: [chunk('t/big.1', 1, 2)] }))).failed, [], 'committed again');
  t.same((await store.listExecutions('s', { limit: 5 }))[0], ended, 'listed whole');
  t.equal(await store.expireEndedBefore(10, 10), 1, 'expired');
  t.equal(await store.getExecution('t/big.1'), undefined, 'gone');
});

t.test('a trickling log (a chunk per event) reads whole and from any point', async (t) => {
  const store = await openStore(t, nats, 'trickle');
  const events = 1_500;
  // One event per commit, beside another log's two, as a slow execution beside a busy one.
  const failures: string[] = [];
  for (let seq = 1; seq <= events; seq++) {
    const { failed } = await store.commit(batch({ events: [chunk('slow', seq, 1), chunk('busy', 2 * seq - 1, 2)] }));
    failures.push(...failed.map((failure) => failure.error.message));
  }
  t.same(failures, [], 'every commit landed');
  t.same(await readAll(store, 'slow'), expected('slow', events), 'the whole log, each once, in order');
  for (const afterSeq of [0, 1, 700, 1023, 1024, 1025, 1400, 1499]) {
    const page = await store.readEvents('slow', afterSeq, 1_000);
    t.same(page.map((event) => event.seq), Array.from({ length: Math.min(1_000, events - afterSeq) }, (_, i) => afterSeq + 1 + i), `1 000 after ${afterSeq}`);
  }
  t.same(await store.readEvents('slow', events, 1_000), [], 'nothing past the end');
});

t.test('a deep read starts at the event asked for, at any depth and page boundary, whatever the chunking', async (t) => {
  const store = await openStore(t, nats, 'deep');
  const events = 10 * 1_024 + 300;
  // Chunks of uneven sizes (one event, a few, more than a page: split at page ends), beside a log
  // whose bursts put a varying number of messages between them, so that the stream seqs of a page's
  // chunks are not evenly spread.
  const sizes = [1, 1, 5, 64, 1, 300, 2, 1_500, 17, 1, 1, 700, 33];
  let other = 0;
  for (let seq = 1, n = 0; seq <= events; n++) {
    const size = Math.min(sizes[n % sizes.length]!, events - seq + 1);
    const burst = Array.from({ length: n % 4 }, (_, i) => chunk('beside', other + 1 + i, 1));
    other += burst.length;
    const { failed } = await store.commit(batch({ events: [chunk('deep', seq, size), ...burst] }));
    t.same(failed, [], `chunk from ${seq}`);
    seq += size;
  }
  const boundaries = [1, 2, 5, 10].flatMap((page) => [page * 1_024 - 1, page * 1_024, page * 1_024 + 1]);
  const inside = Array.from({ length: 40 }, (_, i) => Math.floor(((i + 0.5) * events) / 40));
  for (const afterSeq of [0, 1, 2, 6, 70, 71, ...boundaries, ...inside, events - 2, events - 1]) {
    const got = (await store.readEvents('deep', afterSeq, 3)).map((event) => `${event.seq}=${text.decode(event.frame)}`);
    t.same(got, expected('deep', events).slice(afterSeq, afterSeq + 3), `3 after ${afterSeq}`);
  }
  for (const afterSeq of [events, events + 1, 11 * 1_024, 20 * 1_024]) {
    t.same(await store.readEvents('deep', afterSeq, 3), [], `nothing after ${afterSeq} (past the end)`);
  }
  t.equal(await store.lastSeq('deep'), events, 'its end, read from the log');
  // Logs of many pages, a message a page: their ends are found by probing pages, not by a scan.
  for (const pages of [40, 300]) {
    const id = `long${pages}`;
    const failed: unknown[] = [];
    for (let page = 0; page < pages; page++) failed.push(...(await store.commit(batch({ events: [chunk(id, page * 1_024 + 1, page < pages - 1 ? 1_024 : 5)] }))).failed);
    t.same(failed, [], `${pages} pages written`);
    t.equal(await store.lastSeq(id), (pages - 1) * 1_024 + 5, `the end of ${pages} pages`);
    t.same((await store.readEvents(id, (pages - 1) * 1_024 - 2, 4)).map((event) => event.seq), [1, 2, 3, 4].map((i) => (pages - 1) * 1_024 - 2 + i), `read across its last page boundary`);
  }
});

t.test('retention follows the ended queue: a stale entry expires nothing', async (t) => {
  const store = await openStore(t, nats, 'expiry');
  const record = (endedAt: number): ExecutionRecord => ({ execution_id: 'r', session_id: 's', number: 1, kind: 'repl', status: 'ok', created_at: 1, started_at: 1, ended_at: endedAt, last_seq: 0, timeout_ms: 1000, code: '1' });
  await store.commit(batch({ executions: [record(100)] }));
  // Committed again with a later end (as a takeover might): its first entry no longer matches it.
  await store.commit(batch({ executions: [record(110)] }));
  t.equal(await store.expireEndedBefore(105, 10), 0, 'the stale entry expires nothing');
  t.ok(await store.getExecution('r'), 'the record that ended at 110 stays');
  t.equal(await store.expireEndedBefore(200, 10), 1, 'it goes when its own end passes the cutoff');
  t.equal(await store.expireEndedBefore(200, 10), 0, 'and the queue is empty');
});

t.test("another node's retention sweep empties this node's replay cache: a reused id is not served its old events", async (t) => {
  const sweeper = await openStore(t, nats, 'remote-expiry');
  const reader = new CachedEventStore(new JetStreamEventStore({ servers: [nats.url], prefix: 'remote-expiry' }), 1 << 20);
  t.teardown(() => reader.close());
  await reader.open();
  const record: ExecutionRecord = { execution_id: 'reused', session_id: 's', number: 1, kind: 'repl', status: 'queued', created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' };
  const run = async (writer: string) => {
    t.equal((await sweeper.createExecution(record)).created, true, `${writer}: created`);
    const ended = { ...record, status: 'ok' as const, started_at: 2, ended_at: 3, last_seq: 4 };
    t.same((await sweeper.commit(batch({ executions: [ended], events: [chunk('reused', 1, 4, writer)] }))).failed, [], `${writer}: run and ended`);
  };
  await run('first');
  t.same((await reader.readEvents('reused', 0, 10)).map((event) => text.decode(event.frame)), expected('first', 4).map((line) => line.slice(2)), 'read on the other node');
  t.ok(reader.cachedBytes > 0, 'and cached there');

  const told = new Promise<void>((resolve) => reader.onRemoteExpiry(resolve));
  t.equal(await sweeper.expireEndedBefore(10, 10), 1, 'swept by the first node');
  await told;
  t.equal(reader.cachedBytes, 0, 'the other node dropped what it had cached');
  t.same(await reader.readEvents('reused', 0, 10), [], 'and reads nothing for the deleted execution');
  await run('second');
  t.same((await reader.readEvents('reused', 0, 10)).map((event) => text.decode(event.frame)), expected('second', 4).map((line) => line.slice(2)), 'the id reused: its new events, not the old ones');
});

t.test('a chunk stored without its ack, resent after the dedupe window: recognised as the writer\'s own', async (t) => {
  // Acks given up on at once, so that some chunks are stored while their writer thinks they failed.
  const store = new JetStreamEventStore({ servers: [nats.url], prefix: 'lateack', ackTimeoutMs: 1, duplicateWindowMs: 100 });
  t.teardown(() => store.close());
  await store.open();
  let seq = 0;
  let unacked: EventChunk | undefined;
  while (!unacked) {
    const next = chunk('late', seq + 1, 2);
    const { failed } = await store.commit(batch({ events: [next] }));
    if (failed.length === 0) seq += 2;
    else unacked = next;
  }
  // Wait for the chunk to be stored (the ack was only given up on), then past the dedupe window.
  while ((await store.lastSeq('late')) < seq + 2) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 300));
  // With acks given up on after 1 ms, a commit may still time out: only a different answer counts.
  const answer = async (next: EventChunk) => {
    for (;;) {
      const codes = (await store.commit(batch({ events: [next] }))).failed.map((failure) => failure.error.code);
      if (!codes.includes('STORE_UNAVAILABLE')) return codes;
    }
  };
  t.same(await answer(unacked), [], 'the resend is taken as stored');
  t.same(await answer(chunk('late', seq + 3, 1)), [], 'and the log goes on');
  const stored = await store.readEvents('late', 0, 1_000);
  t.same(stored.map((event) => event.seq), Array.from({ length: seq + 3 }, (_, i) => i + 1), 'each seq once');
});

t.test('a read while nats-server does not answer fails with STORE_UNAVAILABLE (a catch-up reads again), not a raw NATS error (which ended it silently)', async (t) => {
  const own = await natsFor(t);
  const store = await openStore(t, own, 'down');
  await store.commit(batch({ events: [chunk('x', 1, 3)] }));
  await own.kill();
  const error = await store.readEvents('x', 0, 10).then(() => null, (caught: unknown) => caught);
  t.ok(error instanceof StoreError, `a StoreError: ${String(error)}`);
  t.equal((error as StoreError).code, 'STORE_UNAVAILABLE');
});
