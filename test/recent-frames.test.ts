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
/** What a kept frame counts beside the buffer it views: its view. */
const VIEW = 112;
/** What one chunk of `count` frames of 36 bytes, each its own buffer, counts. */
const cost = (count: number) => count * (36 + VIEW);

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

t.test('a kept frame counts the buffer it views (a sandbox pipe\'s run, msgpackr\'s), once for the frames in a row that view it', async (t) => {
  // A pipe read's run of console lines: this execution's beside other executions' (pool/pipe-frames.ts).
  const run = new Uint8Array(64 * 1024);
  const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => run.subarray((from + i) * 40, (from + i + 1) * 40));
  const recent = new RecentFrames(1 << 20);
  recent.keep({ executionId: 'a', firstSeq: 1, frames: lines(0, 3) });
  t.equal(recent.bytes, run.byteLength + 3 * VIEW, 'the run it holds, not three lines of 40 bytes');
  recent.keep({ executionId: 'a', firstSeq: 4, frames: lines(3, 2) });
  t.equal(recent.bytes, run.byteLength + 5 * VIEW, 'a chunk going on in the same run does not count it again');
  recent.keep({ executionId: 'b', firstSeq: 1, frames: lines(5, 1) });
  t.equal(recent.bytes, 2 * run.byteLength + 6 * VIEW, 'another execution\'s frames in it count it too: never less than is held');
});

t.test('the bound is on what is held: lines that each hold a run of their own are let go past it', async (t) => {
  const recent = new RecentFrames(1 << 20);
  // 100 lines of 40 bytes, each the only one of this execution in a 64 KiB run: 6.4 MiB held.
  for (let seq = 1; seq <= 100; seq++) recent.keep({ executionId: 'a', firstSeq: seq, frames: [new Uint8Array(64 * 1024).subarray(0, 40)] });
  t.ok(recent.bytes <= 1 << 20, `${recent.bytes} bytes counted`);
  t.equal(recent.find('a', 1), undefined, 'the oldest went');
  t.ok(recent.find('a', 100), 'the newest stay');
});

t.test('a chunk let go whose last buffer the next one views too: that one counts it from then on', async (t) => {
  const run = new Uint8Array(1000);
  const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => run.subarray((from + i) * 10, (from + i + 1) * 10));
  const recent = new RecentFrames(1000 + 4 * VIEW + 100);
  recent.keep({ executionId: 'a', firstSeq: 1, frames: lines(0, 2) }); // 1000 + 2 views
  const second = { executionId: 'a', firstSeq: 3, frames: lines(2, 2) }; // 2 views: the run is counted already
  recent.keep(second);
  recent.keep(chunk('b', 1, 1)); // 36 + a view: past the bound, a's first chunk goes
  t.equal(recent.find('a', 1), undefined);
  t.equal(recent.find('a', 3), second);
  t.equal(recent.bytes, 1000 + 2 * VIEW + cost(1), 'the run still held by the second chunk, counted once');
  recent.drop('a');
  t.equal(recent.bytes, cost(1), 'and freed with it');
});
