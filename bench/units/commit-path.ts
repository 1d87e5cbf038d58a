/**
 * Unit bench of the commit path (src/events/commit-log.ts + EventStore.commit, LevelDB backend)
 * without workers, sockets or encoding: what the group commit costs per execution and per event.
 *
 *   node dist/bench/units/commit-path.js [--executions 20000] [--concurrency 128] [--events 200000] [--streams 16]
 *
 * Two parts:
 * - execute-shaped: waves of `concurrency` executions, each as the server makes them: its record
 *   created (`createExecution`), the session's count saved; then running, two events (console,
 *   value), and its `done` with the terminal record. Reported: executions/s, LevelDB writes and
 *   operations per execution (counted on classic-level's `batch`, which is every write the store makes).
 * - streaming: `streams` executions appending `events` events in all, as fast as the commit log
 *   takes them (each tick appends what one turn of output reading would: 256 per execution).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import { CommitLog, type CommitTarget } from '../../src/events/commit-log.js';
import { LevelEventStore } from '../../src/store/level-store.js';
import { encodeFrame } from '../../protocol/codec.js';
import { eventFrame } from '../harness/frames.js';

const { values } = parseArgs({
  options: {
    executions: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '128' },
    events: { type: 'string', default: '200000' },
    streams: { type: 'string', default: '16' },
  },
});
const executions = Number(values.executions);
const concurrency = Number(values.concurrency);
const streamEvents = Number(values.events);
const streams = Number(values.streams);

// Every store write goes through classic-level's batch(): counting there counts LevelDB's work.
let writes = 0;
let operations = 0;
type BatchFn = (this: unknown, ops: unknown[], ...rest: unknown[]) => Promise<void>;
const proto = ClassicLevel.prototype as unknown as { batch: BatchFn };
const batch = proto.batch;
proto.batch = function (this: unknown, ops: unknown[], ...rest: unknown[]) {
  if (Array.isArray(ops)) {
    writes++;
    operations += ops.length;
  }
  return batch.call(this, ops, ...rest);
};

const frame = encodeFrame(eventFrame(1, Date.now()));
const dir = mkdtempSync(join(tmpdir(), 'vmstream-commit-bench-'));
const store = new LevelEventStore(join(dir, 'events'));
await store.open();
const log = new CommitLog(store, {
  onCommitted: () => {},
  onRetry: (error) => { throw error; },
  onDropped: (_id, error) => { throw error; },
});

function record(id: string, number: number): ExecutionRecord {
  return { execution_id: id, session_id: 's', number, kind: 'repl', status: 'queued', created_at: Date.now(), last_seq: 0, timeout_ms: 30_000, code: '1 + 1' };
}

async function executeShaped(): Promise<void> {
  const session: SessionRecord = { session_id: 's', tenant: 'bench', name: '', status: 'ready', created_at: Date.now(), execution_count: 0 };
  const writesBefore = writes;
  const operationsBefore = operations;
  const t0 = performance.now();
  for (let done = 0; done < executions; done += concurrency) {
    const wave = Array.from({ length: Math.min(concurrency, executions - done) }, (_, i) => record(`bench/x${done + i}`, done + i + 1));
    await Promise.all(wave.map(async (created) => {
      await store.createExecution(created);
      session.execution_count++;
      log.saveSession(session);
      await log.flushed();
    }));
    const targets: Array<CommitTarget & { seq: number }> = wave.map((created) => ({ record: created, committedSeq: 0, seq: 0 }));
    for (const target of targets) {
      target.record.status = 'running';
      target.record.started_at = Date.now();
      log.saveExecution(target);
      log.appendEvent(target, ++target.seq, frame);
      log.appendEvent(target, ++target.seq, frame);
    }
    // The run's end arrives a turn later, as a worker's `done` does.
    await new Promise((resolve) => setImmediate(resolve));
    for (const target of targets) {
      log.appendEvent(target, ++target.seq, frame);
      target.record.status = 'ok';
      target.record.ended_at = Date.now();
      log.saveExecution(target);
    }
    await log.flushed();
  }
  const seconds = (performance.now() - t0) / 1000;
  const perExecution = (n: number) => (n / executions).toFixed(2);
  console.log(`execute-shaped: ${executions} executions, ${concurrency} at a time: ${Math.round(executions / seconds)} executions/s, ${Math.round((3 * executions) / seconds)} events/s`);
  console.log(`  LevelDB per execution: ${perExecution(writes - writesBefore)} writes, ${perExecution(operations - operationsBefore)} operations`);
}

async function streaming(): Promise<void> {
  const targets: Array<CommitTarget & { seq: number }> = [];
  for (let i = 0; i < streams; i++) {
    const created = record(`bench/stream${i}`, executions + i + 1);
    await store.createExecution(created);
    targets.push({ record: created, committedSeq: 0, seq: 0 });
  }
  const writesBefore = writes;
  const operationsBefore = operations;
  const perTick = 256;
  const t0 = performance.now();
  let appended = 0;
  while (appended < streamEvents) {
    for (const target of targets) {
      for (let i = 0; i < perTick && appended < streamEvents; i++, appended++) log.appendEvent(target, ++target.seq, frame);
    }
    // Appending stops while a write is in flight and the backlog is large, as the pool's does.
    if (log.backlogBytes > 8 * 1024 * 1024) await log.flushed();
    else await new Promise((resolve) => setImmediate(resolve));
  }
  await log.flushed();
  const seconds = (performance.now() - t0) / 1000;
  console.log(`streaming: ${streamEvents} events of ${frame.length} B over ${streams} executions: ${Math.round(streamEvents / seconds)} events/s`);
  console.log(`  LevelDB: ${writes - writesBefore} writes, ${operations - operationsBefore} operations (${((operations - operationsBefore) / streamEvents * 1000).toFixed(1)} per 1 000 events)`);
}

try {
  await executeShaped();
  await streaming();
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
