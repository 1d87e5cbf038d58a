/**
 * Warms a load generator's receive path before it measures: a fresh process decodes its first
 * hundred thousand frames several times slower than its millionth (JIT), which a one-shot stream of
 * 200 000 events (a replay lasts ~0.3 s) would count against the server. An in-process `ws` server
 * pushes event-shaped frames over loopback to a client of this process, through the same receive
 * code the measurement uses, and nothing of it touches the server under test. The frames carry
 * execution ids of every length the measured streams do and end with a `done`, as an execution
 * does: warmed on one id, the client's decoder deoptimized on the measured stream's first frames and
 * re-compiled through them. Their text stays push's: made per frame here (`String(seq)`), it grew
 * this process's young generation 4 × (13–15 scavenges per 200 000 measured events instead of
 * push's client's 50–56), a head start push's client does not get.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { type BenchEventFrame, eventFrame, EXECUTION_ID } from '../harness/frames.js';
import { connect } from './connect.js';

const SLICE = 1024;
/**
 * The push baseline's id, the replay scenarios' named execution, a client-chosen UUID: msgpackr reads
 * strings under 16 bytes, up to 64 and longer down different paths, each compiled on first use.
 */
const IDS = [EXECUTION_ID, 'bench-replay', 'a1b2c3d4e5f6a7b8c9d0e', '450e118a-8de2-4c35-be37-721590bca589'];

function warmFrame(seq: number, ts: number): BenchEventFrame {
  const frame = eventFrame(seq, ts);
  frame.execution_id = IDS[seq % IDS.length]!;
  return frame;
}

/**
 * Streams `frames` event frames, then a `done` event (status ok), to a client of this process;
 * `consume` reads them off the socket with the driver's own code and resolves at the `done`.
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
      for (let i = 0; i < SLICE && sent < frames; i++) socket.send(encodeFrame(warmFrame(++sent, ts)));
      if (sent < frames) setTimeout(slice, socket.bufferedAmount > 256 * 1024 ? 1 : 0);
      else socket.send(encodeFrame({ op: 'event', execution_id: EXECUTION_ID, seq: sent + 1, type: 'done', ts, payload: { status: 'ok' } }));
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

/** A plain consumer for `warmClient`: decodes every frame until the `done`. */
export function decodeUntilEnd(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    ws.on('message', (data: Buffer) => {
      if ((decodeValue(data) as { type?: unknown }).type === 'done') resolve();
    });
    ws.on('close', () => resolve());
  });
}
