/**
 * In-memory state of sessions and executions that are still doing something. Stored records are
 * the truth after a restart; these hold what only a running server knows (queues, timers, seqs not
 * yet durable).
 */
import type { EventType, ExecutionRecord, SessionRecord, TerminalStatus } from '../../protocol/types.js';
import type { CommitTarget } from '../events/commit-log.js';

export class LiveExecution implements CommitTarget {
  readonly record: ExecutionRecord;
  /** The execution_id its tenant knows it by; `record.execution_id` is `<tenant>/<that>` (see service.ts). */
  readonly publicId: string;
  /** The source to run: the repl input, or the file as it was read when the execution was created. */
  readonly source: string;
  committedSeq = 0;
  /** Last seq handed to an event (durable or not). */
  assignedSeq = 0;
  outputBytes = 0;
  /** Set once the worker reported anything of this run (output or its end). */
  workerOutput = false;
  /** Set once an output limit was passed: only `done` is appended after the marker. */
  outputCut = false;
  /** Set once `done` has been appended: nothing more is appended after it. */
  terminal = false;
  /** Set when the server decided to stop the run (timeout, cancel, output limit) and waits for the worker. */
  stopping: { status: TerminalStatus; reason: string } | null = null;
  watchdog: NodeJS.Timeout | null = null;
  /** Resolves once `done` is durable. */
  readonly ended: Promise<void>;
  readonly markEnded: () => void;

  constructor(record: ExecutionRecord, source: string) {
    this.record = record;
    this.publicId = publicExecutionId(record.execution_id);
    this.source = source;
    let resolve!: () => void;
    this.ended = new Promise((r) => (resolve = r));
    this.markEnded = resolve;
  }

  clearWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }
}

export interface Announcement { type: Extract<EventType, 'session.restored' | 'session.lost'>; payload: Record<string, unknown> }

export class LiveSession {
  readonly record: SessionRecord;
  readonly queue: LiveExecution[] = [];
  /** The execution whose code the worker is running; the session runs nothing else until it is free. */
  running: LiveExecution | null = null;
  /** The context is gone (worker lost, server restarted) and must be rebuilt before the next run. */
  needsRestore: boolean;
  restoring = false;
  restoreTimer: NodeJS.Timeout | null = null;
  /** When the rebuild's progress was last said (`session.restoring`), to say it at most once a second. */
  restoreShownAt = 0;
  /** Said on the next execution of the session: how the last rebuild went. */
  announcement: Announcement | null = null;
  /** The sandbox holds a context for it (from `open` until `close`, which waits for a run to end). */
  hosted = false;

  constructor(record: SessionRecord, needsRestore: boolean) {
    this.record = record;
    this.needsRestore = needsRestore;
  }

  get closed(): boolean {
    return this.record.status === 'closed';
  }
}

/**
 * Execution ids are stored as `<tenant>/<execution_id>`: a client-chosen id of one tenant can never
 * collide with, or reveal, another tenant's (`/` is outside the protocol's id alphabet).
 */
export function storedExecutionId(tenant: string, executionId: string): string {
  return `${tenant}/${executionId}`;
}

export function publicExecutionId(storedId: string): string {
  return storedId.slice(storedId.indexOf('/') + 1);
}

export function tenantOfExecution(storedId: string): string {
  return storedId.slice(0, storedId.indexOf('/'));
}
