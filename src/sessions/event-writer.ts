/**
 * Turns what an execution did into its seq-numbered events: each gets the next seq and its wire
 * frame, goes to the group commit, and counts against the execution's output limits. Past a limit
 * one marker is appended and the engine is told to stop the run; `done` is always appended last.
 */
import type { DonePayload, EventFrame, EventPayloads, EventType, ExecutionRecord, SessionState, TerminalStatus } from '../../protocol/types.js';
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import type { CommitLog } from '../events/commit-log.js';
import type { LiveExecution } from './live.js';

/** The largest seq an encoded frame's slot (a uint32) holds. */
const MAX_SLOT_SEQ = 0xffff_ffff;

export interface OutputLimits {
  maxEventsPerExecution: number;
  maxBytesPerExecution: number;
}

export interface WriterHooks {
  /** An execution passed an output limit: its run must be stopped (it ends as `output_limit`). */
  onLimit(execution: LiveExecution): void;
  /** An execution's `done` was appended; `events` is its last seq. */
  onEnd?(record: ExecutionRecord, events: number): void;
}

export class EventWriter {
  readonly #limits: OutputLimits;
  readonly #commits: CommitLog;
  readonly #hooks: WriterHooks;

  constructor(limits: OutputLimits, commits: CommitLog, hooks: WriterHooks) {
    this.#limits = limits;
    this.#commits = commits;
    this.#hooks = hooks;
  }

  /** Appends one event (seq, frame, group commit), unless the execution's output was cut. */
  emit<T extends EventType>(execution: LiveExecution, type: T, payload: EventPayloads[T], ts = Date.now()): void {
    if (execution.terminal || (execution.outputCut && type !== 'done')) return;
    const seq = execution.assignedSeq + 1;
    const frame = encodeFrame({ op: 'event', execution_id: execution.publicId, seq, type, ts, payload });
    if (type !== 'done' && this.#overLimit(execution, frame.length)) {
      this.#cutOutput(execution);
      return;
    }
    this.#append(execution, seq, frame);
    if (type === 'done') execution.terminal = true;
  }

  /**
   * Appends an event its sandbox already encoded (a console line: pool/console-frame.ts, checked
   * there to be this execution's): the seq is written into the frame's 4-byte slot at `seqAt`, and
   * these bytes are what is stored and sent, live and on replay alike.
   */
  emitEncoded(execution: LiveExecution, frame: Uint8Array, seqAt: number): void {
    if (execution.terminal || execution.outputCut) return;
    if (this.#overLimit(execution, frame.length)) {
      this.#cutOutput(execution);
      return;
    }
    const seq = execution.assignedSeq + 1;
    // Past what the slot holds (only with a limit set above 4 billion events): encoded the slow way.
    if (seq > MAX_SLOT_SEQ) return this.emit(execution, 'console', (decodeValue(frame) as EventFrame<'console'>).payload);
    writeSlot(frame, seqAt, seq);
    this.#append(execution, seq, frame);
  }

  /** Appends the terminal `done` and the record's final state. */
  finish(execution: LiveExecution, status: TerminalStatus, reason?: string, session?: SessionState): void {
    if (execution.terminal) return;
    execution.clearWatchdog();
    const { record } = execution;
    const endedAt = Date.now();
    const payload: DonePayload = { status, duration_ms: record.started_at === undefined ? 0 : endedAt - record.started_at };
    if (reason !== undefined) payload.reason = reason;
    if (session !== undefined) payload.session = session;
    this.emit(execution, 'done', payload, endedAt);
    record.status = status;
    record.ended_at = endedAt;
    if (reason !== undefined) record.reason = reason;
    this.#commits.saveExecution(execution);
    this.#hooks.onEnd?.(record, execution.assignedSeq);
  }

  #append(execution: LiveExecution, seq: number, frame: Uint8Array): void {
    execution.assignedSeq = seq;
    execution.outputBytes += frame.length;
    this.#commits.appendEvent(execution, seq, frame);
  }

  #overLimit(execution: LiveExecution, frameBytes: number): boolean {
    // Two seqs stay in reserve: the marker that says output was cut, and `done`.
    return execution.assignedSeq + 3 > this.#limits.maxEventsPerExecution
      || execution.outputBytes + frameBytes > this.#limits.maxBytesPerExecution;
  }

  /** Past a limit: one last console marker, then the run is stopped and ends as output_limit. */
  #cutOutput(execution: LiveExecution): void {
    execution.outputCut = true;
    const { maxEventsPerExecution: events, maxBytesPerExecution: bytes } = this.#limits;
    const text = `[vmstream] output limit reached (${events} events or ${bytes} bytes): the rest of this execution's output was cut`;
    const seq = execution.assignedSeq + 1;
    this.#append(execution, seq, encodeFrame({ op: 'event', execution_id: execution.publicId, seq, type: 'console', ts: Date.now(), payload: { level: 'warn', text } }));
    this.#hooks.onLimit(execution);
  }
}

/** Writes `seq` (big-endian uint32) into the slot at `at`: byte by byte, no DataView made per event. */
function writeSlot(frame: Uint8Array, at: number, seq: number): void {
  frame[at] = seq >>> 24;
  frame[at + 1] = (seq >>> 16) & 0xff;
  frame[at + 2] = (seq >>> 8) & 0xff;
  frame[at + 3] = seq & 0xff;
}
