/**
 * The operations of protocol v1, independent of the transport: the socket and the HTTP API both
 * call these with validated arguments and turn the ProtocolErrors they throw into frames.
 */
import { randomUUID } from 'node:crypto';
import { ProtocolError } from '../../protocol/errors.js';
import { LIST_LIMIT_DEFAULT } from '../../protocol/schemas.js';
import type { ExecuteRequest, ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import type { Config } from '../config.js';
import type { EventStore, StoredEvent } from '../store/event-store.js';
import { Engine, type EngineHooks } from './engine.js';
import { LiveExecution, LiveSession, publicExecutionId, storedExecutionId } from './live.js';
import type { EventSink } from '../events/subscription-hub.js';
import { Workspace } from './workspace.js';

export type ExecuteInput = Omit<ExecuteRequest, 'op' | 'id'>;

export interface ExecuteResult {
  record: ExecutionRecord;
  /** False when the execution_id was already known: nothing new runs. */
  created: boolean;
}

export interface SubscribeResult {
  lastSeq: number;
  /** Seq of `done` when the execution has ended, null while it runs. */
  finalSeq: number | null;
}

export class ExecutionService {
  readonly engine: Engine;
  readonly #config: Config;
  readonly #store: EventStore;
  readonly #workspace: Workspace;
  readonly #creating = new Map<string, Promise<ExecuteResult>>();
  #shuttingDown = false;

  constructor(config: Config, store: EventStore, hooks: EngineHooks) {
    this.#config = config;
    this.#store = store;
    this.#workspace = new Workspace(config.workspaceDir, config.maxRunFileBytes);
    this.engine = new Engine(config, store, this.#workspace, hooks);
  }

  /** False once shutdown has begun: for readiness. */
  get accepting(): boolean {
    return !this.#shuttingDown;
  }

  /**
   * After a restart: every execution the previous process left queued or running gets its terminal
   * `done {status: "crashed"}`, and open sessions come back, to be rebuilt on their next execution.
   */
  async recover(): Promise<{ crashed: number; sessions: number }> {
    const unfinished = await this.#store.listUnfinishedExecutions();
    for (const record of unfinished) {
      const execution = new LiveExecution(record, '');
      execution.committedSeq = execution.assignedSeq = record.last_seq;
      this.engine.executions.set(record.execution_id, execution);
      this.engine.finish(execution, 'crashed', 'server_restart');
    }
    await this.engine.commits.flushed();
    let open = 0;
    for (const record of await this.#store.listSessions()) {
      const closed = record.status === 'closed';
      const session = new LiveSession(record, closed ? -1 : this.engine.pool.place(), !closed);
      this.engine.sessions.set(record.session_id, session);
      if (!closed) open++;
    }
    return { crashed: unfinished.length, sessions: open };
  }

  async createSession(tenant: string, name?: string): Promise<SessionRecord> {
    this.#assertAccepting();
    if (this.listSessions(tenant).length >= this.#config.maxOpenSessions) {
      throw new ProtocolError('LIMIT_EXCEEDED', `${this.#config.maxOpenSessions} sessions are open (the limit): close one first`);
    }
    const record: SessionRecord = { session_id: randomUUID(), tenant, name: name ?? '', status: 'ready', created_at: Date.now(), execution_count: 0 };
    const session = new LiveSession(record, this.engine.pool.place(), false);
    this.engine.sessions.set(record.session_id, session);
    this.engine.pool.send(session.slot, { t: 'open', sid: record.session_id });
    this.engine.commits.saveSession(record);
    await this.engine.commits.flushed();
    return record;
  }

  listSessions(tenant: string): SessionRecord[] {
    const open: SessionRecord[] = [];
    for (const session of this.engine.sessions.values()) if (!session.closed && session.record.tenant === tenant) open.push(session.record);
    return open.sort((a, b) => b.created_at - a.created_at);
  }

  getSession(tenant: string, sessionId: string): SessionRecord {
    return this.#ownSession(tenant, sessionId).record;
  }

  /** Closes a session: its queued and running executions are cancelled, its context is dropped. */
  async closeSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    const session = this.#ownSession(tenant, sessionId);
    if (session.closed) return session.record;
    session.record.status = 'closed';
    session.record.closed_at = Date.now();
    const pending = [...session.queue, ...(session.running ? [session.running] : [])];
    for (const execution of pending) this.engine.stop(execution, 'cancelled', 'session_closed');
    this.engine.pool.send(session.slot, { t: 'close', sid: sessionId });
    this.engine.pool.release(session.slot);
    this.engine.commits.saveSession(session.record);
    await this.engine.commits.flushed();
    return session.record;
  }

  /**
   * Creates and queues an execution, or returns the existing one when its execution_id is known.
   * `sink`, when given, is subscribed to a new execution from seq 1 before the code can run, its
   * frames held until `release` (after the reply went out); for an existing one, it is subscribed
   * from seq 1 at once.
   */
  async execute(tenant: string, input: ExecuteInput, sink?: EventSink): Promise<ExecuteResult> {
    if (input.execution_id === undefined) {
      return { record: publicRecord(await this.#create(tenant, input, storedExecutionId(tenant, randomUUID()), sink)), created: true };
    }
    const id = storedExecutionId(tenant, input.execution_id);
    const inFlight = this.#creating.get(id);
    if (inFlight) return { record: (await inFlight).record, created: false };
    const creating = this.#findOrCreate(tenant, input, id, sink);
    this.#creating.set(id, creating);
    try {
      return await creating;
    } finally {
      this.#creating.delete(id);
    }
  }

  async getExecution(tenant: string, executionId: string): Promise<ExecutionRecord> {
    const storedId = storedExecutionId(tenant, executionId);
    await this.#settledCreation(storedId);
    return publicRecord(await this.#findExecution(storedId, executionId));
  }

  async listExecutions(tenant: string, sessionId: string, limit = LIST_LIMIT_DEFAULT): Promise<ExecutionRecord[]> {
    this.#ownSession(tenant, sessionId);
    const stored = await this.#store.listExecutions(sessionId, { limit, order: 'newest' });
    // Live records are ahead of their stored copies by at most one group commit.
    return stored.map((record) => publicRecord(this.engine.executions.get(record.execution_id)?.record ?? record));
  }

  /** Cancels a queued or running execution; replies once its `done` is durable. */
  async cancel(tenant: string, executionId: string): Promise<ExecutionRecord> {
    const storedId = storedExecutionId(tenant, executionId);
    await this.#settledCreation(storedId);
    const live = this.engine.executions.get(storedId);
    if (!live) return this.getExecution(tenant, executionId);
    this.engine.stop(live, 'cancelled', 'cancelled');
    await live.ended;
    return publicRecord(live.record);
  }

  /** Where an execution's log stands, for a subscribe from `afterSeq`. */
  async locate(tenant: string, publicId: string, afterSeq: number): Promise<SubscribeResult> {
    const executionId = storedExecutionId(tenant, publicId);
    await this.#settledCreation(executionId);
    let live = this.engine.executions.get(executionId);
    let result: SubscribeResult;
    if (live) {
      result = { lastSeq: live.committedSeq, finalSeq: null };
    } else {
      const record = await this.#store.getExecution(executionId);
      live = this.engine.executions.get(executionId);
      if (!record && !live) throw new ProtocolError('NOT_FOUND', `no execution \`${publicId}\``);
      result = live ? { lastSeq: live.committedSeq, finalSeq: null } : { lastSeq: record!.last_seq, finalSeq: record!.last_seq };
    }
    if (afterSeq > result.lastSeq) {
      throw new ProtocolError('BAD_REQUEST', `field \`after_seq\` (${afterSeq}) is beyond the execution's last_seq (${result.lastSeq})`);
    }
    return result;
  }

  /**
   * A page of stored events with seq > afterSeq, read without subscribing (HTTP), and where the log
   * stood, as `locate` says; `lastSeq` is raised to the page's last seq when a commit landed
   * between the two reads.
   */
  async readEvents(tenant: string, publicId: string, afterSeq: number, limit: number): Promise<SubscribeResult & { events: StoredEvent[] }> {
    const { lastSeq, finalSeq } = await this.locate(tenant, publicId, afterSeq);
    const events = await this.engine.hub.read(storedExecutionId(tenant, publicId), afterSeq, limit);
    const last = events.length > 0 ? events[events.length - 1]!.seq : afterSeq;
    return { events, lastSeq: Math.max(lastSeq, last), finalSeq };
  }

  subscribe(sink: EventSink, tenant: string, executionId: string, afterSeq: number, finalSeq: number | null): void {
    this.engine.hub.attach(sink, storedExecutionId(tenant, executionId), afterSeq, finalSeq);
  }

  /** Lets the frames held for a new execution's socket go (see execute). */
  release(sink: EventSink, tenant: string, executionId: string): void {
    this.engine.hub.release(sink, storedExecutionId(tenant, executionId));
  }

  unsubscribe(sink: EventSink, tenant: string, executionId: string): void {
    this.engine.hub.detach(sink, storedExecutionId(tenant, executionId));
  }

  /**
   * Stops taking work, gives running executions `shutdownGraceMs` to end, marks the rest, and makes
   * everything durable. The store is closed by the caller, after the transport.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    const running: LiveExecution[] = [];
    for (const session of this.engine.sessions.values()) {
      for (const execution of [...session.queue]) this.engine.stop(execution, 'cancelled', 'shutdown');
      if (session.running) running.push(session.running);
    }
    const allEnded = Promise.all(running.map((execution) => execution.ended));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#config.shutdownGraceMs)));
    await Promise.race([allEnded, graceOver]);
    clearTimeout(timer);
    for (const execution of running) this.engine.finish(execution, 'crashed', 'shutdown');
    await this.engine.commits.flushed();
    await this.engine.pool.close();
  }

  /**
   * Requests of one socket run concurrently: a get, cancel or subscribe sent right behind an
   * execute with a client-chosen id must see that execution, so it waits for the creation first.
   */
  async #settledCreation(storedId: string): Promise<void> {
    await this.#creating.get(storedId)?.catch(() => undefined);
  }

  async #findExecution(storedId: string, publicId: string): Promise<ExecutionRecord> {
    const live = this.engine.executions.get(storedId);
    if (live) return live.record;
    const stored = await this.#store.getExecution(storedId);
    if (!stored) throw new ProtocolError('NOT_FOUND', `no execution \`${publicId}\``);
    return stored;
  }

  async #findOrCreate(tenant: string, input: ExecuteInput, id: string, sink?: EventSink): Promise<ExecuteResult> {
    const live = this.engine.executions.get(id);
    if (live) return { record: publicRecord(live.record), created: false };
    const stored = await this.#store.getExecution(id);
    if (stored) return { record: publicRecord(stored), created: false };
    return { record: publicRecord(await this.#create(tenant, input, id, sink)), created: true };
  }

  async #create(tenant: string, input: ExecuteInput, id: string, sink?: EventSink): Promise<ExecutionRecord> {
    this.#openSession(tenant, input.session_id);
    const source = input.kind === 'repl' ? input.code! : await this.#workspace.read(input.path!);
    const session = this.#openSession(tenant, input.session_id);
    if (session.queue.length >= this.#config.maxQueuedPerSession) {
      throw new ProtocolError('LIMIT_EXCEEDED', `session \`${session.record.session_id}\` already has ${session.queue.length} queued executions (limit ${this.#config.maxQueuedPerSession})`);
    }
    const record: ExecutionRecord = {
      execution_id: id,
      session_id: session.record.session_id,
      number: ++session.record.execution_count,
      kind: input.kind,
      status: 'queued',
      created_at: Date.now(),
      last_seq: 0,
      timeout_ms: Math.min(input.timeout_ms ?? this.#config.defaultTimeoutMs, this.#config.maxTimeoutMs),
      ...(input.kind === 'repl' ? { code: input.code!, ...(input.filename === undefined ? {} : { filename: input.filename }) } : { path: input.path! }),
    };
    const execution = new LiveExecution(record, source);
    this.engine.commits.saveExecution(execution);
    this.engine.commits.saveSession(session.record);
    if (sink) this.engine.hub.hold(sink, id);
    // Queued at once, so a cancel that races the commit finds it.
    this.engine.enqueue(session, execution);
    await this.engine.commits.flushed();
    return record;
  }

  /** A session of this tenant; another tenant's is NOT_FOUND, exactly as a missing one. */
  #ownSession(tenant: string, sessionId: string): LiveSession {
    const session = this.engine.sessions.get(sessionId);
    if (!session || session.record.tenant !== tenant) throw new ProtocolError('NOT_FOUND', `no session \`${sessionId}\``);
    return session;
  }

  #openSession(tenant: string, sessionId: string): LiveSession {
    this.#assertAccepting();
    const session = this.#ownSession(tenant, sessionId);
    if (session.closed) throw new ProtocolError('SESSION_CLOSED', `session \`${sessionId}\` is closed`);
    return session;
  }

  #assertAccepting(): void {
    if (this.#shuttingDown) throw new ProtocolError('SHUTTING_DOWN', 'the server is shutting down');
  }
}

/** The record as its tenant sees it: the execution_id they chose or were given. */
function publicRecord(record: ExecutionRecord): ExecutionRecord {
  return { ...record, execution_id: publicExecutionId(record.execution_id) };
}
