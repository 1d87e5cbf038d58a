/**
 * Ends an execution whose owner is gone (a crashed process, a lost node): its log gets exactly one
 * `done {status: "crashed", reason}` and its record the same end. Not through the group commit:
 * the execution is not live here, and the one write that matters is conditional.
 *
 * Exactly one `done`, even with a stale owner still writing: the log's end is read, and `done` is
 * appended only where the log ends; on a store that fences, an append that does not continue the
 * log as stored (someone appended meanwhile) is refused, and the end is read again. A log that
 * already ends with a `done` (its owner wrote it but not the record) keeps it: only the record is
 * written, with that `done`'s status and reason.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import type { DonePayload, ExecutionRecord } from '../../protocol/types.js';
import { StoreError, type EventStore } from '../store/event-store.js';
import { isDone } from '../events/live-feed.js';
import { publicExecutionId } from './live.js';

/** A store that does not answer is asked again after this (NATS restarting); a takeover must not give up. */
const RETRY_MS = 250;

/** The record as ended: durable, its log closed by exactly one `done` (this one's, or an earlier one). */
export async function endOrphan(store: EventStore, record: ExecutionRecord, reason: string): Promise<ExecutionRecord> {
  const id = record.execution_id;
  for (;;) {
    const lastSeq = await retrying(() => store.lastSeq(id));
    const [last] = lastSeq === 0 ? [] : await retrying(() => store.readEvents(id, lastSeq - 1, 1));
    if (last && isDone(last.frame)) {
      const done = (decodeValue(last.frame) as { payload: DonePayload; ts: number }).payload;
      return write(store, ended(record, lastSeq, done.status, done.reason, record.ended_at ?? Date.now()));
    }
    const endedAt = Date.now();
    const payload: DonePayload = { status: 'crashed', duration_ms: record.started_at === undefined ? 0 : endedAt - record.started_at, reason };
    const frame = encodeFrame({ op: 'event', execution_id: publicExecutionId(id), seq: lastSeq + 1, type: 'done', ts: endedAt, payload });
    const { failed } = await store.commit({ sessions: [], executions: [], events: [{ executionId: id, firstSeq: lastSeq + 1, frames: [frame] }] });
    const failure = failed[0]?.error;
    if (!failure) return write(store, ended(record, lastSeq + 1, 'crashed', reason, endedAt));
    // Fenced: another writer appended after what was read. Unavailable: try again. Either way, read the end again.
    if (failure.code === 'STORE_UNAVAILABLE') await pause();
    else if (failure.code !== 'STORE_FENCED') throw failure;
  }
}

function ended(record: ExecutionRecord, lastSeq: number, status: ExecutionRecord['status'], reason: string | undefined, endedAt: number): ExecutionRecord {
  const out: ExecutionRecord = { ...record, status, last_seq: lastSeq, ended_at: endedAt };
  if (reason === undefined) delete out.reason;
  else out.reason = reason;
  return out;
}

async function write(store: EventStore, record: ExecutionRecord): Promise<ExecutionRecord> {
  for (;;) {
    const [failure] = (await store.commit({ sessions: [], executions: [record], events: [] })).failed;
    if (!failure) return record;
    if (failure.error.code !== 'STORE_UNAVAILABLE') throw failure.error;
    await pause();
  }
}

async function retrying<T>(read: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof StoreError) || error.code !== 'STORE_UNAVAILABLE') throw error;
      await pause();
    }
  }
}

const pause = () => new Promise((resolve) => setTimeout(resolve, RETRY_MS));
