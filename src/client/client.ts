/**
 * The vmstream client: requests with ids and timeouts over one socket, and one memoised, jittered
 * reconnect loop. On every new socket it first resumes each execution it follows (from the last
 * seq it delivered), then sends what queued while it was away: as nats.js replays subscriptions
 * before flushing. Requests that are safe to repeat are sent again when their reply was lost;
 * `session.create` is not, and fails with CONNECTION_LOST instead.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import { eventsOf } from '../../protocol/batch.js';
import { newId } from '../../protocol/ids.js';
import type { ExecutionRecord, SessionRecord, ServerFrame } from '../../protocol/types.js';
import { AbortError, ClientClosedError, ConnectionError, RequestTimeoutError, ServerError, VmstreamError } from './errors.js';
import { Execution, type ExecuteInput, type ExecutionHost } from './execution.js';
import { RunCodeCollector, type RunCodeOptions, type RunCodeResult } from './run-code.js';
import { reconnectDelay, resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { openSocket, resolveTarget, type Target, type WebSocketLike } from './socket.js';
import { StatusChannel, type Status } from './status.js';

type Reply = Exclude<ServerFrame, { op: 'event' | 'events' | 'error' }>;
type ReplyOf<O extends Reply['op']> = Extract<Reply, { op: O }>;
type RequestFrame = Record<string, unknown> & { op: string };

interface Pending {
  id: number;
  frame: RequestFrame;
  resend: boolean;
  resolve(reply: Reply): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export type SessionRef = string | Pick<SessionRecord, 'session_id'>;
/** What `complete()` resolves to: the names, and the part of the code they replace. */
export interface Completion {
  /** The names, sorted; empty when there are none. */
  matches: string[];
  /** Where the text the names replace begins in the code… */
  start: number;
  /** …and where it ends (the cursor). */
  end: number;
}
/** Code to run in the session (a `repl` execution), or a file of the server's workspace (`run-file`). */
export type ExecuteSource = string | { path: string };

export interface StartOptions {
  signal?: AbortSignal;
  /** The execution's time limit on the server (`timeout_ms`); the server's default when absent. */
  timeoutMs?: number;
  /** The execution_id to use (any id the protocol takes); a new random one by default (protocol/ids.ts). Reusing one runs nothing new. */
  executionId?: string;
  /** Code only: the name stack traces give it (`REPL<n>` by default), e.g. the file it came from. */
  filename?: string;
}

export interface ExecuteOptions extends StartOptions {
  /** Each event, once, in seq order. */
  onEvent?: (event: import('../../protocol/types.js').EventFrame) => void;
}

export interface SubscribeOptions {
  /** Deliver events with a seq above this one (0: from the start). */
  afterSeq?: number;
  /** Stops following (the execution itself is not cancelled: that is `cancel()`). */
  signal?: AbortSignal;
}

export class Client {
  readonly #target: Target;
  readonly #options: ResolvedOptions;
  readonly #status = new StatusChannel();
  readonly #inFlight = new Map<number, Pending>();
  readonly #executions = new Map<string, Execution>();
  readonly #host: ExecutionHost;
  #outbox: Pending[] = [];
  #socket: WebSocketLike | null = null;
  #nextId = 1;
  #dialing: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #pinging = false;
  #closing = false;
  #ownSession: Promise<SessionRecord> | null = null;
  #socketClosed: Promise<void> = Promise.resolve();
  readonly #closed: Promise<VmstreamError | undefined>;
  #resolveClosed!: (error: VmstreamError | undefined) => void;

  private constructor(target: Target, options: ResolvedOptions) {
    this.#target = target;
    this.#options = options;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#host = {
      request: (frame, resend) => this.#request(frame, resend),
      forget: (execution) => {
        if (this.#executions.get(execution.id) === execution) this.#executions.delete(execution.id);
      },
    };
  }

  /** Connects once; a first connection that fails rejects (later drops reconnect on their own). */
  static async connect(url: string, options: ClientOptions = {}): Promise<Client> {
    const resolved = resolveOptions(options);
    const client = new Client(resolveTarget(url, resolved.token), resolved);
    client.#adopt(await openSocket(client.#target, resolved.connectTimeoutMs, resolved.WebSocket), false);
    return client;
  }

  /** The status changes from now on, until `closed`. */
  status(): AsyncIterableIterator<Status> {
    return this.#status.iterate();
  }

  get connected(): boolean {
    return this.#socket !== null;
  }

  /** Resolves when the client is closed for good: undefined after close(), else the error it gave up on. */
  closed(): Promise<VmstreamError | undefined> {
    return this.#closed;
  }

  async createSession(name?: string): Promise<SessionRecord> {
    return (await this.#call('session', { op: 'session.create', ...(name === undefined ? {} : { name }) }, false)).session;
  }

  async listSessions(): Promise<SessionRecord[]> {
    return (await this.#call('sessions', { op: 'session.list' }, true)).items;
  }

  async closeSession(session: SessionRef): Promise<SessionRecord> {
    return (await this.#call('session', { op: 'session.close', session_id: sessionIdOf(session) }, true)).session;
  }

  /** Gives a session (open or closed) another name. */
  async renameSession(session: SessionRef, name: string): Promise<SessionRecord> {
    return (await this.#call('session', { op: 'session.rename', session_id: sessionIdOf(session), name }, true)).session;
  }

  async getExecution(executionId: string): Promise<ExecutionRecord> {
    return (await this.#call('execution', { op: 'execution.get', execution_id: executionId }, true)).execution;
  }

  /** The session's executions, newest first. */
  async listExecutions(session: SessionRef, options: { limit?: number } = {}): Promise<ExecutionRecord[]> {
    const frame = { op: 'execution.list', session_id: sessionIdOf(session), ...(options.limit === undefined ? {} : { limit: options.limit }) };
    return (await this.#call('executions', frame, true)).items;
  }

  /** Cancels an execution; resolves with its record once its `done` is durable. */
  async cancel(executionId: string): Promise<ExecutionRecord> {
    return (await this.#call('execution', { op: 'cancel', execution_id: executionId }, true)).execution;
  }

  /**
   * Names that complete `code` at `cursor` (a string index; default its end) from the session's
   * live context: `matches` replace `code.slice(start, end)`. Runs nothing.
   */
  async complete(session: SessionRef, code: string, cursor = code.length): Promise<Completion> {
    const { matches, start, end } = await this.#call('completion', { op: 'complete', session_id: sessionIdOf(session), code, cursor }, true);
    return { matches, start, end };
  }

  async ping(): Promise<void> {
    await this.#call('pong', { op: 'ping' }, true);
  }

  /** Runs code and resolves with the final record; `onEvent` sees every event once, in order. */
  execute(session: SessionRef, source: ExecuteSource, options: ExecuteOptions = {}): Promise<ExecutionRecord> {
    // Without onEvent nobody reads the events: a no-op handler keeps them from being buffered.
    return this.start(session, source, { ...options, onEvent: options.onEvent ?? (() => {}) }).result;
  }

  /**
   * Runs code and resolves with what it produced: `{status, logs: {stdout, stderr}, value, error,
   * executionId}`; the handlers see each part as it comes. Without `session` it runs in this
   * client's own session (created on first use), so variables carry over from call to call.
   */
  async runCode(code: string, options: RunCodeOptions = {}): Promise<RunCodeResult> {
    const session = options.session ?? (await this.#defaultSession());
    const collector = new RunCodeCollector(options);
    const record = await this.execute(session, code, {
      onEvent: collector.onEvent,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    return collector.result(record);
  }

  #defaultSession(): Promise<SessionRecord> {
    const creating = (this.#ownSession ??= this.createSession('runCode'));
    // A failed create is not kept: the next call tries again.
    creating.catch(() => {
      if (this.#ownSession === creating) this.#ownSession = null;
    });
    return creating;
  }

  /** Starts an execution and returns it at once: iterate it for its events, await `result` for its record. */
  start(session: SessionRef, source: ExecuteSource, options: ExecuteOptions = {}): Execution {
    this.#assertOpen();
    const executionId = options.executionId ?? newId();
    const input: ExecuteInput = {
      session_id: sessionIdOf(session),
      ...(typeof source === 'string'
        ? { kind: 'repl', code: source, ...(options.filename === undefined ? {} : { filename: options.filename }) }
        : { kind: 'run-file', path: source.path }),
      execution_id: executionId,
      ...(options.timeoutMs === undefined ? {} : { timeout_ms: options.timeoutMs }),
    };
    return this.#follow(new Execution(this.#host, executionId, input, 0, options.onEvent), options.signal);
  }

  /** Follows an execution (running or ended) from `afterSeq`; its events are replayed from the log first. */
  subscribe(executionId: string, options: SubscribeOptions = {}): Execution {
    this.#assertOpen();
    const afterSeq = options.afterSeq ?? 0;
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new TypeError(`options.afterSeq must be an integer >= 0, got ${String(afterSeq)}`);
    return this.#follow(new Execution(this.#host, executionId, null, afterSeq), options.signal);
  }

  /** Closes the socket; what is pending rejects with ClientClosedError. */
  async close(): Promise<void> {
    this.#shutdown(undefined);
    await this.#socketClosed;
  }

  #follow(execution: Execution, signal: AbortSignal | undefined): Execution {
    if (this.#executions.has(execution.id)) {
      throw new TypeError(`execution ${execution.id} is already followed by this client: use the Execution you have`);
    }
    if (signal?.aborted) {
      execution.fail(new AbortError(`execution ${execution.id} was aborted before it was sent`, { cause: signal.reason }));
      return execution;
    }
    this.#executions.set(execution.id, execution);
    if (signal) {
      const onAbort = () => execution.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => signal.removeEventListener('abort', onAbort);
      execution.result.then(cleanup, cleanup);
    }
    if (this.#socket) execution.resume();
    return execution;
  }

  async #call<O extends Reply['op']>(op: O, frame: RequestFrame, resend: boolean): Promise<ReplyOf<O>> {
    const reply = await this.#request(frame, resend);
    if (reply.op !== op) throw new ServerError('INTERNAL', `${frame.op}: expected a \`${op}\` reply, got \`${reply.op}\``, { cause: reply });
    return reply as ReplyOf<O>;
  }

  #request(frame: RequestFrame, resend: boolean): Promise<Reply> {
    if (this.#closing) return Promise.reject(new ClientClosedError());
    return new Promise((resolve, reject) => {
      const timeoutMs = this.#options.requestTimeoutMs;
      const pending: Pending = {
        id: this.#nextId++,
        frame,
        resend,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#inFlight.delete(pending.id);
          const queued = this.#outbox.indexOf(pending);
          if (queued >= 0) this.#outbox.splice(queued, 1);
          reject(new RequestTimeoutError(frame.op, timeoutMs));
        }, timeoutMs),
      };
      if (this.#socket) this.#transmit(pending);
      else this.#outbox.push(pending);
    });
  }

  #transmit(pending: Pending): void {
    this.#inFlight.set(pending.id, pending);
    try {
      this.#socket!.send(encodeFrame({ ...pending.frame, id: pending.id }));
    } catch {
      // The socket is going away; its close hands this request on (resent or failed).
    }
  }

  /** Takes a freshly opened socket into use: resume executions, then flush the queue. */
  #adopt(socket: WebSocketLike, reconnect: boolean): void {
    this.#socket = socket;
    let markClosed!: () => void;
    this.#socketClosed = new Promise((resolve) => (markClosed = resolve));
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = (event) => {
      markClosed();
      this.#onSocketClosed(socket, event.code, event.reason);
    };
    socket.onerror = () => {}; // a close event follows, and says what matters
    const executions = [...this.#executions.values()];
    for (const execution of executions) execution.resume();
    const queued = this.#outbox;
    this.#outbox = [];
    for (const pending of queued) this.#transmit(pending);
    this.#startPing();
    this.#status.push({ type: 'connected', url: this.#target.url, reconnect, resumed: executions.length });
  }

  #onMessage(data: unknown): void {
    let frame: ServerFrame;
    try {
      frame = decodeValue(data as Uint8Array | ArrayBuffer) as ServerFrame;
    } catch {
      return; // not msgpack: not something this protocol version sends
    }
    if (frame.op === 'event') {
      this.#executions.get(frame.execution_id)?.receive(frame);
      return;
    }
    if (frame.op === 'events') {
      const execution = this.#executions.get(frame.execution_id);
      if (execution) for (const event of eventsOf(frame)) execution.receive(event);
      return;
    }
    // No request's reply: the server ended this execution's subscription short of its `done`.
    if (frame.op === 'error' && frame.id === undefined && frame.execution_id !== undefined) {
      this.#executions.get(frame.execution_id)?.subscriptionFailed(ServerError.fromFrame(frame));
      return;
    }
    const pending = typeof frame.id === 'number' ? this.#inFlight.get(frame.id) : undefined;
    if (!pending) return; // its request timed out already
    this.#inFlight.delete(pending.id);
    clearTimeout(pending.timer);
    if (frame.op === 'error') pending.reject(ServerError.fromFrame(frame));
    else pending.resolve(frame);
  }

  #onSocketClosed(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#detach(socket);
    // Sent before anything still queued, so they go first again, in the order they were made.
    const resend: Pending[] = [];
    for (const pending of this.#inFlight.values()) {
      if (pending.resend) resend.push(pending);
      else pending.reject(new ConnectionError('CONNECTION_LOST', `${pending.frame.op}: the connection closed before the reply came`));
    }
    this.#inFlight.clear();
    this.#outbox = [...resend, ...this.#outbox];
    this.#status.push({ type: 'disconnected', code, reason });
    if (this.#closing) return;
    if (!this.#options.reconnect) {
      this.#shutdown(new ConnectionError('CONNECTION_FAILED', `the connection closed (${code}) and reconnect is off`));
      return;
    }
    void this.#reconnect();
  }

  #detach(socket: WebSocketLike): void {
    socket.onmessage = null;
    socket.onerror = null;
    this.#socket = null;
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    this.#pingTimer = null;
  }

  /** One dial loop at a time, however many things notice the drop. */
  #reconnect(): Promise<void> {
    return (this.#dialing ??= this.#dialLoop().finally(() => (this.#dialing = null)));
  }

  async #dialLoop(): Promise<void> {
    let lastError: VmstreamError | undefined;
    for (let attempt = 1; !this.#closing; attempt++) {
      if (attempt > this.#options.maxReconnectAttempts) {
        this.#shutdown(new ConnectionError('CONNECTION_FAILED', `no connection after ${attempt - 1} attempts`, { cause: lastError }));
        return;
      }
      const delayMs = reconnectDelay(this.#options, attempt);
      this.#status.push({ type: 'reconnecting', attempt, delayMs, ...(lastError ? { error: lastError } : {}) });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
      if (this.#closing) return;
      try {
        const socket = await openSocket(this.#target, this.#options.connectTimeoutMs, this.#options.WebSocket);
        if (this.#closing) {
          socket.close(1000, 'client closed');
          return;
        }
        this.#adopt(socket, true);
        return;
      } catch (error) {
        lastError = error instanceof VmstreamError ? error : new ConnectionError('CONNECTION_FAILED', String(error), { cause: error });
        // A refused token or origin would be refused again: retrying would only hammer the server.
        if (error instanceof ConnectionError && (error.status === 401 || error.status === 403)) {
          this.#shutdown(error);
          return;
        }
      }
    }
  }

  /** A ping that gets no pong means a socket the OS still thinks is open: drop it and reconnect. */
  #startPing(): void {
    if (this.#options.pingIntervalMs === 0) return;
    this.#pingTimer = setInterval(() => {
      const socket = this.#socket;
      if (!socket || this.#pinging) return;
      this.#pinging = true;
      this.#request({ op: 'ping' }, false).then(() => (this.#pinging = false), (error: unknown) => {
        this.#pinging = false;
        if (!(error instanceof RequestTimeoutError) || socket !== this.#socket) return;
        this.#onSocketClosed(socket, 4000, 'no pong');
        terminate(socket);
      });
    }, this.#options.pingIntervalMs);
    (this.#pingTimer as { unref?: () => void }).unref?.();
  }

  #shutdown(error: VmstreamError | undefined): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#wake?.();
    const socket = this.#socket;
    if (socket) {
      this.#detach(socket);
      socket.close(1000, 'client closed');
    }
    const failure = () => error ?? new ClientClosedError();
    for (const pending of [...this.#inFlight.values(), ...this.#outbox]) {
      clearTimeout(pending.timer);
      pending.reject(failure());
    }
    this.#inFlight.clear();
    this.#outbox = [];
    for (const execution of [...this.#executions.values()]) execution.fail(failure());
    this.#executions.clear();
    this.#status.push({ type: 'closed', ...(error ? { error } : {}) });
    this.#resolveClosed(error);
  }

  #assertOpen(): void {
    if (this.#closing) throw new ClientClosedError();
  }
}

function sessionIdOf(session: SessionRef): string {
  return typeof session === 'string' ? session : session.session_id;
}

function terminate(socket: WebSocketLike): void {
  const ws = socket as WebSocketLike & { terminate?: () => void };
  if (typeof ws.terminate === 'function') ws.terminate();
  else socket.close(4000, 'no pong');
}
