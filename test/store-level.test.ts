import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { ExecutionRecord } from '../protocol/types.js';
import { LevelEventStore } from '../src/store/level-store.js';
import { runStoreSuite } from './store/suite.js';

// Each store gets its own LevelDB folder under one temporary root, removed when the file ends.
const root = mkdtempSync(path.join(os.tmpdir(), 'vmstream-store-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let stores = 0;

runStoreSuite(t, 'LevelEventStore', async () => new LevelEventStore(path.join(root, `db-${++stores}`)));

t.test('LevelDB entries per execution: three for a short run, six for one that outlives its create', async (t) => {
  // Every write of the store is a classic-level batch: its operations are what an execute costs.
  const written: string[][] = [];
  const proto = ClassicLevel.prototype as unknown as { batch: (ops: unknown, ...rest: unknown[]) => Promise<void> };
  const batch = proto.batch;
  proto.batch = function (this: unknown, ops: unknown, ...rest: unknown[]) {
    if (Array.isArray(ops)) written.push(ops.map((op: { type: string; key: string }) => `${op.type} ${op.key.slice(0, 2)}`));
    return batch.call(this, ops, ...rest);
  };
  t.teardown(() => void (proto.batch = batch));
  const store = new LevelEventStore(path.join(root, `db-${++stores}`));
  await store.open();
  t.teardown(() => store.close());
  const record = (id: string): ExecutionRecord => ({ execution_id: id, session_id: 's', number: 1, kind: 'repl', status: 'running', created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' });
  const frames = (id: string) => [1, 2].map((seq) => new TextEncoder().encode(`${id}#${seq}`));

  const short = record('short');
  t.ok((await store.reserveExecution(short)).created);
  await store.commit({ sessions: [], creates: [{ ...short, status: 'ok', ended_at: 2, last_seq: 2 }], executions: [], events: [{ executionId: 'short', firstSeq: 1, frames: frames('short') }] });
  t.same(written, [['put x!', 'put i!', 'put t!']], 'a short run: its record holding its events, its index entry, its retention entry');
  t.same((await store.readEvents('short', 0, 10)).map((event) => event.seq), [1, 2], 'its events read back');

  written.length = 0;
  const long = record('long');
  await store.reserveExecution(long);
  await store.commit({ sessions: [], creates: [long], executions: [], events: [] });
  await store.commit({ sessions: [], executions: [{ ...long, status: 'ok', ended_at: 2, last_seq: 2 }], events: [{ executionId: 'long', firstSeq: 1, frames: frames('long') }] });
  t.same(written, [['put x!', 'put i!', 'put a!'], ['put x!', 'del a!', 'put t!']], 'a longer run: created, then ended');
});
