/**
 * Each worker thread makes one session context ahead, while idle (src/pool/spare-context.ts), so
 * that a session's `open` does not make one on the way of an `execute` sent right after
 * `session.create` (issue 15: ~1.5 ms on a quiet machine, 2–12 ms on a busy one). Shown by what is
 * made when, on a clock the test turns: never on `take` when a spare is ready, only after the
 * thread has been quiet, never while a run is under way; and, on a real worker, that every session
 * still gets a context of its own.
 */
import t from 'tap';
import { Worker } from 'node:worker_threads';
import type { SandboxOutput } from '../src/sandbox/sandbox.js';
import { QUIET_MS, SpareContexts, type SpareClock } from '../src/pool/spare-context.js';
import { DEFAULTS } from '../src/config.js';

// The compiled pool: its worker is started from the compiled worker-main.js beside it.
const { WorkerPool } = await import(new URL('../dist/src/pool/worker-pool.js', import.meta.url).href) as typeof import('../src/pool/worker-pool.js');

/** A clock the test moves: what is due runs when the test turns it. */
class TurnedClock implements SpareClock {
  at = 0;
  due: Array<{ fn: () => void; at: number }> = [];
  now(): number {
    return this.at;
  }
  later(fn: () => void, ms: number): void {
    this.due.push({ fn, at: this.at + ms });
  }
  /** Moves to `at` and runs what was due by then (not what that schedules). */
  turn(at: number): void {
    this.at = at;
    const due = this.due.filter((d) => d.at <= at);
    this.due = this.due.filter((d) => d.at > at);
    for (const { fn } of due) fn();
  }
}

function contexts(busy = () => false) {
  const clock = new TurnedClock();
  let made = 0;
  const spares = new SpareContexts(() => ({ n: ++made }), busy, clock);
  return { clock, spares, made: () => made };
}

t.test('the spare is made once the thread has been quiet, and a session takes it without making one', async (t) => {
  const { clock, spares, made } = contexts();
  t.equal(made(), 0, 'nothing made on the thread’s start');
  clock.turn(QUIET_MS - 1);
  t.equal(made(), 0);
  clock.turn(QUIET_MS);
  t.equal(made(), 1, 'the spare, made after a quiet while');
  t.same(spares.take(), { n: 1 }, 'the session gets the spare');
  t.equal(made(), 1, 'and nothing is made on its way');
  clock.turn(2 * QUIET_MS);
  t.equal(made(), 2, 'the next spare, a quiet while after the take');
});

t.test('a request or a run’s end puts the spare off until the thread has been quiet again', async (t) => {
  const { clock, spares, made } = contexts();
  clock.turn(QUIET_MS / 2);
  spares.touch();
  clock.turn(QUIET_MS);
  t.equal(made(), 0, 'touched half-way: not yet');
  clock.turn(QUIET_MS + QUIET_MS / 2 - 1);
  t.equal(made(), 0);
  clock.turn(QUIET_MS + QUIET_MS / 2);
  t.equal(made(), 1, 'made a quiet while after the touch');
});

t.test('no context is handed out twice: with no spare ready, take makes one', async (t) => {
  const { clock, spares, made } = contexts();
  clock.turn(QUIET_MS);
  const first = spares.take();
  const second = spares.take();
  t.not(first, second);
  t.equal(made(), 2, 'the second made on the spot');
  t.equal(clock.due.length, 1, 'one spare due, not one per take');
  clock.turn(2 * QUIET_MS);
  t.not(spares.take(), second);
  t.equal(made(), 3);
});

t.test('no spare is made while a run is under way: it waits for an idle moment', async (t) => {
  let busy = true;
  const { clock, spares, made } = contexts(() => busy);
  clock.turn(QUIET_MS);
  t.equal(made(), 0, 'busy: not made');
  t.equal(clock.due.length, 1, 'tried again later');
  clock.turn(2 * QUIET_MS);
  t.equal(made(), 0);
  busy = false;
  clock.turn(3 * QUIET_MS);
  t.equal(made(), 1, 'made once idle');
  t.equal(clock.due.length, 0, 'and nothing more is due until it is taken');
  t.same(spares.take(), { n: 1 });
});

t.test('on a worker, sessions opened one after another each get a context of their own', async (t) => {
  const values = new Map<string, string>();
  const done = new Map<string, () => void>();
  const pool = new WorkerPool({ size: 1, heapMb: DEFAULTS.workerHeapMb, limits: { maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars } }, {
    onOutput: (output: SandboxOutput) => {
      if (output.kind === 'value') values.set(output.executionId, output.payload.preview);
      if (output.kind === 'done') done.get(output.executionId)?.();
    },
    acceptingOutput: () => true,
    onRestored: () => {},
    onLost: (sessions, reason) => t.fail(`lost ${sessions.join()}: ${reason}`),
  });
  t.teardown(() => pool.shutdown());
  let runs = 0;
  const run = (sessionId: string, code: string): Promise<string | undefined> => {
    const executionId = `x${++runs}`;
    const ended = new Promise<void>((resolve) => done.set(executionId, resolve));
    pool.run({ sessionId, executionId, kind: 'repl', code, filename: `REPL${runs}` });
    return ended.then(() => values.get(executionId));
  };
  pool.open({ sessionId: 'a', tenant: 't' });
  t.equal(await run('a', 'globalThis.mark = "a"; mark'), "'a'");
  // Opened at once, then after a wait long enough for a spare to have been made since.
  pool.open({ sessionId: 'b', tenant: 't' });
  t.equal(await run('b', 'typeof mark'), "'undefined'", 'b does not see a’s global');
  await new Promise((resolve) => setTimeout(resolve, 3 * QUIET_MS));
  pool.close('a');
  pool.open({ sessionId: 'c', tenant: 't' });
  t.equal(await run('c', 'typeof mark'), "'undefined'", 'c, opened after a closed, does not see a’s global');
  t.equal(await run('b', 'globalThis.mark = "b"; mark'), "'b'");
  t.equal(await run('c', 'typeof mark'), "'undefined'", 'nor b’s');
});

t.test('on a worker, no spare is made while a session is being rebuilt: its re-runs are runs under way', async (t) => {
  const { createRing } = await import(new URL('../dist/src/pool/output-ring.js', import.meta.url).href) as typeof import('../src/pool/output-ring.js');
  const workerMain = new URL('../dist/src/pool/worker-main.js', import.meta.url).href;
  // The worker as the pool starts it, with each vm context it makes reported as it is made.
  const counting = `
    const vm = require('node:vm');
    const { parentPort } = require('node:worker_threads');
    const createContext = vm.createContext;
    vm.createContext = (...args) => { parentPort.postMessage({ t: 'made' }); return createContext(...args); };
    import(${JSON.stringify(workerMain)});
  `;
  const worker = new Worker(counting, {
    eval: true,
    workerData: { limits: { maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars }, ring: createRing() },
    execArgv: ['--experimental-vm-modules', '--no-warnings'],
  });
  t.teardown(() => worker.terminate());
  const heard: string[] = [];
  let madeAfterRestored: () => void = () => {};
  const spareMade = new Promise<void>((resolve) => (madeAfterRestored = resolve));
  let restored: () => void = () => {};
  const rebuilt = new Promise<void>((resolve) => (restored = resolve));
  worker.on('message', (message: { t: string; ok?: boolean }) => {
    heard.push(message.t);
    if (message.t === 'restored') restored();
    if (message.t === 'made' && heard.includes('restored')) madeAfterRestored();
  });
  await new Promise((resolve) => worker.once('online', resolve));
  // The first input holds the thread past QUIET_MS; the spare's timer is then due between re-runs.
  const hold = `const until = Date.now() + ${QUIET_MS + 200}; while (Date.now() < until);`;
  const inputs = [hold, '1', '2'].map((code, index) => ({ kind: 'repl' as const, code, filename: `REPL${index + 1}`, ended: 'ok' as const }));
  worker.postMessage([{ t: 'open', sid: 's' }, { t: 'restore', sid: 's', inputs }]);
  await rebuilt;
  const before = heard.slice(0, heard.indexOf('restored'));
  const made = before.filter((what) => what === 'made').length;
  t.equal(made, 2, `only the session's contexts (open's, the rebuild's) before it is rebuilt: ${before.join(' ')}`);
  if (made !== 2) return;
  await spareMade;
  t.pass('the spare is made once the rebuild is over');
});
