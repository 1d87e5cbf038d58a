/**
 * A sandbox process: hosts one tenant's sessions in the in-process worker pool (pool/) and bridges
 * the `Sandbox` contract over its pipes: requests arrive as frames on stdin, and everything the
 * pool reports leaves as frames on fd 3 (stdout is not used, so a stray write cannot corrupt the
 * stream). Output records leave as the workers encoded them, copied from their rings into the
 * frame: this main thread is a relay, and costs each run as little as it can. It is started confined (confinement.ts): no network, no files of the server, an empty
 * environment, its own user. It holds no secret: nothing it is sent is one.
 *
 * Backpressure: when the server stops reading fd 3, the pipe fills, writes here queue up past the
 * stream's high-water mark, the pool is told output is not accepted and stops reading its rings,
 * and the workers printing into full rings wait. 'drain' starts it all again.
 */
import net from 'node:net';
import { WorkerPool } from '../pool/worker-pool.js';
import type { Sandbox, SandboxListener } from '../sandbox/sandbox.js';
import { FrameReader, FrameWriter } from './frames.js';
import { OUTPUT_FD, type FromHost, type ToHost } from './messages.js';

/** The server is trusted; this only bounds what a broken frame could make the process hold. */
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

const output = new net.Socket({ fd: OUTPUT_FD, readable: false, writable: true });
const writer = new FrameWriter<FromHost>(output);
const reader = new FrameReader(MAX_FRAME_BYTES);
let sandbox: Sandbox | null = null;

const listener: SandboxListener = {
  // Never called: the pool hands its records to `records` (boot, below).
  onOutput: () => {},
  acceptingOutput: () => !output.writableNeedDrain,
  onRestored: (sid, result) => writer.push({ t: 'restored', sid, result }),
  onRestoreProgress: (sid, replayed, inputs) => writer.push({ t: 'restoring', sid, replayed, inputs }),
  onLost: (sids, reason, killed) => writer.push({ t: 'lost', sids, reason, killed }),
};

output.on('drain', () => sandbox?.resumeOutput());
// The server is gone (or broke the pipe): nothing here is worth keeping.
output.on('error', () => process.exit(1));
process.stdin.on('data', (chunk: Buffer) => {
  for (const message of reader.push(chunk)) handle(message as ToHost);
});
process.stdin.on('end', () => {
  void (sandbox?.shutdown() ?? Promise.resolve()).finally(() => process.exit(0));
});

function handle(message: ToHost): void {
  if (message.t === 'boot') {
    sandbox = new WorkerPool({
      size: message.workers, heapMb: message.heapMb, limits: message.limits,
      // Forwarded as the workers wrote them: this process never decodes or re-encodes output (the
      // server reads and checks each record), and requests go on to the workers in the turn they arrive.
      records: (record) => writer.pushEncoded(record),
      flushInMicrotask: true,
    }, listener);
    writer.push({ t: 'ready' });
    return;
  }
  const pool = sandbox!;
  switch (message.t) {
    case 'open':
      // One tenant per process: which one is the server's business.
      pool.open({ sessionId: message.sid, tenant: '' });
      break;
    case 'close':
      pool.close(message.sid);
      break;
    case 'run':
      pool.run({ sessionId: message.sid, executionId: message.xid, kind: message.kind, code: message.code, filename: message.filename });
      break;
    case 'abort':
      pool.abort(message.sid, message.xid, message.status);
      break;
    case 'restore':
      pool.restore(message.sid, message.inputs);
      break;
    case 'complete': {
      const { id } = message;
      void pool.complete(message.sid, message.code, message.cursor).then((completion) => writer.push({ t: 'completion', id, completion }));
      break;
    }
    case 'kill':
      pool.kill(message.sid, message.reason);
      break;
  }
}
