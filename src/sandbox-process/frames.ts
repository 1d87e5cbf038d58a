/**
 * The pipe between the server and a sandbox process carries frames: a 4-byte little-endian length,
 * then one msgpack array holding every message of one batch. Batching
 * keeps the cost per message small (../shared/README.md: one buffer per batch ran at ~2x a write
 * per record), and one frame per batch means one write per batch per direction.
 */
import type { Writable } from 'node:stream';
import { Packr } from 'msgpackr';

const HEADER_BYTES = 4;
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** A frame that breaks the format: the other side is broken or hostile, and is ended. */
export class FrameError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'FrameError';
  }
}

/** A message already msgpack-encoded by whoever made it (a worker's output record), sent as it is. */
class Encoded {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * Collects the messages of a synchronous stretch (flushed in a microtask: a turn's worth of ring
 * records, or of the engine's requests) and writes them as one frame. A microtask, not
 * setImmediate: each hop then costs no extra turn of the event loop, which under load cut the
 * p90 of a trivial run's round trip from ~4 ms to ~0.8 ms.
 */
export class FrameWriter<T> {
  readonly #stream: Writable;
  #batch: Array<T | Encoded> = [];
  #encoded = 0;
  readonly #header = Buffer.alloc(HEADER_BYTES);

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  push(message: T): void {
    this.#add(message);
  }

  /**
   * Adds one message that is already a complete msgpack value: it goes into the frame's array as
   * its bytes are, never decoded here (a sandbox process forwards its workers' records this way).
   */
  pushEncoded(bytes: Uint8Array): void {
    this.#encoded++;
    this.#add(new Encoded(bytes));
  }

  #add(entry: T | Encoded): void {
    if (this.#batch.push(entry) === 1) queueMicrotask(() => this.flush());
  }

  /** Writes what this turn collected; false when the stream's buffer is full (wait for 'drain'). */
  flush(): boolean {
    if (this.#batch.length === 0 || this.#stream.destroyed) return true;
    const batch = this.#batch;
    const encoded = this.#encoded;
    this.#batch = [];
    this.#encoded = 0;
    if (encoded > 0) return this.#stream.write(assemble(batch));
    const body = packr.pack(batch);
    const header = Buffer.from(this.#header);
    header.writeUInt32LE(body.length, 0);
    // Corked: the header and the body leave in one writev.
    this.#stream.cork();
    this.#stream.write(header);
    const more = this.#stream.write(body);
    this.#stream.uncork();
    return more;
  }
}

/** One frame (header and body, in one buffer) of a batch holding pre-encoded messages. */
function assemble(batch: Array<unknown>): Buffer {
  const parts: Uint8Array[] = [Buffer.alloc(HEADER_BYTES + 5)];
  let bodyBytes = 5;
  for (const message of batch) {
    // A copy: packr reuses its buffer for the next message.
    const bytes = message instanceof Encoded ? message.bytes : Buffer.from(packr.pack(message));
    parts.push(bytes);
    bodyBytes += bytes.length;
  }
  const head = parts[0] as Buffer;
  head.writeUInt32LE(bodyBytes, 0);
  // msgpack array32: 0xdd, then the count (big-endian), then the elements.
  head[HEADER_BYTES] = 0xdd;
  head.writeUInt32BE(batch.length, HEADER_BYTES + 1);
  return Buffer.concat(parts, HEADER_BYTES + bodyBytes);
}

/**
 * Cuts a byte stream into frames and decodes each into its array of messages. `maxFrameBytes`
 * bounds what one frame may make the reader hold: past it, or on bytes that are not msgpack, or a
 * frame that is not an array, `push` throws a FrameError.
 */
export class FrameReader {
  readonly #maxFrameBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
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
      let decoded: unknown;
      try {
        decoded = packr.unpack(buffer.subarray(start, offset));
      } catch (error) {
        throw new FrameError('a frame is not msgpack', { cause: error });
      }
      if (!Array.isArray(decoded)) throw new FrameError('a frame is not an array of messages');
      for (const message of decoded) messages.push(message);
    }
    buffer = buffer.subarray(offset);
    this.#pending = buffer.length > 0 ? [buffer] : [];
    this.#pendingBytes = buffer.length;
    return messages;
  }
}
