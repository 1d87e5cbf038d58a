/**
 * The Jupyter front door, mounted by server.ts: the REST API in front of the native HTTP API, the
 * kernel WebSocket route, and the small store they keep (<data>/jupyter). Sessions are reached only
 * through ExecutionService, as every front door reaches them.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { HttpHandler } from '../http/port.js';
import type { ExecutionService } from '../sessions/service.js';
import { tokenFromRequest, type Authenticator } from '../transport/auth.js';
import type { SocketRoute, UpgradeDecision, UpgradeRequest } from '../transport/uws-server.js';
import { KernelChannel } from './channel.js';
import { ANONYMOUS } from './feed.js';
import { Kernels } from './kernels.js';
import { V1_SUBPROTOCOL } from './messages.js';
import { JupyterRest } from './rest.js';
import { JupyterState } from './state.js';

export const CHANNELS_PATTERN = '/api/kernels/:kernel_id/channels';

export interface JupyterOptions {
  service: ExecutionService;
  authenticator: Authenticator;
  dataDir: string;
  backpressureBytes: number;
  /** Execute requests a kernel holds (running, queued, or waiting for the one before), as the session's queue limit. */
  maxQueued: number;
  onError(error: unknown): void;
}

export interface Jupyter {
  /** The REST API, handing everything that is not Jupyter's to `next`. */
  http(next: HttpHandler): HttpHandler;
  route: SocketRoute;
  close(): Promise<void>;
}

export async function openJupyter(options: JupyterOptions): Promise<Jupyter> {
  const state = new JupyterState(path.join(options.dataDir, 'jupyter'));
  await state.open();
  const kernels = new Kernels(options.service, state, options.maxQueued, options.onError);
  return {
    http: (next) => new JupyterRest(next, options.authenticator, kernels, state, options.onError),
    route: { pattern: CHANNELS_PATTERN, upgrade: (request) => upgrade(request, kernels, options) },
    close: () => state.close(),
  };
}

async function upgrade(request: UpgradeRequest, kernels: Kernels, options: JupyterOptions): Promise<UpgradeDecision> {
  const query = new URLSearchParams(request.query);
  const token = tokenFromRequest(request.headers.authorization ?? '', request.query);
  if (token === null) return { refuse: 401, code: 'UNAUTHORIZED', message: 'a token is required (Authorization: token <token>, or ?token=<token>)' };
  const tenant = await options.authenticator.tenantOf(token);
  if (tenant === null) return { refuse: 403, code: 'FORBIDDEN', message: 'the token is not valid' };
  let kernelId: string;
  try {
    kernelId = decodeURIComponent(request.params[0] ?? '');
  } catch {
    return { refuse: 404, code: 'NOT_FOUND', message: 'no such kernel' };
  }
  // Without a session_id the client cannot come back: it gets a session of its own, never replayed.
  const client = query.get('session_id') || `${ANONYMOUS}${randomUUID()}`;
  let feed;
  try {
    feed = await kernels.feed(tenant, kernelId, client);
  } catch {
    return { refuse: 404, code: 'NOT_FOUND', message: `no kernel \`${kernelId.slice(0, 128)}\`` };
  }
  const offered = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((protocol) => protocol.trim());
  const binary = offered.includes(V1_SUBPROTOCOL);
  return {
    protocol: binary ? V1_SUBPROTOCOL : null,
    attach: (socket) => {
      const channel = new KernelChannel(socket, kernels, tenant, kernelId, binary, options);
      channel.start(feed);
      return channel;
    },
  };
}
