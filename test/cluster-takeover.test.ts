/**
 * The pieces of a takeover, in process: who is preferred to take a session (rendezvous hashing),
 * and how an orphaned execution is ended (sessions/orphans.ts) with exactly one `done`, on a store
 * that fences (the memory store), including when a stale owner appends between the taker's read
 * of the log's end and its append, and when the log already ends with the owner's own `done`.
 */
import t from 'tap';
import { encodeFrame, decodeValue } from '../protocol/codec.js';
import type { ExecutionRecord } from '../protocol/types.js';
import { preferredTaker } from '../src/cluster/takeover.js';
import { endOrphan } from '../src/sessions/orphans.js';
import { MemoryEventStore } from './helpers/memory-store.js';

t.test('preferredTaker: one answer per session, spread over the nodes, stable when another node goes', async (t) => {
  const nodes = ['node-0', 'node-1', 'node-2'];
  const sessions = Array.from({ length: 300 }, (_, i) => `session-${i}`);
  const picks = sessions.map((session) => preferredTaker(session, nodes)!);
  t.same(sessions.map((session) => preferredTaker(session, [...nodes].reverse())), picks, 'the order nodes are listed in does not matter');
  for (const node of nodes) {
    const share = picks.filter((pick) => pick === node).length;
    t.ok(share > 60 && share < 140, `${node} is preferred for a fair share (${share} of 300)`);
  }
  const without = sessions.map((session) => preferredTaker(session, ['node-0', 'node-2'])!);
  t.ok(sessions.every((_, i) => picks[i] === 'node-1' || without[i] === picks[i]), "a node's going moves only the sessions it was preferred for");
  t.equal(preferredTaker('s', []), undefined, 'no live node: nobody');
});

const record: ExecutionRecord = { execution_id: 't/x', session_id: 's', number: 1, kind: 'repl', status: 'running', created_at: 1, started_at: 2, last_seq: 1, timeout_ms: 1000, code: '1' };
const event = (seq: number, type = 'console', payload: object = { level: 'log', text: `line ${seq}` }) => encodeFrame({ op: 'event', execution_id: 'x', seq, type, ts: seq, payload });
const events = (from: number, count: number) => Array.from({ length: count }, (_, i) => event(from + i));
const types = async (store: MemoryEventStore) => (await store.readEvents('t/x', 0, 100)).map((stored) => `${stored.seq}:${(decodeValue(stored.frame) as { type: string }).type}`);

/** A taker's store over the same location, where the stale owner appends right after the first read of the log's end. */
class RacingStore extends MemoryEventStore {
  #stale: MemoryEventStore | null;
  constructor(location: MemoryEventStore['location'], stale: MemoryEventStore) {
    super(location);
    this.#stale = stale;
  }
  override async lastSeq(id: string): Promise<number> {
    const seq = await super.lastSeq(id);
    const stale = this.#stale;
    this.#stale = null;
    await stale?.commit({ sessions: [], executions: [], events: [{ executionId: id, firstSeq: seq + 1, frames: events(seq + 1, 2) }] });
    return seq;
  }
}

async function storeWith(count: number): Promise<MemoryEventStore> {
  const store = new MemoryEventStore();
  await store.open();
  await store.commit({ sessions: [], executions: [record], events: [{ executionId: 't/x', firstSeq: 1, frames: events(1, count) }] });
  return store;
}

t.test('endOrphan: appends one done where the log ends, and ends the record', async (t) => {
  const store = await storeWith(3);
  const ended = await endOrphan(store, record, 'node_lost');
  t.same(await types(store), ['1:console', '2:console', '3:console', '4:done'], 'one done, after the last stored event');
  t.same([ended.status, ended.reason, ended.last_seq], ['crashed', 'node_lost', 4], 'the record as ended');
  t.same(await store.getExecution('t/x'), ended, 'stored');
  t.same(await store.listUnfinished({}), [], 'no longer unfinished');
});

t.test('endOrphan: a stale owner appending meanwhile is fenced out, not doubled', async (t) => {
  const store = await storeWith(3);
  const stale = new MemoryEventStore(store.location);
  await stale.open();
  const racing = new RacingStore(store.location, stale);
  await racing.open();
  const ended = await endOrphan(racing, record, 'node_lost');
  t.same(await types(store), ['1:console', '2:console', '3:console', '4:console', '5:console', '6:done'], "the taker's done goes after the stale owner's events, once");
  t.equal(ended.last_seq, 6, 'the record counts it');
  const late = await stale.commit({ sessions: [], executions: [], events: [{ executionId: 't/x', firstSeq: 6, frames: events(6, 3) }] });
  t.same(late.failed.map((failure) => failure.error.code), ['STORE_FENCED'], "and the stale owner's next append is refused");
});

t.test('endOrphan: a log that already ends with its owner\'s done keeps it', async (t) => {
  const store = await storeWith(2);
  await store.commit({ sessions: [], executions: [], events: [{ executionId: 't/x', firstSeq: 3, frames: [event(3, 'done', { status: 'ok', duration_ms: 5 })] }] });
  const ended = await endOrphan(store, record, 'node_lost');
  t.same(await types(store), ['1:console', '2:console', '3:done'], 'no second done');
  t.same([ended.status, ended.reason, ended.last_seq], ['ok', undefined, 3], "the record says what that done says");
});
