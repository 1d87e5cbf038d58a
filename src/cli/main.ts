#!/usr/bin/env -S node --max-semi-space-size=8 --min-semi-space-size=8
/**
 * `npm start` / `vmstream`: starts the server from the environment (see src/config.ts and the
 * README), prints one line with the URL to connect to on stdout (tools parse it: keep it exactly so),
 * logs JSON lines on stderr, and shuts down cleanly on SIGINT/SIGTERM. The shebang's flags are
 * src/cli/node-flags.ts's (why: there).
 * `vmstream repl|run|tail …` are clients instead (src/cli/commands.ts).
 */
import { readFileSync } from 'node:fs';
import { configFromEnv, ConfigError, type Config } from '../config.js';
import { createLogger } from '../ops/logger.js';
import { startServer } from '../server.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = configFromEnv();
  } catch (error) {
    if (error instanceof ConfigError) {
      // Before the log level is known: one plain line for the person who started it.
      process.stderr.write(`vmstream: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = await createLogger(config.logLevel);
  let server;
  try {
    server = await startServer(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, 'failed to start');
    process.exit(1);
  }
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(130);
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (process.stdout.isTTY) process.stdout.write(banner(config));
  // Printed last: whoever waits for this line may signal us at once.
  process.stdout.write(`vmstream listening on ${server.url}\n`);
  if (server.consoleUrl) process.stdout.write(`vmstream console at ${server.consoleUrl}\n`);
}

/** For a person at a terminal: what runs, where its data goes, how to see more; the URLs follow it. */
function banner(config: Config): string {
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const more = config.logLevel === 'debug' || config.logLevel === 'trace' ? '' : ' (VMSTREAM_LOG_LEVEL=debug logs the whole config)';
  return `vmstream ${version} · ${config.workers} workers · data in ${config.dataDir} · files in ${config.workspaceDir} · logs at ${config.logLevel}${more}\n`;
}

const args = process.argv.slice(2);
if (args.length === 0 || args[0] === 'serve') {
  main().catch((error: unknown) => {
    process.stderr.write(`vmstream: failed to start: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
} else {
  import('./commands.js').then(({ runCommand }) => runCommand(args)).then((code) => process.exit(code), (error: unknown) => {
    process.stderr.write(`vmstream: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
