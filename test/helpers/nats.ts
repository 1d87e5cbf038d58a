/**
 * A nats-server with JetStream for one test file: `nats-server -a 127.0.0.1 -p <free> -js -sd <temp>`,
 * ended by its pid at teardown. `kill()` ends it with SIGKILL and `start()` brings it back on the same
 * port and store folder, which is how the tests make NATS crash under load.
 *
 * `npm test` installs Debian's nats-server (2.9) when missing (scripts/system-packages.mjs); a test never skips for want of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort, removeDir, tempDir } from './server.js';

type Tap = { teardown(fn: () => unknown): void };

export class TestNats {
  readonly port: number;
  readonly storeDir: string;
  /** The address it listens on: loopback, or a bridge's for nodes in network namespaces. */
  readonly host: string;
  #child: ChildProcess | undefined;

  private constructor(port: number, storeDir: string, host: string) {
    this.port = port;
    this.storeDir = storeDir;
    this.host = host;
  }

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  static async create(host = '127.0.0.1'): Promise<TestNats> {
    const nats = new TestNats(await freePort(), tempDir('nats'), host);
    await nats.start();
    return nats;
  }

  /** Starts nats-server (again) on this port and store, and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.#child) throw new Error('nats-server is already running');
    const child = spawn('nats-server', ['-a', this.host, '-p', String(this.port), '-js', '-sd', this.storeDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    this.#child = child;
    // A file-wide nats-server must not keep the test process alive: it is killed when that exits.
    child.unref();
    (child.stderr as unknown as { unref(): void }).unref();
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${stderr}`))));
    const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));
    await Promise.race([waitForPort(this.host, this.port), exited, spawnFailed]);
  }

  /** SIGKILL, as a crash: nothing is flushed or closed. Resolves once the process is gone. */
  async kill(): Promise<void> {
    await this.#end('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.#end('SIGTERM');
  }

  async #end(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    // Waiting for its exit must keep the test process alive (it was unref'd at start).
    child.ref();
    process.kill(child.pid!, signal);
    await gone;
  }
}

/** A nats-server for this test file, killed and its store removed at teardown. */
export async function natsFor(t: Tap, host?: string): Promise<TestNats> {
  const nats = await TestNats.create(host);
  t.teardown(async () => {
    await nats.kill();
    removeDir(nats.storeDir);
  });
  return nats;
}

/** Resolves when something accepts TCP connections on the port (retried on refusal, not on a clock). */
async function waitForPort(host: string, port: number): Promise<void> {
  for (;;) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (connected) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
