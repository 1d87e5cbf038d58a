/**
 * Unit bench of what an execution id's length costs a client (issue 15, short ids): CPU per frame
 * to decode a stream's `event` frames with protocol/codec.ts's `decodeValue` (what the SDK, the CLI
 * and the bench's stream and replay clients do per event), for frames whose `execution_id` is a
 * UUID (what the server and the SDK made up before) and one of protocol/ids.ts's ids (now), beside
 * the push baseline's frame (bench/harness/frames.ts). The frames are the server's own bytes for
 * console lines `line 0`, `line 1`, … (the worker's template, pool/console-frame.ts, checked and
 * seq-filled as the server does), distinct per frame as a stream's are.
 *
 *   node dist/bench/units/id-decode.js [--frames 200000] [--rounds 7] [--quick]
 *
 * Rounds interleave the cases, so that a busy machine weighs on each alike; CPU per frame is
 * process.cpuUsage (this thread and V8's helpers, GC included) over the round. Prints every round
 * and the median.
 */
import { parseArgs } from 'node:util';
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import { newId } from '../../protocol/ids.js';
import { ConsoleRecordEncoder, readConsoleRecord } from '../../src/pool/console-frame.js';
import { eventFrame } from '../harness/frames.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '7' },
    quick: { type: 'boolean', default: false },
  },
});
/** --quick: a smoke run that only shows the bench works; its figures mean nothing. */
const frames = values.quick ? 2000 : Number(values.frames);
const rounds = values.quick ? 1 : Number(values.rounds);

/** The server's frames of the console lines of one execution, as it stores and sends them. */
function serverFrames(executionId: string): Uint8Array[] {
  const encoder = new ConsoleRecordEncoder();
  const prefix = encoder.prefix(`default/${executionId}`)!;
  const ts = Date.now();
  return Array.from({ length: frames }, (_, index) => {
    const output = readConsoleRecord(Uint8Array.from(encoder.encode(prefix, 0, `line ${index}`, false, ts)!));
    if (output === null) throw new Error('the template refused its own record');
    const frame = output.frame.slice();
    new DataView(frame.buffer).setUint32(output.seqAt, index + 1);
    return frame;
  });
}

const cases = [
  { name: 'UUID (before)', frames: serverFrames('0f8fad5b-d9cb-469f-a165-70867728950e') },
  { name: 'protocol/ids.ts id (now)', frames: serverFrames(newId()) },
  { name: "push baseline's frame", frames: Array.from({ length: frames }, (_, index) => encodeFrame(eventFrame(index + 1, Date.now()))) },
];

/** CPU µs per frame to decode every frame of a case once. */
function round(list: Uint8Array[]): number {
  let events = 0;
  const before = process.cpuUsage();
  for (const frame of list) if ((decodeValue(frame) as { op: string }).op === 'event') events++;
  const used = process.cpuUsage(before);
  if (events !== list.length) throw new Error(`decoded ${events} event frames of ${list.length}`);
  return (used.user + used.system) / events;
}

for (const test of cases) round(test.frames);
const results = cases.map(() => [] as number[]);
for (let index = 0; index < rounds; index++) cases.forEach((test, at) => results[at]!.push(round(test.frames)));

process.stdout.write(`id-decode: node ${process.version}, ${frames} frames per case, ${rounds} interleaved rounds, CPU µs per frame decoded${values.quick ? ' (--quick: not a measurement)' : ''}\n`);
cases.forEach((test, at) => {
  const sorted = [...results[at]!].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const bytes = test.frames[frames - 1]!.length;
  process.stdout.write(`${test.name.padEnd(26)} ${String(bytes).padStart(4)} B  median ${median.toFixed(3)}  rounds ${results[at]!.map((value) => value.toFixed(3)).join(' ')}\n`);
});
