/**
 * takeover (issue 14): how long a node's loss holds its work up. A 3-node cluster; through node 2,
 * SESSIONS sessions each with one execution running (it logs a line, then waits) and one queued
 * behind it; a socket on node 0 subscribed to all of them, which has seen each running one's line.
 * Then node 2 is killed with SIGKILL, and from that moment:
 *
 * - `all_done_ms` (headline): until node 0's socket holds every one of those executions' `done
 *   {status: "crashed", reason: "node_lost"}` (each checked, and each exactly one);
 * - `first_execute_ms`: an `execute {code: "1 + 1"}` in one of the taken sessions, sent through
 *   node 1 at the kill (it waits for the takeover and goes to the new owner), until its `done`; its
 *   first event must be `session.restored` (the session rebuilt on the new owner).
 *
 * The goal is the bound: the lease (VMSTREAM_NODE_LEASE_MS, 5 s by default) + 5 s. A quick
 * run shortens the lease to 1 s so that the step fits its time bound.
 */
import { performance } from 'node:perf_hooks';
import { encodeFrame } from '../../protocol/codec.js';
import type { ServerFrame } from '../../protocol/types.js';
import { CLUSTER_STEP_MS, startCluster } from '../harness/cluster.js';
import { ControlClient } from '../harness/control.js';
import type { Scenario } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';
import { check } from './common.js';

const RUN_TIMEOUT_MS = 600_000;
const RUNNING = `console.log('running'); await new Promise((resolve) => setTimeout(resolve, ${RUN_TIMEOUT_MS}))`;

type EventOf = Extract<ServerFrame, { op: 'event' }>;

function isEvent(frame: ServerFrame, executionId: string): frame is EventOf {
  return frame.op === 'event' && frame.execution_id === executionId;
}

/** Every event of an execution `client` receives, up to its `done`, and when that came. */
function eventsUntilDone(client: ControlClient, executionId: string, timeoutMs: number): Promise<{ at: number; events: EventOf[] }> {
  const events: EventOf[] = [];
  const done = client
    .waitFor((f) => {
      if (!isEvent(f, executionId)) return false;
      events.push(f);
      return f.type === 'done';
    }, `done of ${executionId}`, timeoutMs)
    .then(() => ({ at: performance.now(), events }));
  done.catch(() => {}); // awaited by the scenario, unless the request that started it failed first
  return done;
}

/** Subscribes `watcher` to an execution from seq 0: resolves once subscribed, with its events to come (`done`). */
async function watch(watcher: ControlClient, executionId: string, timeoutMs: number): Promise<{ done: Promise<{ at: number; events: EventOf[] }> }> {
  const done = eventsUntilDone(watcher, executionId, timeoutMs);
  await watcher.call({ op: 'subscribe', execution_id: executionId, after_seq: 0 }, 'subscribed');
  return { done };
}

/** Sends an execute through `client` and resolves with its events up to `done`, and when that came. */
async function executeThrough(client: ControlClient, sessionId: string, executionId: string, timeoutMs: number): Promise<{ at: number; events: EventOf[] }> {
  const done = eventsUntilDone(client, executionId, timeoutMs);
  await client.call({ op: 'execute', session_id: sessionId, kind: 'repl', code: '1 + 1', execution_id: executionId }, 'execution');
  return done;
}

function checkNodeLost(executionId: string, events: EventOf[]): void {
  const dones = events.filter((e) => e.type === 'done');
  check(dones.length === 1, `${executionId}: ${dones.length} done events`);
  const payload = dones[0]!.payload as { status?: string; reason?: string };
  check(payload.status === 'crashed' && payload.reason === 'node_lost', `${executionId} ended ${payload.status} (${payload.reason}), not crashed (node_lost)`);
  events.forEach((e, i) => check(e.seq === i + 1, `${executionId}: seq ${e.seq} at position ${i + 1}`));
}

export const takeover: Scenario = {
  name: 'takeover',
  stepTimeoutMs: CLUSTER_STEP_MS,
  headline: 'all_done_ms',
  goal: { value: 10_000, unit: 'ms', better: 'lower' },
  async run(ctx) {
    const leaseMs = ctx.quick ? 1_000 : 5_000;
    const sessions = ctx.quick ? 2 : 10;
    const boundMs = leaseMs + 5_000 + 20_000;
    const cluster = await startCluster(ctx, 'takeover', 3, { VMSTREAM_NODE_LEASE_MS: String(leaseMs), VMSTREAM_NODE_HEARTBEAT_MS: String(leaseMs / 5) });
    const [watcherNode, executeNode, victim] = cluster.nodes as [Vmstream, Vmstream, Vmstream];
    const clients: ControlClient[] = [];
    const connect = async (node: Vmstream): Promise<ControlClient> => {
      const client = await ControlClient.connect(node.url, cluster.token);
      clients.push(client);
      return client;
    };
    try {
      const onVictim = await connect(victim);
      const watcher = await connect(watcherNode);
      const executor = await connect(executeNode);
      const sessionIds: string[] = [];
      const watched: Array<{ id: string; done: Promise<{ at: number; events: EventOf[] }> }> = [];
      for (let i = 0; i < sessions; i++) {
        const sessionId = await onVictim.createSession(`bench-takeover-${i}`);
        sessionIds.push(sessionId);
        // Its line on node 0's socket: the running one has begun on node 2 and node 0 follows its log.
        const line = watcher.waitFor((f) => isEvent(f, `bench-takeover-${i}-running`) && f.type === 'console', `the running line of session ${i} on node 0`);
        line.catch(() => {}); // awaited below, unless a request before it failed
        for (const [kind, code] of [['running', RUNNING], ['queued', '1 + 1']] as const) {
          const id = `bench-takeover-${i}-${kind}`;
          await onVictim.executeDetached(sessionId, code, id, RUN_TIMEOUT_MS);
          watched.push({ id, ...(await watch(watcher, id, boundMs)) });
        }
        await line;
      }

      const t0 = performance.now();
      process.kill(victim.child.pid, 'SIGKILL');
      const first = executeThrough(executor, sessionIds[0]!, 'bench-takeover-after', boundMs);
      const dones = await Promise.all(watched.map((w) => w.done));
      dones.forEach((d, i) => checkNodeLost(watched[i]!.id, d.events));
      const after = await first;
      check(after.events[0]?.type === 'session.restored', `the first execute in a taken session began with ${after.events[0]?.type}, not session.restored`);
      const doneMs = dones.map((d) => d.at - t0);
      return {
        figure: { value: Math.max(...doneMs), unit: 'ms' },
        figures: {
          first_done_ms: { value: Math.min(...doneMs), unit: 'ms' },
          first_execute_ms: { value: after.at - t0, unit: 'ms' },
          lease_ms: { value: leaseMs, unit: 'ms' },
          executions: { value: watched.length, unit: 'exec' },
        },
        shown: ['first_done_ms', 'first_execute_ms', 'lease_ms', 'executions'],
        setup: `3 nodes + nats-server; node 2 owns ${sessions} sessions (a running and a queued execution each), node 0 subscribed to them; kill -9 of node 2; execute in a taken session through node 1`,
      };
    } finally {
      for (const client of clients) client.close();
      await cluster.stop();
    }
  },
};
