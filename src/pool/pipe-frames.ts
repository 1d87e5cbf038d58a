/**
 * The pipe between the server and a sandbox process carries frames: a 4-byte little-endian length,
 * then one msgpack array: every message of one batch, or (from a sandbox process) one output
 * record, exactly as a worker wrote it to its ring (pool/messages.ts's OutputItem, whose first
 * element is a string, where a batch's are messages). Batching keeps the cost per message small
 * (../shared/README.md: one buffer per batch ran at ~2x a write per record), and one frame per
 * batch means one write per batch per direction; a worker writes all its ring holds in one write.
 */
import type { Writable } from 'node:stream';
import { Packr } from 'msgpackr';
import { isConsoleRecord, RecordSpan } from '../pool/console-frame.js';

const HEADER_BYTES = 4;
/** What a sandbox process takes in one frame from the server: it is trusted; this only bounds what a broken frame could make it hold. */
export const MAX_SERVER_FRAME_BYTES = 256 * 1024 * 1024;
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** A frame that breaks the format: the other side is broken or hostile, and is ended. */
export class FrameError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'FrameError';
  }
}

/**
 * Collects the messages of a synchronous stretch (flushed in a microtask: a turn's worth of the
 * engine's requests, or of a sandbox process's own messages) and writes them as one frame, in one
 * buffer: one write, which a stream shared with other writers (shared-output.ts) keeps whole. A
 * microtask, not setImmediate: each hop then costs no extra turn of the event loop, which under
 * load cut the p90 of a trivial run's round trip from ~4 ms to ~0.8 ms.
 */
export class FrameWriter<T> {
  readonly #stream: Writable;
  #batch: T[] = [];

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  push(message: T): void {
    if (this.#batch.push(message) === 1) queueMicrotask(() => this.flush());
  }

  /** Writes what this turn collected; false when the stream's buffer is full (wait for 'drain'). */
  flush(): boolean {
    if (this.#batch.length === 0 || this.#stream.destroyed) return true;
    const body = packr.pack(this.#batch);
    this.#batch = [];
    const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
    frame.writeUInt32LE(body.length, 0);
    frame.set(body, HEADER_BYTES);
    return this.#stream.write(frame);
  }
}

/**
 * What `FrameReader.read` hands each frame's contents to, in the stream's order: a console record as
 * its bytes [start, end) of a copy its run shares (pool/console-frame.ts), anything else decoded.
 */
export interface FrameVisitor {
  record(bytes: Uint8Array, start: number, end: number): void;
  message(message: unknown): void;
}

/**
 * Cuts a byte stream into frames and decodes each into its array of messages (a record frame is
 * one message: the record; a console record stays bytes, a RecordSpan message). `maxFrameBytes` bounds what one frame may make the reader hold: past
 * it, or on bytes that are not msgpack, or a frame that is not an array, `push` throws a FrameError.
 */
export class FrameReader {
  readonly #maxFrameBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** The messages of every frame `chunk` completes, in order (a console record as a RecordSpan). */
  push(chunk: Buffer): unknown[] {
    const messages: unknown[] = [];
    this.read(chunk, { record: (bytes, start, end) => messages.push(new RecordSpan(bytes, start, end)), message: (message) => messages.push(message) });
    return messages;
  }

  /**
   * Hands `visitor` what every frame `chunk` completes, in order: no object per console record
   * (a stream's reader checks each where it lies: sandbox-process/host-process.ts). `chunk` becomes
   * the reader's: records may be views of it (RecordRun), so it must be a buffer no one writes
   * again, as a stream's reads are.
   */
  read(chunk: Buffer, visitor: FrameVisitor): void {
    if (this.#pendingBytes === 0) return this.#read(chunk, visitor);
    // The frame earlier chunks began is completed from this one, and only its bytes are copied
    // (a pipe's reads end mid-frame nearly every time: copying the whole chunk doubled the bytes copied).
    const frameBytes = this.#pendingFrameBytes(chunk);
    if (frameBytes < 0 || this.#pendingBytes + chunk.length < frameBytes) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      return;
    }
    const used = frameBytes - this.#pendingBytes;
    const frame = Buffer.concat([...this.#pending, chunk.subarray(0, used)], frameBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#read(frame, visitor);
    this.#read(chunk.subarray(used), visitor);
  }

  /** Bytes of the frame the pending bytes begin (header included), once its header is whole with `chunk`; -1 before. */
  #pendingFrameBytes(chunk: Buffer): number {
    const header: number[] = [];
    for (const piece of [...this.#pending, chunk]) {
      for (let index = 0; index < piece.length && header.length < HEADER_BYTES; index++) header.push(piece[index]!);
    }
    if (header.length < HEADER_BYTES) return -1;
    return HEADER_BYTES + this.#checkLength(Buffer.from(header).readUInt32LE(0));
  }

  /** Throws for a frame over the limit, handing `before` on first: the records ahead of it are the stream's, as ahead of any bad frame. */
  #checkLength(length: number, before?: RecordRun): number {
    if (length <= this.#maxFrameBytes) return length;
    before?.handOn();
    throw new FrameError(`a frame of ${length} bytes is over the limit of ${this.#maxFrameBytes}`);
  }

  /** Hands `visitor` the whole frames of `buffer`; what follows them is kept pending. */
  #read(buffer: Buffer, visitor: FrameVisitor): void {
    const records = new RecordRun(buffer, visitor);
    let offset = 0;
    while (buffer.length - offset >= HEADER_BYTES) {
      const length = this.#checkLength(buffer.readUInt32LE(offset), records);
      if (buffer.length - offset - HEADER_BYTES < length) break;
      const start = offset + HEADER_BYTES;
      offset = start + length;
      // A console record (pool/console-frame.ts) is kept as bytes: its reader checks it, and the
      // server stores and sends them.
      if (length > 0 && isConsoleRecord(buffer, start)) {
        records.add(start, offset);
        continue;
      }
      records.handOn();
      let decoded: unknown;
      try {
        decoded = packr.unpack(buffer.subarray(start, offset));
      } catch (error) {
        throw new FrameError('a frame is not msgpack', { cause: error });
      }
      if (!Array.isArray(decoded)) throw new FrameError('a frame is not an array of messages');
      if (typeof decoded[0] === 'string') visitor.message(decoded);
      else for (const message of decoded) visitor.message(message);
    }
    records.handOn();
    if (offset < buffer.length) {
      this.#pending = [buffer.subarray(offset)];
      this.#pendingBytes = buffer.length - offset;
    }
  }
}

/**
 * Console records in a row of a chunk, handed on together, each record a span of one array of
 * bytes (console-frame.ts's RecordSpan: a typed array per record cost about as much as the
 * record's check). What a record keeps alive is that array's whole buffer, which the output backlog
 * does not count: so a run that is most of its chunk's buffer (a stream's: its chunks are all
 * records) is a view of the chunk itself, and a smaller one is copied out (one copy, and one
 * allocation, per run), so that records never hold more than twice their bytes alive. A pipe's
 * read is a buffer of its own, nobody else's to write in: the server writes seqs into its records.
 */
class RecordRun {
  readonly #bytes: Uint8Array;
  readonly #visitor: FrameVisitor;
  /** The run's records so far, as [start, end] pairs of the chunk's offsets. */
  #records: number[] = [];

  constructor(buffer: Buffer, visitor: FrameVisitor) {
    this.#bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
    this.#visitor = visitor;
  }

  add(start: number, end: number): void {
    this.#records.push(start, end);
  }

  /** Hands the run so far on (before the frame that ended the run: the stream's order). */
  handOn(): void {
    const records = this.#records;
    if (records.length === 0) return;
    const first = records[0]!;
    const last = records[records.length - 1]!;
    const run = (last - first) * 2 >= this.#bytes.buffer.byteLength ? this.#bytes.subarray(first, last) : this.#bytes.slice(first, last);
    this.#records = [];
    for (let index = 0; index < records.length; index += 2) this.#visitor.record(run, records[index]! - first, records[index + 1]! - first);
  }
}
