/**
 * In a sandbox process, a run that prints without yielding has its first lines written to the
 * process's output by its own worker thread, not by the process's main thread: the wake-up of that
 * thread was most of a 100 000-line run's first event on a busy machine (issue 15). Shown by order,
 * not by time: the main thread here never returns to its event loop (it cannot write, nor be asked
 * to) until the first lines are in the output, in order.
 */
import { closeSync, createWriteStream, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { decodeValue } from '../protocol/codec.js';
import type { EventFrame } from '../protocol/types.js';
import { readConsoleRecord, type RecordSpan } from '../src/pool/console-frame.js';
import { FrameReader } from '../src/pool/pipe-frames.js';
import { MainOutput } from '../src/pool/shared-output.js';
import { DEFAULTS } from '../src/config.js';

// The compiled pool: its worker is started from the compiled worker-main.js beside it.
const { WorkerPool } = await import(new URL('../dist/src/pool/worker-pool.js', import.meta.url).href) as typeof import('../src/pool/worker-pool.js');

/** Only against a hang: the passing case is over in milliseconds, the old code never got there. */
const HANG_GUARD_MS = 30_000;

t.test('a run printing in a loop writes its first lines itself, while the main thread is busy', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vmstream-first-lines-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'out');
  const fd = openSync(file, 'w');
  t.teardown(() => closeSync(fd));
  const output = new MainOutput(fd, createWriteStream('', { fd, autoClose: false }));
  const pool = new WorkerPool({ size: 1, heapMb: DEFAULTS.workerHeapMb, limits: { maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars }, output }, {
    onOutput: () => t.fail('output goes to the fd, not to the listener'),
    acceptingOutput: () => true,
    onRestored: () => {},
    onLost: (sessions, reason) => t.fail(`lost ${sessions.join()}: ${reason}`),
  });
  t.teardown(() => pool.shutdown());
  pool.open({ sessionId: 's', tenant: 't' });
  // Prints well past the point where its worker asks for help, then never yields.
  pool.run({ sessionId: 's', executionId: 'x', kind: 'repl', code: 'for (let i = 0; i < 2000; i++) console.log(i); for (;;) {}', filename: 'REPL1' });
  // The run is posted on the next turn; from then on this thread stays busy.
  await new Promise((resolve) => setImmediate(resolve));
  const guard = performance.now() + HANG_GUARD_MS;
  // More than a line: a whole first write (~16 KiB), not the start of one.
  while (fstatSync(fd).size < 1024 && performance.now() < guard);
  const bytes = readFileSync(file);
  t.ok(bytes.length > 0, 'the first lines reached the output while the main thread never ran');
  const texts = new FrameReader(1 << 20).push(bytes).map((record) => {
    const { bytes: run, start, end } = record as RecordSpan;
    const encoded = readConsoleRecord(run, start, end);
    return encoded && (decodeValue(encoded.frame) as EventFrame<'console'>).payload.text;
  });
  t.ok(texts.length > 0 && texts.length < 2000, `the first lines, before the run's end (${texts.length})`);
  t.same(texts, Array.from({ length: texts.length }, (_, i) => String(i)), 'whole records, in order, from the first line');
});
