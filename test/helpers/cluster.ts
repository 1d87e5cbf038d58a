/**
 * A 3-node vmstream cluster on loopback for a test: one nats-server (the file's), three server
 * processes (VMSTREAM_STORE=jetstream, node ids `node-0`…, one JetStream prefix, one workspace and
 * the same token, each its own port and data folder), and a round-robin TCP front so that
 * consecutive client connections land on different nodes.
 *
 * `VMSTREAM_TEST_TARGET=cluster` makes startServer (server.ts) start one of these wherever a test
 * asks for a server: the protocol and end-to-end files then run unchanged against a cluster. Its
 * `kill()` kills every node (a restart over the same data folder starts them again with their ids);
 * tests about one node's loss use startCluster and `nodes[i]` directly.
 */
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { TestNats } from './nats.js';
import { fileNats, startProcess, tempDir, TOKEN, type ServerOptions, type TestServer } from './server.js';

export interface ClusterOptions extends ServerOptions {
  /** Nodes to start (3). */
  nodes?: number;
}

export interface TestCluster {
  nats: TestNats;
  nodes: TestServer[];
  /** The round-robin front: ws://…/v1/ws and http://… through it reach node 0, 1, 2, 0, … */
  front: RoundRobinFront;
  url: string;
  port: number;
  dataDir: string;
  workspaceDir: string;
  prefix: string;
  /** The env a node `index` was started with (to start it again, as the same node). */
  nodeEnv(index: number): Record<string, string>;
  /** Starts node `index` again (after a kill), same id, port changes. */
  restartNode(index: number): Promise<TestServer>;
  /** Every node's stderr, labelled. */
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  kill(): Promise<void>;
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const nats = await fileNats();
  const dataDir = options.dataDir ?? tempDir('cluster');
  const workspaceDir = options.workspaceDir ?? path.join(dataDir, '..', `${path.basename(dataDir)}-ws`);
  mkdirSync(workspaceDir, { recursive: true });
  const prefix = path.basename(dataDir).replace(/[^a-zA-Z0-9_-]/g, '_');
  const count = options.nodes ?? 3;
  const nodeEnv = (index: number): Record<string, string> => ({
    VMSTREAM_STORE: 'jetstream',
    VMSTREAM_NATS_URL: nats.url,
    VMSTREAM_JS_PREFIX: prefix,
    VMSTREAM_NODE_ID: `node-${index}`,
    ...options.env,
  });
  const startNode = (index: number) => startProcess({ ...options, dataDir: path.join(dataDir, `node-${index}`), workspaceDir, env: nodeEnv(index) });
  // One after the other: three servers booting at once on two cores only slow each other down.
  const nodes: TestServer[] = [];
  try {
    for (let index = 0; index < count; index++) nodes.push(await startNode(index));
  } catch (error) {
    await Promise.all(nodes.map((node) => node.kill()));
    throw error;
  }
  const front = await RoundRobinFront.start(nodes.map((node) => node.port));
  const wsPath = new URL(nodes[0]!.url);
  wsPath.port = String(front.port);
  return {
    nats,
    nodes,
    front,
    url: wsPath.toString(),
    port: front.port,
    dataDir,
    workspaceDir,
    prefix,
    nodeEnv,
    async restartNode(index) {
      const node = await startNode(index);
      nodes[index] = node;
      front.ports[index] = node.port;
      return node;
    },
    stderr: () => nodes.map((node, index) => `--- node-${index}\n${node.stderr()}`).join('\n'),
    async stop(signal) {
      const codes = await Promise.all(nodes.map((node) => node.stop(signal)));
      await front.close();
      return codes.find((code) => code !== 0) ?? codes[0] ?? null;
    },
    async kill() {
      await Promise.all(nodes.map((node) => node.kill()));
      await front.close();
    },
  };
}

/** A cluster dressed as one server, for test files written against startServer. */
export async function startClusterServer(options: ServerOptions): Promise<TestServer> {
  const cluster = await startCluster(options);
  return {
    url: cluster.url,
    port: cluster.port,
    token: TOKEN,
    dataDir: cluster.dataDir,
    workspaceDir: cluster.workspaceDir,
    process: cluster.nodes[0]!.process,
    nodes: cluster.nodes,
    stderr: () => cluster.stderr(),
    stop: (signal) => cluster.stop(signal),
    kill: () => cluster.kill(),
  };
}

/**
 * Passes each TCP connection through to the next node in turn. A node that refuses (killed) is
 * skipped for that connection, so clients keep reaching the live ones.
 */
export class RoundRobinFront {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly ports: number[];
  #next = 0;

  private constructor(server: net.Server, ports: number[]) {
    this.#server = server;
    this.ports = ports;
  }

  static async start(ports: number[]): Promise<RoundRobinFront> {
    const server = net.createServer();
    const front = new RoundRobinFront(server, [...ports]);
    server.on('connection', (client) => front.#accept(client, 0));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return front;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket, tries: number): void {
    client.pause();
    const port = this.ports[this.#next++ % this.ports.length]!;
    const upstream = net.connect(port, '127.0.0.1');
    const track = (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    };
    upstream.once('error', (error) => {
      if (tries + 1 < this.ports.length && !client.destroyed && (error as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
        this.#accept(client, tries + 1);
        return;
      }
      client.destroy();
    });
    upstream.once('connect', () => {
      track(client);
      track(upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }
}
