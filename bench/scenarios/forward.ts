/**
 * forward (issue 14): what an execute costs when the client's node does not own the session. A
 * 3-node cluster (harness/cluster.ts); one session, created through node 0, which owns it; one
 * connection with one `execute {code: "1 + 1"}` in flight, `execute` → `done`, first through the
 * owner, then through node 1, which forwards it to node 0 over NATS request/reply and streams the
 * events back from JetStream (a remote tail). The headline is the forwarded p50 over the owner's:
 * the price of one request/reply hop and a remote tail. No goal is set.
 */
import { ControlClient } from '../harness/control.js';
import { CLUSTER_STEP_MS, startCluster } from '../harness/cluster.js';
import type { Ctx, Figure, Scenario } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';
import { check, cpuPer, latencyFigures } from './common.js';

async function latencyThrough(ctx: Ctx, node: Vmstream, token: string, sessionId: string, prefix: string): Promise<Record<string, Figure>> {
  const busy = node.cpuMeter();
  const r = await ctx.loadgen({
    driver: 'rtt',
    workload: 'execute',
    params: { sessionIds: sessionId, code: '1 + 1' },
    url: node.url,
    token,
    connections: 1,
    window: 1,
    warmupMs: ctx.quick ? 300 : 1_000,
    durationMs: ctx.quick ? 700 : 4_000,
    maxOps: ctx.quick ? 20_000 : 200_000,
    coalesceWrites: true,
  });
  const cpu = busy();
  check(r.ops > 0, `no execute completed through ${prefix}`);
  const figures: Record<string, Figure> = { executes: { value: r.ops, unit: 'exec' }, ...latencyFigures(r.hist), ...cpuPer(cpu, r.opsPerSec, 'execute') };
  return Object.fromEntries(Object.entries(figures).map(([key, figure]) => [`${prefix}${key}`, figure]));
}

export const forward: Scenario = {
  name: 'forward',
  stepTimeoutMs: CLUSTER_STEP_MS,
  headline: 'p50_over_owner',
  async run(ctx) {
    const cluster = await startCluster(ctx, 'forward', 3);
    try {
      const [owner, other] = cluster.nodes as [Vmstream, Vmstream];
      const control = await ControlClient.connect(owner.url, cluster.token);
      const sessionId = await control.createSession('bench-forward').finally(() => control.close());
      const direct = await latencyThrough(ctx, owner, cluster.token, sessionId, 'owner_');
      // The node the client is on: its CPU per execute is what forwarding costs it.
      const forwarded = await latencyThrough(ctx, other, cluster.token, sessionId, 'forwarded_');
      const p50 = forwarded.forwarded_p50_ms!.value / direct.owner_p50_ms!.value;
      return {
        figure: { value: p50, unit: '×' },
        figures: {
          p99_over_owner: { value: forwarded.forwarded_p99_ms!.value / direct.owner_p99_ms!.value, unit: '×' },
          ...direct,
          ...forwarded,
        },
        shown: ['p99_over_owner', 'owner_p50_ms', 'owner_p99_ms', 'forwarded_p50_ms', 'forwarded_p99_ms', 'owner_server_cpu_us_per_execute', 'forwarded_server_cpu_us_per_execute'],
        setup: '3 nodes + nats-server; 1 session owned by node 0; 1 conn × 1 in flight through node 0, then through node 1',
      };
    } finally {
      await cluster.stop();
    }
  },
};
