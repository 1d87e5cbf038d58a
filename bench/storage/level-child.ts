/**
 * Storage baseline process: classic-level's own ceiling for what EventStore does, batched appends of
 * event-sized entries under fixed-width keys, then a range read from a freshly opened database; and
 * the same events through `EventStore` (LevelEventStore: `commit` of one chunk per batch, then
 * `readEvents` pages after a reopen), so the store's own cost shows beside the raw figures. In a
 * process of its own so the harness's heap does not share its GC pauses and its peak RSS is its own.
 */
import { encodeFrame } from '../../protocol/codec.js';
import { performance } from 'node:perf_hooks';
import { ClassicLevel } from 'classic-level';
import { LevelEventStore } from '../../src/store/level-store.js';
import { bindToParent, receiveFromParent, sendToParent } from '../harness/child.js';
import { peakRssBytes } from '../harness/proc-stats.js';
import { eventFrame } from '../harness/frames.js';

export interface StorageJob {
  dir: string;
  entries: number;
  batch: number;
  maxMs: number;
}

export interface StorageResult {
  puts: number;
  putSeconds: number;
  putsPerSec: number;
  entries: number;
  iterateSeconds: number;
  entriesPerSec: number;
  keyBytes: number;
  valueBytes: number;
  /** Through EventStore: events committed per second (one chunk of `batch` events per commit). */
  storeEventsPerSec: number;
  /** Through EventStore: events read per second with readEvents pages of READ_PAGE, cold. */
  storeReadEventsPerSec: number;
  peakRssBytes: number;
}

const KEY_BYTES = 16;
/** Events per readEvents call: the subscription hub's catch-up page. */
const READ_PAGE = 1024;
/** Entries per native iterator call: classic-level's own read-ahead size (iterator.js). */
const NEXTV = 1000;

/** 8-byte execution prefix + 8-byte big-endian seq: fixed width so byte order is seq order. */
function key(seq: number): Buffer {
  const k = Buffer.allocUnsafe(KEY_BYTES);
  k.write('ex_7Kp2\0', 0, 'latin1');
  k.writeUInt32BE(Math.floor(seq / 2 ** 32), 8);
  k.writeUInt32BE(seq >>> 0, 12);
  return k;
}

type Db = ClassicLevel<Buffer, Uint8Array>;

function open(dir: string): Db {
  return new ClassicLevel<Buffer, Uint8Array>(dir, { keyEncoding: 'buffer', valueEncoding: 'view' });
}

async function append(db: Db, job: StorageJob): Promise<{ puts: number; seconds: number; valueBytes: number }> {
  // One batch worth of distinct values, encoded before the clock starts: the figure is the store's,
  // not msgpackr's. Keys are built in the loop, as an appender would.
  const ts = Date.now();
  const values = Array.from({ length: job.batch }, (_, i) => encodeFrame(eventFrame(i, ts + i)));
  const t0 = performance.now();
  const deadline = t0 + job.maxMs;
  let seq = 0;
  while (seq < job.entries && performance.now() < deadline) {
    const n = Math.min(job.batch, job.entries - seq);
    const ops = new Array<{ type: 'put'; key: Buffer; value: Uint8Array }>(n);
    for (let i = 0; i < n; i++) ops[i] = { type: 'put', key: key(seq + i), value: values[i] };
    await db.batch(ops);
    seq += n;
  }
  return { puts: seq, seconds: (performance.now() - t0) / 1000, valueBytes: values[0].length };
}

async function iterate(db: Db, limit: number, maxMs: number): Promise<{ entries: number; seconds: number; exhausted: boolean }> {
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  const iterator = db.iterator({ limit });
  let entries = 0;
  let exhausted = false;
  try {
    while (entries < limit && performance.now() < deadline) {
      const batch = await iterator.nextv(NEXTV);
      if (batch.length === 0) {
        exhausted = true;
        break;
      }
      entries += batch.length;
    }
  } finally {
    await iterator.close();
  }
  return { entries, seconds: (performance.now() - t0) / 1000, exhausted };
}

/** The same events through EventStore: what the store adds to the raw puts and iterator. */
async function throughEventStore(job: StorageJob, events: number): Promise<{ appendPerSec: number; readPerSec: number }> {
  const location = `${job.dir}-store`;
  const ts = Date.now();
  const frames = Array.from({ length: job.batch }, (_, i) => encodeFrame(eventFrame(i, ts + i)));
  let store = new LevelEventStore(location);
  await store.open();
  const t0 = performance.now();
  const deadline = t0 + job.maxMs;
  let seq = 0;
  while (seq < events && performance.now() < deadline) {
    const n = Math.min(job.batch, events - seq);
    const { failed } = await store.commit({ sessions: [], executions: [], events: [{ executionId: 'bench/x', firstSeq: seq + 1, frames: n === job.batch ? frames : frames.slice(0, n) }] });
    if (failed.length > 0) throw failed[0]!.error;
    seq += n;
  }
  const appendSeconds = (performance.now() - t0) / 1000;
  await store.close();
  store = new LevelEventStore(location);
  await store.open();
  try {
    const r0 = performance.now();
    let cursor = 0;
    while (cursor < seq && performance.now() < r0 + job.maxMs) {
      const page = await store.readEvents('bench/x', cursor, READ_PAGE);
      if (page.length === 0) throw new Error(`readEvents ended at ${cursor} of ${seq}`);
      cursor = page[page.length - 1]!.seq;
    }
    return { appendPerSec: seq / appendSeconds, readPerSec: cursor / ((performance.now() - r0) / 1000) };
  } finally {
    await store.close();
  }
}

export async function runStorage(job: StorageJob): Promise<StorageResult> {
  let db = open(job.dir);
  await db.open();
  const put = await append(db, job);
  // Cold: a reopened database has empty block and table caches, as after a restart.
  await db.close();
  db = open(job.dir);
  await db.open();
  try {
    const read = await iterate(db, put.puts, job.maxMs);
    // Fewer entries on a time bound is a slow disk; fewer because the data ran out is a bug.
    if (read.exhausted && read.entries < put.puts) throw new Error(`iterated ${read.entries} entries of ${put.puts} written`);
    await db.close();
    const store = await throughEventStore(job, put.puts);
    return {
      puts: put.puts,
      putSeconds: put.seconds,
      putsPerSec: put.puts / put.seconds,
      entries: read.entries,
      iterateSeconds: read.seconds,
      entriesPerSec: read.entries / read.seconds,
      keyBytes: KEY_BYTES,
      valueBytes: put.valueBytes,
      storeEventsPerSec: store.appendPerSec,
      storeReadEventsPerSec: store.readPerSec,
      peakRssBytes: peakRssBytes(),
    };
  } finally {
    await db.close();
  }
}

bindToParent();
const { job } = await receiveFromParent<{ type: 'job'; job: StorageJob }>('job');
try {
  await sendToParent({ type: 'result', result: await runStorage(job) });
} catch (error) {
  await sendToParent({ type: 'error', message: (error as Error).stack ?? String(error) });
}
process.exit(0);
