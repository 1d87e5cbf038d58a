/**
 * Reconnect storm: `clients` sockets sit at the head of a live execution; on go they all drop at
 * once (terminate: no close handshake, as a network failure looks to the server) and reconnect at
 * once, each resuming with its own after_seq, so the server replays 1000 different gaps from the
 * store while it accepts 1000 handshakes. A client is caught up when it holds seq `lastSeq`.
 *
 * A refused or reset connection is retried after a short jittered delay, as a real client's
 * reconnect loop would; the retries are counted, since each is a client that waited.
 *
 * Against the bare server (`ask: 'push'`), the same clients drop and reconnect the same way and each
 * asks for its gap's count of frames (numbered from 0, read as the seqs after its after_seq): push's
 * time for the storm's frames in the storm's shape, handshakes included.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import type { ServerFrame } from '../../protocol/types.js';
import { Histogram } from '../harness/histogram.js';
import { selfCpuMeter } from '../harness/proc-stats.js';
import { connect, connectAll } from './connect.js';
import { gate } from './gate.js';
import type { StormJob, StormResult } from './types.js';
import { subscribe } from './vmstream-calls.js';
import { decodeUntilEnd, warmClient } from './warm.js';

const RETRY_MIN_MS = 10;
const RETRY_JITTER_MS = 40;

interface Client {
  afterSeq: number;
  cursor: number;
  frames: number;
  seqErrors: number;
  caughtUpAt: number;
}

/** What a client sends for its gap, and the seq a received event stands for. */
interface Ask {
  /** Before the drop: what a client at the head does (subscribes; nothing, on the bare server). */
  atHead(ws: WebSocket): Promise<unknown>;
  request(client: Client, id: number): Uint8Array;
  seqOf(client: Client, frame: { seq: number }): number;
}

function askOf(job: StormJob): Ask {
  if (job.ask === 'push') {
    return {
      atHead: async () => {},
      request: (client) => encodeFrame({ op: 'push', count: job.lastSeq - client.afterSeq, ms: job.timeoutMs }),
      seqOf: (client, frame) => client.afterSeq + 1 + frame.seq,
    };
  }
  return {
    atHead: (ws) => subscribe(ws, job.executionId, job.lastSeq),
    request: (client, id) => encodeFrame({ op: 'subscribe', id, execution_id: job.executionId, after_seq: client.afterSeq }),
    seqOf: (_client, frame) => frame.seq,
  };
}

export async function runStorm(job: StormJob): Promise<StormResult> {
  await warmClient(job.warmClientFrames ?? 0, decodeUntilEnd);
  const ask = askOf(job);
  // Before: every client at the head, where nothing flows.
  const before = await connectAll(job.url, job.clients, job.token, job.connectConcurrency ?? 50);
  try {
    await Promise.all(before.map((ws) => ask.atHead(ws)));
  } catch (error) {
    for (const ws of before) ws.terminate();
    throw error;
  }
  await gate(0);

  const clientCpu = selfCpuMeter();
  const first = job.firstClient ?? 0;
  const total = job.totalClients ?? job.clients;
  const clients: Client[] = Array.from({ length: job.clients }, (_, i) => {
    const afterSeq = Math.floor(((first + i) * job.lastSeq) / total);
    return { afterSeq, cursor: afterSeq, frames: 0, seqErrors: 0, caughtUpAt: NaN };
  });
  const hist = new Histogram();
  const after: Array<WebSocket | null> = new Array(job.clients).fill(null);
  let retries = 0;
  let caughtUp = 0;
  let failure: Error | null = null;
  let finish: () => void = () => {};
  const allDone = new Promise<void>((resolve) => (finish = resolve));
  const deadline = performance.now() + job.timeoutMs;
  const t0 = performance.now();
  for (const ws of before) ws.terminate();

  const onCaughtUp = (client: Client): void => {
    client.caughtUpAt = performance.now();
    hist.record((client.caughtUpAt - t0) * 1000);
    if (++caughtUp === job.clients) finish();
  };

  const reconnect = async (index: number): Promise<void> => {
    const client = clients[index]!;
    for (;;) {
      let ws: WebSocket;
      try {
        ws = await connect(job.url, job.token, Math.max(1, deadline - performance.now()));
      } catch (error) {
        if (performance.now() >= deadline) throw error;
        retries++;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MIN_MS + Math.random() * RETRY_JITTER_MS));
        continue;
      }
      after[index] = ws;
      ws.on('message', (data: Buffer) => {
        const frame = decodeValue(data) as ServerFrame;
        if (frame.op === 'error') {
          failure ??= new Error(`subscribe: ${frame.code}: ${frame.message}`);
          return finish();
        }
        if (frame.op !== 'event' || !Number.isNaN(client.caughtUpAt)) return;
        client.frames++;
        const seq = ask.seqOf(client, frame);
        if (seq !== client.cursor + 1) client.seqErrors++;
        client.cursor = seq;
        if (client.cursor >= job.lastSeq) onCaughtUp(client);
      });
      ws.send(ask.request(client, first + index));
      return;
    }
  };

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.all(clients.map((_, index) => reconnect(index)));
    await Promise.race([allDone, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))))]);
  } finally {
    clearTimeout(timer);
    for (const ws of after) ws?.terminate();
  }
  if (failure) throw failure;
  const last = Math.max(...clients.map((c) => (Number.isNaN(c.caughtUpAt) ? -Infinity : c.caughtUpAt)));
  return {
    driver: 'storm',
    clients: job.clients,
    caughtUp,
    seconds: caughtUp > 0 ? (last - t0) / 1000 : NaN,
    hist: hist.toJSON(),
    frames: clients.reduce((sum, c) => sum + c.frames, 0),
    retries,
    seqErrors: clients.reduce((sum, c) => sum + c.seqErrors, 0),
    clientCpuPct: clientCpu(),
  };
}
