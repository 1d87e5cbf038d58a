/**
 * Executions' event logs in one JetStream stream: chunks of frames as messages (a message per event
 * would cost 5–20× a LevelDB entry), one subject per page of 1 024 seqs, so that reading from any
 * after_seq begins with one exact-subject direct get and never scans from the log's start.
 *
 * Each log has a `logs` KV key, created by its first append: its revision is the log's incarnation
 * (in every subject and Msg-Id), its value the stream seq the log's messages all come after (where
 * lookups start). Deleting the key ends the incarnation: the old events become unreachable and age
 * out with the stream, with no per-execution purge (which cost 68–154 ms each in JETSTREAM.md).
 *
 * Appends are fenced: each message carries `Nats-Expected-Last-Subject-Sequence` (the stream seq of
 * its page's previous chunk, 0 for a page's first), so two writers of one log cannot both append,
 * and `Nats-Msg-Id`, so a chunk resent after a lost ack (nats-server killed) is stored once.
 */
import { randomBytes } from 'node:crypto';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type MsgRequest, type StoredMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { StoreError, type EventChunk, type FollowListener, type LogFollow, type StoredEvent } from '../event-store.js';
import { packFrames, unpackFrames } from '../frame-chunk.js';
import { encodeId, pageOf, PAGE_EVENTS, type Names } from './names.js';
import type { AckPublisher } from './publisher.js';

/** Well under nats-server's default max_payload (1 MiB): one frame may be ~200 KB. */
const MAX_MESSAGE_BYTES = 512 * 1024;
const FIRST_SEQ = 'Vms-First-Seq';
const LAST_SEQ = 'Vms-Last-Seq';
const packr = new Packr({ useRecords: false });
/** Chunks still wanted past which one consumer is cheaper than a direct get each (~0.3–1 ms each, ~5–8 ms a consumer). */
const CONSUMER_AFTER_CHUNKS = 16;
const FETCH_EXPIRES_MS = 5_000;
/** Fetches that expire with nothing, in a row, after which a read gives up (STORE_UNAVAILABLE). */
const EMPTY_FETCHES = 3;

interface LogKey {
  incarnation: number;
  /** Every message of this incarnation has a higher stream seq. */
  floor: number;
}

/** What a writer knows of a log's end: the next chunk must start at lastSeq + 1. */
interface Head extends LogKey {
  lastSeq: number;
  /** Stream seq of the message holding lastSeq (0 when the log is empty). */
  lastStreamSeq: number;
}

export class EventLog {
  readonly #names: Names;
  readonly #jsm: JetStreamManager;
  readonly #js: JetStreamClient;
  readonly #logs: KV;
  readonly #publisher: AckPublisher;
  /** Heads of the logs this instance appends to. */
  readonly #heads = new Map<string, Head>();
  /** The highest stream seq this instance has seen: a floor for logs it creates. */
  #streamSeq: number;
  /** This instance as a writer, in its Msg-Ids: only its own resends are its duplicates. */
  readonly #writer = randomBytes(6).toString('base64url');
  /** Lookups go to the stream's leader, not to whichever replica answers a direct get (see jetstream-store.ts). */
  readonly #leaderReads: boolean;

  constructor(names: Names, jsm: JetStreamManager, logs: KV, publisher: AckPublisher, streamSeq: number, leaderReads: boolean) {
    this.#names = names;
    this.#jsm = jsm;
    this.#js = jsm.jetstream();
    this.#logs = logs;
    this.#publisher = publisher;
    this.#streamSeq = streamSeq;
    this.#leaderReads = leaderReads;
  }

  /**
   * Appends one execution's chunks, in order, each only if it continues the log as stored. Throws
   * STORE_FENCED for a chunk that does not (a gap, or another writer's append in between) and
   * STORE_UNAVAILABLE when NATS did not answer (resend the same chunk: it is deduped).
   */
  async append(executionId: string, chunks: EventChunk[]): Promise<void> {
    let head = this.#heads.get(executionId) ?? (await this.#loadHead(executionId));
    for (const message of chunks.flatMap(splitChunk)) {
      if (message.firstSeq !== head.lastSeq + 1) {
        // The cached head may be behind another writer's appends: read the log's end again.
        head = await this.#loadHead(executionId);
        if (message.firstSeq > head.lastSeq + 1) {
          throw new StoreError('STORE_FENCED', `events from seq ${message.firstSeq} do not continue the log of ${executionId}, which ends at ${head.lastSeq}`);
        }
      }
      const resend = message.firstSeq <= head.lastSeq;
      // A resend is accepted only as a duplicate of the stored chunk: expecting an empty page
      // subject (which it is not) makes anything else fail.
      const expected = resend || head.lastSeq === 0 || pageOf(message.firstSeq) !== pageOf(head.lastSeq) ? 0 : head.lastStreamSeq;
      const lastSeq = message.firstSeq + message.frames.length - 1;
      const subject = this.#names.pageSubject(executionId, head.incarnation, pageOf(message.firstSeq));
      const messageId = this.#names.messageId(executionId, head.incarnation, message.firstSeq, this.#writer);
      let ack;
      try {
        ack = await this.#publisher.publish(subject, packFrames(message.frames), this.#headers(messageId, message.firstSeq, lastSeq, expected));
      } catch (error) {
        if (!(error instanceof StoreError) || error.code !== 'STORE_FENCED') throw error;
        // Past the dedupe window (NATS was down longer), a resend of a chunk that was stored
        // without its ack reaching us is refused: it is ours if it is the page's last message.
        const last = await this.#direct({ last_by_subj: subject });
        if (last?.header.get('Nats-Msg-Id') !== messageId) {
          this.#heads.delete(executionId);
          throw error;
        }
        ack = { seq: last.seq, duplicate: true };
      }
      this.#streamSeq = Math.max(this.#streamSeq, ack.seq);
      if (!resend) head = { ...head, lastSeq, lastStreamSeq: ack.seq };
      this.#heads.set(executionId, head);
    }
  }

  /**
   * Events with seq > afterSeq, at most `limit`: from the chunk holding afterSeq + 1 (#seek), by
   * direct gets chunk by chunk; when many chunks are still wanted (a trickling log holds an event a
   * chunk), by one consumer from there instead, which costs a few ms to create and then streams.
   */
  async read(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const log = await this.#getKey(executionId);
    if (!log) return [];
    const events: StoredEvent[] = [];
    let message = await this.#seek(log, executionId, afterSeq + 1);
    let consumed = false;
    while (message && events.length < limit) {
      const { lastSeq, frames } = collect(message.header.get(FIRST_SEQ), message.data, afterSeq, limit, events);
      if (events.length >= limit) break;
      // The next chunk is on this page, or the first of the next one when this one ends the page.
      message = await this.#next(log, executionId, pageOf(lastSeq + 1), message.seq);
      if (message && !consumed && (limit - events.length) / frames > CONSUMER_AFTER_CHUNKS) {
        consumed = true;
        const at = await this.#consume(log, executionId, message.seq, afterSeq, limit, events);
        if (events.length >= limit) break;
        // A consumer that stopped short of the log's end (it said nothing was pending) is caught up with here.
        message = await this.#next(log, executionId, pageOf(at.seq + 1), at.streamSeq);
      }
    }
    return events;
  }

  /**
   * Reads on from a stream seq known to hold one of the log's chunks, until `limit` or the log's end
   * as the consumer sees it; says where it stopped (the last chunk's last seq and stream seq).
   */
  async #consume(log: LogKey, executionId: string, fromStreamSeq: number, afterSeq: number, limit: number, events: StoredEvent[]): Promise<{ seq: number; streamSeq: number }> {
    let consumer;
    try {
      consumer = await this.#js.consumers.get(this.#names.eventStream, {
        filter_subjects: this.#names.logSubjects(executionId, log.incarnation),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: fromStreamSeq,
      });
    } catch (error) {
      throw new StoreError('STORE_UNAVAILABLE', `could not read the event stream: ${(error as Error).message}`, { cause: error });
    }
    try {
      // The first chunk exists, so no fetch waits out its expiry for nothing; the log's end, read
      // before the first fetch, says when the log (as it was then) has been read (read() catches up
      // on what came later). The messages' `pending` alone was not enough on nats-server 2.9.10: a
      // 4 096-event read of a log written around a kill -9 got every event, no message said pending
      // 0, and the read waited out four fetches (20 s) and failed (consumer info: num_pending 0).
      // A chunk holds at least one event, and at most a page's worth before afterSeq + 1 is skipped:
      // a fetch of that many more than still wanted ends the read.
      const end = (await this.#end(executionId, log)).lastSeq;
      let at = { seq: afterSeq, streamSeq: fromStreamSeq - 1 };
      for (let ended = false, empty = 0; !ended; ) {
        const messages = await consumer.fetch({ max_messages: Math.min(limit - events.length + PAGE_EVENTS, 4096), expires: FETCH_EXPIRES_MS });
        // An ordered consumer's fetch pulls again, rather than ending, when the server misses its
        // heartbeats (a busy nats-server): bounded here, so that a read cannot hang.
        const guard = setTimeout(() => messages.stop(), 2 * FETCH_EXPIRES_MS);
        let got = 0;
        try {
          for await (const message of messages) {
            got++;
            at = { seq: collect(message.headers?.get(FIRST_SEQ) ?? '', message.data, afterSeq, limit, events).lastSeq, streamSeq: message.seq };
            ended = events.length >= limit || at.seq >= end || message.info.pending === 0;
            if (ended) break;
          }
        } finally {
          clearTimeout(guard);
        }
        // Its first message is known to be there: a fetch that expired empty met a busy server, not the log's end.
        if (got === 0 && ++empty >= EMPTY_FETCHES) throw new StoreError('STORE_UNAVAILABLE', `the event stream did not deliver ${executionId}'s events`);
      }
      return at;
    } catch (error) {
      // A fetch that failed (the consumer lost, a request timed out) is the stream not answering, as a lookup's failure is.
      if (error instanceof StoreError) throw error;
      throw new StoreError('STORE_UNAVAILABLE', `could not read ${executionId}'s events: ${(error as Error).message}`, { cause: error });
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }

  /**
   * Tails a log another node writes: one ordered consumer on the log's subjects, from the message
   * holding afterSeq + 1 (or, when the log does not reach it yet, from just past its end), handing
   * on each stored chunk past what was already handed on. An ordered consumer re-creates itself
   * after a NATS reconnect at the last stream seq it delivered, so a NATS restart loses nothing.
   */
  follow(executionId: string, afterSeq: number, listener: FollowListener): LogFollow {
    let stopped = false;
    let stop: (() => void) | undefined;
    const run = async () => {
      const { filter, startSeq } = await this.#followStart(executionId, afterSeq);
      const consumer = await this.#js.consumers.get(this.#names.eventStream, { filter_subjects: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq });
      if (stopped) return;
      const messages = await consumer.consume();
      stop = () => void messages.close();
      if (stopped) return stop();
      let next = afterSeq + 1;
      for await (const message of messages) {
        const firstSeq = Number(message.headers?.get(FIRST_SEQ));
        const frames = unpackFrames(message.data);
        if (firstSeq + frames.length <= next) continue;
        if (firstSeq > next) throw new StoreError('STORE_UNAVAILABLE', `the log of ${executionId} skipped from ${next - 1} to ${firstSeq}`);
        listener.chunk({ executionId, firstSeq: next, frames: frames.slice(next - firstSeq) });
        next = firstSeq + frames.length;
        if (stopped) break;
      }
      // The consumer ended by itself (deleted under it, or it gave up): started again from `next`.
      if (!stopped) throw new StoreError('STORE_UNAVAILABLE', `the follow of ${executionId} ended at ${next - 1}`);
    };
    run().catch((error: unknown) => {
      if (!stopped) listener.error(error instanceof StoreError ? error : new StoreError('STORE_UNAVAILABLE', `could not follow ${executionId}: ${(error as Error).message}`, { cause: error }));
    });
    return {
      stop: () => {
        stopped = true;
        stop?.();
      },
    };
  }

  /**
   * Where a follow starts: at the message holding afterSeq + 1 when the log has it, else right after
   * the log's last message, so that nothing appended after this look is missed. A log not begun yet
   * has no incarnation to filter on: every incarnation of the id, from the stream's end.
   */
  async #followStart(executionId: string, afterSeq: number): Promise<{ filter: string; startSeq: number }> {
    const streamEnd = (await this.#jsm.streams.info(this.#names.eventStream)).state.last_seq;
    const log = await this.#getKey(executionId);
    if (!log) return { filter: this.#names.logSubjects(executionId), startSeq: streamEnd + 1 };
    const filter = this.#names.logSubjects(executionId, log.incarnation);
    const end = await this.#end(executionId, log);
    if (end.lastSeq <= afterSeq) return { filter, startSeq: Math.max(end.lastStreamSeq, log.floor) + 1 };
    const holding = await this.#seek(log, executionId, afterSeq + 1);
    return { filter, startSeq: holding ? holding.seq : log.floor + 1 };
  }

  /** The log's highest seq, from the log itself (0 when there is none). */
  async lastSeq(executionId: string): Promise<number> {
    const log = await this.#getKey(executionId);
    if (!log) return 0;
    return (await this.#end(executionId, log)).lastSeq;
  }

  /** The execution has ended: its writer forgets its head (read from the log again, should it write more). */
  release(executionId: string): void {
    this.#heads.delete(executionId);
  }

  /** Ends the log's incarnation: its events are no longer read, and the id may start a new log. */
  async forget(executionId: string): Promise<void> {
    this.#heads.delete(executionId);
    await this.#logs.delete(encodeId(executionId));
  }

  /** A writer's view of the log's end, read from the log (which its first append creates). */
  async #loadHead(executionId: string): Promise<Head> {
    const log = (await this.#getKey(executionId)) ?? (await this.#createKey(executionId));
    const head = { ...log, ...(await this.#end(executionId, log)) };
    this.#heads.set(executionId, head);
    return head;
  }

  /**
   * The last message of the log: pages are filled in order with no gaps, so the last page is found
   * by doubling then bisecting over exact-subject `last_by_subj` lookups (~0.2 ms each; a wildcard
   * one grows with the stream's subject count and is never used).
   */
  async #end(executionId: string, log: LogKey): Promise<{ lastSeq: number; lastStreamSeq: number }> {
    const last = (page: number) => this.#direct({ last_by_subj: this.#names.pageSubject(executionId, log.incarnation, page) });
    let found = await last(0);
    if (!found) return { lastSeq: 0, lastStreamSeq: 0 };
    let low = 0;
    let high = 1;
    for (let probe = await last(high); probe; probe = await last(high)) {
      found = probe;
      low = high;
      high *= 2;
    }
    // Page `low` exists, page `high` does not.
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      const probe = await last(middle);
      if (probe) {
        found = probe;
        low = middle;
      } else {
        high = middle;
      }
    }
    return { lastSeq: Number(found.header.get(LAST_SEQ)), lastStreamSeq: found.seq };
  }

  /**
   * The message holding `seq`, or null when the log does not reach its page; for a seq past the
   * log's end on its last page, that page's last message. A fixed number of lookups whatever the
   * depth, each starting near what it looks for: the page's last message (exact `last_by_subj`,
   * ~0.2 ms at any subject count) holds `seq` when the page was written in a few big chunks or
   * `seq` is near its end; otherwise the chunk is searched for between the previous page's last
   * message and that one. A `next_by_subj` from the log's floor instead costs nats-server a walk
   * over every block in between (per-subject state loaded from disk for each cold one), and walking
   * the page chunk by chunk costs a round trip per chunk (up to 1 023 for a trickling log).
   */
  async #seek(log: LogKey, executionId: string, seq: number): Promise<StoredMsg | null> {
    const page = pageOf(seq);
    // The log's first event: its first message, which is just past the floor.
    if (seq === 1) return this.#next(log, executionId, 0, log.floor);
    const last = (p: number) => this.#direct({ last_by_subj: this.#names.pageSubject(executionId, log.incarnation, p) });
    const pageLast = await last(page);
    if (!pageLast || firstSeqOf(pageLast) <= seq) return pageLast;
    // Asked only now, not beside the first: a page written as one message (a busy execution's commits
    // fill whole pages) then costs one lookup, and lookups cost CPU on both sides more than waiting.
    const previous = page > 0 ? await last(page - 1) : null;
    return this.#search(log, executionId, seq, { streamSeq: previous?.seq ?? log.floor, lastSeq: page * PAGE_EVENTS }, pageLast);
  }

  /**
   * The chunk of `seq`'s page holding it, known to lie strictly between two stream seqs: `low`, a
   * message ending before `seq` (or the floor), and `high`'s, a chunk of the page starting after it.
   * Each probe is one `next_by_subj` on the page from a guess in between: interpolated from the
   * seqs at both ends (exact when the page's chunks are evenly spread, as a lone execution's are),
   * then halving, so that a page spread over many stream seqs costs at most ~log2 of that.
   */
  async #search(log: LogKey, executionId: string, seq: number, low: { streamSeq: number; lastSeq: number }, high: StoredMsg): Promise<StoredMsg | null> {
    const upper = { streamSeq: high.seq, firstSeq: firstSeqOf(high) };
    for (let probes = 0; upper.streamSeq - low.streamSeq > 1; probes++) {
      const span = upper.streamSeq - low.streamSeq - 1;
      const share = (seq - low.lastSeq - 1) / Math.max(1, upper.firstSeq - low.lastSeq - 1);
      const offset = probes === 0 ? Math.floor(share * span) : Math.floor(span / 2);
      const guess = low.streamSeq + 1 + Math.min(span - 1, Math.max(0, offset));
      const found = await this.#next(log, executionId, pageOf(seq), guess - 1);
      if (!found || found.seq >= upper.streamSeq) {
        // No chunk of the page from the guess up to the upper bound: the one sought is below it.
        upper.streamSeq = guess;
        continue;
      }
      const firstSeq = firstSeqOf(found);
      const lastSeq = Number(found.header.get(LAST_SEQ));
      if (firstSeq <= seq && seq <= lastSeq) return found;
      if (firstSeq > seq) Object.assign(upper, { streamSeq: found.seq, firstSeq });
      else low = { streamSeq: found.seq, lastSeq };
    }
    // The page's chunks continue one another, so this is reached only if the log changed under the
    // search (its incarnation ended): nothing to read.
    return null;
  }

  /** The first message on a page subject at or after a stream seq, or null. */
  #next(log: LogKey, executionId: string, page: number, afterStreamSeq: number): Promise<StoredMsg | null> {
    return this.#direct({ seq: afterStreamSeq + 1, next_by_subj: this.#names.pageSubject(executionId, log.incarnation, page) });
  }

  async #direct(query: { seq: number; next_by_subj: string } | { last_by_subj: string }): Promise<StoredMsg | null> {
    try {
      // nats-server 2.9 answers next_by_subj on the leader's API too; the client's type only lacks it.
      if (this.#leaderReads) return await this.#jsm.streams.getMessage(this.#names.eventStream, query as MsgRequest);
      return await this.#jsm.direct.getMessage(this.#names.eventStream, query);
    } catch (error) {
      throw new StoreError('STORE_UNAVAILABLE', `could not read the event stream: ${(error as Error).message}`, { cause: error });
    }
  }

  async #getKey(executionId: string): Promise<LogKey | undefined> {
    let entry;
    try {
      entry = await this.#logs.get(encodeId(executionId));
    } catch (error) {
      // As the stream's lookups: a reader (a catch-up) asks again on STORE_UNAVAILABLE, but ends on anything else.
      throw new StoreError('STORE_UNAVAILABLE', `could not read the log key of ${executionId}: ${(error as Error).message}`, { cause: error });
    }
    if (!entry || entry.operation !== 'PUT') return undefined;
    const { floor } = packr.unpack(entry.value) as { floor: number };
    return { incarnation: entry.revision, floor };
  }

  async #createKey(executionId: string): Promise<LogKey> {
    const floor = this.#streamSeq;
    try {
      const incarnation = await this.#logs.create(encodeId(executionId), packr.pack({ floor }));
      return { incarnation, floor };
    } catch (error) {
      // Another writer created it first: its incarnation is the log's.
      const existing = await this.#getKey(executionId);
      if (existing) return existing;
      throw new StoreError('STORE_UNAVAILABLE', `could not start the log of ${executionId}: ${(error as Error).message}`, { cause: error });
    }
  }

  #headers(messageId: string, firstSeq: number, lastSeq: number, expected: number): MsgHdrs {
    const h = headers();
    h.set('Nats-Msg-Id', messageId);
    h.set('Nats-Expected-Last-Subject-Sequence', String(expected));
    h.set(FIRST_SEQ, String(firstSeq));
    h.set(LAST_SEQ, String(lastSeq));
    return h;
  }
}

function firstSeqOf(message: StoredMsg): number {
  return Number(message.header.get(FIRST_SEQ));
}

/** Appends a chunk's events past afterSeq to `events`, up to `limit`; says where the chunk ends. */
function collect(firstSeqHeader: string, data: Uint8Array, afterSeq: number, limit: number, events: StoredEvent[]): { lastSeq: number; frames: number } {
  const firstSeq = Number(firstSeqHeader);
  const frames = unpackFrames(data);
  for (let i = Math.max(0, afterSeq + 1 - firstSeq); i < frames.length && events.length < limit; i++) {
    events.push({ seq: firstSeq + i, frame: frames[i]! });
  }
  return { lastSeq: firstSeq + frames.length - 1, frames: frames.length };
}

/** A chunk as messages: none crosses a page boundary or exceeds MAX_MESSAGE_BYTES (at least one frame each). */
export function splitChunk(chunk: EventChunk): EventChunk[] {
  const out: EventChunk[] = [];
  let start = 0;
  while (start < chunk.frames.length) {
    const firstSeq = chunk.firstSeq + start;
    const pageEnd = (pageOf(firstSeq) + 1) * PAGE_EVENTS;
    let end = start;
    let bytes = 0;
    while (end < chunk.frames.length && chunk.firstSeq + end <= pageEnd && (end === start || bytes + chunk.frames[end]!.length <= MAX_MESSAGE_BYTES)) {
      bytes += chunk.frames[end]!.length + 5;
      end++;
    }
    out.push({ executionId: chunk.executionId, firstSeq, frames: chunk.frames.slice(start, end) });
    start = end;
  }
  return out;
}
