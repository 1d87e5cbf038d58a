/**
 * The life of executions: a session's queue, running one execution at a time on the session's
 * worker, turning worker output into seq-numbered events, the watchdog that stops runs (asking the
 * worker first, terminating it when it cannot hear), and rebuilding sessions whose worker was lost.
 */
import type { Config } from '../config.js';
import type { EventPayloads, EventType, ExecutionRecord, TerminalStatus } from '../../protocol/types.js';
import { encodeFrame } from '../protocol/codec.js';
import { CONSOLE_LEVELS, ItemKind, type FromWorker, type OutputItem } from '../pool/messages.js';
import type { ReplayInput } from '../sandbox/sandbox.js';
import { WorkerPool } from '../pool/worker-pool.js';
import type { EventStore } from '../store/event-store.js';
import { CommitLog, type BatchObserver, type CommittedChunk } from '../events/commit-log.js';
import { LiveExecution, LiveSession } from './live.js';
import { SubscriptionHub } from '../events/subscription-hub.js';
import type { Workspace } from './workspace.js';

export interface EngineHooks {
  onError(context: string, error: unknown): void;
  onExecutionEnd?(execution: LiveExecution): void;
  /** A worker died (and is being replaced): `reason` says why. */
  onWorkerExit?(slot: number, reason: string): void;
  onCommit?: BatchObserver;
}

type SessionState = 'kept' | 'rebuilt';

/** Frames waiting for LevelDB past which worker output is left in the rings (and workers wait). */
const OUTPUT_BACKLOG_BYTES = 8 * 1024 * 1024;

export class Engine {
  readonly sessions = new Map<string, LiveSession>();
  readonly executions = new Map<string, LiveExecution>();
  readonly commits: CommitLog;
  readonly hub: SubscriptionHub;
  readonly pool: WorkerPool;
  readonly #config: Config;
  readonly #store: EventStore;
  readonly #workspace: Workspace;
  readonly #hooks: EngineHooks;

  constructor(config: Config, store: EventStore, workspace: Workspace, hooks: EngineHooks) {
    this.#config = config;
    this.#store = store;
    this.#workspace = workspace;
    this.#hooks = hooks;
    this.hub = new SubscriptionHub(store, { committedSeq: (id) => this.#committedSeq(id) }, (error) => hooks.onError('replay', error));
    this.commits = new CommitLog(store, (chunks) => this.#onCommitted(chunks), (error) => hooks.onError('commit', error), hooks.onCommit);
    this.pool = new WorkerPool(
      { size: config.workers, heapMb: config.workerHeapMb, limits: { maxText: config.maxTextChars, maxPreview: config.maxPreviewChars } },
      {
        onOutput: (_slot, item) => this.#onOutput(item),
        acceptingOutput: () => this.commits.backlogBytes < OUTPUT_BACKLOG_BYTES,
        onMessage: (slot, message) => this.#onWorkerMessage(slot, message),
        onWorkerExit: (slot, reason, terminated) => this.#onWorkerExit(slot, reason, terminated),
      },
    );
  }

  /** Queues a created (and durable) execution and starts it when its session is free. */
  enqueue(session: LiveSession, execution: LiveExecution): void {
    this.executions.set(execution.record.execution_id, execution);
    session.queue.push(execution);
    this.pump(session);
  }

  /** Starts the next step of a session: its rebuild if it needs one, else its next execution. */
  pump(session: LiveSession): void {
    if (session.running || session.restoring) return;
    if (session.needsRestore) {
      if (session.queue.length > 0) void this.#restore(session);
      return;
    }
    const execution = session.queue.shift();
    if (!execution) return;
    session.running = execution;
    const { record } = execution;
    record.status = 'running';
    record.started_at = Date.now();
    this.commits.saveExecution(execution);
    if (session.announcement) {
      this.emit(execution, session.announcement.type, session.announcement.payload as never);
      session.announcement = null;
    }
    execution.watchdog = setTimeout(() => this.stop(execution, 'timeout', 'timeout'), record.timeout_ms);
    this.pool.send(session.slot, {
      t: 'run',
      sid: session.record.session_id,
      xid: record.execution_id,
      kind: record.kind,
      code: execution.source,
      filename: filenameOf(record),
    });
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

  #append(execution: LiveExecution, seq: number, frame: Uint8Array): void {
    execution.assignedSeq = seq;
    execution.outputBytes += frame.length;
    this.commits.appendEvent(execution, seq, frame);
  }

  #overLimit(execution: LiveExecution, frameBytes: number): boolean {
    // Two seqs stay in reserve: the marker that says output was cut, and `done`.
    return execution.assignedSeq + 3 > this.#config.maxEventsPerExecution
      || execution.outputBytes + frameBytes > this.#config.maxBytesPerExecution;
  }

  /** Past a limit: one last console marker, then the run is stopped and ends as output_limit. */
  #cutOutput(execution: LiveExecution): void {
    execution.outputCut = true;
    const { maxEventsPerExecution: events, maxBytesPerExecution: bytes } = this.#config;
    const text = `[vmstream] output limit reached (${events} events or ${bytes} bytes): the rest of this execution's output was cut`;
    const seq = execution.assignedSeq + 1;
    this.#append(execution, seq, encodeFrame({ op: 'event', execution_id: execution.publicId, seq, type: 'console', ts: Date.now(), payload: { level: 'warn', text } }));
    this.stop(execution, 'error', 'output_limit');
  }

  /**
   * Stops a queued or running execution. A queued one ends at once. A running one: the worker is
   * asked to stop it; if it has not within the grace period (a synchronous loop cannot even hear
   * the request), the worker is terminated and its sessions are rebuilt.
   */
  stop(execution: LiveExecution, status: TerminalStatus, reason: string): void {
    if (execution.terminal || execution.stopping) return;
    const session = this.sessions.get(execution.record.session_id)!;
    const queued = session.queue.indexOf(execution);
    if (queued >= 0) {
      session.queue.splice(queued, 1);
      this.finish(execution, status, reason);
      return;
    }
    execution.clearWatchdog();
    execution.stopping = { status, reason };
    this.pool.send(session.slot, { t: 'abort', xid: execution.record.execution_id, status: status === 'timeout' ? 'timeout' : status === 'cancelled' ? 'cancelled' : 'error' });
    execution.watchdog = setTimeout(() => this.pool.terminate(session.slot, reason), this.#config.stopGraceMs);
  }

  /** Appends the terminal `done` and the record's final state. */
  finish(execution: LiveExecution, status: TerminalStatus, reason?: string, sessionState?: SessionState): void {
    if (execution.terminal) return;
    execution.clearWatchdog();
    const { record } = execution;
    const endedAt = Date.now();
    const payload: EventPayloads['done'] = { status, duration_ms: record.started_at === undefined ? 0 : endedAt - record.started_at };
    if (reason !== undefined) payload.reason = reason;
    if (sessionState !== undefined) (payload as EventPayloads['done'] & { session: SessionState }).session = sessionState;
    this.emit(execution, 'done', payload, endedAt);
    record.status = status;
    record.ended_at = endedAt;
    if (reason !== undefined) record.reason = reason;
    this.commits.saveExecution(execution);
    this.#hooks.onExecutionEnd?.(execution);
  }

  #committedSeq(executionId: string): number | undefined {
    const execution = this.executions.get(executionId);
    return execution ? execution.committedSeq : undefined;
  }

  #onCommitted(chunks: CommittedChunk[]): void {
    this.hub.deliver(chunks);
    this.pool.resumeOutput();
    for (const chunk of chunks) {
      const execution = this.executions.get(chunk.executionId);
      if (execution?.terminal && execution.committedSeq === execution.assignedSeq) {
        this.hub.finish(chunk.executionId, execution.committedSeq);
        this.executions.delete(chunk.executionId);
        execution.markEnded();
      }
    }
  }

  #onWorkerMessage(slot: number, message: Exclude<FromWorker, { t: 'out' }>): void {
    this.#onRestored(slot, message.sid, message.ok, message.replayed, message.reason);
  }

  #onOutput([xid, kind, ts, a, b, c]: OutputItem): void {
    const execution = this.executions.get(xid);
    if (!execution) return;
    execution.workerOutput = true;
    switch (kind) {
      case ItemKind.Console:
        this.emit(execution, 'console', { level: CONSOLE_LEVELS[a as number] ?? 'log', text: b as string, ...(c ? { truncated: true } : {}) }, ts);
        break;
      case ItemKind.Value:
        this.emit(execution, 'value', { type: a as string, preview: b as string }, ts);
        break;
      case ItemKind.Exception:
        this.emit(execution, 'exception', { name: a as string, message: b as string, stack: c as string }, ts);
        break;
      case ItemKind.Done:
        this.#onRunDone(execution, a as TerminalStatus);
        break;
    }
  }

  /** The worker finished a run: the session is free again. */
  #onRunDone(execution: LiveExecution, workerStatus: TerminalStatus): void {
    const session = this.sessions.get(execution.record.session_id);
    if (execution.stopping) this.finish(execution, execution.stopping.status, execution.stopping.reason, session?.closed ? undefined : 'kept');
    else this.finish(execution, workerStatus);
    if (session && session.running === execution) {
      session.running = null;
      this.pump(session);
    }
  }

  #onWorkerExit(slot: number, reason: string, terminated: boolean): void {
    this.#hooks.onWorkerExit?.(slot, reason);
    for (const session of this.sessions.values()) {
      if (session.slot !== slot) continue;
      const execution = session.running;
      session.running = null;
      if (execution) {
        // A run we stopped ends as we said; the others on the worker were collateral of that stop,
        // or of the crash itself.
        if (execution.stopping) {
          this.finish(execution, execution.stopping.status, execution.stopping.reason, sessionStateAfterLoss(session));
        } else if (terminated && !execution.workerOutput && !session.closed) {
          // Collateral of stopping another session's run, and nothing of it was seen: its context
          // is rebuilt anyway, so it runs again from the start, as if it had waited in the queue.
          this.#requeue(session, execution);
        } else {
          this.finish(execution, 'crashed', terminated ? 'worker_restarted' : reason, sessionStateAfterLoss(session));
        }
      }
      if (session.closed) continue;
      if (session.restoring) {
        // Not retried: a rebuild that killed its worker once would kill the next one too.
        this.#restoreFailed(session, `the worker exited during the rebuild (${reason})`);
        this.pool.send(slot, { t: 'open', sid: session.record.session_id });
      } else {
        session.needsRestore = true;
      }
      this.pump(session);
    }
  }

  #requeue(session: LiveSession, execution: LiveExecution): void {
    execution.clearWatchdog();
    execution.record.status = 'queued';
    delete execution.record.started_at;
    session.queue.unshift(execution);
    this.commits.saveExecution(execution);
  }

  async #restore(session: LiveSession): Promise<void> {
    session.restoring = true;
    const sid = session.record.session_id;
    let inputs: ReplayInput[];
    try {
      inputs = await this.#replayInputs(sid);
    } catch (error) {
      this.pool.send(session.slot, { t: 'open', sid });
      this.#restoreFailed(session, `its inputs could not be read: ${(error as Error).message}`);
      this.pump(session);
      return;
    }
    session.restoreTimer = setTimeout(() => this.pool.terminate(session.slot, 'restore_timeout'), this.#config.restoreTimeoutMs);
    this.pool.send(session.slot, { t: 'restore', sid, inputs });
  }

  async #replayInputs(sessionId: string): Promise<ReplayInput[]> {
    const records = await this.#store.listExecutions(sessionId, { limit: Number.MAX_SAFE_INTEGER, order: 'oldest' });
    const inputs: ReplayInput[] = [];
    for (const record of records) {
      // Inputs that ran to their end, with or without an exception: what they changed before
      // throwing is part of the session's state, as in any REPL. Stopped or crashed ones are not
      // re-run: they would only be stopped again.
      if (record.status !== 'ok' && record.status !== 'error') continue;
      if (record.reason === 'output_limit') continue;
      const code = record.kind === 'repl' ? record.code! : await this.#workspace.read(record.path!);
      inputs.push({ kind: record.kind, code, filename: filenameOf(record), ended: record.status });
    }
    return inputs;
  }

  #onRestored(slot: number, sid: string, ok: boolean, replayed: number, reason?: string): void {
    const session = this.sessions.get(sid);
    if (!session || session.slot !== slot || !session.restoring) return;
    if (ok) {
      this.#endRestore(session);
      session.announcement = { type: 'session.restored', payload: { session_id: sid, replayed } };
    } else {
      this.#restoreFailed(session, reason ?? 'an input failed');
    }
    this.pump(session);
  }

  #restoreFailed(session: LiveSession, reason: string): void {
    this.#endRestore(session);
    session.announcement = { type: 'session.lost', payload: { session_id: session.record.session_id, reason } };
  }

  #endRestore(session: LiveSession): void {
    if (session.restoreTimer) clearTimeout(session.restoreTimer);
    session.restoreTimer = null;
    session.restoring = false;
    session.needsRestore = false;
  }
}

/** The name stack traces show for an execution's code: the filename it was given, else REPL<n> as Node's REPL does; or the file's path. */
function filenameOf(record: ExecutionRecord): string {
  return record.kind === 'repl' ? record.filename ?? `REPL${record.number}` : record.path!;
}

/** What a `done` says of the session's state after its worker was lost: a closed one has none. */
function sessionStateAfterLoss(session: LiveSession): SessionState | undefined {
  return session.closed ? undefined : 'rebuilt';
}
