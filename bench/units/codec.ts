/**
 * Unit bench of the wire codec (protocol/codec.ts) alone: how many event-shaped frames per second
 * one thread encodes (what the engine does for every event it appends) and decodes (what an SSE
 * stream, an events page and every SDK client do), and how fast a client's `execute` request passes
 * decodeFrame. No sockets, no store: the ceiling the codec puts under the stream and replay
 * scenarios, to read beside their per-event CPU.
 *
 *   node dist/bench/units/codec.js [--seconds 2] [--quick]
 */
import { parseArgs } from 'node:util';
import { decodeFrame, decodeValue, encodeFrame } from '../../protocol/codec.js';
import { eventFrame } from '../harness/frames.js';
import { operationsPerSecond } from '../harness/rate.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
  },
});
/** --quick: a smoke run that only shows the bench works; its figures mean nothing. */
const seconds = values.quick ? 0.05 : Number(values.seconds);

/** A console line of 1 KiB: the size at which the bytes, not the per-frame cost, start to count. */
const LONG_TEXT = 'x'.repeat(1024);

interface Case {
  name: string;
  /** Runs the operation `count` times on frames of the case's shape; returns something to keep. */
  run(count: number): unknown;
  bytes: number;
}

function encodeCase(name: string, make: (seq: number) => object): Case {
  return {
    name: `encode ${name}`,
    bytes: encodeFrame(make(1_000_000)).length,
    run(count) {
      let size = 0;
      for (let i = 0; i < count; i++) size += encodeFrame(make(i)).length;
      return size;
    },
  };
}

function decodeCase(name: string, make: (seq: number) => object, decode: (bytes: Uint8Array) => unknown): Case {
  // A ring of distinct encoded frames, so the decoder sees different bytes as it would live.
  const ring = Array.from({ length: 1024 }, (_, i) => encodeFrame(make(i)));
  return {
    name: `decode ${name}`,
    bytes: ring[0]!.length,
    run(count) {
      let last: unknown;
      for (let i = 0; i < count; i++) last = decode(ring[i & 1023]!);
      return last;
    },
  };
}

const ts = Date.now();
const small = (seq: number) => eventFrame(seq, ts);
const long = (seq: number) => ({ ...eventFrame(seq, ts), payload: { level: 'log', text: LONG_TEXT } });
const execute = (seq: number) => ({ op: 'execute', id: seq, session_id: 's_7Kp2', kind: 'repl', code: '1 + 1' });

const cases: Case[] = [
  encodeCase('event', small),
  decodeCase('event', small, decodeValue),
  encodeCase('event, 1 KiB text', long),
  decodeCase('event, 1 KiB text', long, decodeValue),
  decodeCase('execute request (decodeFrame)', execute, decodeFrame),
];


process.stdout.write(`codec: node ${process.version}, ${seconds} s per case${values.quick ? ' (--quick: not a measurement)' : ''}\n`);
for (const test of cases) {
  const rate = operationsPerSecond((count) => test.run(count), seconds, 1000);
  process.stdout.write(`${test.name.padEnd(40)} ${String(test.bytes).padStart(5)} B  ${Math.round(rate).toLocaleString('en-US').padStart(11)} frames/s  ${(1e9 / rate).toFixed(0).padStart(6)} ns each\n`);
}
