/**
 * Delivers each execution's events to the sockets subscribed to it: in order, with no gap and no
 * duplicate, whether the subscriber joined before the first event, in the middle, or after the end.
 *
 * A subscription has a cursor (the last seq it sent) and a mode. `live` subscriptions get frames
 * straight from each commit. Every other way in (a late join, a socket that fell behind) is
 * `catching-up`: it reads the store from its cursor until it reaches the execution's committed seq,
 * then turns live. Commits and that check both run on this one thread, and delivery follows each
 * commit synchronously, so no event can slip between "caught up" and "live". A socket whose buffer
 * passes the threshold is `paused` (nothing more is pushed into its memory) and catches up from the
 * store when it drains: one mechanism for replay and for slow consumers. What was committed while a
 * subscriber was behind is also kept in memory for a while (recent-frames.ts, bounded): a catch-up
 * that reaches it sends from there instead of reading the store back.
 *
 * One more mode, `held`, serves the socket that sent `execute`: it is attached before the code can
 * produce anything, but must get the `execution` reply first. Until that reply is out, committed
 * frames are kept for it in memory (a few, bounded) instead of being read back from the store.
 *
 * A subscription whose sink asked for batches (protocol v1.1, `batch: true`) gets each run of
 * frames it would have sent one by one as `events` frames instead, cut to protocol/batch.ts's
 * bounds: the same cursor moves over the same seqs, so every guarantee above holds per batch.
 *
 * Which executions are live, and where an execution that is not live here stands, the hub asks a
 * LiveFeed (live-feed.ts): an execution may be running on another node, its chunks fed in by a
 * follow of its log through the same `deliver`.
 */
import { batchEnd, encodeEvents } from '../../protocol/batch.js';
import { StoreError, type EventChunk, type EventStore, type StoredEvent } from '../store/event-store.js';
import type { CommittedChunk } from './commit-log.js';
import type { LiveFeed, LogState } from './live-feed.js';
import { RecentFrames } from './recent-frames.js';

/** What a subscription writes to; transport/ implements it over a socket. */
export interface EventSink {
  /** Sends a frame: SENT, SENT_FULL (sent, but the buffer passed the threshold), or DROPPED (not sent). */
  send(frame: Uint8Array): SendResult;
  /**
   * Optional: sends frames[from] to frames[to - 1] (from < to) in order, as `send` one by one
   * would, stopping after the first whose result is not SENT; says how many were sent (SENT or
   * SENT_FULL) and the last result. A replay's page goes in one call instead of one per frame
   * (issue 15: the hub's and the socket's per-frame checks were ~8 % of a cold replay's main thread).
   * A sink without one is sent its runs through `send`, one frame at a time (Subscription.sendRun).
   */
  sendRun?(frames: readonly Uint8Array[], from: number, to: number): RunResult;
  /** Runs `fn` with the socket corked, so its sends leave in one write. */
  cork(fn: () => void): void;
  /**
   * A subscription of this sink ended, and why (`reason`). A sink that serves one subscription (an
   * HTTP event stream) ends its response here; one that ended short of its `done` (`deleted`,
   * `unreadable`, `gap`, `refused`) tells its client (events/end-reason.ts).
   */
  ended?(executionId: string, reason: EndReason): void;
  /**
   * Whether this sink wants the execution's events as `events` frames (protocol v1.1). Asked when a
   * subscription starts (attach, release); absent means single `event` frames.
   */
  batched?(executionId: string): boolean;
}

export const enum SendResult { SENT = 0, SENT_FULL = 1, DROPPED = 2 }

/** What `sendRun` did: how many frames it sent, and the result of the last it tried. */
export interface RunResult {
  sent: number;
  result: SendResult;
}

/**
 * Why a subscription ended. `complete`: it sent the log's last seq (the execution's `done`).
 * `detached`: unsubscribed, replaced by a new subscription of its sink, or its sink closed. The
 * others end it short of its `done`: `deleted`, the log was deleted (retention) while it was read;
 * `unreadable`, a store read failed (not STORE_UNAVAILABLE, which is retried); `gap`, reads kept
 * finding nothing where the log is known to go on; `refused`, it sent all of a log that ends
 * without a `done` because the store refused the rest of the execution's events for good (`finish`).
 */
export type EndReason = 'complete' | 'detached' | 'deleted' | 'unreadable' | 'gap' | 'refused';

type Mode = 'live' | 'held' | 'catching-up' | 'paused' | 'ended';

/** Paused or catching up: it needs what is committed now (recent-frames.ts keeps it meanwhile). */
function isBehind(mode: Mode): boolean {
  return mode === 'paused' || mode === 'catching-up';
}

class Subscription {
  /** Set through SubscriptionHub.#setMode, which counts the subscriptions behind. */
  mode: Mode;
  reading = false;
  /** Seq of the terminal `done`, once known: the subscription ends after sending it. */
  finalSeq: number | null;
  /** How it ends once it has sent finalSeq: `refused` when the log ends there without a `done` (`finish`). */
  endsAs: 'complete' | 'refused' = 'complete';
  /** In `held` mode: committed frames waiting for the reply to go out, from seq cursor + 1. */
  held: Uint8Array[] = [];
  heldOverflow = false;
  /** Sends `events` frames (the sink asked for them) instead of one frame per event. */
  batched: boolean;
  /** Catch-up reads in a row that found nothing short of where the log is known to end. */
  emptyReads = 0;

  constructor(readonly sink: EventSink, readonly executionId: string, public cursor: number, finalSeq: number | null, mode: Mode) {
    this.mode = mode;
    this.finalSeq = finalSeq;
    this.batched = sink.batched?.(executionId) ?? false;
  }

  /**
   * Sends frames[from..to) as EventSink.sendRun says: through the sink's own, or, for a sink without
   * one, `send` one by one, stopping after the first frame that is not SENT or that ended this
   * subscription (an event stream ends it from inside `send`, after `done`). So the hub has one way
   * to send, and the pauses, the cursor and the end are decided in one place (#sent).
   */
  sendRun(frames: readonly Uint8Array[], from: number, to: number): RunResult {
    if (this.sink.sendRun) return this.sink.sendRun(frames, from, to);
    let index = from;
    let result = SendResult.SENT;
    while (index < to && result === SendResult.SENT && this.mode !== 'ended') result = this.sink.send(frames[index++]!);
    return { sent: index - from - (result === SendResult.DROPPED ? 1 : 0), result };
  }
}

const PAGE_EVENTS = 1024;
/** Resolves in the next turn of the event loop, after the setImmediate callbacks already queued. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** A catch-up whose read found the store unavailable tries again after this. */
const READ_RETRY_MS = 250;
/**
 * Reads in a row that found nothing although the log is known to go on (a store read that did not
 * see the log's end yet), each READ_RETRY_MS apart, after which the subscription ends (a gap).
 */
const EMPTY_READ_RETRIES = 8;
/** Past this many held frames, the rest is read back from the store on release. */
const HOLD_LIMIT = 1024;
/**
 * Bytes of frames committed while a subscriber was behind, kept for its catch-up over all
 * executions (recent-frames.ts): a few times a socket's backpressure threshold (1 MiB by default).
 */
const RECENT_MAX_BYTES = 16 * 1024 * 1024;

export class SubscriptionHub {
  readonly #store: EventStore;
  readonly #feed: LiveFeed;
  readonly #byExecution = new Map<string, Set<Subscription>>();
  readonly #bySink = new Map<EventSink, Map<string, Subscription>>();
  readonly #onReadError: (error: unknown) => void;
  readonly #recent = new RecentFrames(RECENT_MAX_BYTES);
  /**
   * By execution, how many of its subscriptions are behind (paused or catching up); none: absent.
   * Counted as modes change, not looked for: a scan of a reconnect storm's thousands of
   * subscriptions at each of their ends or hand-offs cost O(n²): 20 000 live ones ending at their
   * `done` beside one paused took ~1 s (0.035 s without the scan).
   */
  readonly #behind = new Map<string, number>();
  pauses = 0;
  /** Store reads made to replay events: catching up, and pages read over HTTP. */
  reads = 0;

  /** Bytes held by the frames kept for subscribers that fell behind (recent-frames.ts). */
  get keptBytes(): number {
    return this.#recent.bytes;
  }

  constructor(store: EventStore, feed: LiveFeed, onReadError: (error: unknown) => void) {
    this.#store = store;
    this.#feed = feed;
    this.#onReadError = onReadError;
  }

  /**
   * Sends `sink` every event of the execution with seq > afterSeq. `finalSeq` is the seq of the
   * execution's `done` when it has already ended, null while it runs.
   */
  attach(sink: EventSink, executionId: string, afterSeq: number, finalSeq: number | null): void {
    this.#register(sink, executionId, afterSeq, finalSeq, 'catching-up');
    void this.#catchUp(this.#bySink.get(sink)!.get(executionId)!);
  }

  /** Subscribes from seq 1, holding what arrives until `release`: for a new execution's own socket. */
  hold(sink: EventSink, executionId: string): void {
    this.#register(sink, executionId, 0, null, 'held');
  }

  /** The reply went out: sends what was held, then goes on live (or from the store, if it overflowed). */
  release(sink: EventSink, executionId: string): void {
    const subscription = this.#bySink.get(sink)?.get(executionId);
    if (!subscription || subscription.mode !== 'held') return;
    const { held, heldOverflow } = subscription;
    subscription.held = [];
    this.#setMode(subscription, 'catching-up');
    // The execution's id was not known to the sink when it was held (it came with the reply).
    subscription.batched = sink.batched?.(executionId) ?? false;
    if (!heldOverflow) {
      const firstSeq = subscription.cursor + 1;
      sink.cork(() => this.#sendRun(subscription, firstSeq, held));
      if (subscription.mode !== 'catching-up') return;
    }
    void this.#catchUp(subscription);
  }

  #register(sink: EventSink, executionId: string, afterSeq: number, finalSeq: number | null, mode: Mode): Subscription {
    this.detach(sink, executionId);
    const subscription = new Subscription(sink, executionId, afterSeq, finalSeq, mode);
    if (isBehind(mode)) this.#countBehind(executionId, 1);
    let forSink = this.#bySink.get(sink);
    if (!forSink) this.#bySink.set(sink, (forSink = new Map()));
    forSink.set(executionId, subscription);
    let forExecution = this.#byExecution.get(executionId);
    if (!forExecution) this.#byExecution.set(executionId, (forExecution = new Set()));
    forExecution.add(subscription);
    return subscription;
  }

  detach(sink: EventSink, executionId: string): boolean {
    const subscription = this.#bySink.get(sink)?.get(executionId);
    if (!subscription) return false;
    this.#end(subscription, 'detached');
    return true;
  }

  detachAll(sink: EventSink): void {
    const forSink = this.#bySink.get(sink);
    if (!forSink) return;
    for (const subscription of [...forSink.values()]) this.#end(subscription, 'detached');
    this.#bySink.delete(sink);
  }

  /**
   * The sink drained: its paused subscriptions catch up from the store. Resolves once each has
   * stopped again (paused, live or ended): a sink let go by a budget learns it sent all it could.
   */
  resume(sink: EventSink): Promise<void> {
    const catchingUp: Array<Promise<void>> = [];
    for (const subscription of this.#bySink.get(sink)?.values() ?? []) {
      if (subscription.mode === 'paused') {
        this.#setMode(subscription, 'catching-up');
        catchingUp.push(this.#catchUp(subscription));
      }
    }
    return Promise.all(catchingUp).then(() => undefined);
  }

  /**
   * The execution stopped being live here without ending here (another node took it over): its
   * live subscriptions catch up again, and so find where its log goes on (a remote tail).
   */
  relocate(executionId: string): void {
    for (const subscription of [...(this.#byExecution.get(executionId) ?? [])]) {
      if (subscription.mode !== 'live') continue;
      this.#setMode(subscription, 'catching-up');
      void this.#catchUp(subscription);
    }
  }

  /** Where an execution's log stands, wherever it runs (null: no such execution). */
  locate(executionId: string): Promise<LogState | null> {
    return this.#feed.locate(executionId);
  }

  /** Stored events with seq > afterSeq, at most `limit`: a page read without subscribing. */
  read(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    this.reads++;
    return this.#store.readEvents(executionId, afterSeq, limit);
  }

  /**
   * Marks where an execution's log ends; subscriptions end once they have sent that seq, as
   * `complete`, or as `refused` when the log ends there without a `done` (the store refused the
   * rest of it): their clients must not wait for one.
   */
  finish(executionId: string, finalSeq: number, endsAs: 'complete' | 'refused' = 'complete'): void {
    for (const subscription of [...(this.#byExecution.get(executionId) ?? [])]) {
      subscription.finalSeq = finalSeq;
      subscription.endsAs = endsAs;
      if (subscription.cursor >= finalSeq && subscription.mode !== 'held') this.#end(subscription, 'complete');
    }
  }

  /** Pushes freshly committed frames to live subscriptions, one cork per socket. */
  deliver(chunks: CommittedChunk[]): void {
    const bySink = new Map<EventSink, Array<[Subscription, CommittedChunk]>>();
    for (const chunk of chunks) {
      const subscriptions = this.#byExecution.get(chunk.executionId);
      if (!subscriptions) continue;
      for (const subscription of subscriptions) {
        if (subscription.mode === 'held') {
          if (subscription.held.length + chunk.frames.length > HOLD_LIMIT) subscription.heldOverflow = true;
          else subscription.held.push(...chunk.frames);
          continue;
        }
        if (subscription.mode !== 'live') continue;
        const list = bySink.get(subscription.sink);
        if (list) list.push([subscription, chunk]);
        else bySink.set(subscription.sink, [[subscription, chunk]]);
      }
    }
    // `events` frames built from a chunk, by the index they start at: built once per chunk.
    const batches = new Map<CommittedChunk, Map<number, Uint8Array>>();
    const batchesOf = (chunk: CommittedChunk) => {
      let built = batches.get(chunk);
      if (!built) batches.set(chunk, (built = new Map()));
      return built;
    };
    for (const [sink, list] of bySink) {
      sink.cork(() => {
        for (const [subscription, chunk] of list) {
          this.#sendRun(subscription, chunk.firstSeq, chunk.frames, subscription.batched ? batchesOf(chunk) : undefined);
        }
      });
    }
    // After the sends: a subscriber that paused on this chunk catches up from it.
    for (const chunk of chunks) if (this.#behind.has(chunk.executionId)) this.#recent.keep(chunk);
  }

  /** Sets a subscription's mode, counting those behind; the compiler then knows the mode, as after an assignment. */
  #setMode<M extends Mode>(subscription: Subscription, mode: M): asserts subscription is Subscription & { mode: M } {
    const change = Number(isBehind(mode)) - Number(isBehind(subscription.mode));
    subscription.mode = mode;
    if (change !== 0) this.#countBehind(subscription.executionId, change);
  }

  /** A subscription of the execution fell behind (+1) or stopped being behind (-1): once none is, what was kept for them goes. */
  #countBehind(executionId: string, change: number): void {
    const behind = (this.#behind.get(executionId) ?? 0) + change;
    if (behind > 0) {
      this.#behind.set(executionId, behind);
    } else {
      this.#behind.delete(executionId);
      this.#recent.drop(executionId);
    }
  }

  /**
   * Sends the frames of a contiguous run (seqs firstSeq, firstSeq + 1, …) that come after the
   * subscription's cursor, in one run of the sink's; or, batched, as `events` frames, a run each,
   * built as they go (a sink that fills up leaves no batch built in vain). A run starting past the
   * cursor sends nothing. `batches` keeps the `events` frames built from this run, so subscribers at
   * the same cursor share them.
   */
  #sendRun(subscription: Subscription, firstSeq: number, frames: Uint8Array[], batches?: Map<number, Uint8Array>): void {
    let index = subscription.cursor + 1 - firstSeq;
    if (index < 0) return;
    if (!subscription.batched) {
      // The sink does not know the final seq: the run stops there, as the subscription does.
      const { finalSeq } = subscription;
      const end = finalSeq === null ? frames.length : Math.min(frames.length, finalSeq - firstSeq + 1);
      if (index >= end) return;
      const { sent, result } = subscription.sendRun(frames, index, end);
      this.#sent(subscription, firstSeq + index + sent - 1, result);
      return;
    }
    while (index < frames.length) {
      const end = batchEnd(frames, index);
      let batch = batches?.get(index);
      if (!batch) {
        batch = encodeEvents(frames, index, end);
        batches?.set(index, batch);
      }
      const { sent, result } = subscription.sendRun([batch], 0, 1);
      if (!this.#sent(subscription, sent === 0 ? subscription.cursor : firstSeq + end - 1, result)) return;
      index = end;
    }
  }

  /**
   * After a run whose last frame sent carried seq `cursor`, and whose last send said `result`: the
   * subscription ends once it has sent its final seq, and pauses when its sink is full (or dropped
   * a frame). False once it must stop sending.
   */
  #sent(subscription: Subscription, cursor: number, result: SendResult): boolean {
    // The sink may end its subscriptions from inside send (an event stream ends after `done`).
    if (subscription.mode === 'ended') return false;
    subscription.cursor = cursor;
    if (subscription.finalSeq !== null && cursor >= subscription.finalSeq) {
      this.#end(subscription, 'complete');
      return false;
    }
    if (result === SendResult.SENT) return true;
    this.#setMode(subscription, 'paused');
    this.pauses++;
    return false;
  }

  async #catchUp(subscription: Subscription): Promise<void> {
    if (subscription.reading) return;
    subscription.reading = true;
    // The next page, read while this one is sent: one page ahead at most, so a subscription that
    // pauses has read no more than a page it did not send (the replay cache keeps it for the resume).
    let ahead: { afterSeq: number; page: Promise<EventChunk> } | null = null;
    let firstPage = true;
    try {
      while (subscription.mode === 'catching-up') {
        const target = subscription.finalSeq ?? this.#feed.committedSeq(subscription.executionId);
        if (target === undefined) {
          // Not live here: it ended, or it runs elsewhere and the feed must bring its events here.
          const state = await this.#feed.locate(subscription.executionId);
          if (subscription.mode !== 'catching-up') return;
          if (!state) return this.#end(subscription, 'deleted');
          if (state.refused) {
            subscription.finalSeq = state.lastSeq;
            subscription.endsAs = 'refused';
          } else if (state.finalSeq !== null) subscription.finalSeq = state.finalSeq;
          else this.#feed.follow(subscription.executionId, subscription.cursor);
          continue;
        }
        if (subscription.cursor >= target) {
          if (subscription.finalSeq !== null) this.#end(subscription, 'complete');
          else this.#setMode(subscription, 'live');
          return;
        }
        const kept = this.#recent.find(subscription.executionId, subscription.cursor + 1);
        if (kept) {
          ahead = null;
          subscription.sink.cork(() => this.#sendRun(subscription, kept.firstSeq, kept.frames));
          continue;
        }
        const page: Promise<EventChunk> = ahead?.afterSeq === subscription.cursor ? ahead.page : this.#readPage(subscription.executionId, subscription.cursor, target);
        ahead = null;
        const { frames } = await page;
        if (subscription.mode !== 'catching-up') return;
        if (frames.length === 0) {
          // Short of the seq the log is known to reach: read again, as after a store that did not answer.
          await this.#emptyRead(subscription, target);
          return;
        }
        subscription.emptyReads = 0;
        const pageEnd = subscription.cursor + frames.length;
        // No read ahead into what the hub keeps in memory: the next turn of the loop sends from there.
        if (pageEnd < target && !this.#recent.find(subscription.executionId, pageEnd + 1)) {
          ahead = { afterSeq: pageEnd, page: this.#readPage(subscription.executionId, pageEnd, target) };
        }
        subscription.sink.cork(() => this.#sendRun(subscription, subscription.cursor + 1, frames));
        if (firstPage && pageEnd < target) {
          // The turn ends with the first page, so that the socket writes it, and the reply before it,
          // at once (transport/outbox.ts writes at setImmediate). Pages the replay cache holds come
          // with no turn between them: the next ones were queued until the socket's buffer was full
          // (~10 000 events, 1 MB) before a byte left, and a scavenge their views set off in that
          // stretch (10–45 ms: bench/README.md, replay-deep) held the first event back with them.
          firstPage = false;
          await nextTurn();
        }
      }
    } catch (error) {
      this.#onReadError(error);
      // A store that did not answer this time (NATS busy or restarting) is asked again; anything else ends it.
      if (error instanceof StoreError && error.code === 'STORE_UNAVAILABLE') setTimeout(() => void this.#catchUp(subscription), READ_RETRY_MS);
      else this.#end(subscription, 'unreadable');
    } finally {
      subscription.reading = false;
    }
  }

  /**
   * A catch-up read found nothing after the cursor, short of `target` (a committed or final seq, so
   * stored). Ending there would leave the client waiting for a `done` that never comes: it is read
   * again, unless the execution is gone (deleted by retention) or reads keep finding nothing (a
   * gap, which a store should never have), and each miss is reported.
   */
  async #emptyRead(subscription: Subscription, target: number): Promise<void> {
    const { executionId, cursor } = subscription;
    const exists = (await this.#feed.locate(executionId)) !== null;
    if (subscription.mode !== 'catching-up') return;
    if (!exists) return this.#end(subscription, 'deleted');
    this.#onReadError(new StoreError('STORE_UNAVAILABLE', `a read of ${executionId} after seq ${cursor} found nothing, but its log reaches seq ${target}`));
    if (++subscription.emptyReads > EMPTY_READ_RETRIES) return this.#end(subscription, 'gap');
    setTimeout(() => void this.#catchUp(subscription), READ_RETRY_MS);
  }

  /**
   * A catch-up page; a read nobody awaits (its subscription stopped first) fails silently. The
   * store hears where the log is known to reach (`target`), so the replay cache reads ahead to it.
   */
  #readPage(executionId: string, afterSeq: number, target: number): Promise<EventChunk> {
    this.reads++;
    const page = this.#store.readRun(executionId, afterSeq, PAGE_EVENTS, target);
    page.catch(() => {});
    return page;
  }

  /** Ends a subscription; `complete` (it sent its final seq) becomes the end `finish` said its log has. */
  #end(subscription: Subscription, reason: EndReason): void {
    if (subscription.mode === 'ended') return;
    this.#setMode(subscription, 'ended');
    this.#bySink.get(subscription.sink)?.delete(subscription.executionId);
    const forExecution = this.#byExecution.get(subscription.executionId);
    if (forExecution) {
      forExecution.delete(subscription);
      if (forExecution.size === 0) {
        this.#byExecution.delete(subscription.executionId);
        this.#feed.unfollow(subscription.executionId);
      }
    }
    subscription.sink.ended?.(subscription.executionId, reason === 'complete' ? subscription.endsAs : reason);
  }
}
