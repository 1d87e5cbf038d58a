/**
 * A chunk of stored event frames as one value: the msgpack array of their bytes (each a `bin`),
 * exactly what msgpackr's `pack(frames)` writes, so every reader (`unpack` → Uint8Array[]) is
 * unchanged. Built by concatenation: a header per frame and one copy of its bytes, nothing
 * inspected or re-encoded (issue 15 measured packing at ~4x the cost per frame).
 */
import { Packr } from 'msgpackr';

/** Bytes of the bin header of a frame of `length` bytes. */
const binHeaderSize = (length: number) => (length < 0x100 ? 2 : length < 0x10000 ? 3 : 5);

export function packFrames(frames: readonly Uint8Array[], start = 0, end = frames.length): Uint8Array {
  const count = end - start;
  let size = count < 16 ? 1 : count < 0x10000 ? 3 : 5;
  for (let index = start; index < end; index++) size += binHeaderSize(frames[index]!.length) + frames[index]!.length;
  const out = Buffer.allocUnsafe(size);
  let at: number;
  if (count < 16) at = out.writeUInt8(0x90 | count, 0);
  else if (count < 0x10000) at = out.writeUInt16BE(count, out.writeUInt8(0xdc, 0));
  else at = out.writeUInt32BE(count, out.writeUInt8(0xdd, 0));
  // Header bytes written by index: Buffer's write methods cost more than the frame's copy.
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
  return out;
}

/**
 * The frames of a stored chunk, as views into its bytes (no copy): its array and bin headers walked
 * by hand. msgpackr's `unpack` built a Buffer per frame through `subarray`, ~15 % of a cold
 * replay's main thread with the GC that followed (issue 15). A value of another shape (not an array
 * of bins) is left to msgpackr, which reads any msgpack and throws on bytes that are not.
 */
export function unpackFrames(chunk: Uint8Array): Uint8Array[] {
  const tag = chunk[0];
  let count: number;
  let at: number;
  if (tag !== undefined && tag >= 0x90 && tag <= 0x9f) [count, at] = [tag & 0x0f, 1];
  else if (tag === 0xdc && chunk.length >= 3) [count, at] = [(chunk[1]! << 8) | chunk[2]!, 3];
  else if (tag === 0xdd && chunk.length >= 5) [count, at] = [readUInt32(chunk, 1), 5];
  else return unpackOther(chunk);
  const frames = new Array<Uint8Array>(count);
  const { buffer, byteOffset } = chunk;
  for (let index = 0; index < count; index++) {
    const bin = chunk[at];
    let length: number;
    if (bin === 0xc4) {
      length = chunk[at + 1]!;
      at += 2;
    } else if (bin === 0xc5) {
      length = (chunk[at + 1]! << 8) | chunk[at + 2]!;
      at += 3;
    } else if (bin === 0xc6) {
      length = readUInt32(chunk, at + 1);
      at += 5;
    } else return unpackOther(chunk);
    // A header or frame cut short by the end of the chunk ends past it.
    if (!(at + length <= chunk.length)) return unpackOther(chunk);
    frames[index] = new Uint8Array(buffer, byteOffset + at, length);
    at += length;
  }
  return at === chunk.length ? frames : unpackOther(chunk);
}

const readUInt32 = (bytes: Uint8Array, at: number) => ((bytes[at]! << 24) >>> 0) + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);

const packr = new Packr({ useRecords: false });

function unpackOther(chunk: Uint8Array): Uint8Array[] {
  const value = packr.unpack(chunk) as unknown;
  if (!Array.isArray(value) || !value.every((frame) => frame instanceof Uint8Array)) throw new TypeError('a stored chunk must be an array of frames');
  return value as Uint8Array[];
}
