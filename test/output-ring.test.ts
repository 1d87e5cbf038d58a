/**
 * The shared-memory ring between a worker and the pool: records come out whole and in order
 * across the wrap-around, a full ring blocks its writer (in another thread) until the reader makes
 * room, and a wake-up is asked for only when none is pending; drained as bytes (a sandbox process's
 * workers write their rings to its pipe themselves), a ring carries on where the last drain stopped,
 * and the main thread finishes the frame of a worker that died writing before writing its own.
 */
import { closeSync, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import t, { type Test } from 'tap';
import { createRing, RingReader, RingWriter } from '../src/pool/output-ring.js';
import { MainOutput } from '../src/pool/shared-output.js';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** The main thread's output to a file of its own (read back by the test), gone with the test. */
function fileOutput(t: Test): { file: string; output: MainOutput } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vmstream-shared-output-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'out');
  const fd = openSync(file, 'w');
  t.teardown(() => closeSync(fd));
  return { file, output: new MainOutput(fd, createWriteStream('', { fd, autoClose: false })) };
}

t.test('records keep their bytes and order across the wrap-around', async (t) => {
  const ring = createRing(64);
  let wakes = 0;
  const writer = new RingWriter(ring, () => wakes++);
  const reader = new RingReader(ring);
  const seen: number[][] = [];
  for (let round = 0; round < 20; round++) {
    writer.write(bytes(10, round));
    writer.write(bytes(17, 100 + round));
    reader.read(Infinity, (record) => seen.push([record.length, record[0]!, record[record.length - 1]!]));
  }
  t.equal(seen.length, 40);
  seen.forEach(([length, first, last], index) => {
    const round = Math.floor(index / 2);
    const expected = index % 2 === 0 ? [10, round, round] : [17, 100 + round, 100 + round];
    t.same([length, first, last], expected, `record ${index}`);
  });
  t.equal(wakes, 20, 'one wake-up per read, not per record');
});

t.test('records written in place keep their bytes and order beside copied ones, and are never asked to wrap', async (t) => {
  const ring = createRing(64);
  const writer = new RingWriter(ring, () => {});
  const reader = new RingReader(ring);
  const seen: number[][] = [];
  let inPlace = 0;
  for (let round = 0; round < 30; round++) {
    const length = 5 + (round % 7);
    const start = writer.reserve(length + 3);
    if (start < 0) {
      writer.write(bytes(length, round));
    } else {
      inPlace++;
      t.ok(start + length + 3 <= 64, `round ${round}: the room reserved lies in one piece`);
      writer.bytes.fill(round, start, start + length);
      writer.commit(start, start + length);
    }
    writer.write(bytes(9, 200 + round));
    reader.read(Infinity, (record) => seen.push([record.length, record[0]!, record[record.length - 1]!]));
  }
  t.ok(inPlace > 0 && inPlace < 30, `both ways taken (${inPlace} in place)`);
  t.equal(seen.length, 60);
  seen.forEach(([length, first, last], index) => {
    const round = Math.floor(index / 2);
    const expected = index % 2 === 0 ? [5 + (round % 7), round, round] : [9, 200 + round, 200 + round];
    t.same([length, first, last], expected, `record ${index}`);
  });
});

t.test('read hands over at most `limit` records and says more are waiting', async (t) => {
  const ring = createRing(1024);
  const writer = new RingWriter(ring, () => {});
  const reader = new RingReader(ring);
  for (let i = 0; i < 5; i++) writer.write(bytes(3, i));
  const got: number[] = [];
  t.equal(reader.read(2, (r) => got.push(r[0]!)), true);
  t.equal(reader.read(10, (r) => got.push(r[0]!)), false);
  t.same(got, [0, 1, 2, 3, 4]);
});

t.test('a record larger than the ring is refused', async (t) => {
  const writer = new RingWriter(createRing(32), () => {});
  t.throws(() => writer.write(bytes(40, 1)), RangeError);
});

t.test('a full ring blocks the writing thread until the reader makes room', async (t) => {
  const ring = createRing(256);
  const reader = new RingReader(ring);
  // The worker loads the compiled module: tests run from source, the server from dist.
  const compiled = new URL('../dist/src/pool/output-ring.js', import.meta.url).href;
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ RingWriter }) => {
      const writer = new RingWriter(workerData.ring, () => parentPort.postMessage('wake'));
      for (let i = 0; i < 200; i++) writer.write(new Uint8Array(50).fill(i));
      parentPort.postMessage('finished');
    });`;
  const worker = new Worker(source, { eval: true, workerData: { ring, module: compiled } });
  const received: number[] = [];
  let finished = false;
  await new Promise<void>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (message: string) => {
      if (message === 'finished') finished = true;
      reader.read(Infinity, (record) => received.push(record[0]!));
      if (finished && received.length === 200) resolve();
    });
  });
  await worker.terminate();
  t.equal(received.length, 200, 'every record arrived although the ring holds only four');
  t.same(received, Array.from({ length: 200 }, (_v, i) => i), 'in order');
});

t.test('a record landing in a ring emptied while its writer waited for room is reported as filling an empty ring', async (t) => {
  // A sandbox worker's record in an empty ring wakes the main thread's stuck-ring check. Looking
  // before the write said "not empty" for a write that then waited out a full ring the main thread
  // emptied: that record and the rest of the flood woke nobody, and the run hung until it was killed.
  const ring = createRing(64);
  const reader = new RingReader(ring);
  const compiled = new URL('../dist/src/pool/output-ring.js', import.meta.url).href;
  // Wakes only from a full ring (the threshold is never reached): 'wake' says the fifth write is waiting for room.
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ RingWriter }) => {
      const writer = new RingWriter(workerData.ring, () => parentPort.postMessage('wake'), {
        wakeAtBytes: Infinity, filled: () => parentPort.postMessage('filled'),
      });
      for (let i = 0; i < 5; i++) writer.write(new Uint8Array(12).fill(i));
      parentPort.postMessage('finished');
    });`;
  const worker = new Worker(source, { eval: true, workerData: { ring, module: compiled } });
  t.teardown(() => worker.terminate());
  const heard: string[] = [];
  await new Promise<void>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (message: string) => {
      heard.push(message);
      if (message === 'wake') {
        // Four records of 16 bytes fill the ring exactly: one span, emptied at once.
        const span = reader.span()!;
        t.equal(span.length, 64, 'the ring was full');
        reader.consume(span.length);
      }
      if (message === 'finished') resolve();
    });
  });
  t.same(heard, ['filled', 'wake', 'filled', 'finished'], 'the first record, and the one that waited and landed in the emptied ring');
  t.equal(reader.span()?.length, 16, 'the fifth record is in the ring');
});

t.test('a ring the main thread drained to empty asks for help again when its writer next needs it', async (t) => {
  // The wake-up flag is cleared only by a reader that finds the ring empty. Left set after the
  // main thread drained a looping worker's ring, it kept that worker from ever asking again.
  const { file, output } = fileOutput(t);
  const ring = createRing(256);
  let wakes = 0;
  const writer = new RingWriter(ring, () => wakes++, { wakeAtBytes: 16 });
  const reader = new RingReader(ring);
  writer.write(bytes(20, 1));
  t.equal(wakes, 1, 'a record past the threshold asks for help');
  output.drain(reader);
  // Queued behind the ring's bytes: written once they are.
  await new Promise<void>((resolve) => output.send(Uint8Array.of(9), resolve));
  t.notOk(reader.pending, 'drained');
  writer.write(bytes(20, 2));
  t.equal(wakes, 2, 'the next record past the threshold asks again');
  t.equal(readFileSync(file).length, 4 + 20 + 1);
});

t.test('drain hands the bytes over as they lie, and one that stopped mid-record is carried on by the next', async (t) => {
  const ring = createRing(64);
  const writer = new RingWriter(ring, () => {});
  const reader = new RingReader(ring);
  writer.write(bytes(10, 1));
  writer.write(bytes(20, 2));
  const out: number[] = [];
  // Takes 7 bytes: the pipe is full after them.
  t.equal(reader.drain((b) => (out.push(...b.subarray(0, 7)), 7)), false, 'not all of it');
  t.equal(reader.drain((b) => (out.push(...b), b.length)), true, 'the rest');
  const expected = [10, 0, 0, 0, ...bytes(10, 1), 20, 0, 0, 0, ...bytes(20, 2)];
  t.same(out, expected, 'length-prefixed records, whole and in order across the two drains');
  t.notOk(reader.pending);
});

t.test('a worker that died holding the shared output: its frame is finished from its ring before anything else', async (t) => {
  const { file, output } = fileOutput(t);
  const link = output.link(0);
  const ring = createRing(256);
  new RingWriter(ring, () => {}).write(bytes(5, 9));
  // As a worker would stand had it been terminated while writing: the lock is its own.
  Atomics.store(new Int32Array(link.lock), 0, link.owner);
  const sent = new Promise<void>((resolve) => output.send(Uint8Array.of(1, 2, 3), resolve));
  output.drainDead(link, new RingReader(ring));
  await sent;
  t.same([...readFileSync(file)], [5, 0, 0, 0, 9, 9, 9, 9, 9, 1, 2, 3], 'the ring first, then the frame that waited');
  t.equal(Atomics.load(new Int32Array(link.lock), 0), 0, 'the lock is free again');
});

t.test('a dead worker\'s ring is written to its end before what was asked for after its death', async (t) => {
  const { file, output } = fileOutput(t);
  const ring = createRing(256);
  const writer = new RingWriter(ring, () => {});
  const reader = new RingReader(ring);
  writer.write(bytes(3, 1));
  // The main thread is writing what the ring held, and the worker prints once more, then dies.
  output.drain(reader);
  writer.write(bytes(3, 2));
  output.drainDead(output.link(0), reader);
  await new Promise<void>((resolve) => output.send(Uint8Array.of(9), resolve));
  t.same([...readFileSync(file)], [3, 0, 0, 0, 1, 1, 1, 3, 0, 0, 0, 2, 2, 2, 9], 'both records, then the frame (its sessions\' loss)');
});

t.test('frames queued behind a write under way each leave once, in order', async (t) => {
  // As the sandbox process's main thread writes its frames: a stream whose write is done once
  // MainOutput has written it. Its done() writes the next queued frame at once; that one must be
  // written, and the one just done not again (it was: `restored` and `lost` frames went missing,
  // and the server waited for them for ever).
  const { file, output } = fileOutput(t);
  const frames = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output.send(chunk, () => done());
    },
  });
  for (const frame of [[1], [2, 2], [3, 3, 3], [4]]) frames.write(Buffer.from(frame));
  await new Promise<void>((resolve, reject) => frames.end(resolve).once('error', reject));
  t.same([...readFileSync(file)], [1, 2, 2, 3, 3, 3, 4], 'every frame once, in the order written');
});
