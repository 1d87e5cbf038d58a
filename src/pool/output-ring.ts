/**
 * A worker's output travels to the main thread through a ring buffer in shared memory, one writer
 * (the worker) and one reader (the main thread), instead of through postMessage batches:
 *
 * - the main thread reads it without the worker's help, so what a run printed just before it got
 *   stuck in a synchronous loop is there to read even after the stuck worker was terminated (a
 *   batch waiting for the worker's next tick would have died with it);
 * - its size bounds memory: a run that prints faster than the server takes it in waits
 *   (Atomics.wait, on the worker's host side, never in the sandbox) until there is room, so output
 *   is slowed down, not queued without bound and not dropped;
 * - one small wake-up message is posted only when the reader may be idle, not one per batch.
 *
 *   header (Int32): HEAD write offset | TAIL read offset | USED bytes | WAKE (1: a wake-up is pending)
 *   data: records of [length: u32 LE][bytes], wrapping around the end
 */

const HEAD = 0;
const TAIL = 1;
const USED = 2;
const WAKE = 3;
const HEADER_BYTES = 16;
const WAIT_SLICE_MS = 50;

export const RING_BYTES = 4 * 1024 * 1024;

export function createRing(dataBytes = RING_BYTES): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + dataBytes);
}

class RingView {
  protected readonly header: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly capacity: number;

  constructor(buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
    this.capacity = this.data.length;
  }

  /** Whether records are waiting. */
  get pending(): boolean {
    return Atomics.load(this.header, USED) > 0;
  }

  protected copyIn(offset: number, bytes: Uint8Array): number {
    const first = Math.min(bytes.length, this.capacity - offset);
    this.data.set(bytes.subarray(0, first), offset);
    if (first < bytes.length) this.data.set(bytes.subarray(first), 0);
    return (offset + bytes.length) % this.capacity;
  }

  protected copyOut(offset: number, target: Uint8Array): number {
    const first = Math.min(target.length, this.capacity - offset);
    target.set(this.data.subarray(offset, offset + first));
    if (first < target.length) target.set(this.data.subarray(0, target.length - first), first);
    return (offset + target.length) % this.capacity;
  }
}

export class RingWriter extends RingView {
  /** The ring's data as a Buffer and a DataView, for a record written in place (`reserve`, `commit`). */
  readonly bytes: Buffer;
  readonly view: DataView;
  readonly #wake: () => void;
  readonly #wakeAtBytes: number;
  readonly #filled: (() => void) | undefined;
  readonly #length = new Uint8Array(4);
  readonly #lengthView = new DataView(this.#length.buffer);

  /**
   * `wake` tells the reader there is something to read; it is called only when none is pending.
   * With `wakeAtBytes`, only a ring holding that much (or full) wakes the reader: the writer's
   * thread empties the ring itself (`drain`) whenever it is free to, and the reader helps only a
   * writer busy printing (a loop that prints without yielding). `filled` is called each time a
   * record lands in an empty ring (told by the count it was published into, not by a look before
   * the write: a write that waited for room may land in a ring the reader emptied meanwhile).
   */
  constructor(buffer: SharedArrayBuffer, wake: () => void, { wakeAtBytes = 0, filled }: { wakeAtBytes?: number; filled?: () => void } = {}) {
    super(buffer);
    this.bytes = Buffer.from(buffer, HEADER_BYTES, this.capacity);
    this.view = new DataView(buffer, HEADER_BYTES, this.capacity);
    this.#wake = wake;
    this.#wakeAtBytes = wakeAtBytes;
    this.#filled = filled;
  }

  /** Appends one record, blocking while the ring is too full to take it. */
  write(record: Uint8Array): void {
    const need = 4 + record.length;
    if (need > this.capacity) throw new RangeError(`an output record of ${record.length} bytes does not fit the ring`);
    this.#waitForRoom(need);
    let head = Atomics.load(this.header, HEAD);
    if (head + need <= this.capacity) {
      // In one piece (all but one record per lap of the ring): no views made, no scratch copied.
      this.view.setUint32(head, record.length, true);
      this.data.set(record, head + 4);
      head = (head + need) % this.capacity;
    } else {
      this.#lengthView.setUint32(0, record.length, true);
      head = this.copyIn(head, this.#length);
      head = this.copyIn(head, record);
    }
    this.#publish(head, need);
  }

  /**
   * Where a record of at most `maxBytes` bytes starts when its writer writes it in place (into
   * `bytes`/`view`, then `commit`), once the ring has room for it: the copy `write` makes is
   * saved. -1 when it would not lie in one piece (where the ring wraps): `write` it instead.
   */
  reserve(maxBytes: number): number {
    const head = Atomics.load(this.header, HEAD);
    if (head + 4 + maxBytes > this.capacity) return -1;
    this.#waitForRoom(4 + maxBytes);
    return head + 4;
  }

  /** Publishes the record written in place from `start` (from `reserve`) to `end`. */
  commit(start: number, end: number): void {
    this.view.setUint32(start - 4, end - start, true);
    this.#publish(end % this.capacity, end - start + 4);
  }

  #waitForRoom(need: number): void {
    for (let used = Atomics.load(this.header, USED); used + need > this.capacity; used = Atomics.load(this.header, USED)) {
      this.#wakeReader();
      Atomics.wait(this.header, USED, used, WAIT_SLICE_MS);
    }
  }

  #publish(head: number, need: number): void {
    Atomics.store(this.header, HEAD, head);
    // Publishing USED last: the reader trusts no byte it has not seen counted here.
    const before = Atomics.add(this.header, USED, need);
    if (before === 0) this.#filled?.();
    if (before + need >= this.#wakeAtBytes) this.#wakeReader();
  }

  #wakeReader(): void {
    // A load first: past wakeAtBytes every record asks, and the flag is nearly always set already.
    if (Atomics.load(this.header, WAKE) === 0 && Atomics.compareExchange(this.header, WAKE, 0, 1) === 0) this.#wake();
  }
}

export class RingReader extends RingView {
  readonly #view = new DataView(this.data.buffer, this.data.byteOffset, this.capacity);
  readonly #length = new Uint8Array(4);
  readonly #lengthView = new DataView(this.#length.buffer);

  /**
   * Hands over up to `limit` records, oldest first (each a fresh copy); returns true when more are
   * waiting, and the caller must read again (no wake-up will come for them). The wake flag is
   * cleared only once the ring is empty: clearing it earlier made the writer post a wake-up per
   * record read, and the reader's per-turn limit meant nothing.
   */
  read(limit: number, onRecord: (record: Uint8Array) => void): boolean {
    let tail = Atomics.load(this.header, TAIL);
    let count = 0;
    for (;;) {
      if (Atomics.load(this.header, USED) === 0) {
        Atomics.store(this.header, WAKE, 0);
        // A record written between the check and the store found the flag still set and posted
        // nothing: take the wake-up back and go on reading, or leave it to the writer's message.
        if (Atomics.load(this.header, USED) === 0 || Atomics.compareExchange(this.header, WAKE, 0, 1) !== 0) break;
      }
      if (count >= limit) {
        if (count > 0) Atomics.notify(this.header, USED);
        return true;
      }
      let record: Uint8Array;
      [record, tail] = this.#take(tail);
      Atomics.store(this.header, TAIL, tail);
      Atomics.sub(this.header, USED, 4 + record.length);
      onRecord(record);
      count++;
    }
    if (count > 0) Atomics.notify(this.header, USED);
    return false;
  }

  /** A copy of the record at `tail`, and where the next one starts; no views made unless it wraps. */
  #take(tail: number): [Uint8Array, number] {
    let length: number;
    if (tail + 4 <= this.capacity) {
      length = this.#view.getUint32(tail, true);
      tail = (tail + 4) % this.capacity;
    } else {
      tail = this.copyOut(tail, this.#length);
      length = this.#lengthView.getUint32(0, true);
    }
    if (tail + length > this.capacity) {
      const record = new Uint8Array(length);
      return [record, this.copyOut(tail, record)];
    }
    return [this.data.slice(tail, tail + length), (tail + length) % this.capacity];
  }

  /**
   * Hands the ring's bytes over as they lie, oldest first, to `write`, which returns how many it
   * took: every record is `[length: u32 LE][msgpack]`, which is also a frame of the sandbox
   * process's pipe (pool/pipe-frames.ts), so a drained ring is a run of whole frames.
   * Returns true once the ring is empty, false when `write` took less than it was offered (the
   * caller drains again later; what was taken is gone from the ring, what was not is still there,
   * so whoever drains next carries on mid-record). Only one thread may drain a ring at a time.
   */
  drain(write: (bytes: Uint8Array) => number): boolean {
    for (let span = this.span(); span !== null; span = this.span()) {
      const taken = write(span);
      this.consume(taken);
      if (taken < span.length) return false;
    }
    return true;
  }

  /**
   * The oldest bytes waiting that lie in one piece, without taking them (`consume` does, once they
   * are written); null once the ring is empty. For `drain`, or a writer that completes later.
   */
  span(): Uint8Array | null {
    for (;;) {
      const used = Atomics.load(this.header, USED);
      if (used > 0) {
        const tail = Atomics.load(this.header, TAIL);
        return this.data.subarray(tail, tail + Math.min(used, this.capacity - tail));
      }
      // As in `read`: the wake flag is cleared once empty, and a record that raced it is taken.
      Atomics.store(this.header, WAKE, 0);
      if (Atomics.load(this.header, USED) === 0 || Atomics.compareExchange(this.header, WAKE, 0, 1) !== 0) return null;
    }
  }

  /** Whether `span` (from `span`) stops where the ring wraps, maybe mid-record, rather than at the newest record's end. */
  atWrap(span: Uint8Array): boolean {
    return span.byteOffset + span.length === this.data.byteOffset + this.capacity;
  }

  /** Gives the oldest `bytes` bytes' room back to the writer. */
  consume(bytes: number): void {
    if (bytes === 0) return;
    Atomics.store(this.header, TAIL, (Atomics.load(this.header, TAIL) + bytes) % this.capacity);
    Atomics.sub(this.header, USED, bytes);
    Atomics.notify(this.header, USED);
  }
}
