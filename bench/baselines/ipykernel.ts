/**
 * ipykernel: the same machine's Jupyter (Debian's Jupyter Notebook 6.4 server and ipykernel 6, as
 * installed for test/jupyter-notebook.test.ts), driven over its kernel websocket channel with `ws`:
 * trivial executes one at a time, `for i in range(N): print(i)`, and the memory of its kernels. Issue
 * 15 quotes this comparison; the `jupyter` scenario does the same to vmstream (harness/interactive.ts).
 *
 * ipykernel costs ~1 s of CPU and tens of MB per kernel, so the memory is read over 10 kernels (1 in a
 * quick run), not the 100 sessions vmstream's side opens; both are reported per kernel / session.
 */
import { join } from 'node:path';
import { measureInteractive } from '../harness/interactive.js';
import { jupyterMissing, startJupyter } from '../harness/jupyter.js';
import { SkipError, type Baseline } from '../harness/types.js';

export const ipykernel: Baseline = {
  name: 'ipykernel',
  reference: {},
  // A kernel takes ~1 s of CPU to start, seconds on a busy machine: 10 of them, and the server.
  stepTimeoutMs: { quick: 60_000, full: 240_000 },
  async run(ctx) {
    const missing = jupyterMissing();
    if (missing) throw new SkipError(missing);
    const jupyter = await startJupyter(ctx.procs, join(ctx.tmpDir, 'jupyter'));
    try {
      const lines = ctx.quick ? 2_000 : 100_000;
      const executes = ctx.quick ? 10 : 100;
      const kernels = ctx.quick ? 1 : 10;
      const printRuns = ctx.quick ? 1 : 3;
      const figures = await measureInteractive({
        open: () => jupyter.kernel(),
        pid: jupyter.child.pid,
        trivial: '1 + 1',
        print: (n) => `for i in range(${n}): print(i)`,
        executes,
        lines,
        printRuns,
        instances: kernels,
        settleMs: ctx.quick ? 200 : 1_000,
      });
      return {
        shown: ['execute_p50_ms', 'execute_p99_ms', 'lines_per_s', 'lines_per_s_lowest', 'lines_per_s_highest', 'lines_messages', 'server_cpu_us_per_line', 'mb_per_instance', 'tree_rss_mb'],
        setup: `Jupyter Notebook 6.4 + ipykernel 6: ${executes} executes of 1 + 1 one at a time; ${lines} printed lines, ${printRuns} times, the median run reported; memory of ${kernels} kernel(s)`,
        figures,
      };
    } finally {
      await jupyter.stop();
    }
  },
};
