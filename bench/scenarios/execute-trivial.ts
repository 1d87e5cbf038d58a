/**
 * execute-trivial: the whole request path for the smallest execution. Many sessions, each with a
 * few `execute {code: "1 + 1"}` pipelined; a round trip runs from sending `execute` to receiving that
 * execution's `done` (after its `execution` reply and `value` event). Held against the echo round
 * trip with the same client: what is left of the bare stack's rate once vmstream validates, records
 * (group-committed to the store), queues, runs in a sandbox's vm context, and sends three frames per
 * request instead of one.
 *
 * Two pairs (issue 15): `execute-trivial`, the load generator's coalescing client with 8 connections
 * × 64 in flight against echo's `rt_per_s` with the same client; and `execute-trivial-plain`, a plain
 * `ws` client (one syscall per frame) with 8 × 16 in flight against echo driven the same way
 * (`plain_ws_16_rt_per_s`), which is how most users' clients send.
 */
import { PLAIN_PAIR_WINDOW } from '../baselines/echo.js';
import type { Scenario } from '../harness/types.js';
import { startVmstream } from '../harness/vmstream.js';
import { check, cpuPer, latencyFigures, pct, serverCpuFigures, serverRss } from './common.js';

const CONNECTIONS = 8;

interface Pair {
  name: string;
  window: number;
  coalesceWrites: boolean;
  /** The echo figure measured with the same client, connections and window. */
  echoFigure: string;
}

/**
 * Sessions per connection: window / 2, so two executions are in each at a time (one running, one
 * queued behind it) and the sandboxes always have a run to start while the main thread handles a
 * `done`. Between 2 and 64 per connection the server's CPU per execute stayed the same (~110 µs on a
 * loaded machine); only the waiting changes.
 */
function executeScenario(pair: Pair): Scenario {
  const sessions = pair.window / 2;
  const client = pair.coalesceWrites ? 'coalescing client' : 'plain ws client';
  return {
    name: pair.name,
    headline: 'executes_per_s',
    against: { baseline: 'echo', figure: pair.echoFigure },
    goal: { ratio: 0.3, better: 'higher' },
    async run(ctx) {
      const server = await startVmstream(ctx, { name: pair.name });
      try {
        const serverBusy = server.cpuMeter();
        const r = await ctx.loadgen({
          driver: 'rtt',
          workload: 'execute',
          params: { sessions, code: '1 + 1' },
          url: server.url,
          token: server.token,
          connections: CONNECTIONS,
          window: pair.window,
          warmupMs: ctx.quick ? 300 : 2_000,
          durationMs: ctx.quick ? 700 : 5_000,
          maxOps: ctx.quick ? 200_000 : 2_000_000,
          coalesceWrites: pair.coalesceWrites,
        });
        const serverCpu = serverBusy();
        check(r.ops > 0, 'no execute completed');
        return {
          figure: { value: r.opsPerSec, unit: 'exec/s' },
          figures: {
            executes: { value: r.ops, unit: 'exec' },
            seconds: { value: r.seconds, unit: 's' },
            ...latencyFigures(r.hist),
            unanswered: { value: r.unanswered, unit: 'req' },
            ...serverCpuFigures(serverCpu),
            ...cpuPer(serverCpu, r.opsPerSec, 'execute'),
            client_cpu_pct: pct(r.clientCpuPct),
            ...serverRss(server),
          },
          shown: ['p50_ms', 'p99_ms', 'p999_ms', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_execute', 'server_main_thread_us_per_execute', 'client_cpu_pct', 'server_peak_rss_mb'],
          setup: `${CONNECTIONS} conns × ${pair.window} in flight (${client}) over ${CONNECTIONS * sessions} sessions, ${r.seconds.toFixed(1)} s`,
        };
      } finally {
        await server.stop();
      }
    },
  };
}

export const executeTrivial = executeScenario({ name: 'execute-trivial', window: 64, coalesceWrites: true, echoFigure: 'rt_per_s' });
export const executeTrivialPlain = executeScenario({ name: 'execute-trivial-plain', window: PLAIN_PAIR_WINDOW, coalesceWrites: false, echoFigure: 'plain_ws_16_rt_per_s' });
