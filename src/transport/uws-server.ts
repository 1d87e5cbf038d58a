/**
 * The only module that imports uWebSockets.js, so that moving to the upstream package is a one-line
 * change. It authenticates the upgrade, hands each socket's frames to its Connection, enforces the
 * frame size limit with a proper 1009 close, and turns uWS backpressure (getBufferedAmount, drain)
 * into the Connection's pause/resume.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import { CLOSE_FRAME_TOO_LARGE, CLOSE_GOING_AWAY, type ErrorCode } from '../../protocol/errors.js';
import { WS_PATH } from '../../protocol/types.js';
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
  onInternalError(error: unknown): void;
}

interface SocketData { tenant: string; connection: Connection | null }

/** uWS drops sends silently past maxBackpressure; ours pauses events long before that. */
const HARD_BACKPRESSURE_FACTOR = 64;
/** uWS closes with 1006 past maxPayloadLength; below it we close with 1009 ourselves. */
const HARD_PAYLOAD_FACTOR = 16;

export class UwsTransport {
  readonly #app: uWS.TemplatedApp;
  readonly #options: TransportOptions;
  readonly #service: ExecutionService;
  readonly #sockets = new Set<uWS.WebSocket<SocketData>>();
  #listenSocket: uWS.us_listen_socket | null = null;

  constructor(service: ExecutionService, options: TransportOptions) {
    this.#service = service;
    this.#options = options;
    this.#app = options.tls ? uWS.SSLApp({ cert_file_name: options.tls.cert, key_file_name: options.tls.key }) : uWS.App();
    this.#app.ws<SocketData>(WS_PATH, {
      maxPayloadLength: Math.max(options.maxFrameBytes * HARD_PAYLOAD_FACTOR, 16 * 1024 * 1024),
      maxBackpressure: Math.max(options.backpressureBytes * HARD_BACKPRESSURE_FACTOR, 64 * 1024 * 1024),
      closeOnBackpressureLimit: 0,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => this.#upgrade(res, req, context),
      open: (ws) => this.#open(ws),
      message: (ws, message, isBinary) => this.#message(ws, message, isBinary),
      drain: (ws) => ws.getUserData().connection?.drained(),
      close: (ws) => this.#close(ws),
    });
    this.#app.get('/healthz', (res) => {
      res.writeHeader('content-type', 'application/json').end('{"status":"ok"}');
    });
    this.#app.any('/*', (res, req) => {
      const url = req.getUrl();
      res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `no route ${url}` } }));
    });
  }

  get socketCount(): number {
    return this.#sockets.size;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#app.listen(this.#options.host, this.#options.port, (socket) => {
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
            res.upgrade<SocketData>({ tenant, connection: null }, key, protocol, extensions, context);
          }
        });
      },
      (error: unknown) => {
        this.#options.onInternalError(error);
        if (!aborted) res.cork(() => refuse(res, '500 Internal Server Error', 'INTERNAL', 'authentication failed'));
      },
    );
  }

  #open(ws: uWS.WebSocket<SocketData>): void {
    this.#sockets.add(ws);
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
  }
}

function refuse(res: uWS.HttpResponse, status: string, code: ErrorCode, message: string): void {
  const response = res.writeStatus(status).writeHeader('content-type', 'application/json');
  if (status.startsWith('401')) response.writeHeader('www-authenticate', 'Bearer');
  response.end(JSON.stringify({ error: { code, message } }));
}
