/** The harness side of the load generator: fork, hand over the job, run its gates, merge what comes back. */
import { Histogram } from './histogram.js';
import { benchModule, type Child, type Procs } from './procs.js';
import type {
  IdleResult,
  LoadJob,
  LoadResult,
  ReadyMessage,
  ResultFor,
  RttResult,
  SinkResult,
  StormResult,
} from '../loadgen/types.js';

/** Connect, warm-up and drain time on top of the job's own window before we give up on a child. */
const SLACK_MS = 20_000;

export interface LoadgenHooks {
  /**
   * Every process reached gate `step` (a gated sink, each idle step, the storm's start); `infos`
   * are what each said. Runs before the go, so the server can be read or prepared at that moment.
   */
  onReady?(step: number, infos: Array<Record<string, number>>): Promise<void> | void;
  /** Runs right after the go of `step` is sent, e.g. to open a gate execution once the clocks run. */
  afterGo?(step: number): Promise<void> | void;
  /** Gates take as long as the hooks take: this bounds the whole job instead of its own window. */
  timeoutMs?: number;
}

function shareOf(total: number, n: number, i: number): number {
  // Spread evenly: the first `total % n` children take one more.
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

/** Where child i's share starts, the shares being shareOf's. */
function offsetOf(total: number, n: number, i: number): number {
  return Math.floor(total / n) * i + Math.min(i, total % n);
}

function splitJob(job: LoadJob, n: number, i: number): LoadJob {
  switch (job.driver) {
    case 'rtt':
      // Split the op bound too, so `maxOps` bounds the whole job however many processes share it.
      return { ...job, connections: shareOf(job.connections, n, i), maxOps: Math.ceil(job.maxOps / n) };
    case 'sink':
      return { ...job, connections: shareOf(job.connections, n, i) };
    case 'idle':
      return { ...job, connections: shareOf(job.connections, n, i), sessions: shareOf(job.sessions, n, i) };
    case 'storm':
      // Each process drops its share on the same go and times it from there; after_seqs spread over all of them.
      return { ...job, clients: shareOf(job.clients, n, i), firstClient: offsetOf(job.clients, n, i), totalClients: job.clients };
  }
}

function connectionsOf(job: LoadJob): number {
  return job.driver === 'storm' ? job.clients : job.connections;
}

function jobTimeout(job: LoadJob, hooks: LoadgenHooks): number {
  if (hooks.timeoutMs !== undefined) return hooks.timeoutMs;
  if (job.driver === 'rtt' || job.driver === 'sink') return job.warmupMs + job.durationMs + SLACK_MS;
  if (job.driver === 'storm') return job.timeoutMs + SLACK_MS;
  return 60_000 + SLACK_MS;
}

export async function runLoadgen<J extends LoadJob>(procs: Procs, job: J, processes = 1, hooks: LoadgenHooks = {}): Promise<ResultFor<J>> {
  const n = Math.max(1, Math.min(processes, connectionsOf(job)));
  const children = Array.from({ length: n }, (_, i) => {
    const child = procs.start(`loadgen-${i}`, benchModule('loadgen/main.js'));
    child.send({ type: 'job', job: splitJob(job, n, i) });
    return child;
  });
  const gates = runGates(children, hooks);
  try {
    const timeout = jobTimeout(job, hooks);
    const replies = await Promise.race([
      Promise.all(children.map((child) => child.waitForMessage<{ type: 'result'; result: LoadResult }>('result', timeout))),
      gates.failed,
    ]);
    return merge(replies.map((reply) => reply.result)) as ResultFor<J>;
  } finally {
    gates.stop();
    await Promise.all(children.map((child) => child.stop()));
  }
}

/**
 * Collects each step's ready from every child, runs the hooks, then sends go to all. A hook that
 * throws fails the job (through `failed`), like a child's error does.
 */
function runGates(children: Child[], hooks: LoadgenHooks): { failed: Promise<never>; stop(): void } {
  const readies = new Map<number, Array<Record<string, number>>>();
  let reject: (error: Error) => void = () => {};
  const failed = new Promise<never>((_, r) => (reject = r));
  failed.catch(() => {}); // settled only on failure; unobserved when the job succeeds
  const listeners = children.map((child) => {
    const onMessage = (message: ReadyMessage): void => {
      if (message?.type !== 'ready') return;
      const list = readies.get(message.step) ?? [];
      list.push(message.info ?? {});
      readies.set(message.step, list);
      if (list.length === children.length) void open(message.step, list);
    };
    child.proc.on('message', onMessage);
    return () => child.proc.off('message', onMessage);
  });
  const open = async (step: number, infos: Array<Record<string, number>>): Promise<void> => {
    try {
      await hooks.onReady?.(step, infos);
      for (const child of children) if (child.proc.connected) child.send({ type: 'go', step });
      await hooks.afterGo?.(step);
    } catch (error) {
      reject(error as Error);
    }
  };
  return { failed, stop: () => listeners.forEach((off) => off()) };
}

function merge(results: LoadResult[]): LoadResult {
  if (results.length === 1) return results[0]!;
  switch (results[0]!.driver) {
    case 'rtt': {
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
    case 'sink': {
      const sinks = results as SinkResult[];
      let ages: Histogram | null = null;
      for (const r of sinks) {
        if (!r.ages) continue;
        ages ??= new Histogram();
        ages.merge(r.ages);
      }
      return {
        driver: 'sink',
        frames: sum(sinks, (r) => r.frames),
        bytes: sum(sinks, (r) => r.bytes),
        seconds: Math.max(...sinks.map((r) => r.seconds)),
        framesPerSec: sum(sinks, (r) => r.framesPerSec),
        totalFrames: sum(sinks, (r) => r.totalFrames),
        // Processes start on the same go, so the slowest one's span is the job's.
        totalSeconds: Math.max(...sinks.map((r) => r.totalSeconds)),
        firstFrameMs: Math.max(...sinks.map((r) => r.firstFrameMs)),
        seqErrors: sum(sinks, (r) => r.seqErrors),
        unfinished: sum(sinks, (r) => r.unfinished),
        ages: ages ? ages.toJSON() : null,
        clientCpuPct: sum(sinks, (r) => r.clientCpuPct),
      };
    }
    case 'idle': {
      const idles = results as IdleResult[];
      return {
        driver: 'idle',
        connections: sum(idles, (r) => r.connections),
        sessions: sum(idles, (r) => r.sessions),
        executions: sum(idles, (r) => r.executions),
        openSeconds: Math.max(...idles.map((r) => r.openSeconds)),
        clientCpuPct: sum(idles, (r) => r.clientCpuPct),
      };
    }
    case 'storm': {
      const storms = results as StormResult[];
      const hist = new Histogram();
      for (const r of storms) hist.merge(r.hist);
      return {
        driver: 'storm',
        clients: sum(storms, (r) => r.clients),
        caughtUp: sum(storms, (r) => r.caughtUp),
        // From the same go: the last process's last client is the storm's.
        seconds: Math.max(...storms.map((r) => r.seconds)),
        hist: hist.toJSON(),
        frames: sum(storms, (r) => r.frames),
        retries: sum(storms, (r) => r.retries),
        seqErrors: sum(storms, (r) => r.seqErrors),
        clientCpuPct: sum(storms, (r) => r.clientCpuPct),
      };
    }
  }
}

function sum<T>(items: T[], pick: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += pick(item);
  return total;
}
