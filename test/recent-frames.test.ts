/**
 * The frames the hub keeps for subscribers that fell behind (src/events/recent-frames.ts): found by
 * seq within the chunks kept, contiguous per execution, bounded over all executions (the chunks
 * kept least recently go first), dropped per execution.
 */
import t from 'tap';
import { RecentFrames } from '../src/events/recent-frames.js';

const chunk = (executionId: string, firstSeq: number, count: number, size = 36) => ({
  executionId,
  firstSeq,
  frames: Array.from({ length: count }, () => new Uint8Array(size)),
});
/** What one chunk of `count` frames of 36 bytes counts: its bytes and a 64-byte overhead per frame. */
const cost = (count: number) => count * (36 + 64);

t.test('a seq is found in the chunk that holds it; nothing before the first or from the next seq on', async (t) => {
  const recent = new RecentFrames(1 << 20);
  const chunks = [chunk('a', 11, 5), chunk('a', 16, 1), chunk('a', 17, 10)];
  for (const c of chunks) recent.keep(c);
  t.equal(recent.find('a', 11), chunks[0]);
  t.equal(recent.find('a', 15), chunks[0]);
  t.equal(recent.find('a', 16), chunks[1]);
  t.equal(recent.find('a', 17), chunks[2]);
  t.equal(recent.find('a', 26), chunks[2]);
  t.equal(recent.find('a', 10), undefined, 'before what is kept');
  t.equal(recent.find('a', 27), undefined, 'not committed yet');
  t.equal(recent.find('b', 11), undefined, 'another execution');
  t.equal(recent.bytes, cost(16));
});

t.test('a chunk that does not follow the last one kept starts the execution\'s frames again', async (t) => {
  const recent = new RecentFrames(1 << 20);
  recent.keep(chunk('a', 1, 5));
  const after = chunk('a', 8, 3);
  recent.keep(after);
  t.equal(recent.find('a', 3), undefined, 'the frames before the gap are gone');
  t.equal(recent.find('a', 8), after);
  t.equal(recent.bytes, cost(3));
});

t.test('past the bound, the chunks kept least recently go first, whichever execution they are of', async (t) => {
  const recent = new RecentFrames(cost(10));
  recent.keep(chunk('a', 1, 4));
  recent.keep(chunk('b', 1, 4));
  recent.keep(chunk('a', 5, 4)); // a is now the most recently kept: b's chunk is the oldest
  t.equal(recent.find('b', 1), undefined, 'b\'s only chunk went');
  t.ok(recent.find('a', 1) && recent.find('a', 5), 'a keeps both');
  t.equal(recent.bytes, cost(8));
  recent.keep(chunk('a', 9, 4));
  t.equal(recent.find('a', 1), undefined, 'then a\'s oldest chunk');
  t.ok(recent.find('a', 5) && recent.find('a', 12), 'a\'s newer ones stay, contiguous');
  t.equal(recent.bytes, cost(8));
});

t.test('dropping an execution frees what it kept, and nothing else', async (t) => {
  const recent = new RecentFrames(1 << 20);
  recent.keep(chunk('a', 1, 4));
  recent.keep(chunk('b', 1, 2));
  recent.drop('a');
  recent.drop('a');
  t.equal(recent.find('a', 1), undefined);
  t.ok(recent.find('b', 2));
  t.equal(recent.bytes, cost(2));
  recent.keep(chunk('a', 9, 1));
  t.ok(recent.find('a', 9), 'kept again from any seq after a drop');
});
