/**
 * Push: the one-way ceiling for streaming and replay. The bare server encodes event frames and sends
 * them corked, pausing at a buffered-amount threshold until `drain` (the pattern src/ must use too),
 * to one client that decodes each: the rate at which a client can be fed at all.
 */
import type { Baseline } from '../harness/types.js';
import { rssFigure } from '../harness/proc-stats.js';
import { startBareServer } from './bare-server.js';

export const push: Baseline = {
  name: 'push',
  reference: { frames_per_s: { value: 900_000, unit: 'frames/s' } },
  async run(ctx) {
    const { server, url } = await startBareServer(ctx);
    try {
      const serverBusy = server.cpuMeter();
      const result = await ctx.loadgen({
        driver: 'sink',
        workload: 'push',
        url,
        connections: 1,
        count: ctx.quick ? 2_000_000 : 50_000_000,
        warmupMs: ctx.quick ? 300 : 1_000,
        durationMs: ctx.quick ? 1_000 : 5_000,
      });
      const serverCpu = serverBusy();
      return {
        shown: ['frames_per_s', 'mb_per_s', 'server_cpu_pct', 'client_cpu_pct', 'server_peak_rss_mb'],
        setup: `1 conn, ${(result.frames / 1e6).toFixed(2)}M frames measured over ${result.seconds.toFixed(1)} s`,
        figures: {
          frames_per_s: { value: result.framesPerSec, unit: 'frames/s' },
          frames: { value: result.frames, unit: 'frames' },
          mb_per_s: { value: result.bytes / result.seconds / 1e6, unit: 'MB/s' },
          frame_bytes: { value: result.frames > 0 ? result.bytes / result.frames : NaN, unit: 'B' },
          server_cpu_pct: { value: serverCpu, unit: '%' },
          client_cpu_pct: { value: result.clientCpuPct, unit: '%' },
          server_peak_rss_mb: rssFigure(server.peakRssBytes()),
        },
      };
    } finally {
      await server.stop();
    }
  },
};
