/**
 * The sandbox process's check for stuck rings (pool/stuck-watch.ts) sleeps while every ring is
 * empty, and a worker whose ring gets a record wakes it. No wake-up may be lost: a stuck worker's
 * records would then wait until its run was killed.
 */
import t, { type Test } from 'tap';
import { createStuckWord, pokeStuckWatch, StuckWatch } from '../src/pool/stuck-watch.js';

/** The watch's own timer is unref'd (a sandbox process lives for its pipes): this keeps the test's loop alive meanwhile. */
function keepAlive(t: Test): void {
  const timer = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(timer));
}

t.test('a record landing between the look that found none and the sleep wakes the watch', async (t) => {
  keepAlive(t);
  const word = createStuckWord();
  let looks = 0;
  const lookedAgain = await new Promise<boolean>((resolve) => {
    const watch = new StuckWatch(word, () => {
      looks++;
      // The first look finds nothing; a worker's record lands before the watch starts to wait.
      if (looks === 1) pokeStuckWatch(new Int32Array(word));
      else resolve(true);
      return false;
    });
    t.teardown(() => watch.stop());
  });
  t.ok(lookedAgain, 'looked again, though nothing woke it after it began to wait');
});

t.test('asleep, woken by a poke; looks again while records wait, and sleeps once they are gone', async (t) => {
  keepAlive(t);
  const word = createStuckWord();
  let pending = false;
  let looked: (pending: boolean) => void = () => {};
  const nextLook = () => new Promise<boolean>((resolve) => (looked = resolve));
  let first = nextLook();
  const watch = new StuckWatch(word, () => {
    looked(pending);
    return pending;
  });
  t.teardown(() => watch.stop());
  // The constructor's look found nothing: asleep now.
  t.equal(await first, false);
  first = nextLook();
  pending = true;
  pokeStuckWatch(new Int32Array(word));
  t.equal(await first, true, 'woken by the poke');
  t.equal(await nextLook(), true, 'looks again while a ring holds records');
  pending = false;
  t.equal(await nextLook(), false, 'the look that finds them gone');
  // Asleep again (a look that found nothing is followed by the sleep's own look, then the wait).
  const woken = nextLook();
  pending = true;
  pokeStuckWatch(new Int32Array(word));
  t.equal(await woken, true, 'woken again');
});
