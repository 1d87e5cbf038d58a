/**
 * The only module that imports uWebSockets.js, so that moving to the upstream package is a one-line
 * change. It authenticates the upgrade, hands each socket's frames to its Connection, enforces the
 * frame size limit with a proper 1009 close, and turns uWS backpressure (getBufferedAmount, drain)
 * into the Connection's pause/resume. Every other request goes to the HTTP API through
 * UwsExchange, which adapts uWS's request and response to src/http/port.ts.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import { CLOSE_FRAME_TOO_LARGE, CLOSE_GOING_AWAY, ProtocolError, type ErrorCode } from '../../protocol/errors.js';
import { WS_PATH } from '../../protocol/types.js';
import type { HttpHandler, HttpRequest, HttpResponse } from '../http/port.js';
import type { ExecutionService } from '../sessions/service.js';
import { tokenFromRequest, type Authenticator } from './auth.js';
import { Connection } from './connection.js';

export interface TransportOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  backpressureBytes: number;
  maxFramesPerSecond: number;
  authenticator: Authenticator;
  allowedOrigins: string[];
  tls: { cert: string; key: string } | null;
  /** Every request that is not a socket upgrade; bodies are limited to maxFrameBytes. */
  http: HttpHandler;
  /** WebSocket routes beside the protocol's own (the Jupyter kernel channels), each with its own auth. */
  socketRoutes?: SocketRoute[];
  onSocket?(event: 'open' | 'close', tenant: string, remote: string): void;
  onInternalError(error: unknown): void;
}

/** The native module exports this option, its typings only as a type-level enum. */
const EXCLUSIVE_PORT = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT: number }).LIBUS_LISTEN_EXCLUSIVE_PORT;

interface SocketData { tenant: string; remote: string; connection: Connection | null }

/**
 * A WebSocket route served beside the protocol's: its module decides on each upgrade (a refusal is an
 * HTTP status, never an accepted socket closed at once) and gets the socket through RouteSocket, so
 * uWS stays in this file. Pings are not sent automatically on these sockets: the route pings when it
 * wants a delivery confirmed, and a pong carries the ping's payload back.
 */
export interface SocketRoute {
  /** A uWS pattern, e.g. `/api/kernels/:id/channels`; `:name` segments arrive as `params`. */
  pattern: string;
  upgrade(request: UpgradeRequest): Promise<UpgradeDecision>;
}

export interface UpgradeRequest {
  params: string[];
  query: string;
  /** Header values by lower-case name. */
  headers: Record<string, string>;
  remote: string;
}

export type UpgradeDecision =
  | { refuse: 401 | 403 | 404; code: ErrorCode; message: string }
  | { protocol: string | null; attach(socket: RouteSocket): RouteHandler };

export interface RouteSocket {
  /** 0: sent, 1: sent and buffered, 2: dropped (past the hard backpressure limit). */
  send(data: string | Uint8Array, isBinary: boolean): number;
  ping(payload: string): void;
  bufferedAmount(): number;
  cork(fn: () => void): void;
  end(code: number, reason: string): void;
}

export interface RouteHandler {
  message(data: Uint8Array, isBinary: boolean): void;
  pong(payload: Uint8Array): void;
  drain(): void;
  close(): void;
}

interface RouteSocketData { handler: RouteHandler | null; attach: (socket: RouteSocket) => RouteHandler }

const REFUSALS: Readonly<Record<number, string>> = { 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found' };

/** uWS drops sends silently past maxBackpressure; ours pauses events long before that. */
const HARD_BACKPRESSURE_FACTOR = 64;
/** uWS closes with 1006 past maxPayloadLength; below it we close with 1009 ourselves. */
const HARD_PAYLOAD_FACTOR = 16;

export class UwsTransport {
  readonly #app: uWS.TemplatedApp;
  readonly #options: TransportOptions;
  readonly #service: ExecutionService;
  readonly #sockets = new Set<uWS.WebSocket<unknown>>();
  #listenSocket: uWS.us_listen_socket | null = null;

  constructor(service: ExecutionService, options: TransportOptions) {
    this.#service = service;
    this.#options = options;
    this.#app = options.tls ? uWS.SSLApp({ cert_file_name: options.tls.cert, key_file_name: options.tls.key }) : uWS.App();
    this.#app.ws<SocketData>(WS_PATH, {
      ...socketLimits(options),
      idleTimeout: 120,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => this.#upgrade(res, req, context),
      open: (ws) => this.#open(ws),
      message: (ws, message, isBinary) => this.#message(ws, message, isBinary),
      drain: (ws) => ws.getUserData().connection?.drained(),
      close: (ws) => this.#close(ws),
    });
    for (const route of options.socketRoutes ?? []) this.#addRoute(route);
    this.#app.any('/*', (res, req) => {
      const exchange = new UwsExchange(res, req, options.maxFrameBytes);
      options.http.handle(exchange, exchange);
    });
  }

  get socketCount(): number {
    return this.#sockets.size;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      // Exclusive: by default uSockets sets SO_REUSEPORT, and a second server on the same port
      // (or a new one started during the old one's shutdown) would silently share connections.
      // The typings lack the (host, port, options, cb) overload the native code has.
      const listen = this.#app.listen.bind(this.#app) as unknown as (
        host: string, port: number, options: number, cb: (socket: uWS.us_listen_socket | false) => void) => void;
      listen(this.#options.host, this.#options.port, EXCLUSIVE_PORT, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${this.#options.host}:${this.#options.port}`));
          return;
        }
        this.#listenSocket = socket;
        resolve(uWS.us_socket_local_port(socket));
      });
    });
  }

  /** Stops accepting connections. */
  stopListening(): void {
    if (this.#listenSocket) uWS.us_listen_socket_close(this.#listenSocket);
    this.#listenSocket = null;
  }

  /** Closes every socket with 1001 (going away). */
  closeSockets(): void {
    for (const ws of [...this.#sockets]) ws.end(CLOSE_GOING_AWAY, 'server shutting down');
  }

  #upgrade(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    // Everything read from req is read now: it is invalid after this callback returns.
    const token = tokenFromRequest(req.getHeader('authorization'), req.getQuery() ?? '');
    const origin = req.getHeader('origin');
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
    let aborted = false;
    res.onAborted(() => (aborted = true));
    if (origin !== '' && this.#options.allowedOrigins.length > 0 && !this.#options.allowedOrigins.includes(origin)) {
      refuse(res, '403 Forbidden', 'FORBIDDEN', `origin ${origin} is not allowed`);
      return;
    }
    this.#options.authenticator.tenantOf(token).then(
      (tenant) => {
        if (aborted) return;
        res.cork(() => {
          if (tenant === null) {
            refuse(res, '401 Unauthorized', 'UNAUTHORIZED', 'a valid token is required (Authorization: Bearer <token> or ?token=<token>)');
          } else {
            res.upgrade<SocketData>({ tenant, remote, connection: null }, key, protocol, extensions, context);
          }
        });
      },
      (error: unknown) => {
        this.#options.onInternalError(error);
        if (!aborted) res.cork(() => refuse(res, '500 Internal Server Error', 'INTERNAL', 'authentication failed'));
      },
    );
  }

  #addRoute(route: SocketRoute): void {
    const options = this.#options;
    this.#app.ws<RouteSocketData>(route.pattern, {
      ...socketLimits(options),
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => this.#routeUpgrade(route, res, req, context),
      open: (ws) => {
        this.#sockets.add(ws);
        const data = ws.getUserData();
        data.handler = data.attach({
          send: (payload, isBinary) => ws.send(payload, isBinary),
          ping: (payload) => ws.ping(payload),
          bufferedAmount: () => ws.getBufferedAmount(),
          cork: (fn) => ws.cork(fn),
          end: (code, reason) => ws.end(code, reason),
        });
      },
      message: (ws, message, isBinary) => {
        if (message.byteLength > options.maxFrameBytes) {
          ws.end(CLOSE_FRAME_TOO_LARGE, `frame of ${message.byteLength} bytes is over the ${options.maxFrameBytes}-byte limit`);
          return;
        }
        ws.getUserData().handler?.message(new Uint8Array(message), isBinary);
      },
      pong: (ws, message) => ws.getUserData().handler?.pong(new Uint8Array(message)),
      drain: (ws) => ws.getUserData().handler?.drain(),
      close: (ws) => {
        this.#sockets.delete(ws);
        ws.getUserData().handler?.close();
      },
    });
  }

  #routeUpgrade(route: SocketRoute, res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const headers: Record<string, string> = {};
    req.forEach((name, value) => (headers[name] = value));
    const params = route.pattern.split('/').filter((part) => part.startsWith(':')).map((_, index) => req.getParameter(index));
    const query = req.getQuery() ?? '';
    const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const origin = headers.origin ?? '';
    if (origin !== '' && this.#options.allowedOrigins.length > 0 && !this.#options.allowedOrigins.includes(origin)) {
      refuse(res, '403 Forbidden', 'FORBIDDEN', `origin ${origin} is not allowed`);
      return;
    }
    route.upgrade({ params, query, headers, remote }).then(
      (decision) => {
        if (aborted) return;
        res.cork(() => {
          if ('refuse' in decision) {
            refuse(res, REFUSALS[decision.refuse]!, decision.code, decision.message);
            return;
          }
          const data: RouteSocketData = { handler: null, attach: decision.attach };
          res.upgrade(data, headers['sec-websocket-key'] ?? '', decision.protocol ?? '', headers['sec-websocket-extensions'] ?? '', context);
        });
      },
      (error: unknown) => {
        this.#options.onInternalError(error);
        if (!aborted) res.cork(() => refuse(res, '500 Internal Server Error', 'INTERNAL', 'the upgrade failed'));
      },
    );
  }

  #open(ws: uWS.WebSocket<SocketData>): void {
    this.#sockets.add(ws);
    this.#options.onSocket?.('open', ws.getUserData().tenant, ws.getUserData().remote);
    ws.getUserData().connection = new Connection(
      {
        send: (frame) => ws.send(frame, true),
        bufferedAmount: () => ws.getBufferedAmount(),
        cork: (fn) => ws.cork(fn),
        end: (code, reason) => ws.end(code, reason),
      },
      this.#service,
      ws.getUserData().tenant,
      {
        backpressureBytes: this.#options.backpressureBytes,
        maxFramesPerSecond: this.#options.maxFramesPerSecond,
        onInternalError: this.#options.onInternalError,
      },
    );
  }

  #message(ws: uWS.WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean): void {
    if (message.byteLength > this.#options.maxFrameBytes) {
      ws.end(CLOSE_FRAME_TOO_LARGE, `frame of ${message.byteLength} bytes is over the ${this.#options.maxFrameBytes}-byte limit`);
      return;
    }
    ws.getUserData().connection?.receive(new Uint8Array(message), isBinary);
  }

  #close(ws: uWS.WebSocket<SocketData>): void {
    this.#sockets.delete(ws);
    ws.getUserData().connection?.closed();
    this.#options.onSocket?.('close', ws.getUserData().tenant, ws.getUserData().remote);
  }
}

/** The frame and buffer limits every WebSocket route shares. */
function socketLimits(options: TransportOptions) {
  return {
    maxPayloadLength: Math.max(options.maxFrameBytes * HARD_PAYLOAD_FACTOR, 16 * 1024 * 1024),
    maxBackpressure: Math.max(options.backpressureBytes * HARD_BACKPRESSURE_FACTOR, 64 * 1024 * 1024),
    closeOnBackpressureLimit: 0,
    compression: uWS.DISABLED,
  };
}

function refuse(res: uWS.HttpResponse, status: string, code: ErrorCode, message: string): void {
  const response = res.writeStatus(status).writeHeader('content-type', 'application/json');
  if (status.startsWith('401')) response.writeHeader('www-authenticate', 'Bearer');
  response.end(JSON.stringify({ error: { code, message } }));
}

const EMPTY_BODY = new Uint8Array(0);

/**
 * One HTTP request and its response, as src/http/port.ts sees them. Everything is copied out of
 * `req` in the constructor (uWS invalidates it when the handler returns), onAborted is registered
 * before anything can await, and every use of `res` after it was aborted or ended is a no-op
 * (uWS throws on those). The body is read from the start, chunks copied (uWS reuses their memory),
 * and refused as soon as it passes the limit: by Content-Length before a byte, or by count.
 */
class UwsExchange implements HttpRequest, HttpResponse {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: Record<string, string> = {};
  aborted = false;
  ended = false;
  readonly #res: uWS.HttpResponse;
  readonly #limit: number;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #body: 'reading' | 'done' | 'too-large' = 'done';
  #waiters: Array<{ resolve(body: Uint8Array): void; reject(error: unknown): void }> = [];
  #onAborted: Array<() => void> = [];

  constructor(res: uWS.HttpResponse, req: uWS.HttpRequest, limit: number) {
    this.#res = res;
    this.#limit = limit;
    this.method = req.getMethod().toUpperCase();
    this.path = req.getUrl();
    this.query = req.getQuery() ?? '';
    req.forEach((name, value) => (this.headers[name] = value));
    res.onAborted(() => this.#aborted());
    const length = Number(this.headers['content-length'] ?? 0);
    if (length > limit) this.#body = 'too-large';
    else if (length > 0 || this.headers['transfer-encoding'] !== undefined) {
      this.#body = 'reading';
      res.onData((chunk, isLast) => this.#data(chunk, isLast));
    }
  }

  body(): Promise<Uint8Array> {
    if (this.#body === 'too-large') return Promise.reject(this.#tooLarge());
    if (this.#body === 'done') return Promise.resolve(this.#chunks.length === 1 ? this.#chunks[0]! : EMPTY_BODY);
    if (this.aborted) return Promise.reject(new Error('request aborted'));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  cork(fn: () => void): void {
    if (!this.aborted && !this.ended) this.#res.cork(fn);
  }

  writeStatus(status: string): void {
    if (!this.aborted && !this.ended) this.#res.writeStatus(status);
  }

  writeHeader(name: string, value: string): void {
    if (!this.aborted && !this.ended) this.#res.writeHeader(name, value);
  }

  write(chunk: string): boolean {
    if (this.aborted || this.ended) return false;
    return this.#res.write(chunk);
  }

  end(body?: string, closeConnection = false): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    this.#res.end(body, closeConnection);
  }

  onWritable(handler: () => void): void {
    if (this.aborted || this.ended) return;
    this.#res.onWritable(() => {
      handler();
      return true;
    });
  }

  onAborted(handler: () => void): void {
    this.#onAborted.push(handler);
  }

  #data(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.#body !== 'reading') return;
    this.#size += chunk.byteLength;
    if (this.#size > this.#limit) {
      this.#body = 'too-large';
      this.#chunks = [];
      this.#settle();
      return;
    }
    this.#chunks.push(new Uint8Array(chunk.slice(0)));
    if (!isLast) return;
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    this.#body = 'done';
    this.#settle();
  }

  #settle(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) this.body().then(waiter.resolve, waiter.reject);
  }

  #tooLarge(): ProtocolError {
    return new ProtocolError('PAYLOAD_TOO_LARGE', `the body is over the ${this.#limit}-byte limit`);
  }

  #aborted(): void {
    this.aborted = true;
    for (const waiter of this.#waiters) waiter.reject(new Error('request aborted'));
    this.#waiters = [];
    for (const handler of this.#onAborted) handler();
  }
}
