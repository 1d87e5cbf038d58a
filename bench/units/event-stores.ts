/**
 * Unit bench of the two EventStore backends side by side, through the EventStore interface only
 * (no server, no sockets): LevelDB in a temporary folder and JetStream on a nats-server of its own
 * (`nats-server -js`, Debian 12's 2.9), or the one `--nats` names.
 *
 *   node dist/bench/units/event-stores.js [--executions 200] [--events 200] [--chunk 16] [--deep 100000] [--nats nats://…]
 *
 * - append: `executions` logs of `events` events each, interleaved, a commit per round holding one
 *   chunk of `chunk` frames per execution (what a group commit writes for streaming executions).
 * - replay: every log read back with `readEvents` pages of 1 024 after a reopen.
 * - replay-deep: one log of `deep` events; time to the first page at after_seq 0, half and 90 %
 *   (flat on both: no scan from the log's start).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { encodeFrame } from '../../protocol/codec.js';
import type { EventStore } from '../../src/store/event-store.js';
import { JetStreamEventStore } from '../../src/store/jetstream/jetstream-store.js';
import { LevelEventStore } from '../../src/store/level-store.js';
import { eventFrame } from '../harness/frames.js';
import { startNats } from '../harness/nats.js';
import { Procs } from '../harness/procs.js';

const { values } = parseArgs({
  options: {
    executions: { type: 'string', default: '200' },
    events: { type: 'string', default: '200' },
    chunk: { type: 'string', default: '16' },
    deep: { type: 'string', default: '100000' },
    nats: { type: 'string' },
  },
});
const executions = Number(values.executions);
const eventsEach = Number(values.events);
const chunkSize = Number(values.chunk);
const deep = Number(values.deep);
const frame = encodeFrame(eventFrame(1, Date.now()));
const dir = mkdtempSync(join(tmpdir(), 'vmstream-stores-bench-'));

async function append(store: EventStore, prefix: string, logs: number, each: number, size: number): Promise<number> {
  const frames = Array.from({ length: size }, () => frame);
  const t0 = performance.now();
  for (let seq = 1; seq <= each; seq += size) {
    const n = Math.min(size, each - seq + 1);
    const events = Array.from({ length: logs }, (_, i) => ({ executionId: `${prefix}/${i}`, firstSeq: seq, frames: frames.slice(0, n) }));
    const { failed } = await store.commit({ sessions: [], executions: [], events });
    if (failed.length > 0) throw failed[0]!.error;
  }
  return (logs * each) / ((performance.now() - t0) / 1000);
}

async function replay(store: EventStore, prefix: string, logs: number): Promise<number> {
  const t0 = performance.now();
  let read = 0;
  for (let i = 0; i < logs; i++) {
    for (let after = 0; ; ) {
      const page = await store.readEvents(`${prefix}/${i}`, after, 1024);
      if (page.length === 0) break;
      read += page.length;
      after = page[page.length - 1]!.seq;
    }
  }
  return read / ((performance.now() - t0) / 1000);
}

async function firstPageMs(store: EventStore, id: string, afterSeq: number): Promise<number> {
  const samples: number[] = [];
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    await store.readEvents(id, afterSeq, 1024);
    samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

async function measure(name: string, open: () => EventStore): Promise<Record<string, number | string>> {
  let store = open();
  await store.open();
  const appendPerSec = await append(store, 'bench', executions, eventsEach, chunkSize);
  await append(store, 'deep', 1, deep, 256);
  await store.close();
  store = open();
  await store.open();
  const replayPerSec = await replay(store, 'bench', executions);
  const deepMs = await Promise.all([0, Math.floor(deep / 2), Math.floor(deep * 0.9)].map((after) => firstPageMs(store, 'deep/0', after)));
  await store.close();
  return { store: name, append_events_per_s: Math.round(appendPerSec), replay_events_per_s: Math.round(replayPerSec), first_page_ms_at_0_half_90pct: deepMs.map((ms) => ms.toFixed(2)).join(' / ') };
}

const procs = new Procs();
const nats = values.nats ? { url: values.nats } : await startNats(procs, join(dir, 'nats'));
try {
  const rows = [
    await measure('level', () => new LevelEventStore(join(dir, 'level'))),
    await measure('jetstream', () => new JetStreamEventStore({ servers: [nats.url], prefix: `bench${process.pid}` })),
  ];
  console.log(`${executions} logs × ${eventsEach} events in chunks of ${chunkSize} (frames of ${frame.length} B); deep log of ${deep}`);
  console.table(rows);
} finally {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
