#!/usr/bin/env node
/**
 * `npm start` / `vmstream`: starts the server from the environment (see src/config.ts and the
 * README), prints one line with the URL to connect to, and shuts down cleanly on SIGINT/SIGTERM.
 * `vmstream repl|run|tail …` are clients instead (src/cli/commands.ts).
 */
import { configFromEnv, ConfigError } from '../config.js';
import { startServer, type Logger } from '../server.js';

const logger: Logger = {
  info: (message) => process.stderr.write(`vmstream: ${message}\n`),
  error: (message, error) => process.stderr.write(`vmstream: ${message}${error ? `: ${(error as Error).stack ?? String(error)}` : ''}\n`),
};

async function main(): Promise<void> {
  let config;
  try {
    config = configFromEnv();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`vmstream: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const server = await startServer(config, logger);
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(130);
    logger.info(`${signal}: shutting down`);
    server.close().then(() => process.exit(0), (error: unknown) => {
      logger.error('shutdown failed', error);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Printed last: whoever waits for this line may signal us at once.
  process.stdout.write(`vmstream listening on ${server.url}\n`);
}

const args = process.argv.slice(2);
if (args.length === 0 || args[0] === 'serve') {
  main().catch((error: unknown) => {
    logger.error('failed to start', error);
    process.exit(1);
  });
} else {
  import('./commands.js').then(({ runCommand }) => runCommand(args)).then((code) => process.exit(code), (error: unknown) => {
    logger.error('failed', error);
    process.exit(1);
  });
}
