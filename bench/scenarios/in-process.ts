/**
 * What the sandbox processes cost (issue 13: `stream`, `execute-trivial` and `latency` may lose no
 * more than 10 % of their ratio to running user code in the server's own threads): the same
 * scenario again with every server it starts on VMSTREAM_SANDBOX=in-process, held against the same
 * baseline, not judged; its ratio beside the scenario's own is the cost.
 */
import type { Scenario } from '../harness/types.js';

export function inProcess(scenario: Scenario): Scenario {
  return {
    ...scenario,
    name: `${scenario.name}-in-process`,
    goal: undefined,
    async run(ctx) {
      const result = await scenario.run({ ...ctx, serverEnv: { ...ctx.serverEnv, VMSTREAM_SANDBOX: 'in-process' } });
      return { ...result, setup: `${result.setup ?? ''}; user code in the server's own worker threads (VMSTREAM_SANDBOX=in-process)` };
    },
  };
}
