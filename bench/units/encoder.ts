/**
 * Unit bench of a console line's way from the worker to a stored chunk, before and after issue 15's
 * "encode once" (src/pool/console-frame.ts, src/store/frame-chunk.ts), per frame, on one thread:
 *
 * - worker: msgpackr's pack of the OutputItem tuple (before) against the template encoder writing
 *   the line's event frame (after);
 * - server: unpack + readOutputItem + the event writer's encodeFrame (before) against
 *   readConsoleRecord's template check + the seq written into its slot (after);
 * - chunk: msgpackr's pack of 256 frames (before) against packFrames' concatenation (after).
 *
 *   node dist/bench/units/encoder.js [--seconds 2] [--quick]
 */
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import { encodeFrame } from '../../protocol/codec.js';
import { ConsoleRecordEncoder, readConsoleRecord } from '../../src/pool/console-frame.js';
import { ItemKind, type OutputItem } from '../../src/pool/messages.js';
import { readOutputItem } from '../../src/pool/output-item.js';
import { packFrames } from '../../src/store/frame-chunk.js';
import { operationsPerSecond } from '../harness/rate.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
  },
});
/** --quick: a smoke run that only shows the bench works; its figures mean nothing. */
const seconds = values.quick ? 0.05 : Number(values.seconds);

const XID = 'bench/ex_7Kp2Qm9';
const CHUNK = 256;
const packr = new Packr({ useRecords: false });
const encoder = new ConsoleRecordEncoder();
const prefix = encoder.prefix(XID)!;

interface Case {
  name: string;
  /** Runs the operation on `count` frames; returns something to keep. */
  run(count: number): unknown;
}

/** Distinct lines of a shape (the seq-like counter in the text), so no case sees one string again and again. */
const linesOf = (text: string) => Array.from({ length: 1024 }, (_, i) => `${text} ${i}`);

function cases(label: string, text: string): Array<[Case, Case]> {
  const lines = linesOf(text);
  const ts = Date.now();
  const items = lines.map((line) => packr.pack([XID, ItemKind.Console, ts, 0, line, false] satisfies OutputItem));
  const records = lines.map((line) => Uint8Array.from(encoder.encode(prefix, 0, line, false, ts)!));
  const frames = records.map((record) => readConsoleRecord(record)!.frame);
  const seqView = (frame: Uint8Array) => new DataView(frame.buffer, frame.byteOffset);
  return [
    [
      { name: `worker ${label}: pack OutputItem`, run: (count) => { let size = 0; for (let i = 0; i < count; i++) size += packr.pack([XID, ItemKind.Console, Date.now(), 0, lines[i & 1023]!, false] satisfies OutputItem).length; return size; } },
      { name: `worker ${label}: template encode`, run: (count) => { let size = 0; for (let i = 0; i < count; i++) size += encoder.encode(prefix, 0, lines[i & 1023]!, false, Date.now())!.length; return size; } },
    ],
    [
      {
        name: `server ${label}: decode + encodeFrame`,
        run: (count) => {
          let size = 0;
          for (let i = 0; i < count; i++) {
            const output = readOutputItem(packr.unpack(items[i & 1023]!));
            if (output?.kind !== 'console') throw new Error('refused');
            size += encodeFrame({ op: 'event', execution_id: 'ex_7Kp2Qm9', seq: i + 1, type: 'console', ts: output.ts, payload: output.payload }).length;
          }
          return size;
        },
      },
      {
        name: `server ${label}: check template + seq`,
        run: (count) => {
          let size = 0;
          for (let i = 0; i < count; i++) {
            const output = readConsoleRecord(records[i & 1023]!);
            if (!output) throw new Error('refused');
            seqView(output.frame).setUint32(output.seqAt, i + 1);
            size += output.frame.length;
          }
          return size;
        },
      },
    ],
    [
      { name: `chunk ${label}: pack ${CHUNK} frames`, run: (count) => { let size = 0; for (let i = 0; i < count; i += CHUNK) size += packr.pack(frames.slice(i & 767, (i & 767) + CHUNK)).length; return size; } },
      { name: `chunk ${label}: concatenate ${CHUNK}`, run: (count) => { let size = 0; for (let i = 0; i < count; i += CHUNK) size += packFrames(frames, i & 767, (i & 767) + CHUNK).length; return size; } },
    ],
  ];
}


process.stdout.write(`encoder: node ${process.version}, ${seconds} s per case${values.quick ? ' (--quick: not a measurement)' : ''}; µs per frame, before → after\n`);
for (const [label, text] of [['short line', 'hello from the bench'], ['1 KiB line', 'x'.repeat(1024)]] as const) {
  for (const [before, after] of cases(label, text)) {
    const [a, b] = [before, after].map((test) => 1e6 / operationsPerSecond((count) => test.run(count), seconds, 1024)) as [number, number];
    process.stdout.write(`${before.name.padEnd(46)} ${a.toFixed(3).padStart(7)} → ${b.toFixed(3).padStart(7)} µs  (${after.name.slice(after.name.indexOf(':') + 2)}, ${(a / b).toFixed(1)}x)\n`);
  }
}
