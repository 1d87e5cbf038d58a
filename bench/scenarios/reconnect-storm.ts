/**
 * reconnect-storm: 1 000 clients following a live execution all lose their sockets at once and all
 * come back at once, each resuming with its own `after_seq` (spread evenly over the 2 000 events the
 * execution has produced, so the server replays 1 000 different gaps from the store while it accepts
 * 1 000 handshakes). The headline is the time from the drop until the last client holds the newest
 * event. No baseline bounds a time like this and the issue sets no goal; beside it, the time push
 * would take to send the same number of frames to one client, for scale.
 */
import type { Scenario } from '../harness/types.js';
import { ControlClient } from '../harness/control.js';
import { startVmstream } from '../harness/vmstream.js';
import { check, cpuPer, latencyFigures, pct, type ServerCpu, serverCpuFigures, serverRss, warmFrames } from './common.js';

const EXECUTION_ID = 'bench-storm';

export const reconnectStorm: Scenario = {
  name: 'reconnect-storm',
  headline: 'all_caught_up_ms',
  alsoNeeds: ['push'],
  async run(ctx) {
    const clients = ctx.quick ? 50 : 1_000;
    const lastSeq = ctx.quick ? 200 : 2_000;
    const server = await startVmstream(ctx, { name: 'storm', env: { VMSTREAM_MAX_TIMEOUT_MS: '3600000' } });
    const control = await ControlClient.connect(server.url, server.token);
    try {
      const sessionId = await control.createSession('storm');
      // The execution logs lastSeq lines, then stays live (parked on a timer) for the whole storm.
      const headReached = control.waitFor((f) => f.op === 'event' && f.execution_id === EXECUTION_ID && f.seq === lastSeq, `event ${lastSeq}`);
      await control.call({
        op: 'execute',
        session_id: sessionId,
        kind: 'repl',
        code: `for (let i = 0; i < ${lastSeq}; i++) console.log(i); await new Promise((resolve) => setTimeout(resolve, 3_600_000))`,
        execution_id: EXECUTION_ID,
        timeout_ms: 3_600_000,
      }, 'execution');
      await headReached;
      await control.call({ op: 'unsubscribe', execution_id: EXECUTION_ID }, 'unsubscribed');

      let serverBusy: () => ServerCpu = () => ({ process: NaN, main: NaN });
      const r = await ctx.loadgen(
        { driver: 'storm', url: server.url, token: server.token, clients, executionId: EXECUTION_ID, lastSeq, timeoutMs: 60_000, connectConcurrency: 50, warmClientFrames: warmFrames(ctx) },
        1,
        { onReady: () => void (serverBusy = server.cpuMeter()), timeoutMs: 120_000 },
      );
      const serverCpu = serverBusy();
      check(r.caughtUp === clients, `${clients - r.caughtUp} of ${clients} clients did not catch up within the time bound`);
      check(r.seqErrors === 0, `${r.seqErrors} events out of seq order`);
      const push = ctx.baselines.get('push')?.figures.frames_per_s?.value ?? NaN;
      return {
        figure: { value: r.seconds * 1000, unit: 'ms' },
        figures: {
          ...latencyFigures(r.hist, 'client_caught_up_'),
          frames: { value: r.frames, unit: 'events' },
          events_per_s: { value: r.frames / r.seconds, unit: 'events/s' },
          push_time_for_same_frames_ms: { value: (r.frames / push) * 1000, unit: 'ms' },
          reconnect_retries: { value: r.retries, unit: 'retries' },
          ...serverCpuFigures(serverCpu),
          ...cpuPer(serverCpu, r.frames / r.seconds, 'event'),
          client_cpu_pct: pct(r.clientCpuPct),
          ...serverRss(server),
        },
        shown: [
          'client_caught_up_p50_ms', 'client_caught_up_p99_ms', 'client_caught_up_p999_ms', 'events_per_s',
          'push_time_for_same_frames_ms', 'reconnect_retries', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_event', 'client_cpu_pct', 'server_peak_rss_mb',
        ],
        setup: `${clients} clients drop and resubscribe at once, resuming over ${lastSeq} stored events (${r.frames} replayed in all)`,
      };
    } finally {
      control.close();
      await server.stop();
    }
  },
};
