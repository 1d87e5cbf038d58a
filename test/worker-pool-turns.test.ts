/**
 * The worker pool's reads of a ring (src/pool/worker-pool.ts), in process with a real worker: a
 * run that prints 20 000 lines hands over its first lines in a small batch, whatever follows them,
 * and the batches grow from there; everything arrives once, in order. A batch is what the pool
 * hands over in one synchronous stretch (a sandbox process sends each as one frame), so one is
 * counted from an output until the microtasks after it run.
 */
import t from 'tap';
import { decodeValue } from '../protocol/codec.js';
import type { EventFrame } from '../protocol/types.js';
import type { SandboxOutput } from '../src/sandbox/sandbox.js';
import { DEFAULTS } from '../src/config.js';

// The compiled pool: its worker is started from the compiled worker-main.js beside it.
const { WorkerPool } = await import(new URL('../dist/src/pool/worker-pool.js', import.meta.url).href) as typeof import('../src/pool/worker-pool.js');

t.test('a long run\'s first batch is small, later ones grow, nothing is lost', async (t) => {
  const lines = 20_000;
  const batches: number[] = [];
  const texts: string[] = [];
  let batch = 0;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const pool = new WorkerPool({ size: 1, heapMb: DEFAULTS.workerHeapMb, limits: { maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars } }, {
    onOutput(output: SandboxOutput) {
      if (batch++ === 0) queueMicrotask(() => { batches.push(batch); batch = 0; });
      // Plain lines come as their encoded event frames (pool/console-frame.ts).
      if (output.kind === 'encoded') texts.push((decodeValue(output.frame) as EventFrame<'console'>).payload.text);
      if (output.kind === 'done') finished();
    },
    acceptingOutput: () => true,
    onRestored: () => {},
    onLost: (sessions, reason) => t.fail(`lost ${sessions.join()}: ${reason}`),
  });
  t.teardown(() => pool.shutdown());
  pool.open({ sessionId: 's', tenant: 't' });
  pool.run({ sessionId: 's', executionId: 'x', kind: 'repl', code: `for (let i = 0; i < ${lines}; i++) console.log(i)`, filename: 'REPL1' });
  // The run is posted on the next turn; then this thread is kept busy while the worker prints, so
  // the first read finds thousands of lines waiting (as on a loaded server), not one.
  await new Promise((resolve) => setImmediate(resolve));
  const busyUntil = performance.now() + 300;
  while (performance.now() < busyUntil);
  await done;
  t.same(texts, Array.from({ length: lines }, (_, i) => String(i)), 'every line once, in order');
  t.ok(batches[0]! <= 64, `the first batch held ${batches[0]} outputs`);
  t.ok(Math.max(...batches) <= 4096, `no batch held more than 4096 (largest: ${Math.max(...batches)}, ${batches.length} batches)`);
});
