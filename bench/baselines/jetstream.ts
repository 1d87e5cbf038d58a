/**
 * JetStream: the bare NATS client's ceiling for the JetStream store (issue 14), on a nats-server -js
 * of the step's own: messages of 1 024 packed event frames (a page, as the store publishes a long
 * log) published with 64 in flight, then one at a time (one execution's chunks go in order), then
 * read back through one ordered consumer. stream-jetstream is held against the pipelined publish,
 * replay-jetstream against the read.
 */
import { join } from 'node:path';
import { startNats } from '../harness/nats.js';
import { rssFigure } from '../harness/proc-stats.js';
import { benchModule } from '../harness/procs.js';
import type { Baseline } from '../harness/types.js';
import type { JetStreamJob, JetStreamResult } from '../storage/jetstream-child.js';

const WINDOW = 64;

export const jetstream: Baseline = {
  name: 'jetstream',
  reference: {},
  async run(ctx) {
    const nats = await startNats(ctx.procs, join(ctx.tmpDir, 'jetstream-baseline'));
    const child = ctx.procs.start('jetstream-child', benchModule('storage/jetstream-child.js'));
    try {
      const natsCpu = nats.child.cpuMeter();
      const job: JetStreamJob = { natsUrl: nats.url, events: ctx.quick ? 20_480 : 1_024_000, window: WINDOW, maxMs: ctx.quick ? 10_000 : 60_000 };
      child.send({ type: 'job', job });
      const { result } = await child.waitForMessage<{ type: 'result'; result: JetStreamResult }>('result', 3 * job.maxMs + 10_000);
      return {
        shown: ['publish_events_per_s', 'serial_publish_events_per_s', 'replay_events_per_s', 'nats_server_cpu_pct', 'nats_server_peak_rss_mb', 'client_peak_rss_mb'],
        setup: `${result.events} events in ${result.messages} messages of ${result.messageBytes} B (1 024 frames), ${WINDOW} in flight; serial: a quarter of them, 1 in flight`,
        figures: {
          publish_events_per_s: { value: result.publishEventsPerSec, unit: 'events/s' },
          serial_publish_events_per_s: { value: result.serialPublishEventsPerSec, unit: 'events/s' },
          replay_events_per_s: { value: result.replayEventsPerSec, unit: 'events/s' },
          events: { value: result.events, unit: 'events' },
          message_bytes: { value: result.messageBytes, unit: 'B' },
          nats_server_cpu_pct: { value: natsCpu(), unit: '%' },
          nats_server_peak_rss_mb: rssFigure(nats.child.peakRssBytes()),
          client_peak_rss_mb: rssFigure(result.peakRssBytes),
        },
      };
    } finally {
      await child.stop();
      await nats.stop();
    }
  },
};
