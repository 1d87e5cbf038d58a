/**
 * replay-deep (issue 14): a stored 100 000-line execution read from deep inside. A client subscribes
 * with after_seq 0, 50 000 and 90 000 and the time from `subscribe` sent to its first event is
 * taken; the headline is the deepest one's over after_seq 0's, which is ~1 when a subscription
 * starts where it is asked to (one lookup) and grows with depth when the store scans from the log's
 * start. On each store (replay-deep-jetstream: stores.ts).
 *
 * Each probe is a fresh socket of the harness's own (it does nothing else meanwhile), unsubscribed
 * at its first event so the rest of the log is not streamed into the next probe's time. Depths are
 * probed in turn, ROUNDS times, and each one's median is kept: single times of a few ms on a shared
 * machine are noise. One untimed round goes first: the first probe at every depth was the slowest
 * of its depth in every run (the replay cache cold, the path's code not yet optimised).
 */
import { performance } from 'node:perf_hooks';
import { encodeFrame } from '../../protocol/codec.js';
import { ControlClient } from '../harness/control.js';
import type { Figure, Scenario } from '../harness/types.js';
import { startVmstream, type Vmstream } from '../harness/vmstream.js';
import { median } from '../harness/median.js';
import { check, serverRss } from './common.js';
import { STREAM_ENV, streamOnce } from './stream.js';

const EXECUTION_ID = 'bench-replay-deep';
const ROUNDS = 15;
/** Where the probes start, as a share of the log (after_seq 0, 50 000 and 90 000 of 100 000), and their figures' names. */
const DEPTHS = [
  { share: 0, key: 'first_event_ms_after_0' },
  { share: 0.5, key: 'first_event_ms_after_half' },
  { share: 0.9, key: 'first_event_ms_after_90pct' },
] as const;

/** Milliseconds from `subscribe {after_seq}` sent to the first event of the execution received. */
async function firstEventMs(server: Vmstream, afterSeq: number): Promise<number> {
  const client = await ControlClient.connect(server.url, server.token);
  try {
    const first = client.waitFor((f) => f.op === 'error' || (f.op === 'event' && f.execution_id === EXECUTION_ID), `first event after seq ${afterSeq}`);
    const t0 = performance.now();
    client.ws.send(encodeFrame({ op: 'subscribe', id: 'probe', execution_id: EXECUTION_ID, after_seq: afterSeq }));
    const frame = await first;
    const ms = performance.now() - t0;
    if (frame.op === 'error') throw new Error(`subscribe after_seq ${afterSeq}: ${frame.code}: ${frame.message}`);
    check(frame.op === 'event' && frame.seq === afterSeq + 1, `subscribe after_seq ${afterSeq} began at seq ${frame.op === 'event' ? frame.seq : '?'}`);
    await client.call({ op: 'unsubscribe', execution_id: EXECUTION_ID }, 'unsubscribed');
    return ms;
  } finally {
    client.close();
  }
}

export const replayDeep: Scenario = {
  name: 'replay-deep',
  headline: 'first_event_deep_over_0',
  goal: { value: 2, unit: '×', better: 'lower' },
  async run(ctx) {
    const lines = ctx.quick ? 2_000 : 100_000;
    const server = await startVmstream(ctx, { name: 'replay-deep', env: STREAM_ENV });
    try {
      await streamOnce(ctx, server, lines, { executionId: EXECUTION_ID });
      const afterSeqs = DEPTHS.map(({ share }) => Math.floor(lines * share));
      for (const afterSeq of afterSeqs) await firstEventMs(server, afterSeq);
      const samples = afterSeqs.map(() => [] as number[]);
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, afterSeq] of afterSeqs.entries()) samples[i]!.push(await firstEventMs(server, afterSeq));
      }
      const ms = samples.map(median);
      const figures: Record<string, Figure> = {};
      DEPTHS.forEach(({ key }, i) => (figures[key] = { value: ms[i]!, unit: 'ms' }));
      figures.first_event_middle_over_0 = { value: ms[1]! / ms[0]!, unit: '×' };
      return {
        figure: { value: ms[ms.length - 1]! / ms[0]!, unit: '×' },
        figures: { ...figures, ...serverRss(server) },
        shown: [...Object.keys(figures), 'server_peak_rss_mb'],
        setup: `a stored ${lines}-line execution; after an untimed round, subscribe after_seq ${afterSeqs.join(' / ')} in turn, median of ${ROUNDS} each`,
      };
    } finally {
      await server.stop();
    }
  },
};
