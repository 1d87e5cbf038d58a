/**
 * Push in the shape of a vmstream one-shot stream: the push baseline's bare server feeding as many
 * frames to a load generator warmed as the stream's, timed from the request to the end frame. Push's
 * own figure is a steady rate after a second of warm-up; a one-shot client pays its start in the
 * measured time (bench/README.md, "Replay against push in its own shape"), so a stream of 200 000
 * events is held against this as well as against that.
 */
import { startBareServer } from '../baselines/bare-server.js';
import type { Ctx } from '../harness/types.js';
import type { SinkJob, SinkResult } from '../loadgen/types.js';
import { check, warmFrames } from './common.js';

/** The client's CPU is reported for the first this many events and for the rest apart (a --quick replay is 10 002). */
export function startEvents(ctx: Ctx): number {
  return ctx.quick ? 2_500 : 50_000;
}

/** A one-shot stream's job: gated, timed from the request to its end, the client warmed as every one-shot's. */
export function oneShotJob(ctx: Ctx, job: Pick<SinkJob, 'workload' | 'url'> & Partial<SinkJob>): SinkJob {
  return { driver: 'sink', connections: 1, count: 0, warmupMs: 300, durationMs: 120_000, gated: true, warmClientFrames: warmFrames(ctx), segmentEvents: startEvents(ctx), ...job };
}

/** Push's mean one-shot time, just before and just after a run, over that run's time: `over_push_same_frames`. */
export function overPush(before: SinkResult, after: SinkResult, measured: SinkResult): number {
  return (before.totalSeconds + after.totalSeconds) / 2 / measured.totalSeconds;
}

/**
 * Push's bare server pushing `frames` event frames one-shot to a fresh client, read as a stream or
 * a replay is read. The server is warmed first by an untimed push of as many frames: a fresh bare
 * server's first 200 000 frames go through a cold encoder, and the yardstick is what a client can be
 * fed at all in this shape, not a cold server's start.
 */
export async function pushSameFrames(ctx: Ctx, frames: number): Promise<SinkResult> {
  const { server, url } = await startBareServer(ctx);
  try {
    await ctx.loadgen(oneShotJob(ctx, { workload: 'push', url, count: frames, warmClientFrames: 0 }));
    const r = await ctx.loadgen(oneShotJob(ctx, { workload: 'push', url, count: frames }));
    check(r.unfinished === 0 && r.totalFrames === frames, `push of ${frames} frames ended with ${r.totalFrames}`);
    return r;
  } finally {
    await server.stop();
  }
}
