/**
 * fanout: 100 sockets subscribed to one streaming execution. Every subscriber is live before the
 * first event: the execution waits in its session behind a gate execution (parked on a timer) that
 * the harness cancels once all subscriptions are made. Each commit is then pushed to 100 sockets.
 * The figure is events delivered, summed over subscribers, per second from the gate's opening to the
 * last subscriber's `done`; held against push, which feeds one client. No goal is set by the issue.
 */
import type { Scenario } from '../harness/types.js';
import { ControlClient } from '../harness/control.js';
import { startVmstream } from '../harness/vmstream.js';
import { check, cpuPer, latencyFigures, pct, type ServerCpu, serverCpuFigures, serverRss, warmFrames } from './common.js';
import { eventsOf, loopCode, STREAM_ENV } from './stream.js';

const GATE_CODE = 'await new Promise((resolve) => setTimeout(resolve, 3_600_000))';
/** Two load-generator processes: on two cores one `ws` client decoding 100 sockets is the limit long before the server. */
const PROCESSES = 2;

export const fanout: Scenario = {
  name: 'fanout',
  headline: 'events_per_s',
  against: { baseline: 'push', figure: 'frames_per_s' },
  async run(ctx) {
    const subscribers = ctx.quick ? 10 : 100;
    const lines = ctx.quick ? 2_000 : 20_000;
    const server = await startVmstream(ctx, { name: 'fanout', env: { ...STREAM_ENV, VMSTREAM_MAX_TIMEOUT_MS: '3600000' } });
    const control = await ControlClient.connect(server.url, server.token);
    try {
      const sessionId = await control.createSession('fanout');
      await control.executeDetached(sessionId, GATE_CODE, 'bench-gate', 3_600_000);
      await control.executeDetached(sessionId, loopCode(lines), 'bench-fanout', 120_000);
      let serverBusy: () => ServerCpu = () => ({ process: NaN, main: NaN });
      const r = await ctx.loadgen(
        {
          driver: 'sink',
          workload: 'subscriber',
          params: { executionId: 'bench-fanout' },
          url: server.url,
          token: server.token,
          connections: subscribers,
          connectConcurrency: 10,
          count: 0,
          warmupMs: 300,
          durationMs: 120_000,
          gated: true,
          eventAges: true,
          warmClientFrames: warmFrames(ctx),
        },
        PROCESSES,
        {
          onReady: () => {
            serverBusy = server.cpuMeter();
          },
          afterGo: async () => {
            await control.call({ op: 'cancel', execution_id: 'bench-gate' }, 'execution');
          },
        },
      );
      const serverCpu = serverBusy();
      check(r.unfinished === 0, `${r.unfinished} subscribers did not reach done within the time bound`);
      check(r.totalFrames === subscribers * eventsOf(lines), `expected ${subscribers * eventsOf(lines)} events, got ${r.totalFrames}`);
      check(r.seqErrors === 0, `${r.seqErrors} events out of seq order`);
      const rate = r.totalFrames / r.totalSeconds;
      return {
        figure: { value: rate, unit: 'events/s' },
        figures: {
          per_subscriber_events_per_s: { value: rate / subscribers, unit: 'events/s' },
          execution_events_per_s: { value: eventsOf(lines) / r.totalSeconds, unit: 'events/s' },
          events: { value: r.totalFrames, unit: 'events' },
          seconds: { value: r.totalSeconds, unit: 's' },
          ...(r.ages ? latencyFigures(r.ages, 'event_age_') : {}),
          ...serverCpuFigures(serverCpu),
          ...cpuPer(serverCpu, rate, 'event'),
          client_cpu_pct: pct(r.clientCpuPct),
          ...serverRss(server),
        },
        shown: ['per_subscriber_events_per_s', 'seconds', 'event_age_p50_ms', 'event_age_p99_ms', 'event_age_p999_ms', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_event', 'client_cpu_pct', 'server_peak_rss_mb'],
        setup: `${subscribers} subscribers (${PROCESSES} client processes) × ${lines}-line execution`,
      };
    } finally {
      control.close();
      await server.stop();
    }
  },
};
