/**
 * The operations of protocol v1, independent of the transport: the socket, the HTTP API and SSE
 * call these with validated arguments and turn the ProtocolErrors they throw into frames. It is the
 * only way in to sessions and executions.
 *
 * Who owns what: the service decides whether a request may happen — the tenant owns the session or
 * execution (another tenant's is NOT_FOUND), the session is open, quotas, idempotent execution ids,
 * no new work once shutdown began — and turns tenant-facing ids into stored ones. The engine
 * (engine.ts) owns everything live and does the work: sessions' contexts and queues, events, the
 * watchdog, rebuilds.
 */
import { randomUUID } from 'node:crypto';
import { ProtocolError } from '../../protocol/errors.js';
import { LIST_LIMIT_DEFAULT } from '../../protocol/schemas.js';
import type { ExecuteRequest, ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import type { Config } from '../config.js';
import type { Completion, SandboxFactory } from '../sandbox/sandbox.js';
import type { EventStore, StoredEvent } from '../store/event-store.js';
import { Engine, type EngineHooks, type EngineStats } from './engine.js';
import { publicExecutionId, storedExecutionId } from './live.js';
import type { EventSink } from '../events/subscription-hub.js';
import { Workspace, type WorkspaceFile } from './workspace.js';

export type { EngineHooks, EngineStats } from './engine.js';
export type { WorkspaceFile } from './workspace.js';

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
  readonly #engine: Engine;
  readonly #config: Config;
  readonly #store: EventStore;
  readonly #workspace: Workspace;
  /**
   * Creations under way here, by stored id: requests sent right behind an `execute` wait for it
   * (#settledCreation), and a second `execute` of the id waits for the first to be queued, so that
   * it subscribes to a live execution. Which create of an id wins, here or on another node, is the
   * store's conditional create to decide (Engine.submit).
   */
  readonly #creating = new Map<string, Promise<ExecuteResult>>();
  #shuttingDown = false;

  /** `sandbox` builds the host of user code (server.ts: the worker pool); the engine is its listener. */
  constructor(config: Config, store: EventStore, sandbox: SandboxFactory, hooks: EngineHooks) {
    this.#config = config;
    this.#store = store;
    this.#workspace = Workspace.of(config);
    this.#engine = new Engine(config, store, this.#workspace, sandbox, hooks);
  }

  /** False once shutdown has begun: for readiness. */
  get accepting(): boolean {
    return !this.#shuttingDown;
  }

  /**
   * After a restart: every execution the previous process left queued or running gets its terminal
   * `done {status: "crashed"}`, and open sessions come back, to be rebuilt on their next execution.
   */
  recover(): Promise<{ crashed: number; sessions: number }> {
    return this.#engine.recover();
  }

  async createSession(tenant: string, name?: string): Promise<SessionRecord> {
    this.#assertAccepting();
    if (this.listSessions(tenant).length >= this.#config.maxOpenSessions) {
      throw new ProtocolError('LIMIT_EXCEEDED', `${this.#config.maxOpenSessions} sessions are open (the limit): close one first`);
    }
    const record: SessionRecord = { session_id: randomUUID(), tenant, name: name ?? '', status: 'ready', created_at: Date.now(), execution_count: 0 };
    await this.#engine.openSession(record);
    return record;
  }

  listSessions(tenant: string): SessionRecord[] {
    return this.#engine.openSessions(tenant).sort((a, b) => b.created_at - a.created_at);
  }

  getSession(tenant: string, sessionId: string): SessionRecord {
    return this.#ownSession(tenant, sessionId);
  }

  /** Closes a session: its queued and running executions are cancelled, its context is dropped. */
  async closeSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    this.#ownSession(tenant, sessionId);
    return (await this.#engine.closeSession(sessionId))!;
  }

  /** Gives a session (open or closed) another name. */
  async renameSession(tenant: string, sessionId: string, name: string): Promise<SessionRecord> {
    this.#ownSession(tenant, sessionId);
    return (await this.#engine.renameSession(sessionId, name))!;
  }

  /**
   * Gives the session a fresh, empty context under the same id, cancelling what runs or waits in
   * it; earlier inputs are no longer replayed when the context is rebuilt (a Jupyter kernel restart).
   */
  async resetSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    this.#liveSession(tenant, sessionId);
    return (await this.#engine.resetSession(sessionId))!;
  }

  /** Names that complete `code` at `cursor`, from the session's context (see Sandbox.complete). */
  async complete(tenant: string, sessionId: string, code: string, cursor: number): Promise<Completion> {
    this.#liveSession(tenant, sessionId);
    if (cursor > code.length) throw new ProtocolError('BAD_REQUEST', `field \`cursor\` (${cursor}) is past the end of \`code\` (${code.length})`);
    return this.#engine.complete(sessionId, code, cursor);
  }

  /**
   * Creates and queues an execution, or returns the existing one when its execution_id is known.
   * `sink`, when given, is subscribed to a new execution from seq 1 before the code can run, its
   * frames held until `release` (after the reply went out); for an existing one, it is subscribed
   * from seq 1 at once.
   */
  async execute(tenant: string, input: ExecuteInput, sink?: EventSink): Promise<ExecuteResult> {
    if (input.execution_id === undefined) return this.#create(tenant, input, storedExecutionId(tenant, randomUUID()), sink);
    const id = storedExecutionId(tenant, input.execution_id);
    const earlier = this.#creating.get(id);
    const creating = (async () => {
      await earlier?.catch(() => undefined);
      return this.#findOrCreate(tenant, input, id, sink);
    })();
    this.#creating.set(id, creating);
    try {
      return await creating;
    } finally {
      if (this.#creating.get(id) === creating) this.#creating.delete(id);
    }
  }

  /** The tenant's workspace files (what run-file runs). */
  listFiles(tenant: string): Promise<WorkspaceFile[]> {
    return this.#workspace.list(tenant);
  }

  readFile(tenant: string, relativePath: string): Promise<string> {
    return this.#workspace.read(tenant, relativePath);
  }

  writeFile(tenant: string, relativePath: string, text: string): Promise<{ file: WorkspaceFile; created: boolean }> {
    this.#assertAccepting();
    return this.#workspace.write(tenant, relativePath, text);
  }

  deleteFile(tenant: string, relativePath: string): Promise<void> {
    this.#assertAccepting();
    return this.#workspace.remove(tenant, relativePath);
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
    return stored.map((record) => publicRecord(this.#engine.execution(record.execution_id) ?? record));
  }

  /** Cancels a queued or running execution; replies once its `done` is durable. */
  async cancel(tenant: string, executionId: string): Promise<ExecutionRecord> {
    const storedId = storedExecutionId(tenant, executionId);
    await this.#settledCreation(storedId);
    const cancelled = await this.#engine.cancel(storedId);
    return cancelled ? publicRecord(cancelled) : this.getExecution(tenant, executionId);
  }

  /** Where an execution's log stands, for a subscribe from `afterSeq`. */
  async locate(tenant: string, publicId: string, afterSeq: number): Promise<SubscribeResult> {
    const executionId = storedExecutionId(tenant, publicId);
    await this.#settledCreation(executionId);
    const result = await this.#engine.locate(executionId);
    if (!result) throw new ProtocolError('NOT_FOUND', `no execution \`${publicId}\``);
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
    const events = await this.#engine.read(storedExecutionId(tenant, publicId), afterSeq, limit);
    const last = events.length > 0 ? events[events.length - 1]!.seq : afterSeq;
    return { events, lastSeq: Math.max(lastSeq, last), finalSeq };
  }

  subscribe(sink: EventSink, tenant: string, executionId: string, afterSeq: number, finalSeq: number | null): void {
    this.#engine.attach(sink, storedExecutionId(tenant, executionId), afterSeq, finalSeq);
  }

  /** Lets the frames held for a new execution's socket go (see execute). */
  release(sink: EventSink, tenant: string, executionId: string): void {
    this.#engine.release(sink, storedExecutionId(tenant, executionId));
  }

  unsubscribe(sink: EventSink, tenant: string, executionId: string): void {
    this.#engine.detach(sink, storedExecutionId(tenant, executionId));
  }

  /** The sink drained: its paused subscriptions catch up from the store (resolves once they have stopped). */
  resume(sink: EventSink): Promise<void> {
    return this.#engine.resume(sink);
  }

  /** The sink is gone (its socket or stream closed): all its subscriptions end. */
  detachAll(sink: EventSink): void {
    this.#engine.detachAll(sink);
  }

  /** Live executions, events appended, replay reads, backpressure pauses, and the sandbox's hosts. */
  stats(): EngineStats {
    return this.#engine.stats();
  }

  /**
   * Stops taking work, gives running executions `shutdownGraceMs` to end, marks the rest, and makes
   * everything durable. The store is closed by the caller, after the transport.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    await this.#engine.shutdown(this.#config.shutdownGraceMs);
  }

  /**
   * Requests of one socket run concurrently: a get, cancel or subscribe sent right behind an
   * execute with a client-chosen id must see that execution, so it waits for the creation first.
   */
  async #settledCreation(storedId: string): Promise<void> {
    await this.#creating.get(storedId)?.catch(() => undefined);
  }

  async #findExecution(storedId: string, publicId: string): Promise<ExecutionRecord> {
    const live = this.#engine.execution(storedId);
    if (live) return live;
    const stored = await this.#store.getExecution(storedId);
    if (!stored) throw new ProtocolError('NOT_FOUND', `no execution \`${publicId}\``);
    return stored;
  }

  async #findOrCreate(tenant: string, input: ExecuteInput, id: string, sink?: EventSink): Promise<ExecuteResult> {
    const live = this.#engine.execution(id);
    if (live) return { record: publicRecord(live), created: false };
    const stored = await this.#store.getExecution(id);
    if (stored) return { record: publicRecord(stored), created: false };
    return this.#create(tenant, input, id, sink);
  }

  async #create(tenant: string, input: ExecuteInput, id: string, sink?: EventSink): Promise<ExecuteResult> {
    this.#liveSession(tenant, input.session_id);
    const source = input.kind === 'repl' ? input.code! : await this.#workspace.read(tenant, input.path!);
    const sessionId = this.#liveSession(tenant, input.session_id).session_id;
    const queued = this.#engine.queued(sessionId);
    if (queued >= this.#config.maxQueuedPerSession) {
      throw new ProtocolError('LIMIT_EXCEEDED', `session \`${sessionId}\` already has ${queued} queued executions (limit ${this.#config.maxQueuedPerSession})`);
    }
    const { record, created } = await this.#engine.submit({
      executionId: id,
      sessionId,
      kind: input.kind,
      ...(input.kind === 'repl' ? { code: input.code!, ...(input.filename === undefined ? {} : { filename: input.filename }) } : { path: input.path! }),
      source,
      timeoutMs: Math.min(input.timeout_ms ?? this.#config.defaultTimeoutMs, this.#config.maxTimeoutMs),
    }, sink);
    return { record: publicRecord(record), created };
  }

  /** A session of this tenant; another tenant's is NOT_FOUND, exactly as a missing one. */
  #ownSession(tenant: string, sessionId: string): SessionRecord {
    const session = this.#engine.session(sessionId);
    if (!session || session.tenant !== tenant) throw new ProtocolError('NOT_FOUND', `no session \`${sessionId}\``);
    return session;
  }

  /** A session of this tenant that is still open. */
  #liveSession(tenant: string, sessionId: string): SessionRecord {
    this.#assertAccepting();
    const session = this.#ownSession(tenant, sessionId);
    if (session.status === 'closed') throw new ProtocolError('SESSION_CLOSED', `session \`${sessionId}\` is closed`);
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
