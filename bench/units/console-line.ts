/**
 * Unit bench of a printed line's cost on the thread that prints it (issue 15, the stream's producer
 * side): `console.log` in a session's vm context → the context's console shim → the host bridge →
 * the run's output (src/pool/run-output.ts) → a record in the output ring, as a pool worker does
 * it, on one thread. The ring is emptied on the same thread every 4 096 lines, as if written out
 * (its reader's cost is not counted: in a sandbox process the worker's own drain writes the bytes
 * to the pipe once per turn, and the process's main thread helps a loop that does not yield).
 * It reports CPU µs per line (process.cpuUsage: this thread and V8's helpers, GC included), which
 * survives a busy machine far better than lines per second.
 *
 *   node dist/bench/units/console-line.js [--lines 200000] [--rounds 5] [--code 'console.log(i)'] [--profile DIR]
 *
 * `--code` is the loop's body, run `--lines` times with `i` the line number.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../../src/config.js';
import { createRing, RingReader, RingWriter } from '../../src/pool/output-ring.js';
import { RunOutputs } from '../../src/pool/run-output.js';
import { SessionContext } from '../../src/sandbox/session-context.js';
import { formatProfile, summarizeProfile } from '../harness/cpuprofile.js';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '5' },
    code: { type: 'string', default: 'console.log(i)' },
    profile: { type: 'string' },
  },
});
const lines = Number(values.lines);
const rounds = Number(values.rounds);
/** Lines between two empties of the ring: ~4 096 short records, far below its size. */
const DRAIN_EVERY = 4096;

const ring = createRing();
const reader = new RingReader(ring);
let sinceDrain = 0;
const outputs = new RunOutputs(new RingWriter(ring, () => {}), () => {
  if (++sinceDrain < DRAIN_EVERY) return;
  sinceDrain = 0;
  reader.drain((bytes) => bytes.length);
});
const context = new SessionContext({ maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars });
const XID = 'bench/ex_7Kp2Qm9xY';

/** Runs the loop for `count` lines; resolves at its end, with the CPU µs it took per line. */
async function run(count: number): Promise<number> {
  const before = process.cpuUsage();
  await new Promise<void>((ended) => {
    context.start('repl', `for (let i = 0; i < ${count}; i++) { ${values.code} }`, 'REPL', outputs.for(XID, () => ended()));
  });
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

// The context's first lines compile and optimise the shim: not measured.
await run(20_000);
const profiler = values.profile ? new Session() : null;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}
process.stdout.write(`console-line: ${JSON.stringify(values.code)} × ${lines}, ${rounds} rounds, CPU µs per line\n`);
for (let round = 0; round < rounds; round++) process.stdout.write(`${(await run(lines)).toFixed(3)}\n`);
if (profiler && values.profile) {
  const { profile } = await profiler.post('Profiler.stop');
  const dir = resolve(values.profile);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'console-line.cpuprofile');
  writeFileSync(file, JSON.stringify(profile));
  process.stdout.write(formatProfile(file, summarizeProfile(file)) + '\n');
}
