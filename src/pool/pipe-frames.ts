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
import { isConsoleRecord } from '../pool/console-frame.js';

const HEADER_BYTES = 4;
/**
 * Console records are copied into slabs of this size: a record lives until it is committed and
 * sent (milliseconds), and holds its slab until then, as a small Buffer holds Node's pool.
 */
const SLAB_BYTES = 16 * 1024;
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
 * Cuts a byte stream into frames and decodes each into its array of messages (a record frame is
 * one message: the record; a console record stays bytes, a Uint8Array message). `maxFrameBytes` bounds what one frame may make the reader hold: past
 * it, or on bytes that are not msgpack, or a frame that is not an array, `push` throws a FrameError.
 */
export class FrameReader {
  readonly #maxFrameBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Where console records are copied to, one after the other (`#copy`). */
  #slab = new Uint8Array(0);
  #slabUsed = 0;
  #chunk: Buffer | null = null;
  #chunkView: Uint8Array = new Uint8Array(0);

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /**
   * Bytes [start, end) of `buffer`, copied: a plain Uint8Array, not a Buffer (Buffer's constructor,
   * what `slice` and `subarray` of a Buffer call, cost more than the record's check, and the
   * record's reader stays on one kind of array), and a view of a slab shared with the records
   * read next to it: an ArrayBuffer of its own per record (a malloc, and GC work to free it) cost
   * ~4x the copy (bench/units/pipe-read.ts).
   */
  #copy(buffer: Buffer, start: number, end: number): Uint8Array {
    const length = end - start;
    if (length > SLAB_BYTES / 4) return this.#view(buffer).slice(start, end);
    if (this.#slabUsed + length > this.#slab.length) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#slabUsed = 0;
    }
    const at = this.#slabUsed;
    this.#slab.set(this.#view(buffer).subarray(start, end), at);
    this.#slabUsed = at + length;
    return this.#slab.subarray(at, at + length);
  }

  /** `buffer` as a plain Uint8Array (its subarray makes no Buffer). */
  #view(buffer: Buffer): Uint8Array {
    if (this.#chunk !== buffer) {
      this.#chunk = buffer;
      this.#chunkView = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
    }
    return this.#chunkView;
  }

  /** The messages of every frame `chunk` completes, in order. */
  push(chunk: Buffer): unknown[] {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    const messages: unknown[] = [];
    let buffer = this.#pending.length === 1 ? chunk : Buffer.concat(this.#pending, this.#pendingBytes);
    let offset = 0;
    while (buffer.length - offset >= HEADER_BYTES) {
      const length = buffer.readUInt32LE(offset);
      if (length > this.#maxFrameBytes) throw new FrameError(`a frame of ${length} bytes is over the limit of ${this.#maxFrameBytes}`);
      if (buffer.length - offset - HEADER_BYTES < length) break;
      const start = offset + HEADER_BYTES;
      offset = start + length;
      // A console record (pool/console-frame.ts) is kept as bytes, copied out of the chunk: its
      // reader checks it, and the server stores and sends them.
      if (length > 0 && isConsoleRecord(buffer, start)) {
        messages.push(this.#copy(buffer, start, offset));
        continue;
      }
      let decoded: unknown;
      try {
        decoded = packr.unpack(buffer.subarray(start, offset));
      } catch (error) {
        throw new FrameError('a frame is not msgpack', { cause: error });
      }
      if (!Array.isArray(decoded)) throw new FrameError('a frame is not an array of messages');
      if (typeof decoded[0] === 'string') messages.push(decoded);
      else for (const message of decoded) messages.push(message);
    }
    buffer = buffer.subarray(offset);
    this.#pending = buffer.length > 0 ? [buffer] : [];
    this.#pendingBytes = buffer.length;
    return messages;
  }
}
