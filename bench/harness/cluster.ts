/**
 * A vmstream cluster for the cluster scenarios (issue 14): one nats-server -js and `nodes` server
 * processes on it (VMSTREAM_STORE=jetstream, one JetStream prefix, node ids `node-0`…, one token and
 * workspace, each its own port and data folder), started one after the other (servers booting at
 * once on two cores only slow each other down). Every process goes through Procs, so the step stops
 * them all by pid whatever happens.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startNats, type Nats } from './nats.js';
import type { Ctx } from './types.js';
import { startVmstream, type Vmstream } from './vmstream.js';

/** The time bound of a cluster scenario's step: three servers boot one after the other first. */
export const CLUSTER_STEP_MS = { quick: 60_000, full: 240_000 };

export interface Cluster {
  nats: Nats;
  nodes: Vmstream[];
  token: string;
  stop(): Promise<void>;
}

export async function startCluster(ctx: Ctx, name: string, nodes: number, env: Record<string, string> = {}): Promise<Cluster> {
  const nats = await startNats(ctx.procs, join(ctx.tmpDir, `${name}-nats`));
  const token = randomBytes(18).toString('base64url');
  const prefix = `bench_${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
  const started: Vmstream[] = [];
  for (let i = 0; i < nodes; i++) {
    started.push(await startVmstream(ctx, {
      name: `${name}-node-${i}`,
      token,
      env: { VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: prefix, VMSTREAM_NODE_ID: `node-${i}`, ...env },
    }));
  }
  return {
    nats,
    nodes: started,
    token,
    async stop() {
      await Promise.all(started.map((node) => node.stop()));
      await nats.stop();
    },
  };
}
