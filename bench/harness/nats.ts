/**
 * A nats-server with JetStream for the bench (`nats-server -a 127.0.0.1 -p <free> -js -sd <dir>`, the
 * way test/helpers/nats.ts starts one for the tests), started through Procs so that it is stopped by
 * its pid with everything else a step started. Debian 12's nats-server 2.9; `npm test` installs it
 * (scripts/system-packages.mjs).
 */
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Child, Procs } from './procs.js';

const READY_TIMEOUT_MS = 15_000;

export interface Nats {
  child: Child;
  url: string;
  storeDir: string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now (the kernel's pick, released at once). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves once something accepts TCP connections on the port, retried on refusal. */
export async function waitForPort(port: number, timeoutMs: number, exited?: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited?.then(() => (gone = true));
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    if (gone) throw new Error(`the process that was to listen on port ${port} exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
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
