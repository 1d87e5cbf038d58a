/** The harness side of the load generator: fork, hand over the job, merge what comes back. */
import { Histogram } from './histogram.js';
import { benchModule, type Procs } from './procs.js';
import type { LoadJob, LoadResult, ResultFor, RttResult, SinkResult } from '../loadgen/types.js';

/** Connect, warm-up and drain time on top of the job's own window before we give up on a child. */
const SLACK_MS = 20_000;

export async function runLoadgen<J extends LoadJob>(procs: Procs, job: J, processes = 1): Promise<ResultFor<J>> {
  const n = Math.max(1, Math.min(processes, job.connections));
  const children = Array.from({ length: n }, (_, i) => {
    const child = procs.start(`loadgen-${i}`, benchModule('loadgen/main.js'));
    // Spread connections evenly: the first `connections % n` children take one more.
    const connections = Math.floor(job.connections / n) + (i < job.connections % n ? 1 : 0);
    // Split the op bound too, so `maxOps` bounds the whole job however many processes share it.
    const share = job.driver === 'rtt' ? { maxOps: Math.ceil(job.maxOps / n) } : {};
    child.send({ type: 'job', job: { ...job, connections, ...share } });
    return child;
  });
  try {
    const timeout = job.warmupMs + job.durationMs + SLACK_MS;
    const replies = await Promise.all(
      children.map((child) => child.waitForMessage<{ type: 'result'; result: LoadResult }>('result', timeout)),
    );
    return merge(replies.map((reply) => reply.result)) as ResultFor<J>;
  } finally {
    await Promise.all(children.map((child) => child.stop()));
  }
}

function merge(results: LoadResult[]): LoadResult {
  if (results.length === 1) return results[0];
  if (results[0].driver === 'rtt') {
    const rtts = results as RttResult[];
    const hist = new Histogram();
    for (const r of rtts) hist.merge(r.hist);
    return {
      driver: 'rtt',
      ops: sum(rtts, (r) => r.ops),
      seconds: Math.max(...rtts.map((r) => r.seconds)),
      opsPerSec: sum(rtts, (r) => r.opsPerSec),
      unanswered: sum(rtts, (r) => r.unanswered),
      hist: hist.toJSON(),
      clientCpuPct: sum(rtts, (r) => r.clientCpuPct),
    };
  }
  const sinks = results as SinkResult[];
  return {
    driver: 'sink',
    frames: sum(sinks, (r) => r.frames),
    bytes: sum(sinks, (r) => r.bytes),
    seconds: Math.max(...sinks.map((r) => r.seconds)),
    framesPerSec: sum(sinks, (r) => r.framesPerSec),
    clientCpuPct: sum(sinks, (r) => r.clientCpuPct),
  };
}

function sum<T>(items: T[], pick: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += pick(item);
  return total;
}
