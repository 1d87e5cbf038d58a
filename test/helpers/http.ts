/**
 * The HTTP API from a test's side: Node's own fetch against a real server process, JSON in and out,
 * and a Server-Sent Events reader that parses the stream as a browser's EventSource would.
 */
import type { TestServer } from './server.js';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface RequestOptions {
  /** A JS value sent as JSON, or a string / bytes sent as they are. */
  body?: unknown;
  /** The token to send; null sends none. The server's by default. */
  token?: string | null;
  headers?: Record<string, string>;
}

export function baseUrl(server: TestServer): string {
  return `http://127.0.0.1:${server.port}`;
}

export class HttpClient {
  constructor(readonly base: string, readonly token: string | null) {}

  static of(server: TestServer, token: string | null = server.token): HttpClient {
    return new HttpClient(baseUrl(server), token);
  }

  async request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.token : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Uint8Array | undefined;
    if (typeof options.body === 'string' || options.body instanceof Uint8Array) body = options.body;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(`${this.base}${path}`, { method, headers, body });
    const text = await response.text();
    const type = response.headers.get('content-type') ?? '';
    return { status: response.status, headers: response.headers, body: type.startsWith('application/json') ? JSON.parse(text) : text };
  }

  get<T = any>(path: string, options?: RequestOptions) {
    return this.request<T>('GET', path, options);
  }

  post<T = any>(path: string, body?: unknown, options: RequestOptions = {}) {
    return this.request<T>('POST', path, { ...options, body });
  }

  delete<T = any>(path: string, options?: RequestOptions) {
    return this.request<T>('DELETE', path, options);
  }

  async createSession(name?: string): Promise<string> {
    const reply = await this.post('/api/v1/sessions', name === undefined ? {} : { name });
    if (reply.status !== 201) throw new Error(`session create: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body.session_id as string;
  }

  async repl(sessionId: string, code: string, extra: Record<string, unknown> = {}): Promise<any> {
    const reply = await this.post('/api/v1/executions/repl', { session_id: sessionId, code, ...extra });
    if (reply.status !== 201 && reply.status !== 200) throw new Error(`repl: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body;
  }

  /** Follows the execution's event stream to its end (`done` is durable then); returns its events. */
  async untilDone(executionId: string): Promise<any[]> {
    const stream = await openSse(`${this.base}/api/v1/executions/${executionId}/events`, this.token!);
    if (stream.status === 204) return [];
    return (await stream.messages).map((message) => JSON.parse(message.data));
  }
}

export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** Resolves with every message once the server ends the stream. */
  messages: Promise<SseMessage[]>;
  /** Messages parsed so far. */
  received: SseMessage[];
  /** Resolves once `count` messages have arrived. */
  waitFor(count: number): Promise<void>;
  abort(): void;
}

/** Opens an event stream; with `startReading`, the body is left unread until it resolves (to let buffers fill). */
export async function openSse(url: string, token: string, headers: Record<string, string> = {}, startReading?: Promise<unknown>): Promise<SseStream> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const received: SseMessage[] = [];
  const waiters: Array<{ count: number; resolve(): void }> = [];
  const notify = () => {
    for (const waiter of [...waiters]) if (received.length >= waiter.count) { waiters.splice(waiters.indexOf(waiter), 1); waiter.resolve(); }
  };
  const messages = (async () => {
    if (!response.body) return received;
    await startReading;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = parseBlock(block);
          if (message) received.push(message);
        }
        notify();
      }
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    }
    return received;
  })();
  return {
    status: response.status,
    headers: response.headers,
    messages,
    received,
    waitFor: (count) => new Promise<void>((resolve) => { waiters.push({ count, resolve }); notify(); }),
    abort: () => controller.abort(),
  };
}

/** One SSE block: comments and `retry:` alone make no message. */
export function parseBlock(block: string): SseMessage | null {
  const message: SseMessage = { data: '' };
  let hasData = false;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') { message.data += (hasData ? '\n' : '') + value; hasData = true; }
    else if (field === 'id') message.id = value;
    else if (field === 'event') message.event = value;
  }
  return hasData ? message : null;
}
