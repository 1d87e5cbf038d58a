/**
 * Opening a socket on any platform. Browsers (and Node 22) have a global WebSocket; Node 20 has
 * none, so `ws` is loaded there, by a computed specifier that bundlers leave alone: a browser build
 * never contains it. Browsers cannot set headers on an upgrade, so the token goes in `?token=`;
 * with `ws` it goes in `Authorization` and stays out of the URL.
 */
import { WS_PATH } from '../../protocol/types.js';
import { ConnectionError, refusalCode } from './errors.js';

/** The part of the WHATWG WebSocket (which `ws` also implements) that the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: { message?: string; error?: unknown }) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, ...rest: any[]) => WebSocketLike;

export interface Target {
  /** The socket URL without a token. */
  url: string;
  token: string | undefined;
}

/**
 * Accepts what a person would paste: the `ws://…/v1/ws?token=…` the server prints, or the console's
 * `http://host:port/?token=…`; http(s) becomes ws(s) and an empty path becomes the socket path.
 */
export function resolveTarget(input: string, token?: string): Target {
  let url: URL;
  try {
    url = new URL(input);
  } catch (error) {
    throw new TypeError(`not a URL: ${JSON.stringify(input)}`, { cause: error });
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`not a ws:, wss:, http: or https: URL: ${JSON.stringify(input)}`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = WS_PATH;
  const fromUrl = url.searchParams.get('token') ?? undefined;
  url.searchParams.delete('token');
  return { url: url.toString(), token: token ?? (fromUrl || undefined) };
}

let nodeWebSocket: Promise<WebSocketConstructor> | null = null;

function platformWebSocket(): { ctor: WebSocketConstructor; native: boolean } | Promise<{ ctor: WebSocketConstructor; native: boolean }> {
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (native) return { ctor: native, native: true };
  const specifier = 'ws';
  nodeWebSocket ??= import(/* @vite-ignore */ specifier).then((module: { default: WebSocketConstructor }) => module.default);
  return nodeWebSocket.then((ctor) => ({ ctor, native: false }));
}

/** Opens one socket; rejects with a ConnectionError (and the HTTP status when it is known). */
export async function openSocket(target: Target, timeoutMs: number, custom?: WebSocketConstructor): Promise<WebSocketLike> {
  const { ctor, native } = custom ? { ctor: custom, native: !isWsPackage(custom) } : await platformWebSocket();
  let socket: WebSocketLike;
  if (native || target.token === undefined) {
    const url = new URL(target.url);
    if (target.token !== undefined) url.searchParams.set('token', target.token);
    socket = new ctor(url.toString());
  } else {
    socket = new ctor(target.url, { headers: { authorization: `Bearer ${target.token}` } });
  }
  socket.binaryType = native ? 'arraybuffer' : 'nodebuffer';
  return new Promise((resolve, reject) => {
    const fail = (error: ConnectionError) => {
      clearTimeout(timer);
      socket.onopen = socket.onerror = socket.onclose = null;
      try { socket.close(); } catch { /* not open yet */ }
      reject(error);
    };
    const timer = setTimeout(() => fail(new ConnectionError('CONNECTION_FAILED', `no connection to ${target.url} within ${timeoutMs} ms`)), timeoutMs);
    socket.onopen = () => {
      clearTimeout(timer);
      socket.onopen = socket.onerror = socket.onclose = null;
      resolve(socket);
    };
    // `ws` says why (refused, or "Unexpected server response: 401"); a browser says nothing.
    socket.onerror = (event) => {
      const message = event.message ?? (event.error as Error | undefined)?.message ?? 'connection failed';
      const match = /Unexpected server response: (\d{3})/.exec(message);
      const status = match ? Number(match[1]) : undefined;
      const refused = status === 401 ? 'the token was refused (HTTP 401)' : status === 403 ? 'this Origin is not allowed (HTTP 403)' : message;
      fail(new ConnectionError(refusalCode(status), `cannot connect to ${target.url}: ${refused}`, {
        cause: event.error ?? event,
        ...(status === undefined ? {} : { status }),
      }));
    };
    socket.onclose = (event) => fail(new ConnectionError('CONNECTION_FAILED', `cannot connect to ${target.url}: closed (${event.code})`));
  });
}

/** `ws` takes options (headers) as its second argument; a WHATWG WebSocket takes protocols. */
function isWsPackage(ctor: WebSocketConstructor): boolean {
  return typeof (ctor as unknown as { createWebSocketStream?: unknown }).createWebSocketStream === 'function'
    || 'Server' in ctor || 'WebSocketServer' in ctor;
}
