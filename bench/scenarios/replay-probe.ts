/**
 * EXPERIMENT (replay-steady, not for merge as is): where the client's CPU per replayed event goes.
 * Variants, interleaved round by round, each with the client's CPU and wall time per 50 000 events:
 * push one-shot (as many frames as the replay, the replay's client warm-up), replay cold 200k,
 * the captured bytes of that replay from a bare uWS server, replay cold of a longer log, push steady
 * (the baseline's own job). PROBE_ROUNDS (3), PROBE_LONG (1 000 000 lines), PROBE_PIN=1: the server's
 * threads on CPU 1, the client on CPU 0.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchModule, type Child } from '../harness/procs.js';
import { descendantPids, treeCpuSeconds } from '../harness/proc-stats.js';
import type { Ctx, Scenario } from '../harness/types.js';
import { startVmstream } from '../harness/vmstream.js';
import { connect } from '../loadgen/connect.js';
import type { SinkJob, SinkResult } from '../loadgen/types.js';
import { encodeFrame, decodeValue } from '../../protocol/codec.js';
import { warmFrames } from './common.js';
import { eventsOf, STREAM_ENV, streamOnce } from './stream.js';

const SEGMENT = 50_000;
const SHORT_ID = 'bench-replay';
const LONG_ID = 'bench-replay-long';

const pin = process.env.PROBE_PIN === '1';

function pinTo(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

function loadgenPids(): number[] {
  return descendantPids(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('loadgen/main.js');
    } catch {
      return false;
    }
  });
}

interface Run {
  r: SinkResult;
  serverUsPerEvent: number;
}

async function sink(ctx: Ctx, server: { pid: number }, job: Omit<SinkJob, 'driver' | 'connections' | 'gated' | 'segmentEvents'>): Promise<Run> {
  let cpu0 = NaN;
  const r = await ctx.loadgen(
    { driver: 'sink', connections: 1, gated: true, segmentEvents: SEGMENT, ...job },
    1,
    {
      onReady: () => {
        if (pin) {
          pinTo(server.pid, 1);
          for (const pid of loadgenPids()) pinTo(pid, 0);
        }
        cpu0 = treeCpuSeconds(server.pid);
      },
    },
  );
  return { r, serverUsPerEvent: ((treeCpuSeconds(server.pid) - cpu0) * 1e6) / r.totalFrames };
}

async function bare(ctx: Ctx, module: string, args: string[] = []): Promise<{ child: Child; url: string }> {
  const child = ctx.procs.start(module, benchModule(module), { args });
  const { port } = await child.waitForMessage<{ type: 'ready'; port: number }>('ready', 5_000);
  return { child, url: `ws://127.0.0.1:${port}/` };
}

/** Every frame a fresh subscriber receives, from its subscribe to the `done`, length-prefixed into `file`. */
async function capture(url: string, token: string, file: string): Promise<number> {
  const ws = await connect(url, token);
  const parts: Buffer[] = [];
  await new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(data.length);
      parts.push(head, Buffer.from(data));
      if ((decodeValue(data) as { type?: unknown }).type === 'done') resolve();
    });
    ws.send(encodeFrame({ op: 'subscribe', id: 'replay', execution_id: SHORT_ID, after_seq: 0 }));
  });
  ws.terminate();
  writeFileSync(file, Buffer.concat(parts));
  return parts.length / 2;
}

function describe(name: string, round: number, { r, serverUsPerEvent }: Run): string {
  const segs = r.segments ?? [];
  const us = segs.map((s) => ((s.cpuMs * 1000) / s.events).toFixed(2)).join(' ');
  const rate = segs.map((s) => Math.round(s.events / s.ms)).join(' ');
  const cpuMs = segs.reduce((a, s) => a + s.cpuMs, 0);
  const events = segs.reduce((a, s) => a + s.events, 0);
  return [
    `PROBE ${name} r${round}`,
    `whole ${Math.round(r.totalFrames / r.totalSeconds)}/s steady ${Math.round(r.framesPerSec)}/s first ${r.firstFrameMs.toFixed(1)}ms`,
    `client ${((cpuMs * 1000) / events).toFixed(2)}us/ev (${r.clientCpuPct.toFixed(0)}%) server ${serverUsPerEvent.toFixed(2)}us/ev`,
    `seg-us [${us}]`,
    `seg-kev/s [${rate}]`,
  ].join(' | ');
}

export const replayProbe: Scenario = {
  name: 'replay-probe',
  stepTimeoutMs: { quick: 600_000, full: 1_800_000 },
  async run(ctx) {
    const rounds = Number(process.env.PROBE_ROUNDS ?? 3);
    const longLines = Number(process.env.PROBE_LONG ?? 1_000_000);
    const shortLines = 200_000;
    const writer = await startVmstream(ctx, { name: 'probe-write', env: STREAM_ENV });
    try {
      await streamOnce(ctx, writer, shortLines, { executionId: SHORT_ID });
      await streamOnce(ctx, writer, longLines, { executionId: LONG_ID });
    } finally {
      await writer.stop();
    }
    const file = join(ctx.tmpDir, 'replay-frames.bin');
    const capturer = await startVmstream(ctx, { name: 'probe-capture', env: STREAM_ENV, dataDir: writer.dataDir });
    try {
      ctx.log(`captured ${await capture(capturer.url, capturer.token, file)} frames`);
    } finally {
      await capturer.stop();
    }
    const warm = warmFrames(ctx);
    const replayCold = async (id: string, lines: number): Promise<Run> => {
      const server = await startVmstream(ctx, { name: 'probe-replay', env: STREAM_ENV, dataDir: writer.dataDir });
      try {
        const run = await sink(ctx, server.child, {
          workload: 'replay', params: { executionId: id }, url: server.url, token: server.token,
          count: 0, warmupMs: 1_000, durationMs: 120_000, warmClientFrames: warm,
        });
        if (run.r.totalFrames !== eventsOf(lines)) throw new Error(`replay ${id}: ${run.r.totalFrames} events`);
        return run;
      } finally {
        await server.stop();
      }
    };
    const variants: Record<string, () => Promise<Run>> = {
      'push-oneshot': async () => {
        const { child, url } = await bare(ctx, 'servers/bare-uws.js');
        try {
          return await sink(ctx, child, { workload: 'push', url, count: eventsOf(shortLines), warmupMs: 1_000, durationMs: 120_000, warmClientFrames: warm });
        } finally {
          await child.stop();
        }
      },
      'replay-200k': () => replayCold(SHORT_ID, shortLines),
      'captured-200k': async () => {
        const { child, url } = await bare(ctx, 'servers/bare-replayed.js', [file]);
        try {
          return await sink(ctx, child, { workload: 'replay', params: { executionId: SHORT_ID }, url, count: 0, warmupMs: 1_000, durationMs: 120_000, warmClientFrames: warm });
        } finally {
          await child.stop();
        }
      },
      'replay-long': () => replayCold(LONG_ID, longLines),
      'push-steady': async () => {
        const { child, url } = await bare(ctx, 'servers/bare-uws.js');
        try {
          return await sink(ctx, child, { workload: 'push', url, count: 50_000_000, warmupMs: 1_000, durationMs: 5_000 });
        } finally {
          await child.stop();
        }
      },
    };
    const only = process.env.PROBE_ONLY?.split(',');
    for (let round = 1; round <= rounds; round++) {
      for (const [name, run] of Object.entries(variants)) {
        if (only && !only.includes(name)) continue;
        ctx.log(describe(name, round, await run()));
      }
    }
    return { figure: { value: 0, unit: '' } };
  },
};
