/**
 * EXPERIMENT (replay-steady): a bare uWS server that answers any frame with the frames captured
 * from one vmstream replay (a file of 4-byte big-endian lengths, each followed by one frame's
 * bytes), sent as push's bare server sends: corked slices, pausing above 256 KiB buffered.
 * `node dist/bench/servers/bare-replayed.js FILE` prints {"type":"ready","port":N}.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import type { WebSocket } from '@trufflesuite/uws-js-unofficial';
import { readFileSync } from 'node:fs';
import { bindToParent, sendToParent } from '../harness/child.js';

const PUSH_THRESHOLD = 256 * 1024;
const SLICE = 2048;

function framesOf(file: string): Uint8Array[] {
  const bytes = readFileSync(file);
  const frames: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    frames.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return frames;
}

const frames = framesOf(process.argv[2]!);

interface SocketData {
  sent: number;
  active: boolean;
  scheduled: boolean;
  open: boolean;
}
type Socket = WebSocket<SocketData>;

function slice(ws: Socket, data: SocketData): void {
  data.scheduled = false;
  if (!data.open || !data.active) return;
  ws.cork(() => {
    const end = Math.min(frames.length, data.sent + SLICE);
    while (data.sent < end && ws.getBufferedAmount() < PUSH_THRESHOLD) ws.send(frames[data.sent++]!, true);
  });
  if (data.sent >= frames.length) data.active = false;
  else if (ws.getBufferedAmount() < PUSH_THRESHOLD) schedule(ws, data);
}

function schedule(ws: Socket, data: SocketData): void {
  if (data.scheduled) return;
  data.scheduled = true;
  setImmediate(slice, ws, data);
}

const app = uWS.App().ws<SocketData>('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 1024 * 1024,
  maxBackpressure: 16 * 1024 * 1024,
  idleTimeout: 0,
  upgrade: (res, req, context) => {
    res.upgrade<SocketData>(
      { sent: 0, active: false, scheduled: false, open: true },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  message: (ws) => {
    const data = ws.getUserData();
    data.sent = 0;
    data.active = true;
    slice(ws, data);
  },
  drain: (ws) => {
    if (ws.getBufferedAmount() < PUSH_THRESHOLD) schedule(ws, ws.getUserData());
  },
  close: (ws) => {
    ws.getUserData().open = false;
  },
});

bindToParent();
app.listen('127.0.0.1', 0, (token) => {
  process.on('SIGTERM', () => process.exit(0));
  void sendToParent({ type: 'ready', port: uWS.us_socket_local_port(token) });
});
