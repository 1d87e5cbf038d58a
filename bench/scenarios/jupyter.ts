/**
 * jupyter (issue 15): vmstream beside the same machine's Jupyter (the ipykernel baseline), measured
 * the same way (harness/interactive.ts): the headline is 100 000 printed lines per second, counted
 * until the execute is complete (`done`), held against ipykernel's; beside it the trivial execute's
 * p50 and the memory per session, each over Jupyter's. "Beat it on both": lines ratio ≥ 1 is the
 * goal; the p50 and memory ratios should stay under 1.
 *
 * vmstream is driven through its Jupyter front door (src/jupyter/) by the very client that drives
 * ipykernel (harness/jupyter.ts: Jupyter's wire protocol, JSON messages over the kernel channel, with
 * `ws`), a kernel per instance: Jupyter client against Jupyter server. Beside it, the same 100 000
 * lines to a native socket asking for batched `events` frames (protocol v1.1, as the SDK, the CLI and
 * the web console do), and with single `event` frames (a 1.0 client).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { eventsOf } from '../../protocol/batch.js';
import { ControlClient } from '../harness/control.js';
import { cpuDuring, cpuPerLine, measureInteractive, type Interpreter } from '../harness/interactive.js';
import { KernelClient } from '../harness/jupyter.js';
import type { Figure, Scenario } from '../harness/types.js';
import { startVmstream, type Vmstream } from '../harness/vmstream.js';
import { serverRss } from './common.js';
import { STREAM_ENV } from './stream.js';

const RUN_TIMEOUT_MS = 120_000;
let executions = 0;

/** A vmstream session as an Interpreter: console events counted as lines, complete at `done`. */
async function openSession(client: ControlClient, batch = true): Promise<Interpreter> {
  const sessionId = await client.createSession(`bench-jupyter-${executions}`);
  return {
    async execute(code) {
      const executionId = `bench-jupyter-${++executions}`;
      let lines = 0;
      let messages = 0;
      let status: string | undefined;
      const done = client.waitFor((f) => {
        if ((f.op !== 'event' && f.op !== 'events') || f.execution_id !== executionId) return false;
        messages++;
        for (const event of f.op === 'events' ? eventsOf(f) : [f]) {
          if (event.type === 'console') lines++;
          if (event.type === 'done') status = (event.payload as { status?: string }).status;
        }
        return status !== undefined;
      }, `done of ${executionId}`, RUN_TIMEOUT_MS);
      done.catch(() => {}); // observed below; unobserved only when the execute itself was refused
      const t0 = performance.now();
      await client.call({ op: 'execute', session_id: sessionId, kind: 'repl', code, execution_id: executionId, timeout_ms: RUN_TIMEOUT_MS, ...(batch ? { batch: true } : {}) }, 'execution');
      await done;
      const ms = performance.now() - t0;
      if (status !== 'ok') throw new Error(`${executionId} ended ${status}`);
      return { ms, lines, messages };
    },
  };
}

/** A kernel of vmstream's Jupyter front door, on a channel of the client the ipykernel baseline uses. */
async function openKernel(server: Vmstream, kernels: KernelClient[]): Promise<Interpreter> {
  const { host } = new URL(server.url);
  const response = await fetch(`http://${host}/api/kernels`, { method: 'POST', headers: { authorization: `token ${server.token}`, 'content-type': 'application/json' }, body: '{}' });
  if (response.status !== 201) throw new Error(`POST /api/kernels: ${response.status} ${await response.text()}`);
  const { id } = (await response.json()) as { id: string };
  const kernel = await KernelClient.open(`ws://${host}/api/kernels/${id}/channels?session_id=${randomUUID()}&token=${encodeURIComponent(server.token)}`);
  kernels.push(kernel);
  return kernel;
}

/** `mine` over the same figure of the ipykernel baseline, when it ran. */
function over(ctx: Parameters<Scenario['run']>[0], figures: Record<string, Figure>, key: string): Figure {
  return { value: figures[key]!.value / (ctx.baselines.get('ipykernel')?.figures[key]?.value ?? NaN), unit: '×' };
}

export const jupyter: Scenario = {
  name: 'jupyter',
  headline: 'lines_per_s',
  against: { baseline: 'ipykernel', figure: 'lines_per_s' },
  goal: { ratio: 1, better: 'higher' },
  async run(ctx) {
    const server = await startVmstream(ctx, { name: 'jupyter', env: STREAM_ENV });
    const client = await ControlClient.connect(server.url, server.token);
    const kernels: KernelClient[] = [];
    try {
      const lines = ctx.quick ? 2_000 : 100_000;
      const executes = ctx.quick ? 10 : 100;
      const sessions = ctx.quick ? 5 : 100;
      const printRuns = ctx.quick ? 1 : 3;
      const print = (n: number): string => `for (let i = 0; i < ${n}; i++) console.log(i)`;
      const figures = await measureInteractive({
        open: () => openKernel(server, kernels),
        pid: server.child.pid,
        trivial: '1 + 1',
        print,
        executes,
        lines,
        printRuns,
        instances: sessions,
        settleMs: ctx.quick ? 200 : 1_000,
      });
      const nativeSession = await openSession(client);
      const { result: native, cpu: nativeCpu } = await cpuDuring(server.child.pid, () => nativeSession.execute(print(lines)));
      const single = await (await openSession(client, false)).execute(print(lines));
      return {
        figure: figures.lines_per_s!,
        figures: {
          ...figures,
          native_batched_lines_per_s: { value: lines / (native.ms / 1000), unit: 'lines/s' },
          // The event pipeline's own cost (worker, server, commit, a native socket): the door's is the difference.
          ...cpuPerLine(nativeCpu, lines, 'native_batched_'),
          single_frames_lines_per_s: { value: lines / (single.ms / 1000), unit: 'lines/s' },
          execute_p50_over_ipykernel: over(ctx, figures, 'execute_p50_ms'),
          mb_per_instance_over_ipykernel: over(ctx, figures, 'mb_per_instance'),
          ...serverRss(server),
        },
        shown: ['lines_per_s_lowest', 'lines_per_s_highest', 'lines_seconds', 'lines_messages', 'server_cpu_us_per_line', 'server_main_thread_us_per_line', 'native_batched_lines_per_s', 'native_batched_server_cpu_us_per_line', 'native_batched_server_main_thread_us_per_line', 'single_frames_lines_per_s', 'execute_p50_ms', 'execute_p50_over_ipykernel', 'execute_p99_ms', 'mb_per_instance', 'mb_per_instance_over_ipykernel', 'tree_rss_mb'],
        setup: `through the Jupyter door (kernel channel, JSON messages): ${executes} executes of 1 + 1 one at a time; ${lines} console.log lines, ${printRuns} times, the median run reported; memory of ${sessions} kernels (server and sandbox processes); then the same lines to a native socket (batched events frames, then single event frames)`,
      };
    } finally {
      for (const kernel of kernels) kernel.close();
      client.close();
      await server.stop();
    }
  },
};
