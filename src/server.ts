/**
 * Puts the service together: the store, the execution service (recovering what a previous process
 * left unfinished), the HTTP API and the metrics, the transport; and takes it apart again in the
 * order that loses nothing.
 */
import { chmod, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { HttpApi } from './http/api.js';
import { openJupyter } from './jupyter/index.js';
import { ConsoleFiles, ConsoleHandler } from './http/console.js';
import { LineSampler, type Logger } from './ops/logger.js';
import { Metrics } from './ops/metrics.js';
import { McpEndpoint } from './mcp/http.js';
import { publicExecutionId, tenantOfExecution } from './sessions/live.js';
import { prepareSandbox } from './sandbox-process/start.js';
import { RetentionSweeper } from './events/retention.js';
import { ExecutionService } from './sessions/service.js';
import { Cluster } from './cluster/cluster.js';
import { ClusterRouter } from './cluster/router.js';
import { Takeover } from './cluster/takeover.js';
import { CachedEventStore } from './store/cached-store.js';
import { SendBudget } from './transport/send-budget.js';
import type { EventStore } from './store/event-store.js';
import { JetStreamEventStore } from './store/jetstream/jetstream-store.js';
import { LevelEventStore } from './store/level-store.js';
import { Authenticator, DEFAULT_TENANT, resolveToken } from './auth/tokens.js';
import { TenantDirectory } from './auth/tenants.js';
import { UwsTransport } from './transport/uws-server.js';
import { WS_PATH, type TerminalStatus } from '../protocol/types.js';

export type { Logger } from './ops/logger.js';

export interface RunningServer {
  port: number;
  /** ws:// URL of the socket endpoint; carries the token only when it was generated. */
  url: string;
  /** http(s):// URL of the web console, with the token when `url` has it; null when the console is off. */
  consoleUrl: string | null;
  service: ExecutionService;
  close(): Promise<void>;
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  // The server's alone: sandbox processes run as another user and must not read it (0700 even
  // when it already existed, and so its token file and event log beneath it).
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  await chmod(config.dataDir, 0o700);
  const directory = config.tokensFile ? new TenantDirectory(config.tokensFile) : null;
  const tenants = directory ? directory.load() : 0;
  // With a tokens file and no VMSTREAM_TOKEN there is no shared token, and none is generated.
  const shared = directory && config.token === null ? null : await resolveToken(config.token, config.dataDir);
  const sandbox = prepareSandbox(config, shared ? DEFAULT_TENANT : null, {
    started: (tenant, pid) => logger.info({ tenant, pid }, 'sandbox process started'),
    // Reclaiming an idle process is routine; any other end cost its tenant's running executions.
    exited: (tenant, pid, reason, detail) => logger[reason === 'reclaimed' ? 'info' : 'warn']({ tenant, pid, reason, detail }, 'sandbox process ended'),
  });
  if (config.tokensFile && ((await stat(config.tokensFile)).mode & 0o077) !== 0) {
    logger.warn({ tokensFile: config.tokensFile }, 'the tokens file is readable by other users: chmod 600 it (sandbox processes run as another user)');
  }
  if (sandbox.report.confined) logger.info({ sandbox: sandbox.report }, 'user code runs in confined sandbox processes');
  else logger.warn({ sandbox: sandbox.report }, 'USER CODE IS NOT CONFINED: an escape from node:vm reaches this machine as this user (see protocol/SECURITY.md)');
  // The whole config only at debug: on a terminal it would scroll the URLs away.
  logger.debug({ config: { ...config, token: config.token === null ? null : '[redacted]' } }, 'config');
  logger.info({ tenants, workers: config.workers, data: config.dataDir, store: config.store }, 'starting');
  // A node joins its cluster before it touches the store: a second process with its id is refused first.
  const cluster = config.store === 'jetstream' ? await joinCluster(config, logger) : null;
  const { store: backing, reachable } = storeFor(config);
  const cache = config.replayCacheBytes > 0 ? new CachedEventStore(backing, config.replayCacheBytes) : null;
  const store = cache ?? backing;
  await store.open();
  const metrics = new Metrics();
  const router = cluster ? new ClusterRouter(cluster, config.forwardTimeoutMs, (error) => logger.error({ err: error }, 'forwarded request failed')) : undefined;
  const endedOk = new LineSampler(1000);
  const service = new ExecutionService(config, store, sandbox.factory, {
    onError: (context, error) => logger.error({ err: error }, `${context} failed`),
    onExecutionEnd: (record, events) => {
      const queueWait = record.started_at === undefined ? null : (record.started_at - record.created_at) / 1000;
      metrics.executionEnded(record.status as TerminalStatus, (record.ended_at! - record.created_at) / 1000, queueWait);
      // An execution that ended ok is routine: one such line a second (with how many were left out
      // since the last), every one at debug. Any other ending is always logged.
      const held = record.status === 'ok' ? endedOk.take() : 0;
      if (held === null && !logger.isLevelEnabled('debug')) return;
      logger[held === null ? 'debug' : 'info']({
        tenant: tenantOfExecution(record.execution_id),
        execution_id: publicExecutionId(record.execution_id),
        session_id: record.session_id,
        kind: record.kind,
        status: record.status,
        reason: record.reason,
        duration_ms: record.started_at === undefined ? 0 : record.ended_at! - record.started_at,
        events,
        ...(held ? { ok_not_logged: held } : {}),
      }, 'execution ended');
    },
    onHostLost: (reason, sessions) => {
      // Reclaiming an idle process is routine, not a restart.
      if (reason === 'reclaimed') {
        logger.info({ reason, sessions }, 'a sandbox host was lost; its sessions are rebuilt when next used');
        return;
      }
      metrics.workerRestarted(reason);
      logger.warn({ reason, sessions }, 'a sandbox host was lost; its sessions are rebuilt when next used');
    },
    onCommit: (items, seconds) => metrics.batchCommitted(items, seconds),
    // A fenced write may be this node's first news that its session was taken: the owner is read again (a move disowns it).
    onFenced: (sessionId) => void cluster?.directory.refreshOwner(sessionId).catch((error: unknown) => logger.warn({ err: error }, 'cluster: owner refresh failed')),
  }, router);
  const recovered = await service.recover();
  // Other nodes' requests for this node's sessions, once those are back.
  router?.serve((request) => service.serveForwarded(request));
  const takeover = cluster ? new Takeover(cluster, service, {
    onError: (context, error) => logger.error({ err: error }, `${context} failed`),
    onTakeover: (node, sessions, crashed, ms) => logger.warn({ node, sessions, crashed, duration_ms: Math.round(ms) }, 'took over sessions of a lost node'),
  }) : null;
  takeover?.start();
  if (recovered.crashed > 0) logger.info({ crashed: recovered.crashed }, 'marked executions left unfinished by the previous process as crashed');
  const authenticator = new Authenticator(shared?.token ?? null, directory);
  const onInternalError = (error: unknown) => logger.error({ err: error }, 'request failed');
  // One bound on the bytes waiting in every socket's buffer: WebSockets, event streams, Jupyter channels.
  const sendBudget = new SendBudget(config.sendBudgetBytes);
  const http = new HttpApi(service, {
    authenticator,
    logger,
    sendBudget,
    onInternalError,
    operator: {
      readiness: () => {
        const { sandbox: hosts, store: writes } = service.stats();
        // A store whose writes keep failing, or that cannot reach NATS, is not ready either: nothing new would become durable.
        const checks = {
          store: reachable() && !writes.stalled,
          workers: hosts.online === hosts.size,
          accepting: service.accepting,
          // A node is in its cluster when connected to NATS and its own heartbeat is current.
          ...(cluster ? { cluster: cluster.ready } : {}),
        };
        return { ready: Object.values(checks).every(Boolean), checks, sandbox: sandbox.report };
      },
      metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
    },
  });
  const mcp = new McpEndpoint(service, http, {
    authenticator,
    allowedOrigins: config.allowedOrigins,
    onInternalError,
    onCall: ({ tenant, tool, outcome, ms }) => {
      metrics.mcpCall(tool, outcome);
      logger.info({ tenant, tool, outcome, duration_ms: Math.round(ms) }, 'mcp call');
    },
  });
  const jupyter = await openJupyter({ service, authenticator, dataDir: config.dataDir, backpressureBytes: config.backpressureBytes, sendBudget, maxQueued: config.maxQueuedPerSession, onError: onInternalError });
  const consoleFiles = config.console ? await ConsoleFiles.load() : null;
  if (config.console && !consoleFiles) logger.warn('the web console is not built (npm run build builds it): / answers 404');
  const transport = new UwsTransport(service, {
    host: config.host,
    port: config.port,
    maxFrameBytes: config.maxFrameBytes,
    backpressureBytes: config.backpressureBytes,
    sendBudget,
    maxFramesPerSecond: config.maxFramesPerSecond,
    authenticator,
    allowedOrigins: config.allowedOrigins,
    tls: config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : null,
    http: jupyter.http(consoleFiles ? new ConsoleHandler(consoleFiles, mcp) : mcp),
    socketRoutes: [jupyter.route],
    onSocket: (event, tenant, remote) => logger.info({ tenant, remote }, event === 'open' ? 'socket opened' : 'socket closed'),
    onInternalError,
  });
  metrics.attach({
    eventsAppended: () => service.stats().eventsAppended,
    storeFailures: () => service.stats().store.failures,
    storeItemsWaiting: () => service.stats().store.waiting,
    replayReads: () => service.stats().replayReads,
    catchUpKeptBytes: () => service.stats().catchUpKeptBytes,
    replayCacheHits: () => cache?.hits ?? 0,
    replayCacheMisses: () => cache?.misses ?? 0,
    replayCacheBytes: () => cache?.cachedBytes ?? 0,
    sendBudgetBytes: () => sendBudget.used,
    sendBudgetWaiting: () => sendBudget.waiting,
    backpressurePauses: () => service.stats().backpressurePauses,
    liveExecutions: () => service.stats().liveExecutions,
    openSessions: () => service.stats().openSessions,
    socketsOpen: () => transport.socketCount,
    eventStreamsOpen: () => http.openStreams,
    mcpRequestsOpen: () => mcp.open,
  });
  if (cluster && router) {
    metrics.attachCluster({
      heartbeats: () => cluster.membership.heartbeats,
      heartbeatFailures: () => cluster.membership.heartbeatFailures,
      nodesAlive: () => cluster.membership.alive().length,
      sessionsOwned: () => cluster.directory.ownedBy(cluster.nodeId).length,
      forwarded: () => router.stats.forwarded,
      forwardRetries: () => router.stats.forwardRetries,
      forwardFailures: () => router.stats.forwardFailures,
      forwardsServed: () => router.stats.served,
      sessionLookups: () => cluster.directory.lookups,
    });
  }
  if (takeover) metrics.attachTakeover(takeover.stats, () => takeover.suspended);
  directory?.watch((tenant) => {
    logger.warn({ tenant }, 'tenant revoked (gone from the tokens file, or its line replaced): closing its sockets and event streams, cancelling its queued executions, ending its sandbox process');
    const reason = `the token of tenant ${tenant} was revoked`;
    transport.revokeTenant(tenant, reason);
    http.revokeTenant(tenant, reason);
    mcp.revokeTenant(tenant, reason);
    service.revokeTenant(tenant);
    sandbox.revoke(tenant);
  }, (error) => logger.error({ err: error }, 'cannot read the tokens file; keeping the tenants last read'));
  const retention = config.retentionMs > 0
    ? new RetentionSweeper(store, config.retentionMs, config.retentionSweepMs, (error) => logger.error({ err: error }, 'retention sweep failed'))
    : null;
  // A first run's time limit should not be spent waiting for its process to boot.
  await sandbox.booted();
  const port = await transport.listen();
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const scheme = config.tlsCert ? 'wss' : 'ws';
  const url = `${scheme}://${host}:${port}${WS_PATH}${shared?.generated ? `?token=${encodeURIComponent(shared.token)}` : ''}`;
  logger.info({ port, http: `${config.tlsCert ? 'https' : 'http'}://${host}:${port}`, socket: `${scheme}://${host}:${port}${WS_PATH}` }, 'listening');

  let closing: Promise<void> | null = null;
  const close = () => (closing ??= (async () => {
    transport.stopListening();
    directory?.stop();
    router?.close();
    takeover?.close();
    await service.shutdown();
    await retention?.stop();
    transport.closeSockets();
    await jupyter.close();
    await store.close();
    await cluster?.close();
  })());
  const consoleUrl = consoleFiles ? `${config.tlsCert ? 'https' : 'http'}://${host}:${port}/${shared?.generated ? `?token=${encodeURIComponent(shared.token)}` : ''}` : null;
  return { port, url, consoleUrl, service, close };
}

/** Joins the JetStream cluster as VMSTREAM_NODE_ID (src/cluster/). */
function joinCluster(config: Config, logger: Logger): Promise<Cluster> {
  return Cluster.open({
    servers: config.natsUrls,
    prefix: config.jetstreamPrefix,
    replicas: config.jetstreamReplicas,
    nodeId: config.nodeId,
    heartbeatMs: config.nodeHeartbeatMs,
    leaseMs: config.nodeLeaseMs,
    onConflict: (message) => {
      // Two processes writing as one node would each take the other's executions for their own:
      // this one stops at once, writing nothing more (no shutdown `done`s for what it no longer owns).
      logger.fatal({ node: config.nodeId }, `${message}: exiting`);
      process.exit(1);
    },
    onError: (context, error) => logger.warn({ err: error }, `cluster: ${context} failed`),
  });
}

/** Margin between an execution's record expiring and its events leaving the JetStream stream. */
const EVENT_AGE_MARGIN_MS = 10 * 60 * 1000;

interface SelectedStore {
  store: EventStore;
  /** The store can be written to right now (JetStream: connected to NATS; LevelDB: open). */
  reachable(): boolean;
}

/** The EventStore VMSTREAM_STORE names: LevelDB in the data folder (the default) or NATS JetStream. */
function storeFor(config: Config): SelectedStore {
  if (config.store === 'level') {
    const store = new LevelEventStore(path.join(config.dataDir, 'events'));
    return { store, reachable: () => store.isOpen };
  }
  const store = new JetStreamEventStore({
    servers: config.natsUrls,
    prefix: config.jetstreamPrefix,
    replicas: config.jetstreamReplicas,
    // Events outlive the records that reach them: a record goes `retention` after its end, and
    // its events were all written within the longest run before that end.
    maxAgeMs: config.retentionMs === 0 ? 0 : config.retentionMs + config.maxTimeoutMs + EVENT_AGE_MARGIN_MS,
  });
  return { store, reachable: () => store.isOpen && store.connected };
}
