/**
 * Kernels as Jupyter sees them, each one a vmstream session (same id, listed by `session.list`):
 * starting, listing, shutting down, interrupting and restarting them through ExecutionService, the
 * execute requests they run, and the feeds that deliver their messages to each client session.
 */
import { ProtocolError } from '../../protocol/errors.js';
import type { EventFrame, EventsFrame, ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import { decodeValue } from '../../protocol/codec.js';
import { SendResult, type EventSink } from '../events/subscription-hub.js';
import type { ExecutionService } from '../sessions/service.js';
import { END, Feed, type FeedConnection } from './feed.js';
import { executionIdFor, type ExecuteOrigin, type Message } from './messages.js';
import type { Cursor, JupyterState } from './state.js';

export const KERNEL_NAME = 'vmstream';
/** The name its sessions get, so that a native client can tell a notebook's kernel in `session.list`. */
const SESSION_NAME = 'jupyter kernel';
const RECENT = 1000;

export interface KernelModel {
  id: string;
  name: string;
  last_activity: string;
  execution_state: 'idle' | 'busy';
  connections: number;
}

export class Kernels {
  readonly #service: ExecutionService;
  readonly #state: JupyterState;
  readonly #onError: (error: unknown) => void;
  readonly #feeds = new Map<string, Feed>();
  /** Open channel connections per kernel (tenant-qualified), for the model's `connections`. */
  readonly #connections = new Map<string, number>();
  /** Origins the execution_id could not carry (see messages.ts executionIdFor). */
  readonly #origins = new Map<string, ExecuteOrigin>();
  /** Per kernel: whether the last execute_request received failed with stop_on_error, once it ended. */
  readonly #tails = new Map<string, Promise<boolean>>();
  /** Per kernel: execute requests received that have not ended yet, at most `#maxWaiting`. */
  readonly #waiting = new Map<string, number>();
  readonly #maxWaiting: number;

  constructor(service: ExecutionService, state: JupyterState, maxWaiting: number, onError: (error: unknown) => void) {
    this.#service = service;
    this.#maxWaiting = maxWaiting;
    this.#state = state;
    this.#onError = onError;
  }

  async start(tenant: string): Promise<KernelModel> {
    return this.#model(await this.#service.createSession(tenant, SESSION_NAME), []);
  }

  async list(tenant: string): Promise<KernelModel[]> {
    return Promise.all(this.#service.listSessions(tenant).map((session) => this.model(tenant, session.session_id)));
  }

  /** The kernel's model; NOT_FOUND when it does not exist, belongs to another tenant, or was shut down. */
  async model(tenant: string, kernelId: string): Promise<KernelModel> {
    const session = await this.#open(tenant, kernelId);
    return this.#model(session, await this.#service.listExecutions(tenant, kernelId, 1));
  }

  /** Shuts the kernel down (closes its session); its feeds and their confirmed points go with it. */
  async shutdown(tenant: string, kernelId: string): Promise<void> {
    await this.#open(tenant, kernelId);
    await this.#service.closeSession(tenant, kernelId);
    const prefix = feedPrefix(tenant, kernelId);
    for (const key of [...this.#feeds.keys()]) if (key.startsWith(prefix)) this.#feeds.delete(key);
    await this.#state.forgetKernel(tenant, kernelId);
  }

  /** Stops what the kernel runs and everything queued behind it; resolves once all of it ended. */
  async interrupt(tenant: string, kernelId: string): Promise<void> {
    await this.#open(tenant, kernelId);
    const pending = (await this.#service.listExecutions(tenant, kernelId, RECENT)).filter((record) => record.status === 'queued' || record.status === 'running');
    // Queued ones first, so that none starts in the moment the running one stops.
    pending.sort((a, b) => b.number - a.number);
    await Promise.all(pending.map((record) => this.#service.cancel(tenant, record.execution_id)));
  }

  /** Restarts the kernel: what runs or waits is cancelled, and it goes on in a fresh, empty context. */
  async restart(tenant: string, kernelId: string): Promise<KernelModel> {
    await this.#open(tenant, kernelId);
    const session = await this.#service.resetSession(tenant, kernelId);
    return this.#model(session, await this.#service.listExecutions(tenant, kernelId, 1));
  }

  /** Completions at a cursor, counted in code points as Jupyter counts them. */
  async complete(tenant: string, kernelId: string, code: string, cursorPos: number): Promise<{ matches: string[]; cursor_start: number; cursor_end: number }> {
    await this.#open(tenant, kernelId);
    const units = [...code].slice(0, Math.max(0, cursorPos)).join('').length;
    const { matches, start, end } = await this.#service.complete(tenant, kernelId, code, units);
    const points = (offset: number) => [...code.slice(0, offset)].length;
    return { matches, cursor_start: points(start), cursor_end: points(end) };
  }

  /**
   * Runs an execute_request; its messages reach clients through their feeds. Requests wait here for
   * the one before them to end, so that a stop_on_error request that fails (or is interrupted) makes
   * every request received behind it `aborted` without running, as a Jupyter kernel does.
   */
  async execute(tenant: string, kernelId: string, request: Message): Promise<'submitted' | 'aborted'> {
    const key = feedPrefix(tenant, kernelId);
    const waiting = this.#waiting.get(key) ?? 0;
    if (waiting >= this.#maxWaiting) {
      throw new ProtocolError('LIMIT_EXCEEDED', `kernel \`${kernelId}\` already has ${waiting} execute requests waiting (limit ${this.#maxWaiting})`);
    }
    this.#waiting.set(key, waiting + 1);
    const previous = this.#tails.get(key);
    let settle!: (failed: boolean) => void;
    const outcome = new Promise<boolean>((resolve) => (settle = resolve));
    this.#tails.set(key, outcome);
    void outcome.then(() => {
      if (this.#tails.get(key) === outcome) this.#tails.delete(key);
      const left = this.#waiting.get(key)! - 1;
      if (left > 0) this.#waiting.set(key, left);
      else this.#waiting.delete(key);
    });
    try {
      // Looked up once the request has its place in line: a lookup that asks KV must not reorder requests.
      await this.#open(tenant, kernelId);
      if (previous && (await previous)) {
        settle(true);
        return 'aborted';
      }
      await this.#submit(tenant, kernelId, request, settle);
      return 'submitted';
    } catch (error) {
      settle(false);
      throw error;
    }
  }

  async #submit(tenant: string, kernelId: string, request: Message, settle: (failed: boolean) => void): Promise<void> {
    const content = request.content;
    const origin: ExecuteOrigin = {
      msgId: request.header.msg_id,
      session: request.header.session,
      flags: {
        silent: content.silent === true,
        storeHistory: content.store_history !== false,
        stopOnError: content.stop_on_error !== false,
      },
    };
    const code = typeof content.code === 'string' ? content.code : '';
    const { executionId, exact } = executionIdFor(origin);
    if (!exact) this.#origins.set(executionId, origin);
    const watcher = new EndWatcher((status) => settle(origin.flags.stopOnError && status !== 'ok'));
    const { record, created } = await this.#service.execute(tenant, { session_id: kernelId, kind: 'repl', code, execution_id: executionId }, watcher);
    if (record.session_id !== kernelId) throw new ProtocolError('BAD_REQUEST', `msg_id \`${origin.msgId}\` was already used in another kernel`);
    if (created) this.#service.release(watcher, tenant, record.execution_id);
    for (const [key, feed] of this.#feeds) if (key.startsWith(feedPrefix(tenant, kernelId))) feed.walk();
  }

  /** Executions of the kernel, oldest first: for history_request. */
  async history(tenant: string, kernelId: string): Promise<ExecutionRecord[]> {
    await this.#open(tenant, kernelId);
    return (await this.#service.listExecutions(tenant, kernelId, RECENT)).reverse();
  }

  /**
   * The feed of one client session; new ones start where the kernel stands now (only what happens
   * from now on is theirs), known ones from their last confirmed message, even after a restart.
   */
  async feed(tenant: string, kernelId: string, client: string): Promise<Feed> {
    await this.#open(tenant, kernelId);
    const key = `${feedPrefix(tenant, kernelId)}${client}`;
    const known = this.#feeds.get(key);
    if (known) return known;
    const stored = await this.#state.cursor(tenant, kernelId, client);
    const existing = this.#feeds.get(key);
    if (existing) return existing;
    const feed = new Feed(key, {
      service: this.#service,
      state: this.#state,
      tenant,
      kernelId,
      client,
      identity: { session: kernelId },
      originOf: (executionId) => this.#origins.get(executionId) ?? null,
      onError: this.#onError,
    }, stored ?? (await this.#now(tenant, kernelId)));
    this.#feeds.set(key, feed);
    return feed;
  }

  /**
   * A connection of the feed closed. A feed whose client gave no session_id cannot be resumed, so
   * it is dropped with its connection; the others wait for their client to come back.
   */
  detached(feed: Feed, connection: FeedConnection): void {
    feed.detach(connection);
    if (feed.anonymous) this.#feeds.delete(feed.key);
  }

  connected(tenant: string, kernelId: string, change: 1 | -1): void {
    const key = feedPrefix(tenant, kernelId);
    const count = (this.#connections.get(key) ?? 0) + change;
    if (count > 0) this.#connections.set(key, count);
    else this.#connections.delete(key);
  }

  /** The point a new client session starts from: after the last execution, or in the running one. */
  async #now(tenant: string, kernelId: string): Promise<Cursor> {
    const [latest] = await this.#service.listExecutions(tenant, kernelId, 1);
    if (!latest) return { number: 0, seq: END };
    return { number: latest.number, seq: latest.status === 'queued' || latest.status === 'running' ? latest.last_seq : END };
  }

  async #open(tenant: string, kernelId: string): Promise<SessionRecord> {
    const session = await this.#service.getSession(tenant, kernelId);
    if (session.status === 'closed') throw new ProtocolError('NOT_FOUND', `no kernel \`${kernelId}\``);
    return session;
  }

  #model(session: SessionRecord, latest: ExecutionRecord[]): KernelModel {
    const last = latest[0];
    const busy = last !== undefined && (last.status === 'queued' || last.status === 'running');
    const activity = last ? last.ended_at ?? last.started_at ?? last.created_at : session.created_at;
    return {
      id: session.session_id,
      name: KERNEL_NAME,
      last_activity: new Date(activity).toISOString(),
      execution_state: busy ? 'busy' : 'idle',
      connections: this.#connections.get(feedPrefix(session.tenant, session.session_id)) ?? 0,
    };
  }
}

function feedPrefix(tenant: string, kernelId: string): string {
  return `${tenant}\u0000${kernelId}\u0000`;
}

/** The UTF-8 bytes of `done`: every msgpack string "done" holds them, whatever its header. */
const DONE = Buffer.from('done', 'utf8');

/**
 * Says how one execution ended. It asks for `events` frames and decodes only those whose bytes hold
 * `done` somewhere (the event type's string, or a line that says it): decoding every line of a long
 * run to find its last event cost the door more than all the rest of its work per line.
 */
class EndWatcher implements EventSink {
  #over = false;

  constructor(readonly onEnd: (status: string) => void) {}

  batched(): boolean {
    return true;
  }

  send(frame: Uint8Array): SendResult {
    if (Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).indexOf(DONE) < 0) return SendResult.SENT;
    const decoded = decodeValue(frame) as EventFrame | EventsFrame;
    const done = (decoded.op === 'events' ? decoded.events : [decoded]).find((event) => event.type === 'done');
    if (done) this.#end((done.payload as EventFrame<'done'>['payload']).status);
    return SendResult.SENT;
  }

  /** The subscription ended; without a `done` seen (its log was deleted), the end is unknown. */
  ended(): void {
    this.#end('unknown');
  }

  #end(status: string): void {
    if (this.#over) return;
    this.#over = true;
    this.onEnd(status);
  }

  cork(fn: () => void): void {
    fn();
  }
}
