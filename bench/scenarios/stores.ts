/**
 * The two event stores a scenario can run the server on (issue 14): LevelDB in the data folder (the
 * default), or JetStream on a nats-server the scenario starts for itself. Scenarios that measure the
 * store's paths (stream, replay, replay-deep) exist once per store, built from one definition.
 */
import { join } from 'node:path';
import { startNats } from '../harness/nats.js';
import type { Ctx } from '../harness/types.js';

export type StoreName = 'level' | 'jetstream';

export const STORES: readonly StoreName[] = ['level', 'jetstream'];

/** `stream` on LevelDB, `stream-jetstream` on JetStream. */
export function scenarioName(base: string, store: StoreName): string {
  return store === 'level' ? base : `${base}-${store}`;
}

/**
 * VMSTREAM_* settings that put a server on `store`. For JetStream this starts a nats-server -js
 * (stopped with the step's other children, by pid) and names a prefix and node id of the scenario's
 * own, so a server restarted with the same settings takes its prefix back.
 */
export async function storeEnv(ctx: Ctx, store: StoreName, name: string): Promise<Record<string, string>> {
  if (store === 'level') return {};
  const nats = await startNats(ctx.procs, join(ctx.tmpDir, `${name}-nats`));
  const prefix = `bench_${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
  return { VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: prefix, VMSTREAM_NODE_ID: prefix };
}
