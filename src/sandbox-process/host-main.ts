/**
 * A sandbox process: hosts one tenant's sessions in the in-process worker pool (pool/), placed on
 * its worker slots by the server, and bridges the `Sandbox` contract over its pipes: each slot's
 * first worker reads the requests for its sessions from a pipe of its own (messages.ts's
 * REQUEST_FD), and everything the pool reports leaves as frames on fd 3 (stdout is not used, so a
 * stray write cannot corrupt the stream). Output records leave as the workers encoded them, written
 * to fd 3 by the workers themselves (pool/shared-output.ts). This main thread supervises: it kills
 * and replaces workers, relays the requests of replacements (stdin), and is on the output's way
 * only for a worker stuck in a loop or dead. It is started confined
 * (confinement.ts): no network, no files of the server, an empty environment, its own user. It
 * holds no secret: nothing it is sent is one.
 *
 * Backpressure: when the server stops reading fd 3, the pipe fills, the workers' writes wait for
 * room (in short slices: they can still be terminated), their rings fill, and the workers printing
 * into full rings wait. The server reading again starts it all again.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { MainOutput } from '../pool/shared-output.js';
import { WorkerPool } from '../pool/worker-pool.js';
import type { FromWorker } from '../pool/messages.js';
import type { SandboxListener } from '../sandbox/sandbox.js';
import { FrameReader, FrameWriter, MAX_SERVER_FRAME_BYTES } from '../pool/pipe-frames.js';
import { OUTPUT_FD, REQUEST_FD, type FromHost, type ToHost } from './messages.js';

// libuv makes the fd non-blocking, as the workers' writes need it; this thread writes through it.
const outputSocket = new net.Socket({ fd: OUTPUT_FD, readable: false, writable: true });
// The server is gone (or broke the pipe): nothing here is worth keeping.
outputSocket.on('error', () => process.exit(1));
const shared = new MainOutput(OUTPUT_FD, outputSocket);
// This thread's own frames, in order with the rings it drains; one frame per write.
const output = new Writable({
  write(chunk: Buffer, _encoding, done) {
    shared.send(chunk, () => done());
  },
});
const writer = new FrameWriter<FromHost>(output);
const reader = new FrameReader(MAX_SERVER_FRAME_BYTES);
let pool: WorkerPool | null = null;

// Placed by the server, the pool reports by slot (placedBy, below), never to this listener.
const listener: SandboxListener = {
  onOutput: () => {},
  // Asked only by a pool that reads its rings itself; this one's workers wait on the pipe instead.
  acceptingOutput: () => true,
  onRestored: () => {},
  onLost: () => {},
};

process.stdin.on('data', (chunk: Buffer) => {
  for (const message of reader.push(chunk)) handle(message as ToHost);
});
process.stdin.on('end', () => {
  void (pool?.shutdown() ?? Promise.resolve()).finally(() => process.exit(0));
});

function handle(message: ToHost): void {
  switch (message.t) {
    case 'boot':
      pool = new WorkerPool({
        size: message.workers, heapMb: message.heapMb, limits: message.limits,
        // The workers write their output straight to the server, as they encoded it (the server reads
        // and checks each record): this thread is out of the way, and only drains the rings of workers
        // that cannot. Relayed requests go on to the workers in the turn they arrive.
        output: shared,
        flushInMicrotask: true,
        placedBy: {
          fds: Array.from({ length: message.workers }, (_, slot) => REQUEST_FD + slot),
          onSlotLost: (slot, gen, reason, killed) => writer.push({ t: 'lost', slot, gen, reason, killed }),
          onAnswer: (answer) => writer.push(fromWorker(answer)),
        },
      }, listener);
      writer.push({ t: 'ready' });
      break;
    case 'relay':
      pool!.relay(message.slot, message.gen, message.messages);
      break;
    case 'kill':
      pool!.killSlot(message.slot, message.gen, message.reason);
      break;
  }
}

/** A worker's answer, as the server reads it. */
function fromWorker(answer: Exclude<FromWorker, { t: 'out' }>): FromHost {
  switch (answer.t) {
    case 'restored': {
      const { sid, ok, replayed, reason } = answer;
      return { t: 'restored', sid, result: { ok, replayed, ...(reason === undefined ? {} : { reason }) } };
    }
    case 'restoring':
    case 'completion':
      return answer;
  }
}
