/**
 * Three clustered nats-servers with JetStream (`n0`, `n1`, `n2`) for one test file, on loopback,
 * where what the other two send to `n2` over the cluster's routes can be held back: `n2` then
 * falls behind its streams' leaders while still serving the clients connected to it, which is how
 * a test makes a replica stale on purpose.
 *
 * How: `n2` listens for routes behind a relay and advertises the relay's port; `n0` and `n1` are
 * routed to each other first, then `n2` starts with no routes of its own, so that every route to
 * it is one they dial through the relay (checked in its /routez). `holdInbound()` makes the relay
 * keep the bytes coming to `n2` (in order, nothing lost) until `releaseInbound()`; what `n2` sends
 * passes at once, so a request it forwards reaches the others and their answer waits in the relay.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, removeDir, tempDir } from './server.js';

type Tap = { teardown(fn: () => unknown): void };

interface NatsProcess {
  name: string;
  url: string;
  monitor: number;
  child: ChildProcess;
  /** The end of its log, for an error if it exits. */
  stderr: string;
}

export class TestNatsCluster {
  readonly #servers: NatsProcess[];
  readonly #relay: RouteRelay;
  readonly #dir: string;

  private constructor(servers: NatsProcess[], relay: RouteRelay, dir: string) {
    this.#servers = servers;
    this.#relay = relay;
    this.#dir = dir;
  }

  /** Server names, as stream info reports leaders and replicas. */
  get names(): string[] {
    return this.#servers.map((server) => server.name);
  }

  /** The client URL of server `index`. */
  url(index: number): string {
    return this.#servers[index]!.url;
  }

  /** The server whose inbound routes can be held (`n2`). */
  get heldName(): string {
    return this.#servers[2]!.name;
  }

  static async start(): Promise<TestNatsCluster> {
    const dir = tempDir('nats-cluster');
    const clusterPorts = [await freePort(), await freePort(), await freePort()];
    const relay = await RouteRelay.start(clusterPorts[2]!);
    const servers: NatsProcess[] = [];
    const routes = (index: number) => [clusterPorts[1 - index]!, relay.port].map((port) => `nats-route://127.0.0.1:${port}`);
    try {
      for (const index of [0, 1, 2]) {
        const name = `n${index}`;
        const [port, monitor] = [await freePort(), await freePort()];
        // JetStream wants n2 to have a route configured: its own, which it drops as soon as it sees itself.
        const cluster = index < 2 ? `routes: ${JSON.stringify(routes(index))}` : `advertise: "127.0.0.1:${relay.port}", routes: ["nats-route://127.0.0.1:${relay.port}"]`;
        const config = path.join(dir, `${name}.conf`);
        writeFileSync(config, [
          `server_name: ${name}`,
          `listen: "127.0.0.1:${port}"`,
          `http: "127.0.0.1:${monitor}"`,
          `jetstream { store_dir: ${JSON.stringify(path.join(dir, name))} }`,
          `cluster { name: vmstream, listen: "127.0.0.1:${clusterPorts[index]}", ${cluster} }`,
        ].join('\n'));
        const child = spawn('nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
        const server: NatsProcess = { name, url: `nats://127.0.0.1:${port}`, monitor, child, stderr: '' };
        child.stderr!.on('data', (chunk: Buffer) => (server.stderr = (server.stderr + chunk.toString()).slice(-4000)));
        servers.push(server);
        // n0 and n1 know each other before n2 exists: nobody ever tells n2 a route it would dial itself.
        if (index === 1) await Promise.all(servers.map((server) => until(server, (z) => routesOf(z) === 1, 'routez')));
      }
      const held = servers[2]!;
      await until(held, (z) => routesOf(z) === 2, 'routez');
      const routez = (await monitor(held, 'routez')) as { routes: Array<{ did_solicit: boolean }> };
      if (routez.routes.some((route) => route.did_solicit)) throw new Error('n2 dialled a route itself, around the relay');
      await Promise.all(servers.map((server) => until(server, (z) => Boolean((z as Jsz).meta_cluster?.leader), 'jsz')));
    } catch (error) {
      await stopAll(servers, relay);
      removeDir(dir);
      throw error;
    }
    return new TestNatsCluster(servers, relay, dir);
  }

  /** Holds back everything the other servers send to `n2` from now on. */
  holdInbound(): void {
    this.#relay.hold();
  }

  /** Delivers what was held, in order, and passes everything on again. */
  releaseInbound(): void {
    this.#relay.release();
  }

  async stop(): Promise<void> {
    await stopAll(this.#servers, this.#relay);
    removeDir(this.#dir);
  }
}

/** A 3-server NATS cluster for this test file, stopped and its stores removed at teardown. */
export async function natsClusterFor(t: Tap): Promise<TestNatsCluster> {
  const cluster = await TestNatsCluster.start();
  t.teardown(() => cluster.stop());
  return cluster;
}

interface Jsz {
  meta_cluster?: { leader?: string };
}

function routesOf(routez: unknown): number {
  return (routez as { num_routes: number }).num_routes;
}

async function monitor(server: NatsProcess, endpoint: string): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${server.monitor}/${endpoint}`);
  return response.json();
}

/** How long a server may take to start, or a cluster to form, before the test fails saying so. */
const UNTIL_MS = 60_000;

/** Polls a monitoring endpoint until `ready` says so (a server starting, a cluster forming). */
async function until(server: NatsProcess, ready: (body: unknown) => boolean, endpoint: string): Promise<void> {
  const deadline = Date.now() + UNTIL_MS;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`nats-server ${server.name}: /${endpoint} not ready after ${UNTIL_MS} ms`);
    if (server.child.exitCode !== null) throw new Error(`nats-server ${server.name} exited (${server.child.exitCode}): ${server.stderr}`);
    const body = await monitor(server, endpoint).catch(() => undefined);
    if (body !== undefined && ready(body)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopAll(servers: NatsProcess[], relay: RouteRelay): Promise<void> {
  relay.close();
  await Promise.all(servers.map(({ child }) => {
    if (child.exitCode !== null || child.signalCode !== null) return undefined;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid!, 'SIGKILL');
    return gone;
  }));
}

/** A TCP relay to one server's route port that can hold back what the dialling side sends. */
class RouteRelay {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  /** Per connection: the chunks held for the server while holding, in arrival order. */
  readonly #held = new Map<net.Socket, Buffer[]>();
  #holding = false;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(targetPort: number): Promise<RouteRelay> {
    const server = net.createServer();
    const relay = new RouteRelay(server);
    server.on('connection', (dialler) => relay.#accept(dialler, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  hold(): void {
    this.#holding = true;
  }

  release(): void {
    this.#holding = false;
    for (const [upstream, chunks] of this.#held) for (const chunk of chunks.splice(0)) upstream.write(chunk);
  }

  close(): void {
    this.#server.close();
    for (const socket of this.#sockets) socket.destroy();
  }

  #accept(dialler: net.Socket, targetPort: number): void {
    const upstream = net.connect(targetPort, '127.0.0.1');
    this.#sockets.add(dialler).add(upstream);
    this.#held.set(upstream, []);
    dialler.on('data', (chunk: Buffer) => {
      if (this.#holding) this.#held.get(upstream)!.push(chunk);
      else upstream.write(chunk);
    });
    upstream.pipe(dialler);
    const end = () => {
      dialler.destroy();
      upstream.destroy();
      this.#held.delete(upstream);
    };
    dialler.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }
}
