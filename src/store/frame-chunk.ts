/**
 * A chunk of stored event frames as one value: the msgpack array of their bytes (each a `bin`),
 * exactly what msgpackr's `pack(frames)` writes, so every reader (`unpack` → Uint8Array[]) is
 * unchanged. Built by concatenation: a header per frame and one copy of its bytes, nothing
 * inspected or re-encoded (issue 15 measured packing at ~4x the cost per frame).
 */

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
  for (let index = start; index < end; index++) {
    const frame = frames[index]!;
    const length = frame.length;
    // Headers written as plain bytes: Buffer's write methods check their arguments on every call.
    if (length < 0x100) {
      out[at++] = 0xc4;
      out[at++] = length;
    } else if (length < 0x10000) {
      out[at++] = 0xc5;
      out[at++] = length >>> 8;
      out[at++] = length & 0xff;
    } else {
      at = out.writeUInt32BE(length, out.writeUInt8(0xc6, at));
    }
    out.set(frame, at);
    at += length;
  }
  return out;
}
