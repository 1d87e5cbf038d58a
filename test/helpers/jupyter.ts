/**
 * Jupyter clients for tests: `@jupyterlab/services` (the client JupyterLab itself uses) given Node's
 * fetch and a `ws` WebSocket that records the pings it answers, and a raw kernel-channel socket that
 * speaks JSON messages, for what the library hides (half-open sockets, exact session ids, frames).
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { KernelManager, ServerConnection, SessionManager } from '@jupyterlab/services';
import WebSocket from 'ws';
import type { TestServer } from './server.js';

/** Every socket the library opened, newest last, so a test can see its pings or cut it. */
export const librarySockets: TracedSocket[] = [];

export class TracedSocket extends WebSocket {
  pings = 0;
  readonly #onPing: Array<() => void> = [];

  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    librarySockets.push(this);
    // ws has answered the ping (written its pong) before it emits 'ping'.
    this.on('ping', () => {
      this.pings++;
      for (const listener of this.#onPing.splice(0)) listener();
    });
  }

  /** Runs `fn` right after the next ping was answered. */
  afterNextPing(fn: () => void): void {
    this.#onPing.push(fn);
  }
}

export function settingsFor(port: number, token: string): ServerConnection.ISettings {
  return ServerConnection.makeSettings({
    baseUrl: `http://127.0.0.1:${port}/`,
    wsUrl: `ws://127.0.0.1:${port}/`,
    token,
    appendToken: true,
    WebSocket: TracedSocket as unknown as typeof globalThis.WebSocket,
    fetch,
    Request,
    Headers,
  });
}

export async function kernelManager(server: Pick<TestServer, 'port' | 'token'>): Promise<KernelManager> {
  const manager = new KernelManager({ serverSettings: settingsFor(server.port, server.token) });
  await manager.ready;
  return manager;
}

export async function sessionManager(server: Pick<TestServer, 'port' | 'token'>, kernels: KernelManager): Promise<SessionManager> {
  const manager = new SessionManager({ serverSettings: settingsFor(server.port, server.token), kernelManager: kernels });
  await manager.ready;
  return manager;
}

export interface JupyterMessage {
  channel: string;
  header: { msg_id: string; msg_type: string; session: string };
  parent_header: { msg_id?: string; msg_type?: string };
  content: any;
  metadata: any;
}

/** A raw `/api/kernels/{id}/channels` socket speaking JSON text frames. */
export class RawChannel {
  readonly messages: JupyterMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ predicate: (message: JupyterMessage) => boolean; resolve(message: JupyterMessage): void }> = [];

  private constructor(readonly socket: WebSocket, readonly session: string) {
    this.closed = new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString('utf8')) as JupyterMessage;
      this.messages.push(message);
      this.#waiters = this.#waiters.filter((waiter) => {
        if (!waiter.predicate(message)) return true;
        waiter.resolve(message);
        return false;
      });
    });
  }

  /** `autoPong: false`: a client that never answers a ping, so confirms nothing it received. */
  static async connect(port: number, kernelId: string, options: { token: string; session?: string; protocols?: string[]; autoPong?: boolean }): Promise<RawChannel> {
    const session = options.session ?? randomUUID();
    const url = `ws://127.0.0.1:${port}/api/kernels/${kernelId}/channels?session_id=${encodeURIComponent(session)}`;
    const socket = new WebSocket(url, options.protocols ?? [], { headers: { authorization: `token ${options.token}` }, autoPong: options.autoPong ?? true });
    // Listening before `open`: frames that came in the same read as the 101 are emitted (on the next
    // tick) before an awaiter of `open` runs, and a listener added then would never see them.
    const channel = new RawChannel(socket, session);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
    });
    return channel;
  }

  /** Sends a request; resolves with its msg_id. */
  send(msgType: string, content: Record<string, unknown>, channel = 'shell'): string {
    const msgId = randomUUID();
    const header = { msg_id: msgId, msg_type: msgType, session: this.session, username: 'test', date: new Date().toISOString(), version: '5.3' };
    this.socket.send(JSON.stringify({ channel, header, parent_header: {}, metadata: {}, content, buffers: [] }));
    return msgId;
  }

  /** The first message (already received or still to come) that matches. */
  waitFor(predicate: (message: JupyterMessage) => boolean): Promise<JupyterMessage> {
    const seen = this.messages.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }

  /** The reply to a request and its `status: idle`. */
  async reply(msgId: string): Promise<JupyterMessage> {
    const reply = await this.waitFor((message) => message.parent_header.msg_id === msgId && message.header.msg_type.endsWith('_reply'));
    await this.waitFor((message) => message.parent_header.msg_id === msgId && message.header.msg_type === 'status' && message.content.execution_state === 'idle');
    return reply;
  }

  /** What came for one request, of one type. */
  of(msgId: string, msgType: string): JupyterMessage[] {
    return this.messages.filter((message) => message.parent_header.msg_id === msgId && message.header.msg_type === msgType);
  }

  close(): Promise<unknown> {
    this.socket.close();
    return this.closed;
  }
}

/**
 * A TCP proxy that can freeze: from then on it forwards nothing either way and closes nothing, so
 * both ends see an open connection that no longer carries anything (a half-open socket).
 */
export class FreezingProxy {
  #frozen = false;
  readonly #sockets = new Set<net.Socket>();

  private constructor(readonly server: net.Server) {}

  static async start(targetPort: number): Promise<FreezingProxy> {
    const server = net.createServer();
    const proxy = new FreezingProxy(server);
    server.on('connection', (client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        proxy.#sockets.add(from);
        from.on('data', (chunk) => {
          if (!proxy.#frozen) to.write(chunk);
        });
        from.on('error', () => to.destroy());
        from.on('close', () => {
          if (!proxy.#frozen) to.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  freeze(): void {
    this.#frozen = true;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
