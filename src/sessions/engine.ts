/**
 * The life of sessions and executions in this process: each session's queue, running one execution
 * at a time in the session's sandbox context; the watchdog that stops runs (asking the sandbox
 * first, killing the host when it cannot hear); what happens when a host is lost; and the way to
 * an execution's events (the group commit behind them, the subscription hub in front).
 *
 * Who owns what: the service (service.ts) decides whether a request may happen (tenant, validation,
 * idempotent execution ids, quotas, shutdown); the engine owns the live state and does it. Events
 * and output limits are event-writer.ts's, session rebuilds restore.ts's. The engine reaches user
 * code only through the Sandbox it is given (sandbox/sandbox.ts) and is its listener.
 */
import type { Config } from '../config.js';
import type { ExecutionKind, ExecutionRecord, SessionRecord, SessionState, TerminalStatus } from '../../protocol/types.js';
import type { Completion, RestoreResult, Sandbox, SandboxFactory, SandboxOutput } from '../sandbox/sandbox.js';
import { StoreError, type CreateResult, type EventStore, type StoredEvent } from '../store/event-store.js';
import { CommitLog, type BatchObserver, type CommittedChunk } from '../events/commit-log.js';
import { FollowingFeed } from '../events/following-feed.js';
import { LocalFeed, type LiveFeed, type LogState } from '../events/live-feed.js';
import { SubscriptionHub, type EventSink } from '../events/subscription-hub.js';
import { EventWriter } from './event-writer.js';
import { LiveExecution, LiveSession, tenantOfExecution } from './live.js';
import { endOrphan } from './orphans.js';
import { filenameOf, SessionRebuilder } from './restore.js';
import type { Workspace } from './workspace.js';

export interface EngineHooks {
  onError(context: string, error: unknown): void;
  /** An execution's `done` was appended; `events` is its last seq. */
  onExecutionEnd?(record: ExecutionRecord, events: number): void;
  /** A sandbox host died (and is being replaced), taking the contexts of `sessions` sessions. */
  onHostLost?(reason: string, sessions: number): void;
  onCommit?: BatchObserver;
  /** The store fenced off a write of this session's (on a cluster: another node may own it now). */
  onFenced?(sessionId: string): void;
}

/** A new execution, as the service checked it; the engine numbers and queues it. */
export interface NewExecution {
  executionId: string;
  sessionId: string;
  kind: ExecutionKind;
  /** The input as the tenant gave it (`code` for repl, `path` for run-file)… */
  code?: string;
  path?: string;
  /** The name stack traces give repl code, when the client named it. */
  filename?: string;
  /** …and the source to run (the file as read now, for run-file). */
  source: string;
  timeoutMs: number;
  /** The service made the id up for this request (protocol/ids.ts, 89 random bits): no other create of it can exist. */
  fresh?: boolean;
}

/** What /readyz and /metrics read of the engine. */
export interface EngineStats {
  liveExecutions: number;
  openSessions: number;
  eventsAppended: number;
  replayReads: number;
  /** Bytes held by the frames kept in memory for subscribers that fell behind (events/recent-frames.ts). */
  catchUpKeptBytes: number;
  backpressurePauses: number;
  sandbox: { online: number; size: number; restarts: number };
  /** The group commit's health: failed item writes so far, items waiting for a retry, stalled (failing repeatedly). */
  store: { failures: number; waiting: number; stalled: boolean };
}

/**
 * Frames waiting for the store past which sandbox output is left where it is (and hosts wait). It
 * counts frame bytes; what they keep alive is somewhat more: a pipe record's frame is a view of its
 * run's copy (pool/pipe-frames.ts's RecordRun), which holds the records' pipe headers too and lives
 * until the last of its frames is written.
 */
const OUTPUT_BACKLOG_BYTES = 8 * 1024 * 1024;

export class Engine {
  readonly #sessions = new Map<string, LiveSession>();
  readonly #executions = new Map<string, LiveExecution>();
  readonly #config: Config;
  readonly #store: EventStore;
  readonly #hooks: EngineHooks;
  readonly #commits: CommitLog;
  readonly #hub: SubscriptionHub;
  readonly #feed: LiveFeed;
  readonly #events: EventWriter;
  readonly #sandbox: Sandbox;
  readonly #rebuild: SessionRebuilder;
  #shuttingDown = false;
  /** Disowned sessions whose run was still going: closed when it ends, its host killed if it does not (see `disown`). */
  readonly #disowned = new Map<string, { sessionId: string; timer: NodeJS.Timeout }>();
  /** Executions whose writes were fenced off (another writer has their log): see `#release`. */
  readonly #fenced = new Set<string>();
  /** Sessions whose record the store refused as fenced (another node writes it now): see `#saveSession`. */
  readonly #fencedSessions = new Set<string>();
  /** Set while this node may have been declared dead (see `suspend`). */
  #suspended = false;

  constructor(config: Config, store: EventStore, workspace: Workspace, sandbox: SandboxFactory, hooks: EngineHooks) {
    this.#config = config;
    this.#store = store;
    this.#hooks = hooks;
    const live = (id: string) => this.#executions.get(id)?.committedSeq;
    // A store other nodes write to may hold executions running elsewhere: they are followed.
    const feed = store.supports.follow
      ? new FollowingFeed(store, live, () => this.#hub, (error) => hooks.onError('remote tail (retrying)', error))
      : new LocalFeed(store, live);
    this.#feed = feed;
    this.#hub = new SubscriptionHub(store, feed, (error) => hooks.onError('replay', error));
    this.#commits = new CommitLog(store, {
      onCommitted: (chunks) => this.#onCommitted(chunks),
      onRetry: (error) => hooks.onError('commit (retrying)', error),
      onDropped: (id, error) => this.#onDropped(id, error),
      // Output held back (acceptingOutput: the backlog, a flood's first lines) is read again, once
      // this write's frames are on the sockets (transport/outbox.ts writes them in the check phase
      // after the commit's callback): a sandbox hands over what it buffered while paused at once,
      // and that chunk's processing (~1 000 events) went ahead of a run's first line. Two
      // immediates: a new execution's reply, which its first frames follow, is queued a few
      // microtasks after the commit's callback, behind a single one.
      onWritten: () => setImmediate(() => setImmediate(() => this.#sandbox.resumeOutput())),
      onSessionDropped: (sessionId, error) => {
        hooks.onError(`commit of session ${sessionId} (dropped)`, error);
        if (error.code !== 'STORE_FENCED') return;
        this.#fencedSessions.add(sessionId);
        hooks.onFenced?.(sessionId);
      },
      ...(hooks.onCommit ? { onBatch: hooks.onCommit } : {}),
      // A tenant's runs share its sandbox process: a flood's first lines hold back that reader only.
      groupOf: tenantOfExecution,
    });
    this.#events = new EventWriter(config, this.#commits, {
      onLimit: (execution) => this.#stop(execution, 'error', 'output_limit'),
      onEnd: (record, events) => this.#onEnd(record, events),
    });
    this.#sandbox = sandbox({
      onOutput: (output) => this.#onOutput(output),
      // Not while a flooding run's first lines wait for their commit (commit-log.ts's firstLinesWaiting):
      // the tenant's, when the sandbox says whose output it is reading, else anyone's.
      acceptingOutput: (tenant) => !this.#suspended && !this.#commits.firstLinesWaiting(tenant) && this.#commits.backlogBytes < OUTPUT_BACKLOG_BYTES,
      onRestored: (sessionId, result) => this.#onRestored(sessionId, result),
      onRestoreProgress: (sessionId, replayed, inputs) => {
        const session = this.#sessions.get(sessionId);
        if (session) this.#rebuild.onProgress(session, replayed, inputs);
      },
      onLost: (sessionIds, reason, killed) => this.#onLost(sessionIds, reason, killed),
    });
    this.#rebuild = new SessionRebuilder({
      store,
      workspace,
      sandbox: this.#sandbox,
      timeoutMs: config.restoreTimeoutMs,
      next: (session) => this.#pump(session),
      // Said in the execution that waits for the rebuild (the queue's head): it is what a client watches.
      progress: (session, payload) => {
        const waiting = session.queue[0];
        if (waiting) this.#events.emit(waiting, 'session.restoring', payload);
      },
    });
  }

  /**
   * After a restart: every execution the previous process left queued or running gets its terminal
   * `done {status: "crashed"}`, and open sessions come back, to be rebuilt on their next execution.
   * `owned`: only these sessions (and their executions), not everything in the store.
   */
  async recover(owned?: SessionRecord[], reason = 'server_restart'): Promise<{ crashed: number; sessions: number }> {
    // A node of a cluster recovers only the sessions it owns (ExecutionService.recover); the others' are theirs.
    const unfinished = owned
      ? (await Promise.all(owned.map((record) => this.#store.listUnfinished({ sessionId: record.session_id })))).flat()
      : await this.#store.listUnfinished({});
    // The sessions are back before their orphans are ended: on a cluster, requests for them arrive
    // as soon as this node owns them (the orphans were listed first, so a new execution is not one).
    // Claimed: their records as stored now, and a node that wrote them before (a lost owner) is fenced off.
    const records = await Promise.all((owned ?? (await this.#store.listSessions({}))).map((record) => this.#store.claimSession(record)));
    // The session record may lag its executions (submit does not wait for it): the counter
    // resumes after the newest number the store has indexed, so no number is given twice.
    await Promise.all(records.filter((record) => record.status !== 'closed').map(async (record) => {
      const [newest] = await this.#store.listExecutions(record.session_id, { limit: 1, order: 'newest' });
      record.execution_count = Math.max(record.execution_count, newest?.number ?? 0);
    }));
    let open = 0;
    for (const record of records) {
      const closed = record.status === 'closed';
      const session = new LiveSession(record, !closed);
      this.#sessions.set(record.session_id, session);
      if (closed) continue;
      this.#host(session);
      open++;
    }
    await Promise.all(unfinished.map(async (record) => {
      const ended = await endOrphan(this.#store, record, reason);
      this.#hooks.onExecutionEnd?.(ended, ended.last_seq);
    }));
    return { crashed: unfinished.length, sessions: open };
  }

  /**
   * Another node took these sessions over (this one was paused or cut off past its lease): they are
   * dropped here without another write (the taker ends their executions; anything written here now
   * would be fenced), their runs are stopped, and their subscribers here follow the log instead.
   */
  disown(sessionIds: string[]): void {
    for (const sessionId of sessionIds) {
      const session = this.#sessions.get(sessionId);
      if (!session) continue;
      this.#sessions.delete(sessionId);
      this.#fencedSessions.delete(sessionId);
      this.#rebuild.abandon(session);
      const running = session.running;
      for (const execution of [...session.queue, ...(running ? [running] : [])]) {
        const id = execution.record.execution_id;
        execution.clearWatchdog();
        execution.terminal = true;
        this.#commits.discard(id);
        this.#fenced.delete(id);
        this.#executions.delete(id);
        execution.markEnded();
        this.#hub.relocate(id);
      }
      if (!running) {
        this.#unhost(session);
        continue;
      }
      // As for any stop: asked first, its host killed when it cannot hear; its context closed once it has ended.
      const executionId = running.record.execution_id;
      this.#sandbox.abort(sessionId, executionId, 'cancelled');
      this.#disowned.set(executionId, { sessionId, timer: setTimeout(() => this.#sandbox.kill(sessionId, 'node_lost'), this.#config.stopGraceMs) });
    }
    // Output held back for a discarded run's first commit (acceptingOutput) is read again.
    this.#sandbox.resumeOutput();
  }

  /** A disowned session's run is over (it ended, or its host is gone): its context goes. */
  #closeDisowned(executionId: string): void {
    const disowned = this.#disowned.get(executionId);
    if (!disowned) return;
    clearTimeout(disowned.timer);
    this.#disowned.delete(executionId);
    this.#sandbox.close(disowned.sessionId);
  }

  /**
   * While this node's own heartbeat is overdue (it may be declared dead and its sessions taken), it
   * starts no runs and takes no output from its sandbox, so that it produces no more events; the
   * output waits in the hosts until the heartbeat is current again.
   */
  suspend(suspended: boolean): void {
    if (this.#suspended === suspended) return;
    this.#suspended = suspended;
    if (suspended) return;
    this.#sandbox.resumeOutput();
    for (const session of this.#sessions.values()) this.#pump(session);
  }

  /** A new session, with an empty context; resolves once its record is durable. */
  async openSession(record: SessionRecord): Promise<void> {
    const session = new LiveSession(record, false);
    this.#sessions.set(record.session_id, session);
    this.#host(session);
    await this.#saveSession(record);
  }

  /** Closes a session: its queued and running executions are cancelled, its context is dropped. */
  async closeSession(sessionId: string): Promise<SessionRecord | undefined> {
    const session = this.#sessions.get(sessionId);
    if (!session || session.closed) return session?.record;
    session.record.status = 'closed';
    session.record.closed_at = Date.now();
    const pending = [...session.queue, ...(session.running ? [session.running] : [])];
    for (const execution of pending) this.#stop(execution, 'cancelled', 'session_closed');
    // A run being stopped keeps its context until it ends, so that its host can still be killed.
    if (!session.running) this.#unhost(session);
    await this.#saveSession(session.record);
    return session.record;
  }

  /** Renames a session; resolves once its record is durable. */
  async renameSession(sessionId: string, name: string): Promise<SessionRecord | undefined> {
    const session = this.#sessions.get(sessionId);
    if (!session) return undefined;
    session.record.name = name;
    await this.#saveSession(session.record);
    return session.record;
  }

  /**
   * Gives an open session a fresh, empty context under the same id (a Jupyter kernel restart): what
   * runs or waits is cancelled first, and the inputs run so far are no longer replayed when the
   * context is rebuilt later (`replay_from`, durable before this resolves).
   */
  async resetSession(sessionId: string): Promise<SessionRecord | undefined> {
    const session = this.#sessions.get(sessionId);
    if (!session) return undefined;
    // Loops because an execution submitted while the others were stopping may have started since.
    while (!session.closed && (session.running || session.queue.length > 0)) {
      const pending = [...session.queue, ...(session.running ? [session.running] : [])];
      for (const execution of pending) this.#stop(execution, 'cancelled', 'session_reset');
      await Promise.all(pending.map((execution) => execution.ended));
    }
    if (session.closed) return session.record;
    session.record.replay_from = session.record.execution_count + 1;
    this.#rebuild.abandon(session);
    session.needsRestore = false;
    session.announcement = null;
    this.#unhost(session);
    this.#host(session);
    await this.#saveSession(session.record);
    return session.record;
  }

  /**
   * Makes a session's record durable; rejects with STORE_FENCED when the store refused it because
   * another node writes it now (this one lost the session): what was asked did not happen here.
   */
  async #saveSession(record: SessionRecord): Promise<void> {
    this.#commits.saveSession(record);
    await this.#commits.flushed();
    if (this.#fencedSessions.delete(record.session_id)) {
      throw new StoreError('STORE_FENCED', `the record of session ${record.session_id} is written by another node now`);
    }
  }

  /** The session's live record (open or closed), if this process knows it. */
  session(sessionId: string): SessionRecord | undefined {
    return this.#sessions.get(sessionId)?.record;
  }

  #openSessionCount(): number {
    let open = 0;
    for (const session of this.#sessions.values()) if (!session.closed) open++;
    return open;
  }

  /** The tenant's open sessions, in no particular order. */
  openSessions(tenant: string): SessionRecord[] {
    const open: SessionRecord[] = [];
    for (const session of this.#sessions.values()) if (!session.closed && session.record.tenant === tenant) open.push(session.record);
    return open;
  }

  /**
   * The tenant's token was revoked: what waits in its sessions' queues is cancelled, so that ending
   * its sandbox process (server.ts, next) does not start them in a new one. What runs ends with it.
   */
  revokeTenant(tenant: string): void {
    for (const session of this.#sessions.values()) {
      if (session.record.tenant !== tenant) continue;
      for (const execution of [...session.queue]) this.#stop(execution, 'cancelled', 'tenant_revoked');
    }
  }

  /** How many executions wait in the session's queue (not counting a running one). */
  queued(sessionId: string): number {
    return this.#sessions.get(sessionId)?.queue.length ?? 0;
  }

  /**
   * Numbers a new execution in its (open) session, creates its record (a conditional create: when
   * the id exists, here or on another node, that record is returned with `created: false` and
   * nothing runs) and queues it; `sink`, when given, is subscribed from seq 1 before the code can
   * run, its frames held until `release`. Resolves once the record is durable.
   */
  async submit(input: NewExecution, sink?: EventSink): Promise<CreateResult> {
    const session = this.#sessions.get(input.sessionId)!;
    const record: ExecutionRecord = {
      execution_id: input.executionId,
      session_id: input.sessionId,
      number: ++session.record.execution_count,
      kind: input.kind,
      status: 'queued',
      created_at: Date.now(),
      last_seq: 0,
      timeout_ms: input.timeoutMs,
      ...(input.kind === 'repl' ? { code: input.code!, ...(input.filename === undefined ? {} : { filename: input.filename }) } : { path: input.path! }),
    };
    // Decided before the code can run; written by the store now, or by the commit log with the run's
    // first events (never after them). The session's counter is not written: recover reads it back
    // from the session's index.
    const { created, record: winner, written } = await this.#store.reserveExecution(record, { fresh: input.fresh === true });
    if (!created) {
      // Another create of this id won: its number is given back unless a later one was taken.
      if (session.record.execution_count === record.number) session.record.execution_count--;
      return { created, record: winner };
    }
    const execution = new LiveExecution(record, input.source);
    const durable = written ? undefined : this.#commits.create(execution);
    if (sink) this.#hub.hold(sink, record.execution_id);
    this.#executions.set(record.execution_id, execution);
    if (session.closed || this.#shuttingDown) {
      // Closed, or shutting down, while the record was written: it ends as a queued one would.
      this.#events.finish(execution, 'cancelled', session.closed ? 'session_closed' : 'shutdown');
    } else {
      session.queue.push(execution);
      this.#pump(session);
    }
    // What the reply promises: the record is durable (the run has started meanwhile).
    await durable;
    return { created, record };
  }

  /** The live record of an execution still doing something here (ahead of its stored copy). */
  execution(executionId: string): ExecutionRecord | undefined {
    return this.#executions.get(executionId)?.record;
  }

  /** Where an execution's log stands (live here, or ended; see LiveFeed); null when there is no such execution. */
  locate(executionId: string): Promise<LogState | null> {
    return this.#hub.locate(executionId);
  }

  /** Cancels a queued or running execution; resolves once its `done` is durable (undefined: not live). */
  async cancel(executionId: string): Promise<ExecutionRecord | undefined> {
    const execution = this.#executions.get(executionId);
    if (!execution) return undefined;
    this.#stop(execution, 'cancelled', 'cancelled');
    await execution.ended;
    return execution.record;
  }

  complete(sessionId: string, code: string, cursor: number): Promise<Completion> {
    return this.#sandbox.complete(sessionId, code, cursor);
  }

  /** Subscribes `sink` to an execution's events with seq > afterSeq (finalSeq: its `done`, when it has ended). */
  attach(sink: EventSink, executionId: string, afterSeq: number, finalSeq: number | null): void {
    this.#hub.attach(sink, executionId, afterSeq, finalSeq);
  }

  /** Subscribes `sink` from seq 1, its frames held until `release`: the socket of an execution created on another node. */
  hold(sink: EventSink, executionId: string): void {
    this.#hub.hold(sink, executionId);
  }

  /** Lets the frames held for a new execution's sink go (see `submit`). */
  release(sink: EventSink, executionId: string): void {
    this.#hub.release(sink, executionId);
  }

  detach(sink: EventSink, executionId: string): void {
    this.#hub.detach(sink, executionId);
  }

  /** The sink is gone: all its subscriptions end. */
  detachAll(sink: EventSink): void {
    this.#hub.detachAll(sink);
  }

  /** The sink drained: its paused subscriptions catch up (resolves once they have stopped). */
  resume(sink: EventSink): Promise<void> {
    return this.#hub.resume(sink);
  }

  /** A page of stored events with seq > afterSeq, without subscribing. */
  read(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.#hub.read(executionId, afterSeq, limit);
  }

  stats(): EngineStats {
    const { online, size, restarts } = this.#sandbox;
    return {
      liveExecutions: this.#executions.size,
      openSessions: this.#openSessionCount(),
      eventsAppended: this.#commits.appended,
      replayReads: this.#hub.reads,
      catchUpKeptBytes: this.#hub.keptBytes,
      backpressurePauses: this.#hub.pauses,
      sandbox: { online, size, restarts },
      store: { failures: this.#commits.failures, waiting: this.#commits.waiting, stalled: this.#commits.stalled },
    };
  }

  /**
   * Cancels what is queued, gives running executions `graceMs` to end, marks the rest crashed,
   * makes everything durable and ends the sandbox.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#shuttingDown = true;
    const running: LiveExecution[] = [];
    for (const session of this.#sessions.values()) {
      for (const execution of [...session.queue]) this.#stop(execution, 'cancelled', 'shutdown');
      if (session.running) running.push(session.running);
    }
    const allEnded = Promise.all(running.map((execution) => execution.ended));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([allEnded, graceOver]);
    clearTimeout(timer);
    for (const execution of running) this.#events.finish(execution, 'crashed', 'shutdown');
    await this.#commits.flushed();
    this.#feed.close?.();
    await this.#sandbox.shutdown();
  }

  #host(session: LiveSession): void {
    this.#sandbox.open({ sessionId: session.record.session_id, tenant: session.record.tenant });
    session.hosted = true;
  }

  #unhost(session: LiveSession): void {
    if (!session.hosted) return;
    session.hosted = false;
    this.#sandbox.close(session.record.session_id);
  }

  /** Starts the next step of a session: its rebuild if it needs one, else its next execution. */
  #pump(session: LiveSession): void {
    if (session.running || session.restoring || this.#suspended) return;
    if (session.needsRestore) {
      if (session.queue.length > 0) void this.#rebuild.start(session);
      return;
    }
    const execution = session.queue.shift();
    if (!execution) return;
    session.running = execution;
    const { record } = execution;
    // Not written: after a crash an unfinished record ends `crashed` whatever its status said.
    record.status = 'running';
    record.started_at = Date.now();
    if (session.announcement) {
      const { type, payload } = session.announcement;
      this.#events.emit(execution, type, payload as never);
      session.announcement = null;
    }
    execution.watchdog = setTimeout(() => this.#stop(execution, 'timeout', 'timeout'), record.timeout_ms);
    this.#sandbox.run({ sessionId: record.session_id, executionId: record.execution_id, kind: record.kind, code: execution.source, filename: filenameOf(record) });
  }

  /**
   * Stops a queued or running execution. A queued one ends at once. A running one: the sandbox is
   * asked to stop it; if it has not within the grace period (a synchronous loop cannot even hear
   * the request), the host is killed and its sessions are rebuilt.
   */
  #stop(execution: LiveExecution, status: TerminalStatus, reason: string): void {
    if (execution.terminal || execution.stopping) return;
    const session = this.#sessions.get(execution.record.session_id)!;
    const queued = session.queue.indexOf(execution);
    if (queued >= 0) {
      session.queue.splice(queued, 1);
      this.#events.finish(execution, status, reason);
      return;
    }
    execution.clearWatchdog();
    execution.stopping = { status, reason };
    const sessionId = execution.record.session_id;
    this.#sandbox.abort(sessionId, execution.record.execution_id, status === 'timeout' ? 'timeout' : status === 'cancelled' ? 'cancelled' : 'error');
    execution.watchdog = setTimeout(() => this.#sandbox.kill(sessionId, reason), this.#config.stopGraceMs);
  }

  #onCommitted(chunks: CommittedChunk[]): void {
    this.#hub.deliver(chunks);
    for (const chunk of chunks) {
      const execution = this.#executions.get(chunk.executionId);
      if (execution?.terminal && execution.committedSeq === execution.assignedSeq) {
        this.#hub.finish(chunk.executionId, execution.committedSeq);
        this.#executions.delete(chunk.executionId);
        execution.markEnded();
      }
    }
  }

  #onEnd(record: ExecutionRecord, events: number): void {
    this.#hooks.onExecutionEnd?.(record, events);
    const execution = this.#executions.get(record.execution_id);
    if (execution && this.#commits.isDropped(record.execution_id)) this.#release(execution);
  }

  /**
   * The store refused an execution's writes for good: nothing more of it will be stored. Its run is
   * stopped; once it has ended (at once if it was queued), its subscribers end at what was stored.
   * Until then it stays live, so the sandbox's end of the run frees the session as usual.
   */
  #onDropped(executionId: string, error: StoreError): void {
    this.#hooks.onError(`commit of ${executionId} (dropped)`, error);
    const execution = this.#executions.get(executionId);
    if (!execution) return;
    if (error.code === 'STORE_FENCED') {
      // Another writer owns the log now (this node lost the session, on a cluster): its log goes on there.
      this.#fenced.add(executionId);
      this.#hooks.onFenced?.(execution.record.session_id);
    }
    if (execution.terminal) this.#release(execution);
    else this.#stop(execution, 'crashed', 'store_refused');
  }

  /**
   * An execution the store refused the rest of: ends its waiters here, and its subscriptions where
   * the log ends, as `refused` (their clients are told: no `done` will come, and none is made up, as
   * it was not stored), or, when another node writes the log on (fenced, and the store can follow
   * it), lets them follow it there. A `done` that was stored (only its record, written beside it,
   * was refused) ends them `complete`: its clients have their `done`, and an error after it would
   * contradict it.
   */
  #release(execution: LiveExecution): void {
    const id = execution.record.execution_id;
    this.#executions.delete(id);
    const doneStored = execution.terminal && execution.committedSeq === execution.assignedSeq;
    if (this.#fenced.delete(id) && this.#store.supports.follow) this.#hub.relocate(id);
    else this.#hub.finish(id, execution.committedSeq, doneStored ? 'complete' : 'refused');
    execution.markEnded();
  }

  #onOutput(output: SandboxOutput): void {
    const execution = this.#executions.get(output.executionId);
    if (!execution) {
      if (output.kind === 'done') this.#closeDisowned(output.executionId);
      return;
    }
    execution.workerOutput = true;
    switch (output.kind) {
      case 'console':
        return this.#events.emit(execution, 'console', output.payload, output.ts);
      case 'encoded':
        return this.#events.emitEncoded(execution, output.frame, output.seqAt);
      case 'value':
        return this.#events.emit(execution, 'value', output.payload, output.ts);
      case 'exception':
        return this.#events.emit(execution, 'exception', output.payload, output.ts);
      case 'done':
        return this.#onRunDone(execution, output.status);
    }
  }

  /** The sandbox finished a run: the session is free again. */
  #onRunDone(execution: LiveExecution, status: TerminalStatus): void {
    const session = this.#sessions.get(execution.record.session_id);
    if (execution.stopping) this.#events.finish(execution, execution.stopping.status, execution.stopping.reason, session?.closed ? undefined : 'kept');
    else this.#events.finish(execution, status);
    if (session && session.running === execution) {
      session.running = null;
      if (session.closed) this.#unhost(session);
      this.#pump(session);
    }
  }

  #onRestored(sessionId: string, result: RestoreResult): void {
    const session = this.#sessions.get(sessionId);
    if (session) this.#rebuild.onRestored(session, result);
  }

  #onLost(sessionIds: string[], reason: string, killed: boolean): void {
    this.#hooks.onHostLost?.(reason, sessionIds.length);
    for (const [executionId, { sessionId }] of this.#disowned) if (sessionIds.includes(sessionId)) this.#closeDisowned(executionId);
    for (const sessionId of sessionIds) {
      const session = this.#sessions.get(sessionId);
      if (!session) continue;
      const execution = session.running;
      session.running = null;
      if (execution) this.#endLostRun(session, execution, reason, killed);
      if (session.closed) {
        this.#unhost(session);
        continue;
      }
      // Not retried: a rebuild that killed its host once would kill the next one too.
      if (session.restoring) this.#rebuild.failed(session, `the worker exited during the rebuild (${reason})`);
      else session.needsRestore = true;
      this.#pump(session);
    }
  }

  /** A run whose context was lost with its host. */
  #endLostRun(session: LiveSession, execution: LiveExecution, reason: string, killed: boolean): void {
    const state: SessionState | undefined = session.closed ? undefined : 'rebuilt';
    // A run we stopped ends as we said; the others on the host were collateral of that stop, or of
    // the crash itself.
    if (execution.stopping) {
      this.#events.finish(execution, execution.stopping.status, execution.stopping.reason, state);
    } else if (killed && !execution.workerOutput && !session.closed) {
      // Collateral of stopping another session's run, and nothing of it was seen: its context is
      // rebuilt anyway, so it runs again from the start, as if it had waited in the queue.
      execution.clearWatchdog();
      execution.record.status = 'queued';
      delete execution.record.started_at;
      session.queue.unshift(execution);
    } else {
      this.#events.finish(execution, 'crashed', killed ? 'worker_restarted' : reason, state);
    }
  }
}
