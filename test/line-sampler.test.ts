/** LineSampler (src/ops/logger.ts): one routine line per interval, counting those held back. */
import t from 'tap';
import { LineSampler } from '../src/ops/logger.js';

t.test('the first line goes out; the next within the interval are held and counted on the next one out', async (t) => {
  const sampler = new LineSampler(1000);
  t.equal(sampler.take(0), 0, 'first line: nothing held before it');
  t.equal(sampler.take(10), null);
  t.equal(sampler.take(999), null);
  t.equal(sampler.take(1000), 2, 'one interval on: out, with the two held back');
  t.equal(sampler.take(1500), null);
  t.equal(sampler.take(5000), 1);
  t.equal(sampler.take(5001), null);
});
