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
 *
 * On a cluster (a SessionRouting given), each session lives on one node, its owner: operations that
 * need its live context (execute, cancel, close, rename, reset, complete) run there, forwarded by
 * `routing.route` from whichever node the client reached (the owner runs them through
 * `serveForwarded`); reads and subscriptions are served here from the shared store. Sessions are
 * looked up in the cluster's watched view, and in KV once before a NOT_FOUND.
 */
import { ProtocolError } from '../../protocol/errors.js';
import { newId, newSessionId } from '../../protocol/ids.js';
import { LIST_LIMIT_DEFAULT } from '../../protocol/schemas.js';
import type { ExecuteRequest, ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import type { Config } from '../config.js';
import type { Completion, SandboxFactory } from '../sandbox/sandbox.js';
import { StoreError, type EventStore, type StoredEvent } from '../store/event-store.js';
import { Engine, type EngineHooks, type EngineStats } from './engine.js';
import { publicExecutionId, storedExecutionId } from './live.js';
import type { EventSink } from '../events/subscription-hub.js';
import { Workspace, type WorkspaceFile } from './workspace.js';
import { NotOwnerError, type ForwardedRequest, type SessionRouting } from '../cluster/routing.js';

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
  /** Seq of `done` when the execution has ended, null while it runs (or when its log has no `done`). */
  finalSeq: number | null;
  /**
   * The seq nothing follows: its `done`'s, or, for a log the store refused the rest of (LogState's
   * `refused`), its last; null while the log may go on. What a door that answers without
   * subscribing (an events page's `done`, an event stream's 204) says is the end.
   */
  endSeq: number | null;
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
  readonly #routing: SessionRouting | null;
  /** Sessions this node is taking over (`adopt`), until they are hosted here and their orphans ended. */
  readonly #adopting = new Map<string, Promise<unknown>>();
  #shuttingDown = false;

  /**
   * `sandbox` builds the host of user code (server.ts: the worker pool); the engine is its listener.
   * `routing`: this process is a node of a cluster (src/cluster/).
   */
  constructor(config: Config, store: EventStore, sandbox: SandboxFactory, hooks: EngineHooks, routing?: SessionRouting) {
    this.#config = config;
    this.#store = store;
    this.#routing = routing ?? null;
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
   * A cluster node recovers the sessions its previous run still owns (others may have taken some).
   */
  async recover(): Promise<{ crashed: number; sessions: number }> {
    if (!this.#routing) return this.#engine.recover();
    return this.adopt(await this.#routing.reclaim(), 'server_restart');
  }

  /**
   * Takes over sessions a lost node owned (src/cluster/takeover.ts), once `claimed` (the claim of
   * their owner keys) resolves: their unfinished executions end `crashed` with `reason` (exactly one
   * `done` each), and the sessions are hosted here, rebuilt from their inputs before their next
   * execution. Requests for them wait from the moment the claim is sent, so that none finds this
   * node owning a session it does not hold yet.
   */
  adopt(sessionIds: string[], reason: string, claimed: Promise<unknown> = Promise.resolve()): Promise<{ crashed: number; sessions: number }> {
    const adopting = claimed.then(() => {
      const records: SessionRecord[] = [];
      for (const sessionId of sessionIds) {
        const record = this.#routing?.session(sessionId);
        // A copy: the engine changes its sessions' records as they run; the view follows KV.
        if (record) records.push({ ...record });
      }
      return this.#engine.recover(records, reason);
    });
    for (const sessionId of sessionIds) this.#adopting.set(sessionId, adopting);
    const settled = () => {
      for (const sessionId of sessionIds) if (this.#adopting.get(sessionId) === adopting) this.#adopting.delete(sessionId);
    };
    adopting.then(settled, settled);
    return adopting;
  }

  /** A request for a session this node is taking over waits until the session is here. */
  async #adopted(sessionId: string): Promise<void> {
    await this.#adopting.get(sessionId)?.catch(() => undefined);
  }

  /** Another node took these sessions over: they are dropped here, and nothing more of them is written. */
  disown(sessionIds: string[]): void {
    this.#engine.disown(sessionIds);
  }

  /** The tenant's token was revoked: its queued executions are cancelled (`tenant_revoked`). */
  revokeTenant(tenant: string): void {
    this.#engine.revokeTenant(tenant);
  }

  /** This node may be declared dead (its heartbeat is overdue): it starts no runs and produces no events until it is current. */
  suspend(suspended: boolean): void {
    this.#engine.suspend(suspended);
  }

  /**
   * Runs a request another node forwarded here because this node owns its session (see
   * SessionRouting.route); refuses with NotOwnerError when it does not (any more).
   */
  async serveForwarded({ op, tenant, args }: ForwardedRequest): Promise<unknown> {
    if (op === 'cancel') return this.#cancelHere(tenant, args.execution_id as string, true);
    const sessionId = args.session_id as string;
    await this.#adopted(sessionId);
    if (!this.#routing?.ownsSession(sessionId) || !this.#engine.session(sessionId)) {
      throw new NotOwnerError(`session \`${sessionId}\` is not owned by node ${this.#routing?.nodeId}`);
    }
    // The forwarding node checked the tenant against its view; the owner holds the session itself.
    this.#ownSession(tenant, sessionId);
    return notOwnerIfFenced(sessionId, this.#serveHere(op, tenant, sessionId, args));
  }

  #serveHere(op: Exclude<ForwardedRequest['op'], 'cancel'>, tenant: string, sessionId: string, args: Record<string, unknown>): Promise<unknown> {
    switch (op) {
      case 'execute':
        return this.#execute(tenant, args as unknown as ExecuteInput, undefined, false);
      case 'session.close':
        return this.#engine.closeSession(sessionId);
      case 'session.rename':
        return this.#engine.renameSession(sessionId, args.name as string);
      case 'session.reset':
        return this.#resetHere(tenant, sessionId);
      case 'complete':
        return this.#completeHere(tenant, sessionId, args.code as string, args.cursor as number);
    }
  }

  async createSession(tenant: string, name?: string): Promise<SessionRecord> {
    this.#assertAccepting();
    // On a cluster, the watched view counts: concurrent creates on other nodes may overshoot by one each.
    if (this.listSessions(tenant).length >= this.#config.maxOpenSessions) {
      throw new ProtocolError('LIMIT_EXCEEDED', `${this.#config.maxOpenSessions} sessions are open (the limit): close one first`);
    }
    const record: SessionRecord = { session_id: newSessionId(), tenant, name: name ?? '', status: 'ready', created_at: Date.now(), execution_count: 0 };
    // Owned before it exists: any node that sees the session finds where it lives.
    await this.#routing?.claim(record.session_id);
    await this.#engine.openSession(record);
    return record;
  }

  /** The tenant's open sessions: this node's, and on a cluster every node's (this node's records are the freshest of its own). */
  listSessions(tenant: string): SessionRecord[] {
    const local = this.#engine.openSessions(tenant);
    if (!this.#routing) return local.sort(newestFirst);
    const open = new Map(this.#routing.openSessions(tenant).map((record) => [record.session_id, record]));
    for (const record of local) open.set(record.session_id, record);
    for (const sessionId of open.keys()) if (this.#engine.session(sessionId)?.status === 'closed') open.delete(sessionId);
    return [...open.values()].sort(newestFirst);
  }

  /**
   * A session of the tenant (open or closed). On a cluster, one created a moment ago on another node
   * that the watched view does not hold yet is read from KV (one get) before it is NOT_FOUND.
   */
  getSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    return this.#findSession(tenant, sessionId);
  }

  /** Closes a session: its queued and running executions are cancelled, its context is dropped. */
  async closeSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    await this.#findSession(tenant, sessionId);
    return this.#route(sessionId, { op: 'session.close', tenant, args: { session_id: sessionId } }, () => held(sessionId, this.#engine.closeSession(sessionId)));
  }

  /** Gives a session (open or closed) another name. */
  async renameSession(tenant: string, sessionId: string, name: string): Promise<SessionRecord> {
    await this.#findSession(tenant, sessionId);
    return this.#route(sessionId, { op: 'session.rename', tenant, args: { session_id: sessionId, name } }, () => held(sessionId, this.#engine.renameSession(sessionId, name)));
  }

  /**
   * Gives the session a fresh, empty context under the same id, cancelling what runs or waits in
   * it; earlier inputs are no longer replayed when the context is rebuilt (a Jupyter kernel restart).
   */
  async resetSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    await this.#findSession(tenant, sessionId);
    return this.#route(sessionId, { op: 'session.reset', tenant, args: { session_id: sessionId } }, () => this.#resetHere(tenant, sessionId));
  }

  /** Names that complete `code` at `cursor`, from the session's context (see Sandbox.complete). */
  async complete(tenant: string, sessionId: string, code: string, cursor: number): Promise<Completion> {
    await this.#findSession(tenant, sessionId);
    return this.#route(sessionId, { op: 'complete', tenant, args: { session_id: sessionId, code, cursor } }, () => this.#completeHere(tenant, sessionId, code, cursor));
  }

  /**
   * Creates and queues an execution, or returns the existing one when its execution_id is known.
   * `sink`, when given, is subscribed to a new execution from seq 1 before the code can run, its
   * frames held until `release` (after the reply went out); for an existing one, it is subscribed
   * from seq 1 at once.
   */
  execute(tenant: string, input: ExecuteInput, sink?: EventSink): Promise<ExecuteResult> {
    return this.#execute(tenant, input, sink, this.#routing !== null);
  }

  /** `routed`: sent to the session's owner when that is another node (false: it is this one, asked by another). */
  async #execute(tenant: string, input: ExecuteInput, sink: EventSink | undefined, routed: boolean): Promise<ExecuteResult> {
    if (input.execution_id === undefined) {
      if (!routed) return this.#create(tenant, input, storedExecutionId(tenant, newId()), sink, true);
      // Chosen here, before it may be forwarded: a resent forward then cannot create a second execution.
      input = { ...input, execution_id: newId() };
    }
    const id = storedExecutionId(tenant, input.execution_id!);
    const earlier = this.#creating.get(id);
    const creating = (async () => {
      await earlier?.catch(() => undefined);
      return this.#findOrCreate(tenant, input, id, sink, routed);
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
    await this.#findSession(tenant, sessionId);
    const stored = await this.#store.listExecutions(sessionId, { limit, order: 'newest' });
    // Live records are ahead of their stored copies by at most one group commit.
    return stored.map((record) => publicRecord(this.#engine.execution(record.execution_id) ?? record));
  }

  /** Cancels a queued or running execution; replies once its `done` is durable. */
  cancel(tenant: string, executionId: string): Promise<ExecutionRecord> {
    return this.#cancelHere(tenant, executionId, false);
  }

  /** `forwarded`: asked by another node, as this execution's owner; never forwarded again. */
  async #cancelHere(tenant: string, executionId: string, forwarded: boolean): Promise<ExecutionRecord> {
    const storedId = storedExecutionId(tenant, executionId);
    await this.#settledCreation(storedId);
    const cancelled = await this.#engine.cancel(storedId);
    if (cancelled) return publicRecord(cancelled);
    const record = await this.getExecution(tenant, executionId);
    if (!this.#routing || record.ended_at !== undefined) return record;
    // Not live here and not ended: it runs (or waits) on its session's owner.
    if (forwarded) throw new NotOwnerError(`execution \`${executionId}\` is not live on node ${this.#routing.nodeId}`);
    return this.#route(record.session_id, { op: 'cancel', tenant, args: { execution_id: executionId } }, async () => record);
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
    return { lastSeq: result.lastSeq, finalSeq: result.finalSeq, endSeq: result.refused ? result.lastSeq : result.finalSeq };
  }

  /**
   * A page of stored events with seq > afterSeq, read without subscribing (HTTP), and where the log
   * stood, as `locate` says; `lastSeq` is raised to the page's last seq when a commit landed
   * between the two reads.
   */
  async readEvents(tenant: string, publicId: string, afterSeq: number, limit: number): Promise<SubscribeResult & { events: StoredEvent[] }> {
    const { lastSeq, finalSeq, endSeq } = await this.locate(tenant, publicId, afterSeq);
    const events = await this.#engine.read(storedExecutionId(tenant, publicId), afterSeq, limit);
    const last = events.length > 0 ? events[events.length - 1]!.seq : afterSeq;
    return { events, lastSeq: Math.max(lastSeq, last), finalSeq, endSeq };
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

  async #findOrCreate(tenant: string, input: ExecuteInput, id: string, sink: EventSink | undefined, routed: boolean): Promise<ExecuteResult> {
    const live = this.#engine.execution(id);
    if (live) return { record: publicRecord(live), created: false };
    const stored = await this.#store.getExecution(id);
    if (stored) return { record: publicRecord(stored), created: false };
    if (!routed) return this.#create(tenant, input, id, sink);
    this.#assertAccepting();
    await this.#findSession(tenant, input.session_id);
    const request: ForwardedRequest = { op: 'execute', tenant, args: { ...input } };
    let here = false;
    const result = await this.#route(input.session_id, request, () => ((here = true), this.#create(tenant, input, id, sink)));
    // Created on the owner: this socket gets its events from the shared log, from seq 1, after the reply.
    if (!here && result.created && sink) this.#engine.hold(sink, id);
    return result;
  }

  #resetHere(tenant: string, sessionId: string): Promise<SessionRecord> {
    this.#liveSession(tenant, sessionId);
    return this.#engine.resetSession(sessionId) as Promise<SessionRecord>;
  }

  #completeHere(tenant: string, sessionId: string, code: string, cursor: number): Promise<Completion> {
    this.#liveSession(tenant, sessionId);
    if (cursor > code.length) throw new ProtocolError('BAD_REQUEST', `field \`cursor\` (${cursor}) is past the end of \`code\` (${code.length})`);
    return this.#engine.complete(sessionId, code, cursor);
  }

  /** Runs `local` when this node owns the session (always, off a cluster), else forwards `request` to the owner. */
  #route<T>(sessionId: string, request: ForwardedRequest, local: () => Promise<T>): Promise<T> {
    if (!this.#routing) return local();
    // Owned here may mean being adopted here: run once the session is hosted.
    return this.#routing.route(sessionId, request, async () => {
      await this.#adopted(sessionId);
      return notOwnerIfFenced(sessionId, local());
    });
  }

  /** A session of this tenant, here or (on a cluster) anywhere, looked up in KV before it is NOT_FOUND. */
  async #findSession(tenant: string, sessionId: string): Promise<SessionRecord> {
    const known = this.#knownSession(sessionId);
    if (known?.tenant === tenant) return known;
    const found = known ? undefined : await this.#routing?.findSession(tenant, sessionId);
    if (!found) throw new ProtocolError('NOT_FOUND', `no session \`${sessionId}\``);
    return found;
  }

  /**
   * The freshest record of a session this node knows: its own live one when it owns the session,
   * the cluster view's when another node does.
   */
  #knownSession(sessionId: string): SessionRecord | undefined {
    const local = this.#engine.session(sessionId);
    if (!this.#routing) return local;
    if (local && this.#routing.ownsSession(sessionId)) return local;
    return this.#routing.session(sessionId) ?? local;
  }

  /** `fresh`: `id` was made up here for this request (see NewExecution). */
  async #create(tenant: string, input: ExecuteInput, id: string, sink?: EventSink, fresh = false): Promise<ExecuteResult> {
    await this.#adopted(input.session_id);
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
      fresh,
    }, sink);
    return { record: publicRecord(record), created };
  }

  /** A session of this tenant; another tenant's is NOT_FOUND, exactly as a missing one. */
  #ownSession(tenant: string, sessionId: string): SessionRecord {
    const session = this.#knownSession(sessionId);
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

const newestFirst = (a: SessionRecord, b: SessionRecord) => b.created_at - a.created_at;

/**
 * The engine's record of a session it was asked to change here. On a cluster a session can be in the
 * view but held by no node (its owner key gone): NOT_FOUND rather than an empty reply.
 */
async function held(sessionId: string, change: Promise<SessionRecord | undefined>): Promise<SessionRecord> {
  const record = await change;
  if (!record) throw new ProtocolError('NOT_FOUND', `no session \`${sessionId}\``);
  return record;
}

/**
 * A write of the session refused as fenced: another node took the session over, and this one has
 * not heard yet. What was asked did not happen here; the router sends it to the new owner.
 */
async function notOwnerIfFenced<T>(sessionId: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof StoreError && error.code === 'STORE_FENCED') throw new NotOwnerError(`session \`${sessionId}\` was taken over by another node`);
    throw error;
  }
}

/** The record as its tenant sees it: the execution_id they chose or were given. */
function publicRecord(record: ExecutionRecord): ExecutionRecord {
  return { ...record, execution_id: publicExecutionId(record.execution_id) };
}
