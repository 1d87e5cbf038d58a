/**
 * Warms a load generator's receive path before it measures: a fresh process decodes its first
 * hundred thousand frames several times slower than its millionth (JIT), which a one-shot stream of
 * 200 000 events (a replay lasts ~0.3 s) would count against the server. An in-process `ws` server
 * pushes event-shaped frames over loopback to a client of this process, through the same receive
 * code the measurement uses, and nothing of it touches the server under test.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { eventFrame } from '../harness/frames.js';
import { connect } from './connect.js';

const SLICE = 1024;

/**
 * Streams `frames` event frames, then {op:'end'}, to a client of this process; `consume` reads them
 * off the socket with the driver's own code and resolves at the end frame.
 */
export async function warmClient(frames: number, consume: (ws: WebSocket) => Promise<void>): Promise<void> {
  if (frames <= 0) return;
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(server, 'listening');
  server.on('connection', (socket) => {
    let sent = 0;
    // In slices, pausing on the socket's buffer, so the client side gets the event loop too.
    const slice = (): void => {
      const ts = Date.now();
      for (let i = 0; i < SLICE && sent < frames; i++) socket.send(encodeFrame(eventFrame(++sent, ts)));
      if (sent < frames) setTimeout(slice, socket.bufferedAmount > 256 * 1024 ? 1 : 0);
      else socket.send(encodeFrame({ op: 'end' }));
    };
    slice();
  });
  try {
    const ws = await connect(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      await consume(ws);
    } finally {
      ws.terminate();
    }
  } finally {
    server.close();
  }
}

/** A plain consumer for `warmClient`: decodes every frame until the end frame. */
export function decodeUntilEnd(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    ws.on('message', (data: Buffer) => {
      if ((decodeValue(data) as { op?: unknown }).op === 'end') resolve();
    });
    ws.on('close', () => resolve());
  });
}
