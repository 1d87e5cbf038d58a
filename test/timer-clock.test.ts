/**
 * The clock a session rebuild's re-run uses: timers fire without waiting, in the order the real
 * clock would have fired them, with microtasks drained between two of them.
 */
import t from 'tap';
import { SkippingClock } from '../src/sandbox/timer-clock.js';

t.test('timers fire by due time, then by creation, without waiting; an interval repeats until cleared', async (t) => {
  const clock = new SkippingClock();
  const fired: string[] = [];
  const started = Date.now();
  await new Promise<void>((resolve) => {
    clock.set(() => fired.push('late 60 s'), 60_000, false);
    clock.set(() => fired.push('first 10'), 10, false);
    clock.set(() => fired.push('second 10'), 10, false);
    let ticks = 0;
    const tick = clock.set(() => {
      fired.push(`tick ${++ticks}`);
      void Promise.resolve().then(() => fired.push(`microtask after tick ${ticks}`));
      if (ticks === 3) clock.clear(tick);
    }, 25, true);
    const cleared = clock.set(() => fired.push('never'), 5, false);
    clock.clear(cleared);
    clock.set(() => {
      // Set from a callback at virtual time 60 000: due after everything before it.
      clock.set(() => {
        fired.push('nested 1 after late');
        resolve();
      }, 1, false);
    }, 60_000, false);
  });
  t.same(fired, [
    'first 10', 'second 10',
    'tick 1', 'microtask after tick 1',
    'tick 2', 'microtask after tick 2',
    'tick 3', 'microtask after tick 3',
    'late 60 s', 'nested 1 after late',
  ]);
  t.ok(Date.now() - started < 60_000, 'the 60 s were not waited');
});
