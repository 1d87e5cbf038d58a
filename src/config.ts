/**
 * Configuration: frozen defaults, overridden from the environment. Every value is checked once, at
 * start-up, and a bad one stops the server with a message naming the variable.
 */
import os from 'node:os';
import { LOG_LEVELS, type LogLevel } from './ops/logger.js';
import type { SandboxMode } from './sandbox-process/confinement.js';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  workspaceDir: string;
  /** Worker threads in each sandbox process (one process per tenant). */
  workers: number;
  /** How user code is confined (VMSTREAM_SANDBOX): `auto` confines where the OS allows it. */
  sandbox: SandboxMode;
  /** Sandbox processes at once; a tenant needing one past it takes the least recently used idle one, or waits. */
  sandboxProcesses: number;
  /** A sandbox process without work for this long is ended (its sessions rebuilt when next used); 0 keeps it. */
  sandboxIdleMs: number;
  /** Address-space limit (RLIMIT_AS) of each sandbox process, in MiB; 0 for none. */
  sandboxMemoryMb: number;
  /** The user and group sandbox processes run as when the server is root. */
  sandboxUid: number;
  sandboxGid: number;
  /** The single shared token; null means "generate one on first start and keep it in <data>/token". */
  token: string | null;
  /** `tenant:scrypt-hash` lines (scripts/add-tenant); with it and no token, no shared token exists. */
  tokensFile: string | null;
  /** Browser origins allowed to open a socket; empty allows any (non-browser clients send none). */
  allowedOrigins: string[];
  /** Serve the web console at `/` (VMSTREAM_CONSOLE; on by default on a loopback host). */
  console: boolean;
  tlsCert: string | null;
  tlsKey: string | null;
  /** Largest client frame, in bytes; a larger one closes the socket with 1009. */
  maxFrameBytes: number;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  /** Per execution: events and bytes of encoded frames, past which it ends with output_limit. */
  maxEventsPerExecution: number;
  maxBytesPerExecution: number;
  /** Longest console text / exception text, and longest value preview, in characters. */
  maxTextChars: number;
  maxPreviewChars: number;
  maxQueuedPerSession: number;
  /** Open sessions a tenant may hold at once. */
  maxOpenSessions: number;
  /** Frames a socket may send per second (a token bucket of that size, refilled continuously). */
  maxFramesPerSecond: number;
  /** Executions (and their events) that ended longer ago than this are deleted; 0 keeps them forever. */
  retentionMs: number;
  /** How often the retention sweep runs. */
  retentionSweepMs: number;
  maxRunFileBytes: number;
  /** A tenant's workspace files together, in bytes and in number. */
  maxWorkspaceBytes: number;
  maxWorkspaceFiles: number;
  /** A socket's buffered bytes past which live events stop and wait for `drain`. */
  backpressureBytes: number;
  /** All sockets' buffered bytes together past which sockets wait their turn to send events. */
  sendBudgetBytes: number;
  /** Recently read events kept in memory for other readers of the same execution; 0: none. */
  replayCacheBytes: number;
  /** How long a worker gets to stop a run on its own (timeout, cancel) before it is terminated. */
  stopGraceMs: number;
  /** How long a session rebuild may take before its worker is terminated and the session lost. */
  restoreTimeoutMs: number;
  workerHeapMb: number;
  /** How long SIGINT/SIGTERM waits for running executions before marking them. */
  shutdownGraceMs: number;
  /** pino level of the logs on stderr. */
  logLevel: LogLevel;
  /** The event store: LevelDB in dataDir (embedded, the default) or NATS JetStream. */
  store: 'level' | 'jetstream';
  /** nats://host:port of the NATS servers (VMSTREAM_NATS_URL, comma-separated); needed for jetstream. */
  natsUrls: string[];
  /** Prefix of the JetStream streams, buckets and subjects this server uses. */
  jetstreamPrefix: string;
  /** Replicas of those streams and buckets: 1 on one nats-server, 3 on a NATS cluster. */
  jetstreamReplicas: number;
  /** This server's name on a JetStream prefix (VMSTREAM_NODE_ID; default `<hostname>:<port>`). */
  nodeId: string;
  /** A node whose heartbeat nobody has seen renewed for this long is dead to the others (src/cluster/). */
  nodeLeaseMs: number;
  /** How often a node renews its heartbeat. */
  nodeHeartbeatMs: number;
  /** How long a request forwarded to a session's owner may wait for an owner that answers (default 2 × lease + 5 s). */
  forwardTimeoutMs: number;
}

export const DEFAULTS: Readonly<Config> = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data',
  workspaceDir: './workspace',
  workers: Math.max(1, Math.min(4, os.availableParallelism())),
  sandbox: 'auto',
  sandboxProcesses: 32,
  sandboxIdleMs: 300_000,
  sandboxMemoryMb: 0,
  sandboxUid: 65534,
  sandboxGid: 65534,
  token: null,
  tokensFile: null,
  allowedOrigins: [],
  console: true,
  tlsCert: null,
  tlsKey: null,
  maxFrameBytes: 1024 * 1024,
  defaultTimeoutMs: 30_000,
  maxTimeoutMs: 300_000,
  maxEventsPerExecution: 100_000,
  maxBytesPerExecution: 16 * 1024 * 1024,
  maxTextChars: 64 * 1024,
  maxPreviewChars: 16 * 1024,
  maxQueuedPerSession: 100,
  maxOpenSessions: 1000,
  maxFramesPerSecond: 2000,
  retentionMs: 7 * 24 * 3600 * 1000,
  retentionSweepMs: 60_000,
  maxRunFileBytes: 1024 * 1024,
  maxWorkspaceBytes: 64 * 1024 * 1024,
  maxWorkspaceFiles: 1000,
  backpressureBytes: 1024 * 1024,
  sendBudgetBytes: 64 * 1024 * 1024,
  replayCacheBytes: 32 * 1024 * 1024,
  stopGraceMs: 250,
  restoreTimeoutMs: 60_000,
  workerHeapMb: 256,
  shutdownGraceMs: 5_000,
  logLevel: 'info',
  store: 'level',
  natsUrls: [],
  jetstreamPrefix: 'vms',
  jetstreamReplicas: 1,
  nodeId: '',
  nodeLeaseMs: 5_000,
  nodeHeartbeatMs: 1_000,
  forwardTimeoutMs: 15_000,
});

type NumericKey = { [K in keyof Config]: Config[K] extends number ? K : never }[keyof Config];

/** Environment variable → numeric option, with the smallest value that makes sense. */
const NUMERIC_ENV: ReadonlyArray<[string, NumericKey, number]> = [
  ['VMSTREAM_PORT', 'port', 0],
  ['VMSTREAM_WORKERS', 'workers', 1],
  ['VMSTREAM_SANDBOX_PROCESSES', 'sandboxProcesses', 1],
  ['VMSTREAM_SANDBOX_IDLE_MS', 'sandboxIdleMs', 0],
  ['VMSTREAM_SANDBOX_MEMORY_MB', 'sandboxMemoryMb', 0],
  ['VMSTREAM_SANDBOX_UID', 'sandboxUid', 1],
  ['VMSTREAM_SANDBOX_GID', 'sandboxGid', 1],
  ['VMSTREAM_MAX_FRAME_BYTES', 'maxFrameBytes', 1024],
  ['VMSTREAM_DEFAULT_TIMEOUT_MS', 'defaultTimeoutMs', 1],
  ['VMSTREAM_MAX_TIMEOUT_MS', 'maxTimeoutMs', 1],
  ['VMSTREAM_MAX_EVENTS', 'maxEventsPerExecution', 2],
  ['VMSTREAM_MAX_OUTPUT_BYTES', 'maxBytesPerExecution', 1024],
  ['VMSTREAM_MAX_TEXT_CHARS', 'maxTextChars', 64],
  ['VMSTREAM_MAX_PREVIEW_CHARS', 'maxPreviewChars', 64],
  ['VMSTREAM_MAX_QUEUED', 'maxQueuedPerSession', 1],
  ['VMSTREAM_MAX_SESSIONS', 'maxOpenSessions', 1],
  ['VMSTREAM_MAX_FRAMES_PER_SEC', 'maxFramesPerSecond', 1],
  ['VMSTREAM_RETENTION_MS', 'retentionMs', 0],
  ['VMSTREAM_RETENTION_SWEEP_MS', 'retentionSweepMs', 10],
  ['VMSTREAM_MAX_RUN_FILE_BYTES', 'maxRunFileBytes', 1],
  ['VMSTREAM_MAX_WORKSPACE_BYTES', 'maxWorkspaceBytes', 1],
  ['VMSTREAM_MAX_WORKSPACE_FILES', 'maxWorkspaceFiles', 1],
  ['VMSTREAM_BACKPRESSURE_BYTES', 'backpressureBytes', 1024],
  ['VMSTREAM_SEND_BUDGET_BYTES', 'sendBudgetBytes', 1024],
  ['VMSTREAM_REPLAY_CACHE_BYTES', 'replayCacheBytes', 0],
  ['VMSTREAM_STOP_GRACE_MS', 'stopGraceMs', 1],
  ['VMSTREAM_RESTORE_TIMEOUT_MS', 'restoreTimeoutMs', 1],
  ['VMSTREAM_WORKER_HEAP_MB', 'workerHeapMb', 16],
  ['VMSTREAM_SHUTDOWN_GRACE_MS', 'shutdownGraceMs', 0],
  ['VMSTREAM_JS_REPLICAS', 'jetstreamReplicas', 1],
  ['VMSTREAM_NODE_LEASE_MS', 'nodeLeaseMs', 100],
  ['VMSTREAM_NODE_HEARTBEAT_MS', 'nodeHeartbeatMs', 10],
  ['VMSTREAM_FORWARD_TIMEOUT_MS', 'forwardTimeoutMs', 1],
];

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Config {
  const config: Config = { ...DEFAULTS };
  if (env.VMSTREAM_HOST) config.host = env.VMSTREAM_HOST;
  if (env.VMSTREAM_DATA) config.dataDir = env.VMSTREAM_DATA;
  if (env.VMSTREAM_WORKSPACE) config.workspaceDir = env.VMSTREAM_WORKSPACE;
  if (env.VMSTREAM_TOKEN) {
    if (env.VMSTREAM_TOKEN.length < 8) throw new ConfigError('VMSTREAM_TOKEN must be at least 8 characters');
    config.token = env.VMSTREAM_TOKEN;
  }
  if (env.VMSTREAM_TOKENS_FILE) config.tokensFile = env.VMSTREAM_TOKENS_FILE;
  config.console = isLoopback(config.host);
  if (env.VMSTREAM_CONSOLE) {
    if (!/^(0|1|true|false)$/.test(env.VMSTREAM_CONSOLE)) throw new ConfigError(`VMSTREAM_CONSOLE must be 1 or 0, got ${JSON.stringify(env.VMSTREAM_CONSOLE)}`);
    config.console = env.VMSTREAM_CONSOLE === '1' || env.VMSTREAM_CONSOLE === 'true';
  }
  if (env.VMSTREAM_ORIGINS) config.allowedOrigins = env.VMSTREAM_ORIGINS.split(',').map((origin) => origin.trim()).filter(Boolean);
  if (env.VMSTREAM_LOG_LEVEL) {
    if (!(LOG_LEVELS as readonly string[]).includes(env.VMSTREAM_LOG_LEVEL)) {
      throw new ConfigError(`VMSTREAM_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(env.VMSTREAM_LOG_LEVEL)}`);
    }
    config.logLevel = env.VMSTREAM_LOG_LEVEL as LogLevel;
  }
  if (env.VMSTREAM_SANDBOX) {
    if (!(SANDBOX_MODES as readonly string[]).includes(env.VMSTREAM_SANDBOX)) {
      throw new ConfigError(`VMSTREAM_SANDBOX must be one of ${SANDBOX_MODES.join(', ')}, got ${JSON.stringify(env.VMSTREAM_SANDBOX)}`);
    }
    config.sandbox = env.VMSTREAM_SANDBOX as SandboxMode;
  }
  if (config.sandbox === 'in-process' && !isLoopback(config.host)) {
    throw new ConfigError(`VMSTREAM_SANDBOX=in-process runs user code in the server's own threads, for benchmarks and debugging: loopback binds only, not VMSTREAM_HOST=${config.host}`);
  }
  if (env.VMSTREAM_TLS_CERT) config.tlsCert = env.VMSTREAM_TLS_CERT;
  if (env.VMSTREAM_TLS_KEY) config.tlsKey = env.VMSTREAM_TLS_KEY;
  if ((config.tlsCert === null) !== (config.tlsKey === null)) {
    throw new ConfigError('VMSTREAM_TLS_CERT and VMSTREAM_TLS_KEY must be given together');
  }
  for (const [name, key, minimum] of NUMERIC_ENV) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (!Number.isSafeInteger(value) || value < minimum) {
      throw new ConfigError(`${name} must be an integer >= ${minimum}, got ${JSON.stringify(raw)}`);
    }
    config[key] = value;
  }
  if (config.port > 65535) throw new ConfigError(`VMSTREAM_PORT must be at most 65535, got ${config.port}`);
  if (!isLoopback(config.host) && config.token === null && config.tokensFile === null) {
    throw new ConfigError(`VMSTREAM_HOST=${config.host} is not a loopback address: set VMSTREAM_TOKEN or VMSTREAM_TOKENS_FILE first`);
  }
  readStoreSettings(env, config);
  if (config.sandboxMemoryMb === 0 && env.VMSTREAM_SANDBOX_MEMORY_MB === undefined) config.sandboxMemoryMb = defaultSandboxMemoryMb(config);
  if (config.defaultTimeoutMs > config.maxTimeoutMs) {
    throw new ConfigError('VMSTREAM_DEFAULT_TIMEOUT_MS must not exceed VMSTREAM_MAX_TIMEOUT_MS');
  }
  return config;
}

const SANDBOX_MODES = ['auto', 'confined', 'unconfined', 'in-process'] as const;

/**
 * About twice what a sandbox process needs to start: V8 reserves address space far beyond what it
 * uses (a code range per isolate). Measured with host-main.js under bwrap: 1 worker starts at
 * 2 GiB (not 1.5), 2 workers at 2.5 GiB (not 2), 4 at 4 GiB (not 3); the defaults give 3, 4 and 6 GiB.
 */
export function defaultSandboxMemoryMb(config: Pick<Config, 'workers' | 'workerHeapMb'>): number {
  return 2048 + config.workers * (2 * config.workerHeapMb + 512);
}

function readStoreSettings(env: NodeJS.ProcessEnv, config: Config): void {
  if (env.VMSTREAM_STORE) {
    if (env.VMSTREAM_STORE !== 'level' && env.VMSTREAM_STORE !== 'jetstream') {
      throw new ConfigError(`VMSTREAM_STORE must be level or jetstream, got ${JSON.stringify(env.VMSTREAM_STORE)}`);
    }
    config.store = env.VMSTREAM_STORE;
  }
  if (env.VMSTREAM_NATS_URL) config.natsUrls = env.VMSTREAM_NATS_URL.split(',').map((url) => url.trim()).filter(Boolean);
  if (env.VMSTREAM_JS_PREFIX) {
    if (!/^[a-zA-Z0-9_-]+$/.test(env.VMSTREAM_JS_PREFIX)) throw new ConfigError(`VMSTREAM_JS_PREFIX takes only [a-zA-Z0-9_-], got ${JSON.stringify(env.VMSTREAM_JS_PREFIX)}`);
    config.jetstreamPrefix = env.VMSTREAM_JS_PREFIX;
  }
  config.nodeId = env.VMSTREAM_NODE_ID || `${os.hostname()}:${config.port}`;
  if (!env.VMSTREAM_FORWARD_TIMEOUT_MS) config.forwardTimeoutMs = 2 * config.nodeLeaseMs + 5_000;
  if (config.nodeHeartbeatMs >= config.nodeLeaseMs) {
    throw new ConfigError(`VMSTREAM_NODE_HEARTBEAT_MS (${config.nodeHeartbeatMs}) must be shorter than VMSTREAM_NODE_LEASE_MS (${config.nodeLeaseMs})`);
  }
  if (config.store === 'jetstream' && config.natsUrls.length === 0) {
    throw new ConfigError('VMSTREAM_STORE=jetstream needs VMSTREAM_NATS_URL (nats://host:port[,…])');
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}
