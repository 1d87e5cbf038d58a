/**
 * A chunk of stored event frames as one value: the msgpack array of their bytes (each a `bin`),
 * exactly what msgpackr's `pack(frames)` writes, so every reader (`unpack` → Uint8Array[]) is
 * unchanged. Built by concatenation: a header per frame and one copy of its bytes, nothing
 * inspected or re-encoded (issue 15 measured packing at ~4x the cost per frame).
 *
 * The bins of a chunk without its array header, `count` of them back to back, are a `BinRun`: what
 * the replay cache keeps of a block, often a slice of the chunk it was read from (`sliceBins`).
 */
import { Packr } from 'msgpackr';

/** `count` msgpack bins back to back in `bytes`, and nothing else. */
export interface BinRun {
  bytes: Uint8Array;
  count: number;
}

/** Bytes of the bin header of a frame of `length` bytes. */
const binHeaderSize = (length: number) => (length < 0x100 ? 2 : length < 0x10000 ? 3 : 5);

export function packFrames(frames: readonly Uint8Array[], start = 0, end = frames.length): Uint8Array {
  const count = end - start;
  const header = count < 16 ? 1 : count < 0x10000 ? 3 : 5;
  const out = Buffer.allocUnsafe(header + binsSize(frames, start, end));
  if (count < 16) out.writeUInt8(0x90 | count, 0);
  else if (count < 0x10000) out.writeUInt16BE(count, out.writeUInt8(0xdc, 0));
  else out.writeUInt32BE(count, out.writeUInt8(0xdd, 0));
  writeBins(frames, start, end, out, header);
  return out;
}

function binsSize(frames: readonly Uint8Array[], start: number, end: number): number {
  let size = 0;
  for (let index = start; index < end; index++) size += binHeaderSize(frames[index]!.length) + frames[index]!.length;
  return size;
}

/** Writes frames start to end as bins from `at` on. Header bytes by index: Buffer's write methods cost more than the frame's copy. */
function writeBins(frames: readonly Uint8Array[], start: number, end: number, out: Buffer, at: number): void {
  for (let index = start; index < end; index++) {
    const frame = frames[index]!;
    const length = frame.length;
    if (length < 0x100) {
      out[at] = 0xc4;
      out[at + 1] = length;
      at += 2;
    } else if (length < 0x10000) {
      out[at] = 0xc5;
      out[at + 1] = length >>> 8;
      out[at + 2] = length & 0xff;
      at += 3;
    } else at = out.writeUInt32BE(length, out.writeUInt8(0xc6, at));
    out.set(frame, at);
    at += length;
  }
}

/**
 * The frames of a stored chunk, as views into its bytes (no copy): its array and bin headers walked
 * by hand. msgpackr's `unpack` built a Buffer per frame through `subarray`, ~15 % of a cold
 * replay's main thread with the GC that followed (issue 15). A value of another shape (not an array
 * of bins) is left to msgpackr, which reads any msgpack and throws on bytes that are not.
 */
export function unpackFrames(chunk: Uint8Array): Uint8Array[] {
  const header = arrayHeader(chunk);
  if (header) {
    const frames: Uint8Array[] = [];
    if (walkBins(chunk, header[1], header[0], frames, 0, header[0], null) === chunk.length) return frames;
  }
  return readOther(chunk);
}

/**
 * The bins of a stored chunk's frames from index `from` up to (not with) `to`, as a slice of the
 * chunk: no view made, no byte copied (a chunk of another shape: its frames copied). Every header
 * is checked, whether its frame is taken or not.
 */
export function sliceBins(chunk: Uint8Array, from = 0, to = Infinity): BinRun {
  const header = arrayHeader(chunk);
  if (header) {
    const span = { start: 0, end: 0, count: 0 };
    if (walkBins(chunk, header[1], header[0], null, from, to, span) === chunk.length) return { bytes: chunk.subarray(span.start, span.end), count: span.count };
  }
  const frames = readOther(chunk).slice(from, to);
  return copyRun(frames, 0, frames.length);
}

/** How many frames a stored chunk holds, read from its header (a chunk of another shape: unpacked). */
export function frameCount(chunk: Uint8Array): number {
  return arrayHeader(chunk)?.[0] ?? readOther(chunk).length;
}

/** An array header's element count and the byte after it; null for a value that does not start with one. */
function arrayHeader(chunk: Uint8Array): [count: number, at: number] | null {
  const tag = chunk[0];
  if (tag !== undefined && tag >= 0x90 && tag <= 0x9f) return [tag & 0x0f, 1];
  if (tag === 0xdc && chunk.length >= 3) return [(chunk[1]! << 8) | chunk[2]!, 3];
  if (tag === 0xdd && chunk.length >= 5) return [readUInt32(chunk, 1), 5];
  return null;
}

/** Appends to `out` views of `count` frames of `runs` (checked when they were read), after the first `skip`. */
export function readRuns(runs: readonly BinRun[], skip: number, count: number, out: Uint8Array[]): void {
  for (const run of runs) {
    const before = out.length;
    if (walkBins(run.bytes, 0, run.count, out, skip, skip + count, null) !== run.bytes.length) throw new TypeError('a bin run must hold its count of bins and nothing else');
    count -= out.length - before;
    skip = Math.max(0, skip - run.count);
  }
}

/**
 * Walks `count` bins from byte `at`, appending views of bins `from` to `to` to `out` (where their
 * bins start and end, and how many, to `span`); returns the byte after the last bin, or -1 when a
 * header is not a bin's or a bin ends past the bytes.
 */
function walkBins(bytes: Uint8Array, at: number, count: number, out: Uint8Array[] | null, from: number, to: number, span: { start: number; end: number; count: number } | null): number {
  const { buffer, byteOffset } = bytes;
  for (let index = 0; index < count; index++) {
    if (index === from && span) span.start = span.end = at;
    const bin = bytes[at];
    let length: number;
    if (bin === 0xc4) {
      length = bytes[at + 1]!;
      at += 2;
    } else if (bin === 0xc5) {
      length = (bytes[at + 1]! << 8) | bytes[at + 2]!;
      at += 3;
    } else if (bin === 0xc6) {
      length = readUInt32(bytes, at + 1);
      at += 5;
    } else return -1;
    // A header or frame cut short by the end of the bytes ends past it.
    if (!(at + length <= bytes.length)) return -1;
    if (index >= from && index < to) {
      out?.push(new Uint8Array(buffer, byteOffset + at, length));
      if (span) {
        span.end = at + length;
        span.count++;
      }
    }
    at += length;
  }
  return at;
}

/**
 * The runs that hold frames `start` to `end` of a run of frames held as `runs` (in order, back to
 * back in seq), and how many frames of the first come before `start`: no frame copied, no view made.
 */
export function runsOver(runs: readonly BinRun[], start: number, end: number): { runs: BinRun[]; skip: number } {
  const over: BinRun[] = [];
  let skip = 0;
  let first = 0;
  for (const run of runs) {
    if (first + run.count > start && first < end) {
      if (over.length === 0) skip = start - first;
      over.push(run);
    }
    first += run.count;
  }
  return { runs: over, skip };
}

/** Frames start to end copied into one run. */
export function copyRun(frames: readonly Uint8Array[], start: number, end: number): BinRun {
  const bytes = Buffer.allocUnsafe(binsSize(frames, start, end));
  writeBins(frames, start, end, bytes, 0);
  return { bytes, count: end - start };
}

const readUInt32 = (bytes: Uint8Array, at: number) => ((bytes[at]! << 24) >>> 0) + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);

const packr = new Packr({ useRecords: false });

function readOther(chunk: Uint8Array): Uint8Array[] {
  const value = packr.unpack(chunk) as unknown;
  if (!Array.isArray(value) || !value.every((frame) => frame instanceof Uint8Array)) throw new TypeError('a stored chunk must be an array of frames');
  return value as Uint8Array[];
}
