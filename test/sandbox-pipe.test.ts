/**
 * The pipe to a sandbox process, whose far end is untrusted: frames cut anywhere still decode, and
 * a frame that is too big, not msgpack or not a batch is refused; a message of the wrong shape is
 * refused; output records forwarded as their workers encoded them are read back only when
 * well formed; and a process that speaks of an execution it is not running is ended, its sessions
 * reported lost, its forged output never delivered.
 */
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Packr } from 'msgpackr';
import { createRing, RingReader, RingWriter } from '../src/pool/output-ring.js';
import { FrameError, FrameReader, FrameWriter } from '../src/pool/pipe-frames.js';
import { HostSlots, type SlotPipes } from '../src/sandbox-process/host-slots.js';
import { readFromHost, type ToHost } from '../src/sandbox-process/messages.js';
import type { ToWorker } from '../src/pool/messages.js';
import { ProcessSandbox } from '../src/sandbox-process/process-sandbox.js';
import type { SandboxOutput } from '../src/sandbox/sandbox.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function framed(batches: unknown[][]): Promise<Buffer> {
  const stream = new PassThrough();
  const writer = new FrameWriter<unknown>(stream);
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  for (const batch of batches) {
    for (const message of batch) writer.push(message);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return Buffer.concat(chunks);
}

t.test('frames cut at any byte decode to the same messages, in order', async (t) => {
  const batches = [[{ t: 'ready' }], [{ t: 'a', n: 1 }, { t: 'b', text: 'x'.repeat(300) }], [{ t: 'c' }]];
  const bytes = await framed(batches);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const reader = new FrameReader(1024);
    const messages = [...reader.push(bytes.subarray(0, cut)), ...reader.push(bytes.subarray(cut))];
    if (JSON.stringify(messages) !== JSON.stringify(batches.flat())) t.fail(`cut at ${cut}: ${JSON.stringify(messages)}`);
  }
  const reader = new FrameReader(1024);
  const oneByOne = [...bytes].flatMap((byte) => reader.push(Buffer.from([byte])));
  t.same(oneByOne, batches.flat(), 'one byte at a time');
});

t.test('a broken frame is refused', async (t) => {
  const header = (length: number) => Buffer.from(Uint32Array.of(length).buffer);
  t.throws(() => new FrameReader(100).push(header(101)), FrameError, 'over the limit, before its bytes arrive');
  t.throws(() => new FrameReader(100).push(Buffer.concat([header(2), Buffer.from([0xc1, 0xc1])])), FrameError, 'not msgpack');
  const notBatch = new Packr().pack({ t: 'ready' });
  t.throws(() => new FrameReader(100).push(Buffer.concat([header(notBatch.length), notBatch])), FrameError, 'not a batch');
});

t.test('a frame begun in one chunk is finished from the next, the frames after it read from that chunk', async (t) => {
  const header = (length: number) => Buffer.from(Uint32Array.of(length).buffer);
  const reader = new FrameReader(100);
  t.same(reader.push(header(101).subarray(0, 3)), [], 'a header not yet whole');
  t.throws(() => reader.push(header(101).subarray(3)), FrameError, 'over the limit once the header is whole, before the frame\'s bytes');
  const bytes = await framed([[{ t: 'a', text: 'x'.repeat(40) }], [{ t: 'b' }], [{ t: 'c' }]]);
  const pieces = new FrameReader(1024);
  const messages = [bytes.subarray(0, 2), bytes.subarray(2, 20), bytes.subarray(20, 30), bytes.subarray(30)].flatMap((piece) => pieces.push(piece));
  t.same(messages, [{ t: 'a', text: 'x'.repeat(40) }, { t: 'b' }, { t: 'c' }], 'across four chunks');
});

t.test('a record written by a worker to its ring is a frame of its own, read as one message', async (t) => {
  const ring = createRing(1024);
  const writer = new RingWriter(ring, () => {});
  const record = ['x1', 0, 5, 0, 'a line', false];
  writer.write(new Packr({ useRecords: false }).pack(record));
  writer.write(new Packr({ useRecords: false }).pack(['x1', 3, 6, 'ok', 0, 0]));
  const drained: Buffer[] = [];
  t.equal(new RingReader(ring).drain((bytes) => drained.push(Buffer.from(bytes)) && bytes.length), true, 'drained whole');
  const batch = await framed([[{ t: 'ready' }]]);
  t.same(new FrameReader(1024).push(Buffer.concat([...drained, batch])), [record, ['x1', 3, 6, 'ok', 0, 0], { t: 'ready' }], 'records and batches, in order');
});

t.test('only messages of a known shape are read, as fresh objects', async (t) => {
  // Output is a worker's record, as it wrote it: [execution id, kind, ts, a, b, c, structured?].
  t.same(readFromHost(['x', 0, 1, 0, 'hi', false, { dropped: 1 }]), { t: 'out', o: { kind: 'console', executionId: 'x', ts: 1, payload: { level: 'log', text: 'hi' } } });
  t.same(readFromHost(['x', 0, 1, 2, 'cut', true]), { t: 'out', o: { kind: 'console', executionId: 'x', ts: 1, payload: { level: 'warn', text: 'cut', truncated: true } } });
  t.same(readFromHost(['x', 3, 1, 'timeout', 0, 0]), { t: 'out', o: { kind: 'done', executionId: 'x', ts: 1, status: 'timeout' } });
  t.same(readFromHost({ t: 'restoring', sid: 's', replayed: 2, inputs: 5, extra: 1 }), { t: 'restoring', sid: 's', replayed: 2, inputs: 5 });
  t.same(readFromHost({ t: 'lost', slot: 1, gen: 2, reason: 'worker_exit', killed: false, sids: ['s'] }), { t: 'lost', slot: 1, gen: 2, reason: 'worker_exit', killed: false });
  for (const bad of [
    null, 'ready', [], { t: 'nope' },
    // an `out` message is what the server makes of a record, never what a process may send
    { t: 'out', o: { kind: 'console', executionId: 'x', ts: 1, payload: { level: 'log', text: 'hi' } } },
    ['x', 0, 1, 9, 'hi', false],
    ['x', 0, 1, 'length', 'hi', false],
    ['x', 0, 1, 0, { toString: 1 }, false],
    ['x', 0, 1, 0, 'hi', 'yes'],
    ['x', 3, 1, 'crashed', 0, 0],
    [7, 1, 1, 'number', '1', 0],
    ['x', 1, '1', 'number', '1', 0],
    ['x', 4, 1, 'a', 'b', 'c'],
    ['x', 2, 1, 'Error', 'boom'],
    ['x', 1, 1, 'number', '1', 0, {}, 'one too many'],
    { t: 'restored', sid: 's', result: { ok: 'yes', replayed: 1 } },
    { t: 'restoring', sid: 's', replayed: 6, inputs: 5 },
    { t: 'restoring', sid: 's', replayed: -1, inputs: 5 },
    { t: 'lost', sids: ['s'], reason: 'x', killed: false },
    { t: 'lost', slot: -1, gen: 1, reason: 'x', killed: false },
    { t: 'lost', slot: 0, gen: 1.5, reason: 'x', killed: false },
    { t: 'completion', id: 1, completion: { matches: 'a', start: 0, end: 0 } },
  ]) {
    t.equal(readFromHost(bad), null, JSON.stringify(bad));
  }
});

t.test('requests go straight to the slot\'s first worker; once it is lost, relayed for the new generation only', async (t) => {
  const direct: [number, ToWorker][] = [];
  const relayed: ToHost[] = [];
  const open = new Set([0, 1]);
  const pipes: SlotPipes = {
    sendTo: (slot, message) => open.has(slot) && direct.push([slot, message]) > 0,
    send: (message) => void relayed.push(message),
    closeSlot: (slot) => void open.delete(slot),
  };
  const slots = new HostSlots(pipes, 2);
  for (const sid of ['a', 'b', 'c']) slots.open(sid);
  t.same(direct, [[0, { t: 'open', sid: 'a' }], [1, { t: 'open', sid: 'b' }], [0, { t: 'open', sid: 'c' }]], 'each on the slot with the fewest');
  slots.send('c', { t: 'abort', xid: 'x', status: 'cancelled' });
  t.same(direct.at(-1), [0, { t: 'abort', xid: 'x', status: 'cancelled' }]);

  t.equal(slots.lost(0, 2), null, 'a loss that skips a generation is refused');
  t.equal(slots.lost(2, 1), null, 'so is one of a slot it does not have');
  slots.close('a');
  t.same(slots.lost(0, 1), ['c'], 'its sessions, those closed before excepted');
  slots.kill('c', 'timeout');
  slots.send('b', { t: 'abort', xid: 'y', status: 'timeout' });
  t.same(relayed, [
    { t: 'relay', slot: 0, gen: 1, messages: [{ t: 'open', sid: 'c' }] },
    { t: 'kill', slot: 0, gen: 1, reason: 'timeout' },
  ], 'opened again on the new worker, through the main thread, as are its kills');
  t.same(direct.at(-1), [1, { t: 'abort', xid: 'y', status: 'timeout' }], 'the other slot keeps its pipe');
});

interface Lost { sessionIds: string[]; reason: string; killed: boolean }

/**
 * A ProcessSandbox over a fake sandbox process that boots, then answers a run (read from its one
 * worker slot's request pipe) with `onRun` (an expression over `writer`, or nothing); the session
 * `s1` of alice runs `mine`. `askedFor`: the tenant the first `acceptingOutput` named.
 */
function overFake(t: Test, onRun: string, then: (sandbox: ProcessSandbox) => void = () => {}) {
  const fake = `
    import net from 'node:net';
    import { FrameReader, FrameWriter } from ${JSON.stringify(path.join(ROOT, 'dist/src/pool/pipe-frames.js'))};
    const writer = new FrameWriter(new net.Socket({ fd: 3, readable: false, writable: true }));
    const reader = new FrameReader(1 << 20);
    process.stdin.on('data', (chunk) => {
      for (const message of reader.push(chunk)) if (message.t === 'boot') writer.push({ t: 'ready' });
    });
    const requests = new FrameReader(1 << 20);
    new net.Socket({ fd: 4, readable: true, writable: false }).on('data', (chunk) => {
      for (const message of requests.push(chunk)) if (message.t === 'run') { ${onRun} }
    });`;
  const outputs: SandboxOutput[] = [];
  let asked!: (tenant: string | undefined) => void;
  const askedFor = new Promise<string | undefined>((resolve) => (asked = resolve));
  const lost = new Promise<Lost>((resolve) => {
    const sandbox = new ProcessSandbox({
      command: { file: process.execPath, args: ['--input-type=module', '-e', fake] },
      workers: 1, heapMb: 64, limits: { maxText: 100, maxPreview: 100 }, maxProcesses: 2, idleMs: 0, killGraceMs: 200, prestart: [],
    }, {
      onOutput: (output) => outputs.push(output),
      acceptingOutput: (tenant) => {
        asked(tenant);
        return true;
      },
      onRestored: () => {},
      onLost: (sessionIds, reason, killed) => resolve({ sessionIds, reason, killed }),
    });
    t.teardown(() => sandbox.shutdown());
    sandbox.open({ sessionId: 's1', tenant: 'alice' });
    sandbox.run({ sessionId: 's1', executionId: 'mine', kind: 'repl', code: '1', filename: 'REPL1' });
    then(sandbox);
  });
  return { outputs, lost, askedFor };
}

t.test('a sandbox process that forges output for an execution it is not running is ended', async (t) => {
  const { outputs, lost } = overFake(t, `writer.push(['theirs', 0, 1, 0, 'forged', false]);`);
  t.same(await lost, { sessionIds: ['s1'], reason: 'sandbox_exit', killed: false }, 'its sessions are lost, as a sandbox_exit');
  t.same(outputs, [], 'nothing it forged was delivered');
});

/** Fake-host code that writes console records (pool/console-frame.ts) for `xids`, each cut to `cut` bytes when given, straight to its output fd. */
function consoleRecords(records: Array<{ xid: string; cut?: number }>): string {
  return `Promise.all([import('node:fs'), import(${JSON.stringify(path.join(ROOT, 'dist/src/pool/console-frame.js'))})]).then(([fs, { ConsoleRecordEncoder }]) => {
    const encoder = new ConsoleRecordEncoder();
    for (const { xid, cut } of ${JSON.stringify(records)}) {
      const body = encoder.encode(encoder.prefix(xid), 0, 'hi', false, 1).slice(0, cut);
      const frame = Buffer.alloc(4 + body.length);
      frame.writeUInt32LE(body.length, 0);
      frame.set(body, 4);
      fs.writeSync(3, frame);
    }
  });`;
}

t.test('console records: a well-formed one is delivered as bytes; a broken one ends its process', async (t) => {
  const { outputs, lost } = overFake(t, consoleRecords([{ xid: 'mine' }, { xid: 'mine', cut: 20 }]));
  t.same(await lost, { sessionIds: ['s1'], reason: 'sandbox_exit', killed: false });
  t.match(outputs, [{ kind: 'encoded', executionId: 'mine', type: 'console' }], 'the whole one came through, the broken one did not');
  t.equal(outputs.length, 1);
});

t.test('reading a sandbox process asks whether its own tenant\'s output is taken (another tenant\'s flood holds it not)', async (t) => {
  const { askedFor } = overFake(t, '');
  t.equal(await askedFor, 'alice', 'asked for alice, the tenant whose sessions it holds');
});

t.test('a console record forged for an execution the process is not running ends it', async (t) => {
  const { outputs, lost } = overFake(t, consoleRecords([{ xid: 'theirs' }]));
  t.same(await lost, { sessionIds: ['s1'], reason: 'sandbox_exit', killed: false });
  t.same(outputs, [], 'nothing it forged was delivered');
});

t.test('a sandbox process that does not answer a kill is killed whole', async (t) => {
  // It never answers anything: as if its main thread were stuck.
  const { lost } = overFake(t, '', (sandbox) => sandbox.kill('s1', 'timeout'));
  t.same(await lost, { sessionIds: ['s1'], reason: 'timeout', killed: true }, 'lost as the kill asked, once its grace ran out');
});
