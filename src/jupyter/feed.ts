/**
 * The messages of one kernel for one client session (the `session_id` of its channels URL), in
 * order, none twice, across reconnects and server restarts. It walks the kernel's executions in
 * their order, subscribing to each one's stored events in turn; each event is a unit (derive.ts).
 *
 * Jupyter clients acknowledge nothing, so delivery is confirmed with WebSocket pings: the feed pings
 * after writing, remembering the last unit written before that ping, and a pong with the same
 * payload confirms everything up to it. A new connection of the same client session replaces the
 * old one (which may be half-open and still look alive) and starts again after the last confirmed
 * unit. That point is also kept in JupyterState, so it survives a restart.
 *
 * A write carries the units of a run of events delivered together (a burst of lines is one `stream`
 * message). Where each write written since the confirmed point ended is remembered, so that a new
 * connection is sent the same runs, cut at the same places: the very messages, with the same ids,
 * while the server runs (after a restart the unconfirmed lines come again, grouped as they are read).
 */
import { ProtocolError } from '../../protocol/errors.js';
import { eventsOf } from '../../protocol/batch.js';
import type { EventFrame, EventsFrame, ExecutionRecord } from '../../protocol/types.js';
import { decodeValue } from '../../protocol/codec.js';
import { SendResult, type EndReason, type EventSink } from '../events/subscription-hub.js';
import { endedEarlyError } from '../events/end-reason.js';
import type { ExecutionService } from '../sessions/service.js';
import { Derivation, type ExecutionView } from './derive.js';
import { originOf, type ExecuteOrigin, type KernelIdentity, type Message } from './messages.js';
import type { Cursor, JupyterState } from './state.js';

/** The client id of a connection without a session_id starts with this. */
export const ANONYMOUS = 'anonymous-';
/** Seq of a unit after every event: the execution was delivered to its end. */
export const END = Number.MAX_SAFE_INTEGER;
/** How many earlier executions a feed looks back over (after a long absence, older ones are skipped). */
const LOOKBACK = 1000;
/** Ends of unconfirmed writes remembered (a client that reads but never answers a ping gets regrouped messages past this). */
const MAX_CUTS = 10_000;
/** Connections an execution's unreadable log may end before the feed passes over it (a corrupt chunk never reads). */
const UNREADABLE_TRIES = 3;

/** What a feed writes to: the channel of its current connection. */
export interface FeedConnection {
  readonly open: boolean;
  write(messages: Message[]): SendResult;
  ping(payload: string): void;
  cork(fn: () => void): void;
  /** The connection was replaced by a newer one of the same client session. */
  replace(): void;
  /** Ends the connection with an error (1011, `reason`): its client reconnects and resumes. */
  fail(reason: string): void;
}

export interface FeedContext {
  service: ExecutionService;
  state: JupyterState;
  tenant: string;
  kernelId: string;
  client: string;
  identity: KernelIdentity;
  /** Origins of executions whose execution_id could not carry them (kept while the server runs). */
  originOf(executionId: string): ExecuteOrigin | null;
  onError(error: unknown): void;
}

const before = (a: Cursor, b: Cursor) => a.number < b.number || (a.number === b.number && a.seq < b.seq);

export class Feed {
  readonly #context: FeedContext;
  /** The last unit the client confirmed. */
  #confirmed: Cursor;
  /** The last unit written to the current connection. */
  #sent: Cursor;
  /** Where each write since the confirmed point ended, in order: a new connection's writes end there too. */
  #cuts: Cursor[] = [];
  #connection: FeedConnection | null = null;
  #sink: UnitSink | null = null;
  #walking = false;
  #again = false;
  #pings = new Map<string, Cursor>();
  #pingCount = 0;
  #pingTimer: NodeJS.Immediate | null = null;
  /** Sessions that sent execute requests through this feed's connections (a gateway relays browsers'). */
  readonly #askers = new Set<string>();
  #saving: Promise<void> | null = null;
  #saveAgain = false;
  /** Connections ended because an execution's log could not be read, by execution id (until it is passed). */
  readonly #unreadable = new Map<string, number>();

  constructor(readonly key: string, context: FeedContext, confirmed: Cursor) {
    this.#context = context;
    this.#confirmed = confirmed;
    this.#sent = confirmed;
  }

  /** Its client gave no session_id: it can never be resumed. */
  get anonymous(): boolean {
    return this.#context.client.startsWith(ANONYMOUS);
  }

  /** Serves the feed on a new connection, replacing the current one, from the last confirmed unit. */
  attach(connection: FeedConnection): void {
    const previous = this.#connection;
    this.#stopSending();
    this.#connection = connection;
    previous?.replace();
    this.#sent = this.#confirmed;
    this.walk();
  }

  detach(connection: FeedConnection): void {
    if (this.#connection !== connection) return;
    this.#stopSending();
    this.#connection = null;
  }

  /** A new execution may exist: the feed goes on to it once it has delivered the current one. */
  walk(): void {
    if (this.#walking) {
      this.#again = true;
      return;
    }
    this.#walking = true;
    this.#walk().catch((error: unknown) => {
      this.#walking = false;
      // A kernel shut down under the walk is no error of the server's.
      if (!(error instanceof ProtocolError)) this.#context.onError(error);
    });
  }

  /** An execute_request of client session `session` came through this feed's connection. */
  asked(session: string): void {
    this.#askers.add(session);
  }

  /** Whether the shell reply to a request of `session` is for this feed's client. */
  answers(session: string): boolean {
    return session === this.#context.client || this.#askers.has(session);
  }

  pong(payload: string): void {
    const cursor = this.#pings.get(payload);
    if (!cursor) return;
    for (const [id, earlier] of this.#pings) {
      this.#pings.delete(id);
      if (earlier === cursor) break;
    }
    if (!before(this.#confirmed, cursor)) return;
    this.#confirmed = cursor;
    const kept = this.#cuts.findIndex((cut) => before(cursor, cut));
    this.#cuts.splice(0, kept < 0 ? this.#cuts.length : kept);
    this.#save();
    if (before(this.#confirmed, this.#sent)) this.#schedulePing();
  }

  /** The connection's buffer drained: a paused subscription goes on. */
  drained(): Promise<void> {
    return this.#sink ? this.#context.service.resume(this.#sink) : Promise.resolve();
  }

  /** Goes on to the next execution, as often as asked while it was busy. */
  async #walk(): Promise<void> {
    do {
      this.#again = false;
      await this.#step();
    } while (this.#again);
    this.#walking = false;
  }

  async #step(): Promise<void> {
    const { service, tenant, kernelId } = this.#context;
    const connection = this.#connection;
    if (!connection || this.#sink) return;
    const session = await service.getSession(tenant, kernelId);
    // Newest first: only as many as came since the cursor's execution (and that one) are read.
    const since = session.execution_count - this.#sent.number + 1;
    if (since <= 0) return;
    const records = await service.listExecutions(tenant, kernelId, Math.min(since, LOOKBACK));
    // A new connection meanwhile asked for a walk of its own (`#again`).
    if (this.#connection !== connection || this.#sink) return;
    const next = records.reverse().find((record) => before(this.#sent, { number: record.number, seq: END }));
    if (next) this.#deliver(connection, next, session.replay_from ?? 1);
  }

  /** Sends an execution's units after the cursor: its start now, its events through a subscription. */
  #deliver(connection: FeedConnection, record: ExecutionRecord, replayFrom: number): void {
    const derivation = new Derivation(this.#context.identity, this.#view(record, replayFrom));
    const skipThrough = record.number === this.#sent.number ? this.#sent.seq : -1;
    if (skipThrough < 0) this.#wrote(connection, record.number, 0, derivation.start());
    const cuts = this.#cuts.filter((cut) => cut.number === record.number && cut.seq > skipThrough).map((cut) => cut.seq);
    const sink = new UnitSink(this, connection, derivation, skipThrough, cuts);
    this.#sink = sink;
    this.#context.service.subscribe(sink, this.#context.tenant, record.execution_id, 0, null);
  }

  /** Called by the sink: one unit is written. */
  wrote(sink: UnitSink, seq: number, messages: Message[]): SendResult {
    if (sink !== this.#sink) return SendResult.DROPPED;
    return this.#wrote(sink.connection, sink.derivation.execution.number, seq, messages);
  }

  #wrote(connection: FeedConnection, number: number, seq: number, messages: Message[]): SendResult {
    const result = connection.write(messages);
    if (result === SendResult.DROPPED) return result;
    this.#sent = { number, seq };
    const last = this.#cuts.at(-1);
    // A write sent again ends where the first one did: only a write past them all is a new cut.
    if ((!last || before(last, this.#sent)) && this.#cuts.length < MAX_CUTS) this.#cuts.push(this.#sent);
    this.#schedulePing();
    return result;
  }

  /**
   * The subscription ended (its `done` went out, or its log is gone): on to the next execution. A
   * log that could not be read is not passed over at once: the connection ends, and the client's
   * reconnect reads that execution again from its last confirmed unit. After UNREADABLE_TRIES such
   * ends it is passed over as a deleted one is, or the client could never see a later output.
   */
  ended(sink: UnitSink, reason: EndReason): void {
    if (sink !== this.#sink) return;
    this.#sink = null;
    const { executionId, number } = sink.derivation.execution;
    if (reason === 'unreadable' || reason === 'gap') {
      const failures = (this.#unreadable.get(executionId) ?? 0) + 1;
      this.#unreadable.set(executionId, failures);
      if (failures < UNREADABLE_TRIES) {
        sink.connection.fail('LOG_UNREADABLE: an execution\'s events could not be read; reconnect to read them again');
        return;
      }
    }
    this.#unreadable.delete(executionId);
    // Ended short of its `done` (end-reason.ts says which reasons do): its reply and `idle` will not
    // come from the log. A log the store refused the rest of is passed over at once: reading it
    // again would end at the same place.
    if (endedEarlyError(executionId, reason) !== null) this.#withhold(sink, reason);
    if (this.#sent.number === number) this.#sent = { number, seq: END };
    this.walk();
  }

  /** Ends an execution whose events will not come: a note, its reply and `idle` (derive.ts, `withheld`). */
  #withhold(sink: UnitSink, reason: EndReason): void {
    const note = reason === 'deleted'
      ? 'the output of this execution was deleted (retention) before it could be shown'
      : reason === 'refused'
        ? 'the rest of the output of this execution could not be stored (the server logged why), so it was stopped'
        : 'the output of this execution could not be read (the server logged why): it is not shown';
    this.#wrote(sink.connection, sink.derivation.execution.number, END, this.addressed(sink.derivation, sink.derivation.withheld(note, Date.now())));
  }

  /** The messages of an execution this feed's client gets: the shell reply is for the client that asked; an execution without a known asker replies to all. */
  addressed(derivation: Derivation, messages: Message[]): Message[] {
    const origin = derivation.execution.origin;
    return messages.filter((message) => message.channel !== 'shell' || !origin?.session || this.answers(origin.session));
  }

  /** `replayFrom`: the session's first input replayed on a rebuild (Jupyter counts from there after a restart). */
  #view(record: ExecutionRecord, replayFrom: number): ExecutionView {
    return {
      executionId: record.execution_id,
      number: record.number,
      count: record.number >= replayFrom ? record.number - replayFrom + 1 : record.number,
      code: record.code ?? `// run-file ${record.path}`,
      createdAt: record.created_at,
      origin: originOf(record.execution_id) ?? this.#context.originOf(record.execution_id),
      status: record.status,
      ...(record.reason === undefined ? {} : { reason: record.reason }),
    };
  }

  #stopSending(): void {
    const sink = this.#sink;
    this.#sink = null;
    if (sink) this.#context.service.unsubscribe(sink, this.#context.tenant, sink.derivation.execution.executionId);
    this.#pings.clear();
    if (this.#pingTimer) clearImmediate(this.#pingTimer);
    this.#pingTimer = null;
  }

  /** One ping after each burst of writes (all a commit delivers goes out before it). */
  #schedulePing(): void {
    if (this.#pingTimer || !this.#connection) return;
    this.#pingTimer = setImmediate(() => {
      this.#pingTimer = null;
      const connection = this.#connection;
      if (!connection?.open || !before(this.#confirmed, this.#sent)) return;
      const id = String(++this.#pingCount);
      this.#pings.set(id, this.#sent);
      connection.ping(id);
    });
  }

  /** Keeps the confirmed point; one write at a time, the latest point winning. */
  #save(): void {
    if (this.#saving) {
      this.#saveAgain = true;
      return;
    }
    const { state, tenant, kernelId, client } = this.#context;
    this.#saving = state.saveCursor(tenant, kernelId, client, this.#confirmed)
      .catch((error: unknown) => this.#context.onError(error))
      .finally(() => {
        this.#saving = null;
        if (this.#saveAgain) {
          this.#saveAgain = false;
          this.#save();
        }
      });
  }
}

/**
 * One execution's subscription for one connection: each stored event becomes its unit's messages.
 * It asks for `events` frames, so that a tick's events (up to protocol/batch.ts's bounds) arrive in
 * one call, become their messages together (a burst of lines, one `stream` message) and leave in
 * one write; the cursor then moves to the last of them.
 */
class UnitSink implements EventSink {
  constructor(
    readonly feed: Feed,
    readonly connection: FeedConnection,
    readonly derivation: Derivation,
    /** Units up to this seq were delivered before: derived (for the state they carry), not sent. */
    readonly skipThrough: number,
    /** Seqs where an earlier connection's writes ended, ascending: these writes end there too. */
    readonly cuts: number[],
  ) {}

  /** Events of a write that ends at a cut not delivered yet (they are stored: the cut was written). */
  #pending: EventFrame[] = [];
  /** The first of `cuts` not passed yet. */
  #nextCut = 0;

  batched(): boolean {
    return true;
  }

  send(frame: Uint8Array): SendResult {
    const decoded = decodeValue(frame) as EventFrame | EventsFrame;
    let events = decoded.op === 'events' ? eventsOf(decoded) : [decoded];
    let fresh = 0;
    // Units delivered before are derived for the state they carry (an exception's error), not sent.
    for (; fresh < events.length && events[fresh]!.seq <= this.skipThrough; fresh++) this.derivation.event(events[fresh]!);
    if (fresh === events.length) return SendResult.SENT;
    events = this.#pending.concat(fresh === 0 ? events : events.slice(fresh));
    this.#pending = [];
    let result = SendResult.SENT;
    while (events.length > 0) {
      while (this.#nextCut < this.cuts.length && this.cuts[this.#nextCut]! < events[0]!.seq) this.#nextCut++;
      const cut = this.cuts[this.#nextCut];
      const end = cut === undefined ? events.length : events.findIndex((event) => event.seq === cut) + 1;
      if (end === 0) {
        this.#pending = events;
        return result;
      }
      // The subscription hears the worst of its writes: SENT_FULL pauses it.
      result = Math.max(result, this.#write(events.slice(0, end)));
      if (result === SendResult.DROPPED) return result;
      events = events.slice(end);
    }
    return result;
  }

  /** Writes the units of consecutive events as one write. */
  #write(events: EventFrame[]): SendResult {
    const messages = this.feed.addressed(this.derivation, this.derivation.events(events));
    return this.feed.wrote(this, events[events.length - 1]!.seq, messages);
  }

  cork(fn: () => void): void {
    this.connection.cork(fn);
  }

  ended(_executionId: string, reason: EndReason): void {
    // Held for a cut that never came (the log was cut short): written as they are.
    if (this.#pending.length > 0) this.#write(this.#pending.splice(0));
    this.feed.ended(this, reason);
  }
}
