/**
 * Storage: classic-level's own ceiling for the event log: batched appends and a cold range read. An
 * EventStore adds encoding, checks and bookkeeping on top of exactly these calls, so per entry it
 * cannot beat them; it stores a chunk of frames per entry, so per event it can. The same events are
 * also measured through EventStore (`store_*` figures) to show what the store's own layer costs.
 */
import { join } from 'node:path';
import { rssFigure } from '../harness/proc-stats.js';
import { benchModule } from '../harness/procs.js';
import type { Baseline } from '../harness/types.js';
import type { StorageJob, StorageResult } from '../storage/level-child.js';

const BATCH = 256;

export const storage: Baseline = {
  name: 'storage',
  reference: {
    puts_per_s: { value: 417_000, unit: 'puts/s' },
    entries_per_s: { value: 251_000, unit: 'entries/s' },
  },
  async run(ctx) {
    const job: StorageJob = {
      dir: join(ctx.tmpDir, 'storage-baseline'),
      entries: BATCH * (ctx.quick ? 80 : 2_000),
      batch: BATCH,
      maxMs: ctx.quick ? 5_000 : 30_000,
    };
    const child = ctx.procs.start('level-child', benchModule('storage/level-child.js'));
    try {
      child.send({ type: 'job', job });
      const { result } = await child.waitForMessage<{ type: 'result'; result: StorageResult }>('result', 2 * job.maxMs + 10_000);
      return {
        shown: ['puts_per_s', 'entries_per_s', 'store_events_per_s', 'store_read_events_per_s', 'peak_rss_mb'],
        setup: `${result.puts} puts in batches of ${BATCH}, ${result.keyBytes} B keys, ${result.valueBytes} B values`,
        figures: {
          puts_per_s: { value: result.putsPerSec, unit: 'puts/s' },
          entries_per_s: { value: result.entriesPerSec, unit: 'entries/s' },
          puts: { value: result.puts, unit: 'puts' },
          entries: { value: result.entries, unit: 'entries' },
          store_events_per_s: { value: result.storeEventsPerSec, unit: 'events/s' },
          store_read_events_per_s: { value: result.storeReadEventsPerSec, unit: 'events/s' },
          peak_rss_mb: rssFigure(result.peakRssBytes),
        },
      };
    } finally {
      await child.stop();
    }
  },
};
