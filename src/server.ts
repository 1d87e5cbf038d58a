/**
 * Puts the service together: the store, the execution service (recovering what a previous process
 * left unfinished), the transport; and takes it apart again in the order that loses nothing.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { RetentionSweeper } from './sessions/retention.js';
import { ExecutionService } from './sessions/service.js';
import { LevelEventStore } from './store/level-store.js';
import { Authenticator, resolveToken } from './transport/auth.js';
import { TenantDirectory } from './transport/tenants.js';
import { UwsTransport } from './transport/uws-server.js';
import { WS_PATH } from '../protocol/types.js';

export interface Logger {
  info(message: string): void;
  error(message: string, error?: unknown): void;
}

export interface RunningServer {
  port: number;
  /** ws:// URL of the socket endpoint; carries the token only when it was generated. */
  url: string;
  service: ExecutionService;
  close(): Promise<void>;
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  await mkdir(config.dataDir, { recursive: true });
  const directory = config.tokensFile ? new TenantDirectory(config.tokensFile) : null;
  const tenants = directory ? await directory.load() : 0;
  // With a tokens file and no VMSTREAM_TOKEN there is no shared token, and none is generated.
  const shared = directory && config.token === null ? null : await resolveToken(config.token, config.dataDir);
  const store = new LevelEventStore(path.join(config.dataDir, 'events'));
  await store.open();
  const service = new ExecutionService(config, store, {
    onError: (context, error) => logger.error(`${context} failed`, error),
  });
  const recovered = await service.recover();
  if (recovered.crashed > 0) logger.info(`marked ${recovered.crashed} executions left unfinished by the previous process as crashed`);
  const transport = new UwsTransport(service, {
    host: config.host,
    port: config.port,
    maxFrameBytes: config.maxFrameBytes,
    backpressureBytes: config.backpressureBytes,
    maxFramesPerSecond: config.maxFramesPerSecond,
    authenticator: new Authenticator(shared?.token ?? null, directory),
    allowedOrigins: config.allowedOrigins,
    tls: config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : null,
    onInternalError: (error) => logger.error('request failed', error),
  });
  const retention = config.retentionMs > 0
    ? new RetentionSweeper(store, config.retentionMs, config.retentionSweepMs, (error) => logger.error('retention sweep failed', error))
    : null;
  const port = await transport.listen();
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const scheme = config.tlsCert ? 'wss' : 'ws';
  const url = `${scheme}://${host}:${port}${WS_PATH}${shared?.generated ? `?token=${encodeURIComponent(shared.token)}` : ''}`;
  if (directory) logger.info(`${tenants} tenants in ${config.tokensFile}`);

  let closing: Promise<void> | null = null;
  const close = () => (closing ??= (async () => {
    transport.stopListening();
    await service.shutdown();
    await retention?.stop();
    transport.closeSockets();
    await store.close();
  })());
  return { port, url, service, close };
}
