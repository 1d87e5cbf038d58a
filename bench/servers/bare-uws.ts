/**
 * The bare uWS server behind the echo and push baselines: no sessions, no store, no validation, only
 * what any vmstream reply costs at least (decode a msgpack frame, encode one, send it). A standalone
 * program, so it may import uWS itself; src/ keeps its single uWS module.
 *
 * Protocol (all msgpack maps):
 *   any frame without op 'push' → the same frame re-encoded and sent back (one frame per frame);
 *   {op:'push', count, ms}      → event frames pushed one way until `count` are sent or `ms` pass,
 *                                 then {op:'end', sent}.
 *
 * Run alone: `node dist/bench/servers/bare-uws.js [port]` prints {"type":"ready","port":N}.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import type { WebSocket } from '@trufflesuite/uws-js-unofficial';
import { bindToParent, sendToParent } from '../harness/child.js';
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import { eventFrame } from '../harness/frames.js';

/**
 * Stop writing once this much sits in the socket's user-space buffer and go on in `drain`: enough to
 * keep the kernel buffer full between event-loop turns, small enough to bound memory. Far below
 * MAX_BACKPRESSURE, where uWS would silently drop a send (shared/README).
 */
const PUSH_THRESHOLD = 256 * 1024;
const MAX_BACKPRESSURE = 16 * 1024 * 1024;
/** Frames per corked slice; between slices the loop turns, so a close or a timer is not starved. */
const SLICE = 2048;

interface Push {
  sent: number;
  count: number;
  deadline: number;
  dropped: number;
  scheduled: boolean;
}

interface SocketData {
  push: Push | null;
  open: boolean;
}

type Socket = WebSocket<SocketData>;

// uWS throws on any call to a closed socket, so deferred work carries the socket's data and checks
// `open` before touching `ws`.
function pushSlice(ws: Socket, data: SocketData): void {
  const push = data.push;
  if (!push) return;
  push.scheduled = false;
  let finished = false;
  ws.cork(() => {
    const now = Date.now();
    const end = Math.min(push.count, push.sent + SLICE);
    while (push.sent < end && ws.getBufferedAmount() < PUSH_THRESHOLD) {
      if (ws.send(encodeFrame(eventFrame(push.sent, now)), true) === 2) push.dropped++;
      push.sent++;
    }
    if (push.sent >= push.count || now >= push.deadline) {
      ws.send(encodeFrame({ op: 'end', sent: push.sent, dropped: push.dropped }), true);
      finished = true;
    }
  });
  if (finished) data.push = null;
  // Under the threshold: the client keeps up, so go on next turn; over it, `drain` resumes us.
  else if (ws.getBufferedAmount() < PUSH_THRESHOLD) schedule(ws, data);
}

function schedule(ws: Socket, data: SocketData): void {
  const push = data.push;
  if (!push || push.scheduled) return;
  push.scheduled = true;
  setImmediate(resumePush, ws, data);
}

function resumePush(ws: Socket, data: SocketData): void {
  if (data.open) pushSlice(ws, data);
}

function onMessage(ws: Socket, message: ArrayBuffer): void {
  const frame = decodeValue(new Uint8Array(message)) as { op?: unknown; count?: unknown; ms?: unknown };
  if (frame.op === 'push') {
    const count = Math.min(Number(frame.count) || 0, 100_000_000);
    const ms = Math.min(Number(frame.ms) || 0, 120_000);
    const data = ws.getUserData();
    data.push = { sent: 0, count, deadline: Date.now() + ms, dropped: 0, scheduled: false };
    pushSlice(ws, data);
    return;
  }
  ws.send(encodeFrame(frame), true);
}

const app = uWS.App().ws<SocketData>('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 1024 * 1024,
  maxBackpressure: MAX_BACKPRESSURE,
  idleTimeout: 0,
  upgrade: (res, req, context) => {
    res.upgrade<SocketData>(
      { push: null, open: true },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  message: onMessage,
  drain: (ws) => {
    if (ws.getBufferedAmount() < PUSH_THRESHOLD) schedule(ws, ws.getUserData());
  },
  close: (ws) => {
    const data = ws.getUserData();
    data.open = false;
    data.push = null;
  },
});

bindToParent();
const requestedPort = Number(process.argv[2] ?? 0);
app.listen('127.0.0.1', requestedPort, (token) => {
  if (!token) {
    void sendToParent({ type: 'error', message: `cannot listen on 127.0.0.1:${requestedPort}` }).then(() => process.exit(1));
    return;
  }
  process.on('SIGTERM', () => {
    uWS.us_listen_socket_close(token);
    process.exit(0);
  });
  void sendToParent({ type: 'ready', port: uWS.us_socket_local_port(token) });
});
