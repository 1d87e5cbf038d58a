/**
 * The JetStream store (issue 14) under the scenarios that measure the store's paths: the same
 * scenario, run again with every server it starts on VMSTREAM_STORE=jetstream, against a
 * nats-server -js of its own (started for the run and stopped by its pid after it), with a
 * JetStream prefix and node id of the variant's own, so a server restarted over them (replay) takes
 * its prefix back. `stream` and `stream-jetstream` then measure one definition on both stores.
 */
import { join } from 'node:path';
import { startNats } from '../harness/nats.js';
import type { Ctx, Figure, Scenario } from '../harness/types.js';

export interface JetStreamVariant {
  /**
   * The jetstream baseline's figure to hold the headline against instead of the LevelDB scenario's
   * (push); the ratio to push is kept beside it, and no goal is set. Absent: the scenario's own
   * baseline and goal apply (a headline held against itself, as replay-deep's).
   */
  against?: string;
  /** Figures that mean nothing on JetStream (a ratio to LevelDB's own iterator). */
  drop?: string[];
}

export function onJetStream(scenario: Scenario, variant: JetStreamVariant = {}): Scenario {
  const name = `${scenario.name}-jetstream`;
  const { against } = variant;
  const drop = new Set(variant.drop ?? []);
  return {
    ...scenario,
    name,
    ...(against ? { against: { baseline: 'jetstream', figure: against }, alsoNeeds: ['push'], goal: undefined } : {}),
    async run(ctx) {
      const nats = await startNats(ctx.procs, join(ctx.tmpDir, `${name}-nats`));
      const prefix = `bench_${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
      const serverEnv = { ...ctx.serverEnv, VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: prefix, VMSTREAM_NODE_ID: prefix };
      let result;
      try {
        result = await scenario.run({ ...ctx, serverEnv });
      } finally {
        await nats.stop();
      }
      const figures = Object.fromEntries(Object.entries(result.figures ?? {}).filter(([key]) => !drop.has(key)));
      const pushRatio = against ? ratioToPush(ctx, result.figure.value) : {};
      return {
        ...result,
        figures: { ...pushRatio, ...figures },
        shown: [...Object.keys(pushRatio), ...(result.shown ?? []).filter((key) => !drop.has(key))],
        setup: `${result.setup ?? ''}; store: jetstream`,
      };
    },
  };
}

/** The headline held against push too: the socket's one-way ceiling, which the LevelDB scenario is held against. */
function ratioToPush(ctx: Ctx, rate: number): Record<string, Figure> {
  return { ratio_to_push: { value: rate / (ctx.baselines.get('push')?.figures.frames_per_s?.value ?? NaN), unit: '×' } };
}
