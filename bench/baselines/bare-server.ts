/** Starting the bare uWS server that the echo and push baselines share. */
import { benchModule, type Child } from '../harness/procs.js';
import type { Ctx } from '../harness/types.js';

const READY_TIMEOUT_MS = 5_000;

export async function startBareServer(ctx: Ctx): Promise<{ server: Child; url: string }> {
  const server = ctx.procs.start('bare-uws', benchModule('servers/bare-uws.js'));
  const { port } = await server.waitForMessage<{ type: 'ready'; port: number }>('ready', READY_TIMEOUT_MS);
  return { server, url: `ws://127.0.0.1:${port}/` };
}
