/**
 * Unit bench of the commit path (src/events/commit-log.ts + EventStore.commit, LevelDB backend)
 * without workers, sockets or encoding: what the group commit costs per execution and per event.
 *
 *   node dist/bench/units/commit-path.js [--executions 20000] [--concurrency 128] [--events 200000] [--streams 16]
 *
 * Two parts:
 * - execute-shaped: waves of `concurrency` executions, each as the server makes them: its create
 *   reserved in the store (`reserveExecution`) and handed to the commit log (`create`), its run
 *   `running` in memory only; a turn later, as a sandbox's reply comes back, its `value` and `done`
 *   and the terminal record; each execute resolved once its create is durable. Then the same with
 *   runs that outlive the create's linger (a queued or slow run: create and end in two writes).
 *   Reported: executions/s and µs per execution, LevelDB writes and operations per execution
 *   (counted on classic-level's `batch`, which is every write the store makes).
 * - streaming: `streams` executions appending `events` events in all, as fast as the commit log
 *   takes them (each tick appends what one turn of output reading would: 256 per execution).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import type { ExecutionRecord } from '../../protocol/types.js';
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

/** One wave of executions through the commit path; `runMs` null: the run answers a turn later. */
async function wave(first: number, count: number, runMs: number | null): Promise<void> {
  const records = Array.from({ length: count }, (_, i) => record(`bench/x${first + i}`, first + i + 1));
  const reservations = await Promise.all(records.map((created) => store.reserveExecution(created)));
  const targets: Array<CommitTarget & { seq: number }> = [];
  const durable: Array<Promise<void>> = [];
  for (const [i, reservation] of reservations.entries()) {
    if (!reservation.created) throw new Error(`${records[i]!.execution_id} exists`);
    const target = { record: records[i]!, committedSeq: 0, seq: 0 };
    durable.push(log.create(target));
    target.record.status = 'running';
    target.record.started_at = Date.now();
    targets.push(target);
  }
  await (runMs === null ? new Promise((resolve) => setImmediate(resolve)) : new Promise((resolve) => setTimeout(resolve, runMs)));
  for (const target of targets) {
    log.appendEvent(target, ++target.seq, frame);
    log.appendEvent(target, ++target.seq, frame);
    target.record.status = 'ok';
    target.record.ended_at = Date.now();
    log.saveExecution(target);
  }
  await Promise.all(durable);
  await log.flushed();
}

async function executeShaped(label: string, first: number, count: number, runMs: number | null): Promise<void> {
  const writesBefore = writes;
  const operationsBefore = operations;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let done = 0; done < count; done += concurrency) await wave(first + done, Math.min(concurrency, count - done), runMs);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const perExecution = (n: number) => (n / count).toFixed(2);
  // CPU time (every thread of the process, LevelDB's included) is what a loaded machine does not blur.
  const cpuPerExecute = `${((cpu.user + cpu.system) / count).toFixed(1)} µs of CPU/execute`;
  const timing = runMs === null ? `${Math.round(count / seconds)} executions/s, ${((seconds * 1e6) / count).toFixed(1)} µs/execute, ${cpuPerExecute}` : `${runMs} ms per wave spent waiting, ${cpuPerExecute}`;
  console.log(`execute-shaped, ${label}: ${count} executions, ${concurrency} at a time: ${timing}`);
  console.log(`  LevelDB per execution: ${perExecution(writes - writesBefore)} writes, ${perExecution(operations - operationsBefore)} operations (ops/execute)`);
}

async function streaming(): Promise<void> {
  const targets: Array<CommitTarget & { seq: number }> = [];
  for (let i = 0; i < streams; i++) {
    const created = record(`bench/stream${i}`, 3 * executions + i + 1);
    await store.createExecution(created);
    targets.push({ record: created, committedSeq: 0, seq: 0 });
  }
  const writesBefore = writes;
  const operationsBefore = operations;
  const perTick = 256;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpu0);
  console.log(`streaming: ${streamEvents} events of ${frame.length} B over ${streams} executions: ${Math.round(streamEvents / seconds)} events/s, ${((cpu.user + cpu.system) / streamEvents).toFixed(2)} µs of CPU/event`);
  console.log(`  LevelDB: ${writes - writesBefore} writes, ${operations - operationsBefore} operations (${((operations - operationsBefore) / streamEvents * 1000).toFixed(1)} per 1 000 events)`);
}

try {
  await executeShaped('short runs', 0, executions, null);
  // Past CREATE_LINGER_MS (src/events/commit-log.ts): the create goes out before the run ends.
  await executeShaped('runs longer than the create\'s linger', executions, Math.min(executions, 10 * concurrency), 5);
  await streaming();
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
