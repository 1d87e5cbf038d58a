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
import { resolveToken, TokenCheck } from './transport/auth.js';
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
  const { token, generated } = await resolveToken(config.token, config.dataDir);
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
    tokens: new TokenCheck(token),
    onInternalError: (error) => logger.error('request failed', error),
  });
  const retention = config.retentionMs > 0
    ? new RetentionSweeper(store, config.retentionMs, config.retentionSweepMs, (error) => logger.error('retention sweep failed', error))
    : null;
  const port = await transport.listen();
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `ws://${host}:${port}${WS_PATH}${generated ? `?token=${encodeURIComponent(token)}` : ''}`;

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
