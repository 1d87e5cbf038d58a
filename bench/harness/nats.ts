/**
 * A nats-server with JetStream for the bench (`nats-server -a 127.0.0.1 -p <free> -js -sd <dir>`, the
 * way test/helpers/nats.ts starts one for the tests), started through Procs so that it is stopped by
 * its pid with everything else a step started. Debian 12's nats-server 2.9; `npm test` installs it
 * (scripts/system-packages.mjs).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';
import type { Child, Procs } from './procs.js';

const READY_TIMEOUT_MS = 15_000;

export interface Nats {
  child: Child;
  url: string;
  storeDir: string;
  stop(): Promise<void>;
}

/** Starts nats-server -js with its store in `dir` (created), and waits until it accepts connections. */
export async function startNats(procs: Procs, dir: string, name = 'nats-server'): Promise<Nats> {
  const storeDir = join(dir, 'jetstream');
  mkdirSync(storeDir, { recursive: true });
  const port = await freePort();
  const child = procs.spawn(name, 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stderrFile: join(dir, 'nats-server.log') });
  try {
    await waitForPort(port, READY_TIMEOUT_MS, child.exited);
  } catch (error) {
    await child.stop();
    throw new Error(`nats-server did not start (is it installed? npm test installs it): ${(error as Error).message} ${child.stderrTail(600)}`);
  }
  return { child, url: `nats://127.0.0.1:${port}`, storeDir, stop: () => child.stop() };
}
