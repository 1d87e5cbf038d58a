/**
 * A stored chunk built by concatenation (src/store/frame-chunk.ts) is byte for byte what msgpackr's
 * `pack` of the frames writes, so stores written before and after read the same, at every header
 * width (array: fix/16/32; bin: 8/16/32).
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import { packFrames } from '../src/store/frame-chunk.js';

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
