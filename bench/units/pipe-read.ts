/**
 * Unit bench of the server's read of a sandbox process's output pipe during a stream (issue 15):
 * chunks as the pipe hands them over (64 KiB, frames cut across chunks), each cut into its frames
 * by `FrameReader.read` (src/pool/pipe-frames.ts), every console record checked by
 * `readConsoleRecord` (src/pool/console-frame.ts) where it lies, as the server's reader does
 * (sandbox-process/messages.ts's fromHostReader), the outputs of the last `--keep` kept alive as
 * the commit log keeps their frames until their write. CPU µs per record (process.cpuUsage: this thread
 * and V8's helpers, GC included): it survives a busy machine far better than records per second.
 *
 *   node dist/bench/units/pipe-read.js [--records 400000] [--rounds 5] [--text 'line 12345'] [--keep 16384]
 */
import { parseArgs } from 'node:util';
import { ConsoleRecordEncoder } from '../../src/pool/console-frame.js';
import { FrameReader, MAX_SERVER_FRAME_BYTES } from '../../src/pool/pipe-frames.js';
import { fromHostReader } from '../../src/sandbox-process/messages.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '400000' },
    rounds: { type: 'string', default: '5' },
    text: { type: 'string', default: 'line 12345' },
    keep: { type: 'string', default: '16384' },
  },
});
const records = Number(values.records);
const rounds = Number(values.rounds);
const keep = Number(values.keep);
const CHUNK_BYTES = 64 * 1024;

/** The pipe's bytes: `records` frames of `[length: u32 LE][console record]`, in 64 KiB chunks. */
function chunks(): Buffer[] {
  const encoder = new ConsoleRecordEncoder();
  const prefix = encoder.prefix('bench/ex_7Kp2Qm9xY')!;
  const record = encoder.encode(prefix, 0, values.text!, false, Date.now())!;
  const frame = Buffer.alloc(4 + record.length);
  frame.writeUInt32LE(record.length, 0);
  frame.set(record, 4);
  const all = Buffer.alloc(frame.length * records);
  for (let index = 0; index < records; index++) frame.copy(all, index * frame.length);
  const cut: Buffer[] = [];
  // Each chunk a Buffer of its own, as a socket read hands it over.
  for (let at = 0; at < all.length; at += CHUNK_BYTES) cut.push(Buffer.from(all.subarray(at, at + CHUNK_BYTES)));
  return cut;
}

const input = chunks();
const kept: unknown[] = new Array(keep);

function round(): number {
  const reader = new FrameReader(MAX_SERVER_FRAME_BYTES);
  let count = 0;
  const visitor = fromHostReader({
    output: (output) => void (kept[count++ % keep] = output),
    message: () => { throw new Error('a record was read as another message'); },
  });
  const before = process.cpuUsage();
  for (const chunk of input) reader.read(chunk, visitor);
  const used = process.cpuUsage(before);
  if (count !== records) throw new Error(`read ${count} records of ${records}`);
  return (used.user + used.system) / count;
}

round();
process.stdout.write(`pipe-read: ${records} records of ${JSON.stringify(values.text)}, ${rounds} rounds, CPU µs per record\n`);
for (let index = 0; index < rounds; index++) process.stdout.write(`${round().toFixed(3)}\n`);
