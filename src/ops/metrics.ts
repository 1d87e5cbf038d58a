/**
 * Prometheus metrics (prom-client), registered once per process on a registry of our own.
 *
 * Per-event figures (events appended, replay reads, backpressure pauses) stay plain
 * integer fields where they happen (commit log, hub, pool) and are read at scrape time by `collect`:
 * prom-client's `inc()` allocates a labels object and a result per call, which the event path must
 * not pay. Per-execution and per-batch figures (outcome, latency, queue wait, batch size) and worker
 * restarts (by reason) are observed directly.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { TERMINAL_STATUSES, type TerminalStatus } from '../../protocol/types.js';

/** Where the scrape-time figures live; server.ts wires it once everything exists. */
import type { TakeoverStats } from '../cluster/takeover.js';

export interface MetricSources {
  eventsAppended(): number;
  /** Store writes of one item (an execution's chunk or record, a session) that failed. */
  storeFailures(): number;
  /** Items waiting for a retry after a failed write. */
  storeItemsWaiting(): number;
  replayReads(): number;
  catchUpKeptBytes(): number;
  /** The replay cache (store/cached-store.ts), in blocks of 256 events; all 0 when it is off. */
  replayCacheHits(): number;
  replayCacheMisses(): number;
  replayCacheBytes(): number;
  /** The send budget (transport/send-budget.ts): bytes counted against it, and sockets waiting for room. */
  sendBudgetBytes(): number;
  sendBudgetWaiting(): number;
  backpressurePauses(): number;
  liveExecutions(): number;
  openSessions(): number;
  socketsOpen(): number;
  eventStreamsOpen(): number;
  mcpRequestsOpen(): number;
}

/** A cluster node's figures (src/cluster/), read at scrape time; registered only on a node of a cluster. */
export interface ClusterMetricSources {
  /** Own heartbeats acknowledged, and renewals that failed. */
  heartbeats(): number;
  heartbeatFailures(): number;
  /** Nodes this one takes for alive, itself included. */
  nodesAlive(): number;
  /** Sessions this node owns (leases held). */
  sessionsOwned(): number;
  /** Requests this node sent to a session's owner, resent after an owner failed, and given up (INTERNAL). */
  forwarded(): number;
  forwardRetries(): number;
  forwardFailures(): number;
  /** Requests other nodes forwarded here. */
  forwardsServed(): number;
  /** KV reads for sessions the watched view did not hold yet. */
  sessionLookups(): number;
}

const ZERO: MetricSources = {
  eventsAppended: () => 0,
  storeFailures: () => 0,
  storeItemsWaiting: () => 0,
  replayReads: () => 0,
  catchUpKeptBytes: () => 0,
  replayCacheHits: () => 0,
  replayCacheMisses: () => 0,
  replayCacheBytes: () => 0,
  sendBudgetBytes: () => 0,
  sendBudgetWaiting: () => 0,
  backpressurePauses: () => 0,
  liveExecutions: () => 0,
  openSessions: () => 0,
  socketsOpen: () => 0,
  eventStreamsOpen: () => 0,
  mcpRequestsOpen: () => 0,
};

const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const BATCH_SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const BATCH_ITEMS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];

export class Metrics {
  readonly registry = new Registry();
  #sources: MetricSources = ZERO;
  readonly #executionsByStatus: Map<TerminalStatus, Counter.Internal>;
  readonly #executionSeconds: Histogram;
  readonly #queueWaitSeconds: Histogram;
  readonly #workerRestarts: Counter;
  readonly #batchItems: Histogram;
  readonly #batchSeconds: Histogram;
  readonly #mcpCalls: Counter;

  constructor() {
    const registers = [this.registry];
    // Unprefixed, as every Node dashboard expects them (process_cpu_seconds_total, nodejs_heap_…).
    collectDefaultMetrics({ register: this.registry });
    const executions = new Counter({ name: 'vmstream_executions_total', help: 'Executions that ended, by terminal status', labelNames: ['status'], registers });
    // Children made once, so every status is exported from the start and counting allocates nothing.
    this.#executionsByStatus = new Map(TERMINAL_STATUSES.map((status) => [status, executions.labels(status)]));
    for (const child of this.#executionsByStatus.values()) child.inc(0);
    this.#executionSeconds = new Histogram({
      name: 'vmstream_execution_duration_seconds',
      help: 'From execute (the execution created) to its done, in seconds',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.#queueWaitSeconds = new Histogram({
      name: 'vmstream_execution_queue_wait_seconds',
      help: 'From execute to the start of running (behind the session\'s earlier executions, and any rebuild), in seconds; executions that never started are not counted',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    // Counted as they happen (a restart is rare), by the reason the worker went: timeout, out_of_memory…
    this.#workerRestarts = new Counter({ name: 'vmstream_worker_restarts_total', help: 'Worker threads replaced after they died or were terminated, by reason', labelNames: ['reason'], registers });
    for (const reason of ['timeout', 'out_of_memory', 'worker_exit']) this.#workerRestarts.labels(reason).inc(0);
    this.#batchItems = new Histogram({ name: 'vmstream_store_batch_items', help: 'Records and events per LevelDB batch (one group commit)', buckets: BATCH_ITEMS_BUCKETS, registers });
    this.#batchSeconds = new Histogram({ name: 'vmstream_store_batch_seconds', help: 'Time to write one LevelDB batch, in seconds', buckets: BATCH_SECONDS_BUCKETS, registers });
    this.#mcpCalls = new Counter({ name: 'vmstream_mcp_calls_total', help: 'MCP tool calls, by tool and outcome (ok, or error: an error result)', labelNames: ['tool', 'outcome'], registers });
    const sources = () => this.#sources;
    scraped(registers, Counter, 'vmstream_events_appended_total', 'Events appended to execution logs', () => sources().eventsAppended());
    scraped(registers, Counter, 'vmstream_store_commit_failures_total', 'Item writes (an execution\'s events or record, a session) the store failed; each is retried or dropped', () => sources().storeFailures());
    scraped(registers, Gauge, 'vmstream_store_items_waiting', 'Items waiting for a retry after a failed store write', () => sources().storeItemsWaiting());
    scraped(registers, Counter, 'vmstream_replay_reads_total', 'Store reads made to replay events (catch-up and HTTP pages)', () => sources().replayReads());
    scraped(registers, Gauge, 'vmstream_catchup_kept_bytes', 'Bytes held by the frames committed while a subscriber was behind, kept in memory for its catch-up (the buffers they view, each counted once; at most 16 MiB)', () => sources().catchUpKeptBytes());
    scraped(registers, Counter, 'vmstream_replay_cache_hits_total', 'Blocks of 256 events a replay read took from the replay cache, or from another reader\'s store read under way', () => sources().replayCacheHits());
    scraped(registers, Counter, 'vmstream_replay_cache_misses_total', 'Blocks of 256 events the replay cache read from the store', () => sources().replayCacheMisses());
    scraped(registers, Gauge, 'vmstream_replay_cache_bytes', 'Bytes the replay cache holds (the stored values its blocks keep, each counted once, and a per-block overhead), at most VMSTREAM_REPLAY_CACHE_BYTES', () => sources().replayCacheBytes());
    scraped(registers, Gauge, 'vmstream_send_budget_bytes', 'Event bytes waiting in socket and event-stream buffers, counted against VMSTREAM_SEND_BUDGET_BYTES (with reservations of sockets let go)', () => sources().sendBudgetBytes());
    scraped(registers, Gauge, 'vmstream_send_budget_waiting', 'Sockets and event streams waiting for room in the send budget', () => sources().sendBudgetWaiting());
    scraped(registers, Counter, 'vmstream_backpressure_pauses_total', 'Times a subscriber was paused because its socket or stream buffer was full', () => sources().backpressurePauses());
    scraped(registers, Gauge, 'vmstream_executions_live', 'Executions queued or running', () => sources().liveExecutions());
    scraped(registers, Gauge, 'vmstream_sessions_open', 'Sessions open (all tenants)', () => sources().openSessions());
    scraped(registers, Gauge, 'vmstream_sockets_open', 'WebSocket connections open', () => sources().socketsOpen());
    scraped(registers, Gauge, 'vmstream_event_streams_open', 'Server-Sent Events streams open', () => sources().eventStreamsOpen());
    scraped(registers, Gauge, 'vmstream_mcp_requests_open', 'MCP requests being answered (a run_code holds one until its run ends)', () => sources().mcpRequestsOpen());
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  attach(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** Adds the lease and forwarding figures of a cluster node. */
  attachCluster(sources: ClusterMetricSources): void {
    const registers = [this.registry];
    scraped(registers, Counter, 'vmstream_node_heartbeats_total', 'Heartbeats of this node acknowledged by NATS (lease renewals)', () => sources.heartbeats());
    scraped(registers, Counter, 'vmstream_node_heartbeat_failures_total', 'Heartbeat renewals of this node that failed or were refused', () => sources.heartbeatFailures());
    scraped(registers, Gauge, 'vmstream_nodes_alive', 'Nodes this node takes for alive (itself included)', () => sources.nodesAlive());
    scraped(registers, Gauge, 'vmstream_sessions_owned', 'Sessions whose lease this node holds', () => sources.sessionsOwned());
    scraped(registers, Counter, 'vmstream_forwarded_total', 'Requests (execute, cancel, session.close…) sent to the node owning the session', () => sources.forwarded());
    scraped(registers, Counter, 'vmstream_forward_retries_total', 'Forwarded requests sent again after the owner did not answer or was not the owner', () => sources.forwardRetries());
    scraped(registers, Counter, 'vmstream_forward_failures_total', 'Forwarded requests given up (INTERNAL) when no owner answered in time', () => sources.forwardFailures());
    scraped(registers, Counter, 'vmstream_forwards_served_total', 'Requests other nodes forwarded to this node', () => sources.forwardsServed());
    scraped(registers, Counter, 'vmstream_session_lookups_total', 'KV reads for sessions the watched view did not hold yet', () => sources.sessionLookups());
  }

  /** Adds the takeover figures of a cluster node (src/cluster/takeover.ts). */
  attachTakeover(stats: Readonly<TakeoverStats>, suspended: () => boolean): void {
    const registers = [this.registry];
    scraped(registers, Counter, 'vmstream_takeover_claims_total', 'Sessions of lost nodes this node claimed and took over', () => stats.claimed);
    scraped(registers, Counter, 'vmstream_takeover_claims_lost_total', 'Claims of a lost node\'s sessions that another node (or the owner\'s restart) won', () => stats.claimsLost);
    scraped(registers, Counter, 'vmstream_takeover_executions_ended_total', 'Executions of lost nodes this node ended (crashed, node_lost)', () => stats.executionsEnded);
    scraped(registers, Counter, 'vmstream_sessions_disowned_total', 'Sessions taken from this node while it lived (paused or cut off past its lease)', () => stats.disowned);
    scraped(registers, Counter, 'vmstream_node_suspensions_total', 'Times this node stopped producing because its own heartbeat was overdue', () => stats.suspensions);
    scraped(registers, Gauge, 'vmstream_node_suspended', '1 while this node produces nothing because its own heartbeat is overdue', () => (suspended() ? 1 : 0));
  }

  /** `queueWaitSeconds`: from execute to running; null when it never ran (cancelled while queued). */
  executionEnded(status: TerminalStatus, seconds: number, queueWaitSeconds: number | null): void {
    this.#executionsByStatus.get(status)?.inc();
    this.#executionSeconds.observe(seconds);
    if (queueWaitSeconds !== null) this.#queueWaitSeconds.observe(queueWaitSeconds);
  }

  workerRestarted(reason: string): void {
    this.#workerRestarts.labels(reason).inc();
  }

  batchCommitted(items: number, seconds: number): void {
    this.#batchItems.observe(items);
    this.#batchSeconds.observe(seconds);
  }

  /** Once per tool call, not per event: prom-client's labels cost nothing that matters here. */
  mcpCall(tool: string, outcome: 'ok' | 'error'): void {
    this.#mcpCalls.labels(tool, outcome).inc();
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A metric whose value is read from its source when scraped. */
function scraped(registers: Registry[], kind: typeof Counter | typeof Gauge, name: string, help: string, read: () => number): void {
  if (kind === Gauge) {
    new Gauge({ name, help, registers, collect() { this.set(read()); } });
    return;
  }
  new Counter({
    name,
    help,
    registers,
    collect() {
      // The source only grows; reset-then-inc exports its current total.
      this.reset();
      this.inc(read());
    },
  });
}
