/**
 * The only module that loads uWebSockets.js (uws-exchange.ts beside it uses its types only), so
 * that moving to the upstream package is a one-line change. It authenticates the upgrade, hands
 * each socket's frames to its Connection, enforces the frame size limit with a proper 1009 close,
 * closes a revoked tenant's sockets, and turns uWS backpressure (getBufferedAmount, drain) into the
 * Connection's pause/resume. Every other request goes to the HTTP API through UwsExchange
 * (uws-exchange.ts), which adapts uWS's request and response to src/http/port.ts; a refused upgrade
 * is answered through it too, like any API error.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import { ProtocolError, socketClose, type ClosingCode } from '../../protocol/errors.js';
import { WS_PATH } from '../../protocol/types.js';
import { tokenFromRequest, type Authenticator } from '../auth/tokens.js';
import type { HttpHandler } from '../http/port.js';
import { sendError } from '../http/respond.js';
import type { ExecutionService } from '../sessions/service.js';
import { Connection } from './connection.js';
import { UwsExchange } from './uws-exchange.js';
import type { SendBudget } from './send-budget.js';

export interface TransportOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  backpressureBytes: number;
  /** The event bytes all sockets' buffers (and the server's event streams) may hold together (send-budget.ts). */
  sendBudget: SendBudget;
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
 * A WebSocket route served beside the protocol's: its module decides on each upgrade (a refusal is
 * a rejection with a ProtocolError, answered as an HTTP error, never an accepted socket closed at
 * once) and gets the socket through RouteSocket, so uWS stays in this file. Pings are not sent
 * automatically on these sockets: the route pings when it wants a delivery confirmed, and a pong
 * carries the ping's payload back.
 */
export interface SocketRoute {
  /** A uWS pattern, e.g. `/api/kernels/:id/channels`; `:name` segments arrive as `params`. */
  pattern: string;
  upgrade(request: UpgradeRequest): Promise<RouteAcceptance>;
}

export interface UpgradeRequest {
  params: string[];
  query: string;
  /** Header values by lower-case name. */
  headers: Readonly<Record<string, string>>;
}

export interface RouteAcceptance {
  /** Whose socket it is: revoking the tenant closes it. */
  tenant: string;
  /** The subprotocol chosen among those the client offered, or null for none. */
  protocol: string | null;
  attach(socket: RouteSocket): RouteHandler;
}

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

interface RouteSocketData { tenant: string; handler: RouteHandler | null; attach: (socket: RouteSocket) => RouteHandler }

/** uWS drops sends silently past maxBackpressure; ours pauses events long before that. */
const HARD_BACKPRESSURE_FACTOR = 64;
/** uWS closes with 1006 past maxPayloadLength; below it we close with 1009 ourselves. */
const HARD_PAYLOAD_FACTOR = 16;

export class UwsTransport {
  readonly #app: uWS.TemplatedApp;
  readonly #options: TransportOptions;
  readonly #service: ExecutionService;
  readonly #sockets = new Set<uWS.WebSocket<SocketData>>();
  readonly #routeSockets = new Set<uWS.WebSocket<RouteSocketData>>();
  readonly #budget: SendBudget;
  #listenSocket: uWS.us_listen_socket | null = null;

  constructor(service: ExecutionService, options: TransportOptions) {
    this.#service = service;
    this.#options = options;
    this.#budget = options.sendBudget;
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
    return this.#sockets.size + this.#routeSockets.size;
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
    for (const ws of [...this.#sockets]) end(ws, 'SHUTTING_DOWN', 'server shutting down');
    for (const ws of [...this.#routeSockets]) end(ws, 'SHUTTING_DOWN', 'server shutting down');
  }

  /** Closes every socket of a tenant whose token was revoked, with UNAUTHORIZED's 4401. */
  revokeTenant(tenant: string, reason: string): void {
    for (const ws of [...this.#sockets]) if (ws.getUserData().tenant === tenant) end(ws, 'UNAUTHORIZED', reason);
    for (const ws of [...this.#routeSockets]) if (ws.getUserData().tenant === tenant) end(ws, 'UNAUTHORIZED', reason);
  }

  #upgrade(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    // The exchange copies everything out of req now: it is invalid after this callback returns.
    const exchange = new UwsExchange(res, req, this.#options.maxFrameBytes);
    const { headers } = exchange;
    const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
    const refuse = (error: unknown) => sendError(exchange, error, this.#options.onInternalError);
    const problem = this.#handshakeProblem(headers);
    if (problem) {
      refuse(problem);
      return;
    }
    this.#options.authenticator.tenantOf(tokenFromRequest(headers.authorization ?? '', exchange.query)).then(
      (tenant) => {
        if (exchange.aborted) return;
        if (tenant === null) {
          refuse(new ProtocolError('UNAUTHORIZED', 'a valid token is required (Authorization: Bearer <token> or ?token=<token>)'));
          return;
        }
        const data: SocketData = { tenant, remote, connection: null };
        upgrade(res, data, headers, headers['sec-websocket-protocol'] ?? '', context);
      },
      refuse,
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
        this.#routeSockets.add(ws);
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
          end(ws, 'PAYLOAD_TOO_LARGE', `frame of ${message.byteLength} bytes is over the ${options.maxFrameBytes}-byte limit`);
          return;
        }
        ws.getUserData().handler?.message(new Uint8Array(message), isBinary);
      },
      pong: (ws, message) => ws.getUserData().handler?.pong(new Uint8Array(message)),
      drain: (ws) => ws.getUserData().handler?.drain(),
      close: (ws) => {
        this.#routeSockets.delete(ws);
        ws.getUserData().handler?.close();
      },
    });
  }

  #routeUpgrade(route: SocketRoute, res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const params = route.pattern.split('/').filter((part) => part.startsWith(':')).map((_, index) => req.getParameter(index));
    // The exchange copies everything out of req now: it is invalid after this callback returns.
    const exchange = new UwsExchange(res, req, this.#options.maxFrameBytes);
    const { headers } = exchange;
    const refuse = (error: unknown) => sendError(exchange, error, this.#options.onInternalError);
    const problem = this.#handshakeProblem(headers);
    if (problem) {
      refuse(problem);
      return;
    }
    route.upgrade({ params, query: exchange.query, headers }).then(
      ({ tenant, protocol, attach }) => {
        if (exchange.aborted) return;
        const data: RouteSocketData = { tenant, handler: null, attach };
        upgrade(res, data, headers, protocol ?? '', context);
      },
      refuse,
    );
  }

  /**
   * Why an upgrade is refused before its token is looked at: an Origin not allowed, or a handshake
   * whose Connection header lacks `Upgrade` (RFC 6455 §4.2.1). uWS marks a request whose Connection
   * is `close` to be closed once answered, and an upgrade answered after an await (see upgrade()
   * below) would then open a socket on a connection uWS has already closed: one that never
   * closes for us.
   */
  #handshakeProblem(headers: Readonly<Record<string, string>>): ProtocolError | null {
    const origin = headers.origin ?? '';
    if (origin !== '' && this.#options.allowedOrigins.length > 0 && !this.#options.allowedOrigins.includes(origin)) {
      return new ProtocolError('FORBIDDEN', `origin ${origin} is not allowed`);
    }
    if (!/(?:^|,)\s*upgrade\s*(?:,|$)/i.test(headers.connection ?? '')) {
      return new ProtocolError('BAD_REQUEST', 'connection: a WebSocket handshake carries `Connection: Upgrade`');
    }
    return null;
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
        budget: this.#budget,
        maxFramesPerSecond: this.#options.maxFramesPerSecond,
        onInternalError: this.#options.onInternalError,
      },
    );
  }

  #message(ws: uWS.WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean): void {
    if (message.byteLength > this.#options.maxFrameBytes) {
      end(ws, 'PAYLOAD_TOO_LARGE', `frame of ${message.byteLength} bytes is over the ${this.#options.maxFrameBytes}-byte limit`);
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

/**
 * Answers an upgrade whose decision was awaited, deliberately outside res.cork. In uWS up to 20.79,
 * HttpResponse::cork() checks after its callback whether the callback upgraded the socket by
 * comparing addresses; the upgrade reallocates the socket in place (a WebSocket's data is smaller
 * than an HTTP response's), so cork() takes the new socket for the old response and reads its HTTP
 * state out of memory that now belongs to the WebSocket or to the allocator. When the stray bits
 * read as "connection: close, response done", it shuts the socket down right after `open`: the
 * client sees 1006 and no frame (uNetworking/uWebSockets#1928, fixed upstream by #1929, fe7c01a,
 * in no uWS.js build we can install). Whatever the heap held decided it: test/upgrade-async.test.ts
 * makes glibc fill freed memory so that it always does. Outside a cork the 101 is written uncorked
 * and uWS prints its "writes must be made from within a corked callback" warning for each such
 * upgrade (a tenants-file token seen for the first time: its scrypt check; a Jupyter channel).
 * One decided before uWS regains control (the shared token, a remembered tenants-file token: only
 * promises settle on the way) is corked by uWS's own upgrade callback and prints nothing.
 */
function upgrade<T>(res: uWS.HttpResponse, data: T, headers: Readonly<Record<string, string>>, protocol: string, context: uWS.us_socket_context_t): void {
  res.upgrade(data, headers['sec-websocket-key'] ?? '', protocol, headers['sec-websocket-extensions'] ?? '', context);
}

/** Ends a socket with the close code protocol/errors.ts gives the error. */
function end(ws: uWS.WebSocket<SocketData> | uWS.WebSocket<RouteSocketData>, code: ClosingCode, message: string): void {
  const close = socketClose(code, message);
  // What the connection queued this turn goes out before the close frame.
  const data = ws.getUserData();
  if ('connection' in data) data.connection?.flush();
  ws.end(close.code, close.reason);
}
