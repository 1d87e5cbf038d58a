/**
 * A stored chunk built by concatenation (src/store/frame-chunk.ts) is byte for byte what msgpackr's
 * `pack` of the frames writes, so stores written before and after read the same, at every header
 * width (array: fix/16/32; bin: 8/16/32). Read back by walking its headers (`unpackFrames`), it
 * gives what msgpackr's `unpack` gives, and a value of any other shape goes to msgpackr.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import { packFrames, readRuns, runsOver, sliceBins, unpackFrames, type BinRun } from '../src/store/frame-chunk.js';

const packr = new Packr({ useRecords: false });
const same = (frames: Uint8Array[], start = 0, end = frames.length) => Buffer.from(packFrames(frames, start, end)).equals(Buffer.from(packr.pack(frames.slice(start, end))));

t.test('the header widths at their edges', async (t) => {
  const sized = (lengths: number[]) => lengths.map((length, index) => new Uint8Array(length).fill(index));
  t.ok(same(sized([])));
  t.ok(same(sized([0, 255, 256, 65_535, 65_536])));
  t.ok(same(sized(Array.from({ length: 15 }, () => 1))));
  t.ok(same(sized(Array.from({ length: 16 }, () => 1))));
  t.ok(same(sized(Array.from({ length: 65_536 }, () => 1))), 'an array32 header');
});

t.test('any frames, any run of them', async (t) => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 40 }), fc.nat(), fc.nat(), (frames, a, b) => {
    const start = frames.length === 0 ? 0 : a % (frames.length + 1);
    const end = start + (frames.length === 0 ? 0 : b % (frames.length - start + 1));
    return same(frames, start, end);
  }));
  t.pass('byte-identical to msgpackr');
});

const sameFrames = (actual: Uint8Array[], expected: Uint8Array[]) =>
  actual.length === expected.length && actual.every((frame, index) => Buffer.from(frame).equals(Buffer.from(expected[index]!)));

t.test('unpackFrames reads what packFrames and msgpackr write, as views of the chunk', async (t) => {
  const sized = (lengths: number[]) => lengths.map((length, index) => new Uint8Array(length).fill(index));
  for (const frames of [sized([]), sized([0, 255, 256, 65_535, 65_536]), sized(Array.from({ length: 16 }, () => 3)), sized(Array.from({ length: 65_536 }, () => 1))]) {
    t.ok(sameFrames(unpackFrames(packr.pack(frames)), frames), `${frames.length} frames written by msgpackr`);
  }
  // A chunk inside a larger buffer (as LevelDB and NATS hand values over): views at the right offsets.
  const frames = sized([3, 300, 7]);
  const chunk = packFrames(frames);
  const inside = new Uint8Array(chunk.length + 20);
  inside.set(chunk, 10);
  const read = unpackFrames(inside.subarray(10, 10 + chunk.length));
  t.ok(sameFrames(read, frames), 'read from inside a larger buffer');
  t.equal(read[1]!.buffer, inside.buffer, 'a view, not a copy');
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 40 }), (any) => sameFrames(unpackFrames(packFrames(any)), any)));
});

t.test('unpackFrames leaves any other value to msgpackr: what it can read, or its error', async (t) => {
  t.ok(sameFrames(unpackFrames(packr.pack([])), []), 'an empty chunk');
  const extension = new Packr({ useRecords: false, moreTypes: true }).pack([new Uint8Array([1, 2])]);
  t.ok(sameFrames(unpackFrames(extension), [new Uint8Array([1, 2])]), 'a Uint8Array msgpackr wrote as an extension');
  const chunk = packFrames([new Uint8Array(10), new Uint8Array(300)]);
  t.throws(() => unpackFrames(chunk.subarray(0, chunk.length - 1)), 'a chunk cut short');
  t.throws(() => unpackFrames(chunk.subarray(0, 4)), 'a header cut short');
  t.throws(() => unpackFrames(packr.pack({ not: 'frames' })), 'a value that is not frames');
  t.throws(() => unpackFrames(packr.pack(['text'])), 'an array of something else');
  t.throws(() => unpackFrames(new Uint8Array(0)), 'no bytes at all');
});

t.test('sliceBins takes part of a chunk as its bins; runsOver and readRuns read any stretch of such runs back', async (t) => {
  const sized = (lengths: number[]) => lengths.map((length, index) => new Uint8Array(length).fill(index));
  const frames = sized([3, 300, 0, 70_000, 9]);
  const chunk = packFrames(frames);
  const run = sliceBins(chunk, 1, 4);
  t.equal(run.count, 3, 'the bins of the frames asked for, counted');
  t.equal(run.bytes.buffer, chunk.buffer, 'as a slice of the chunk, not a copy');
  const back: Uint8Array[] = [];
  readRuns([run], 0, 3, back);
  t.ok(sameFrames(back, frames.slice(1, 4)), 'read back from the slice');
  t.equal(back[0]!.buffer, chunk.buffer, 'as views of the chunk');
  t.same(sliceBins(chunk, 5, 9).count, 0, 'nothing past the end');
  t.throws(() => sliceBins(chunk.subarray(0, chunk.length - 1), 0, 1), 'a chunk cut short, though the frame taken is whole');
  const extension = new Packr({ useRecords: false, moreTypes: true }).pack([new Uint8Array([1, 2]), new Uint8Array([3])]);
  const copied: Uint8Array[] = [];
  readRuns([sliceBins(extension, 1)], 0, 1, copied);
  t.ok(sameFrames(copied, [new Uint8Array([3])]), 'a chunk msgpackr reads: its frames copied into a run');
  // Chunks of any sizes read as runs, then any stretch of the whole read back through runsOver.
  fc.assert(fc.property(fc.array(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }), { maxLength: 6 }), fc.nat(), fc.nat(), (chunks, a, b) => {
    const all = chunks.flat();
    const runs: BinRun[] = chunks.map((chunkFrames) => sliceBins(packFrames(chunkFrames)));
    const start = all.length === 0 ? 0 : a % all.length;
    const end = start + (all.length - start === 0 ? 0 : b % (all.length - start + 1));
    const over = runsOver(runs, start, end);
    const read: Uint8Array[] = [];
    readRuns(over.runs, over.skip, end - start, read);
    // Or skipping from the first run on, past as many runs as it takes.
    const skipped: Uint8Array[] = [];
    readRuns(runs, start, end - start, skipped);
    return sameFrames(read, all.slice(start, end)) && sameFrames(skipped, all.slice(start, end));
  }));
});
