/**
 * Storage baseline process: classic-level's own ceiling for what EventStore does, batched appends of
 * event-sized entries under fixed-width keys, then a range read from a freshly opened database. In a
 * process of its own so the harness's heap does not share its GC pauses and its peak RSS is its own.
 */
import { encodeFrame } from '../../protocol/codec.js';
import { performance } from 'node:perf_hooks';
import { ClassicLevel } from 'classic-level';
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
  peakRssBytes: number;
}

const KEY_BYTES = 16;
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
    return {
      puts: put.puts,
      putSeconds: put.seconds,
      putsPerSec: put.puts / put.seconds,
      entries: read.entries,
      iterateSeconds: read.seconds,
      entriesPerSec: read.entries / read.seconds,
      keyBytes: KEY_BYTES,
      valueBytes: put.valueBytes,
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
