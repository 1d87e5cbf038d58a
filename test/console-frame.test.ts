/**
 * Console lines encoded in the worker (src/pool/console-frame.ts): what the template writes is an
 * `event` frame any msgpack decoder reads as the server would have encoded it, protocol/batch.ts
 * splices it without decoding, and the server's reader takes exactly the template: every byte of
 * a hostile record that strays from it (cut short, a wrong level, a length past the end, text that
 * is not UTF-8, a frame naming another execution than its record) is refused, never half-read,
 * never a throw. (Whether the sandbox runs the execution a record names is its reader's check:
 * process-sandbox.ts's, as for every record.)
 */
import fc from 'fast-check';
import t from 'tap';
import { decodeValue, encodeFrame } from '../protocol/codec.js';
import { encodeEvents } from '../protocol/batch.js';
import { ConsoleRecordEncoder, isConsoleRecord, readConsoleRecord, RecordSpan } from '../src/pool/console-frame.js';
import { CONSOLE_LEVELS } from '../src/pool/messages.js';
import { FrameError, FrameReader } from '../src/pool/pipe-frames.js';
import { fromHostReader, type FromHost } from '../src/sandbox-process/messages.js';
import type { SandboxOutput } from '../src/sandbox/sandbox.js';

const XID = 'acme/ex_7Kp2';
const encoder = new ConsoleRecordEncoder();
const prefix = encoder.prefix(XID)!;
const record = (text: string, level = 0, truncated = false, ts = 1_764_620_000_123) => Uint8Array.from(encoder.encode(prefix, level, text, truncated, ts)!);

/** The frame of a record read back, with `seq` written into its slot as the event writer does. */
function frameOf(bytes: Uint8Array, seq: number): Uint8Array {
  const read = readConsoleRecord(bytes);
  if (!read) throw new Error('refused');
  new DataView(read.frame.buffer, read.frame.byteOffset + read.seqAt, 4).setUint32(0, seq);
  return read.frame;
}

t.test('a record is the event frame the server would have sent, seq written in by the server', async (t) => {
  for (const [text, level, truncated] of [['hi', 0, false], ['', 4, false], ['é✓ 𝄞 \u{d800}', 2, true], ['ascii first, then ✓', 0, false], ['x'.repeat(31), 1, false], ['y'.repeat(40), 3, false], ['z'.repeat(70_000), 0, true]] as const) {
    const bytes = record(text, level, truncated);
    t.ok(isConsoleRecord(bytes));
    const read = readConsoleRecord(bytes);
    t.match(read, { kind: 'encoded', executionId: XID, ts: 1_764_620_000_123, type: 'console' });
    const frame = frameOf(bytes, 70_000);
    const expected = { op: 'event', execution_id: 'ex_7Kp2', seq: 70_000, type: 'console', ts: 1_764_620_000_123, payload: { level: CONSOLE_LEVELS[level], text: Buffer.from(text).toString(), ...(truncated ? { truncated: true } : {}) } };
    t.same(decodeValue(frame), expected, `${text.slice(0, 8)}: decodes as the server's own frame`);
    const { op: _op, execution_id: _id, ...event } = expected;
    const spliced = encodeEvents([frame, encodeFrame({ ...expected, seq: 70_001 })], 0, 2);
    // The fast path writes each item as a fixmap where msgpackr (the slow path, decoding) writes a map16.
    t.ok(spliced.length < encodeFrame({ op: 'events', execution_id: 'ex_7Kp2', events: [event, { ...event, seq: 70_001 }] }).length, 'spliced from the bytes');
    t.same(decodeValue(spliced), { op: 'events', execution_id: 'ex_7Kp2', events: [event, { ...event, seq: 70_001 }] }, 'spliced into an events frame beside a server-encoded one');
  }
});

t.test('an id the template cannot hold, a bad level or a non-string text is left to the OutputItem path', async (t) => {
  t.equal(encoder.prefix('acme/ex\u00e9'), null);
  t.equal(encoder.prefix(`acme/${'x'.repeat(300)}`), null);
  t.equal(encoder.encode(prefix, 5, 'x', false, 1), null);
  t.equal(encoder.encode(prefix, 0, 12 as unknown as string, false, 1), null);
});

t.test('every cut and every changed byte of a record is refused or still exactly the template', async (t) => {
  const bytes = record('hello', 1, true);
  for (let length = 0; length < bytes.length; length++) t.equal(readConsoleRecord(bytes.subarray(0, length)), null, `cut at ${length}`);
  t.equal(readConsoleRecord(Uint8Array.from([...bytes, 0])), null, 'a trailing byte');
  // The bytes a record may vary in: the seq slot, the ts, and the text's bytes (to other UTF-8).
  const read = readConsoleRecord(bytes)!;
  const frameStart = bytes.length - read.frame.length;
  fc.assert(fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, value) => {
    const changed = Uint8Array.from(bytes);
    changed[at] = value;
    const result = readConsoleRecord(changed);
    if (result === null || value === bytes[at]) return true;
    const decoded = decodeValue(result.frame) as { execution_id: string; payload: { level: string } };
    // Accepted: a console event with a known level, of the execution the record names (a changed
    // tenant names another: the sandbox's owner checks it runs that one, as for any record).
    const named = result.executionId === XID ? at >= frameStart : at < frameStart;
    return decoded.execution_id === result.executionId.slice(result.executionId.indexOf('/') + 1) && CONSOLE_LEVELS.includes(decoded.payload.level as never) && named;
  }), { numRuns: 5000 });
});

t.test('text that is not UTF-8, a frame naming another execution, a level of another name: refused', async (t) => {
  const bytes = record('hello');
  const text = Buffer.from(bytes).lastIndexOf(Buffer.from('hello'));
  const notUtf8 = Uint8Array.from(bytes);
  notUtf8[text] = 0xff;
  t.equal(readConsoleRecord(notUtf8), null, 'invalid UTF-8');
  const other = Uint8Array.from(bytes);
  other[Buffer.from(bytes).lastIndexOf(Buffer.from('ex_7Kp2'))] = 'f'.charCodeAt(0);
  t.equal(readConsoleRecord(other), null, "the frame's execution_id is not the record's");
  const otherXid = Uint8Array.from(bytes);
  otherXid[1] = 'b'.charCodeAt(0);
  t.equal(readConsoleRecord(otherXid)?.executionId, 'bcme/ex_7Kp2', 'another tenant\'s xid is what the record names: whoever reads it checks the sandbox runs that execution');
  const level = Uint8Array.from(bytes);
  level[Buffer.from(bytes).indexOf(Buffer.from('log')) + 1] = 'a'.charCodeAt(0);
  t.equal(readConsoleRecord(level), null, 'an unknown level');
});

/** `body` framed as on a sandbox process's pipe: its length, then its bytes. */
function frame(body: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.set(body, 4);
  return out;
}

t.test("a sandbox process's pipe carries records as bytes; a broken one is refused, not thrown on", async (t) => {
  const reader = new FrameReader(1 << 20);
  const good = record('piped');
  const bad = Uint8Array.from(good.subarray(0, good.length - 1));
  const messages = reader.push(Buffer.concat([frame(good), frame(bad)]));
  t.equal(messages.length, 2);
  t.ok(messages.every((message) => message instanceof RecordSpan), 'records stay bytes');
  // As the server reads the pipe: each record checked where it lies, the bad one a protocol violation.
  const chunk = Buffer.concat([frame(good), frame(bad)]);
  const outputs: SandboxOutput[] = [];
  const visitor = fromHostReader({ output: (output) => outputs.push(output), message: () => t.fail('no other message') });
  t.throws(() => new FrameReader(1 << 20).read(chunk, visitor), FrameError, 'a record that is not the template');
  t.equal(outputs.length, 1, 'the good record before it was handed on');
  t.match(outputs[0], { kind: 'encoded', executionId: XID });
  t.same((decodeValue((outputs[0] as { frame: Uint8Array }).frame) as { payload: unknown }).payload, { level: 'log', text: 'piped' });
});

t.test('records ahead of a frame header over the limit are handed on before it is refused', async (t) => {
  const header = Buffer.alloc(4);
  header.writeUInt32LE(2 << 20, 0);
  const chunk = Buffer.concat([frame(record('one')), frame(record('two')), header]);
  const outputs: SandboxOutput[] = [];
  const visitor = fromHostReader({ output: (output) => outputs.push(output), message: () => t.fail('no other message') });
  t.throws(() => new FrameReader(1 << 20).read(chunk, visitor), FrameError, 'over the limit');
  t.equal(outputs.length, 2, 'both records, in order, as ahead of any other bad frame');
});

t.test('records of one chunk, between batches and of several executions, each read as its own', async (t) => {
  const other = new ConsoleRecordEncoder();
  const otherPrefix = other.prefix('acme/ex_other')!;
  const bodies = [record('one'), record('two'), Uint8Array.from(other.encode(otherPrefix, 1, 'three', false, 5)!), record('four')];
  const batch = new Uint8Array(encodeFrame([{ t: 'ready' }]));
  const chunk = Buffer.concat([frame(bodies[0]!), frame(bodies[1]!), frame(batch), frame(bodies[2]!), frame(bodies[3]!)]);
  const order: Array<FromHost | Extract<SandboxOutput, { kind: 'encoded' }>> = [];
  new FrameReader(1 << 20).read(chunk, fromHostReader({ output: (output) => order.push(output as Extract<SandboxOutput, { kind: 'encoded' }>), message: (message) => order.push(message) }));
  t.equal(order.length, 5);
  t.same(order[2], { t: 'ready' }, 'the batch between them, in its place');
  const read = [order[0], order[1], order[3], order[4]] as Array<Extract<SandboxOutput, { kind: 'encoded' }>>;
  t.same(read.map((o) => o.executionId), [XID, XID, 'acme/ex_other', XID], 'a head read before is not taken for another execution\'s');
  // Seqs written into each frame's slot land in that frame only.
  read.forEach((o, index) => new DataView(o.frame.buffer, o.frame.byteOffset + o.seqAt, 4).setUint32(0, index + 1));
  t.same(read.map((o) => decodeValue(o.frame)), [
    { op: 'event', execution_id: 'ex_7Kp2', seq: 1, type: 'console', ts: 1_764_620_000_123, payload: { level: 'log', text: 'one' } },
    { op: 'event', execution_id: 'ex_7Kp2', seq: 2, type: 'console', ts: 1_764_620_000_123, payload: { level: 'log', text: 'two' } },
    { op: 'event', execution_id: 'ex_other', seq: 3, type: 'console', ts: 5, payload: { level: CONSOLE_LEVELS[1], text: 'three' } },
    { op: 'event', execution_id: 'ex_7Kp2', seq: 4, type: 'console', ts: 1_764_620_000_123, payload: { level: 'log', text: 'four' } },
  ]);
});

t.test("a run of records that is most of its chunk is read where it lies; a small one is copied out, so that a record never holds more than twice its run's bytes alive", async (t) => {
  const read = (chunk: Buffer) => {
    const outputs: Array<Extract<SandboxOutput, { kind: 'encoded' }>> = [];
    new FrameReader(1 << 20).read(chunk, fromHostReader({ output: (output) => outputs.push(output as Extract<SandboxOutput, { kind: 'encoded' }>), message: () => {} }));
    return outputs;
  };
  // A stream's chunk: records only, in a buffer of its own as a pipe's read is.
  const stream = Buffer.concat(Array.from({ length: 100 }, (_, index) => frame(record(`line ${index}`))));
  const lines = read(stream);
  t.equal(lines.length, 100);
  t.ok(lines.every((output) => output.frame.buffer === stream.buffer), 'no copy: every record a view of the chunk');
  lines.forEach((output, index) => new DataView(output.frame.buffer, output.frame.byteOffset + output.seqAt, 4).setUint32(0, index + 1));
  t.same(lines.map((output) => (decodeValue(output.frame) as { seq: number; payload: { text: string } })), lines.map((_, index) => ({ op: 'event', execution_id: 'ex_7Kp2', seq: index + 1, type: 'console', ts: 1_764_620_000_123, payload: { level: 'log', text: `line ${index}` } })), 'each seq in its own frame');
  // One record beside a large message: copied out, not holding the chunk.
  const lone = frame(record('alone'));
  const mixed = Buffer.concat([lone, frame(new Uint8Array(encodeFrame([{ t: 'ready', padding: 'x'.repeat(16_384) }])))]);
  const [alone] = read(mixed);
  t.not(alone!.frame.buffer, mixed.buffer, 'a copy');
  t.ok(alone!.frame.buffer.byteLength <= 2 * lone.length, `holds ${alone!.frame.buffer.byteLength} bytes alive for a ${lone.length}-byte frame`);
});

t.test('a record that repeats the last head but breaks the template after it is still refused', async (t) => {
  t.ok(readConsoleRecord(record('first')), 'its head is now the last one read');
  const bytes = record('second');
  for (let length = 0; length < bytes.length; length++) t.equal(readConsoleRecord(bytes.subarray(0, length)), null, `cut at ${length}`);
  const read = readConsoleRecord(bytes);
  t.equal(read?.executionId, XID);
});

t.test('records of executions in turn are each read with their own id, and a forged frame id after a good record is still refused', async (t) => {
  const other = encoder.prefix('acme/ex_other')!;
  for (let index = 0; index < 4; index++) {
    t.match(readConsoleRecord(record(`mine ${index}`)), { executionId: XID }, `mine ${index}`);
    const theirs = Uint8Array.from(encoder.encode(other, 0, `theirs ${index}`, false, 1)!);
    t.match(readConsoleRecord(theirs), { executionId: 'acme/ex_other' }, `theirs ${index}`);
  }
  const good = record('good');
  t.ok(readConsoleRecord(good));
  // The frame's execution_id changed by one byte, the xid left alone: another execution's line.
  const forged = Uint8Array.from(good);
  forged[forged.indexOf(0x4b, 20)] = 0x4c;
  t.equal(readConsoleRecord(forged), null);
});
