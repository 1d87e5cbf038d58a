/**
 * The Jupyter front door, mounted by server.ts: the REST API in front of the native HTTP API, the
 * kernel WebSocket route, and the small store they keep (<data>/jupyter). Sessions are reached only
 * through ExecutionService, as every front door reaches them.
 */
import { randomUUID } from 'node:crypto';
import { ProtocolError } from '../../protocol/errors.js';
import path from 'node:path';
import type { HttpHandler } from '../http/port.js';
import type { ExecutionService } from '../sessions/service.js';
import { tokenFromRequest, type Authenticator } from '../auth/tokens.js';
import type { SendBudget } from '../transport/send-budget.js';
import type { RouteAcceptance, SocketRoute, UpgradeRequest } from '../transport/uws-server.js';
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
  /** The server's one bound on bytes waiting in socket buffers (transport/send-budget.ts). */
  sendBudget: SendBudget;
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

/**
 * Decides on a channels upgrade: a missing token is refused with 401, a token no tenant has with
 * 403, a kernel that is not the tenant's (or not open) with 404; otherwise the socket becomes the
 * client session's connection (`session_id`), speaking v1 binary framing when the client offers it.
 */
async function upgrade(request: UpgradeRequest, kernels: Kernels, options: JupyterOptions): Promise<RouteAcceptance> {
  const query = new URLSearchParams(request.query);
  const token = tokenFromRequest(request.headers.authorization ?? '', request.query);
  if (token === null) throw new ProtocolError('UNAUTHORIZED', 'a token is required (Authorization: token <token>, or ?token=<token>)');
  const tenant = await options.authenticator.tenantOf(token);
  if (tenant === null) throw new ProtocolError('FORBIDDEN', 'the token is not valid');
  let kernelId: string;
  try {
    kernelId = decodeURIComponent(request.params[0] ?? '');
  } catch {
    throw new ProtocolError('NOT_FOUND', 'no such kernel');
  }
  // Without a session_id the client cannot come back: it gets a session of its own, never replayed.
  const client = query.get('session_id') || `${ANONYMOUS}${randomUUID()}`;
  const feed = await kernels.feed(tenant, kernelId, client).catch(() => {
    throw new ProtocolError('NOT_FOUND', `no kernel \`${kernelId.slice(0, 128)}\``);
  });
  const offered = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((protocol) => protocol.trim());
  const binary = offered.includes(V1_SUBPROTOCOL);
  return {
    tenant,
    protocol: binary ? V1_SUBPROTOCOL : null,
    attach: (socket) => {
      const channel = new KernelChannel(socket, kernels, tenant, kernelId, binary, options);
      channel.start(feed);
      return channel;
    },
  };
}
