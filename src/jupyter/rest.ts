/**
 * The Jupyter Server REST API on the service's HTTP port: `/api`, kernelspecs, kernels and the
 * notebook sessions (notebook path ↔ kernel), with the statuses and shapes Jupyter clients check
 * (201 on create, 204 on delete and interrupt, `{message, reason}` errors). Everything else goes on
 * to the next handler (the native API at /api/v1, the console).
 */
import { randomUUID } from 'node:crypto';
import { ProtocolError, wireError } from '../../protocol/errors.js';
import type { HttpHandler, HttpRequest, HttpResponse } from '../http/port.js';
import { readJson } from '../http/api.js';
import { sendJson, sendText, statusLine } from '../http/respond.js';
import { tokenFromRequest, type Authenticator } from '../auth/tokens.js';
import { KERNEL_NAME, type KernelModel, type Kernels } from './kernels.js';
import type { JupyterState, NotebookSession } from './state.js';

/** The Jupyter Server API version this speaks (what `GET /api` reports). */
export const API_VERSION = '2.0.0';

export const KERNELSPEC = Object.freeze({
  name: KERNEL_NAME,
  spec: { display_name: 'JavaScript (vmstream)', language: 'javascript', argv: [], env: {}, metadata: {}, interrupt_mode: 'message' },
  resources: {},
});

interface Call {
  tenant: string;
  id: string;
  request: HttpRequest;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };
type Handler = (call: Call) => Promise<Reply>;

interface Route { method: string; pattern: RegExp; handler: Handler }

const ok = (body: unknown): Reply => ({ status: 200, body });

export class JupyterRest implements HttpHandler {
  readonly #next: HttpHandler;
  readonly #authenticator: Authenticator;
  readonly #kernels: Kernels;
  readonly #state: JupyterState;
  readonly #onError: (error: unknown) => void;
  readonly #routes: Route[];

  constructor(next: HttpHandler, authenticator: Authenticator, kernels: Kernels, state: JupyterState, onError: (error: unknown) => void) {
    this.#next = next;
    this.#authenticator = authenticator;
    this.#kernels = kernels;
    this.#state = state;
    this.#onError = onError;
    const route = (method: string, path: string, handler: Handler): Route => ({ method, pattern: new RegExp(`^${path.replace('{id}', '([^/]+)')}/?$`), handler });
    this.#routes = [
      route('GET', '/api', async () => ok({ version: API_VERSION })),
      route('GET', '/api/kernelspecs', async () => ok({ default: KERNEL_NAME, kernelspecs: { [KERNEL_NAME]: KERNELSPEC } })),
      route('GET', '/api/kernelspecs/{id}', async ({ id }) => {
        if (id !== KERNEL_NAME) throw new ProtocolError('NOT_FOUND', `no kernelspec \`${id}\``);
        return ok(KERNELSPEC);
      }),
      route('GET', '/api/kernels', async ({ tenant }) => ok(await kernels.list(tenant))),
      route('POST', '/api/kernels', async ({ tenant, request }) => {
        checkKernelName((await readJson(request)).name);
        const kernel = await kernels.start(tenant);
        return created(kernel, `/api/kernels/${kernel.id}`);
      }),
      route('GET', '/api/kernels/{id}', async ({ tenant, id }) => ok(await kernels.model(tenant, id))),
      route('DELETE', '/api/kernels/{id}', async ({ tenant, id }) => {
        await kernels.shutdown(tenant, id);
        return { status: 204 };
      }),
      route('POST', '/api/kernels/{id}/interrupt', async ({ tenant, id }) => {
        await kernels.interrupt(tenant, id);
        return { status: 204 };
      }),
      route('POST', '/api/kernels/{id}/restart', async ({ tenant, id }) => ok(await kernels.restart(tenant, id))),
      route('GET', '/api/sessions', async ({ tenant }) => ok(await this.#sessions(tenant))),
      route('POST', '/api/sessions', (call) => this.#createSession(call)),
      route('GET', '/api/sessions/{id}', async ({ tenant, id }) => ok(await this.#session(tenant, await this.#notebook(tenant, id)))),
      route('PATCH', '/api/sessions/{id}', (call) => this.#patchSession(call)),
      route('DELETE', '/api/sessions/{id}', async ({ tenant, id }) => {
        const notebook = await this.#notebook(tenant, id);
        await this.#state.deleteNotebook(tenant, id);
        await kernels.shutdown(tenant, notebook.kernelId).catch(ignoreNotFound);
        return { status: 204 };
      }),
    ];
  }

  handle(request: HttpRequest, response: HttpResponse): void {
    const match = this.#match(request.method, request.path);
    if (match === null) {
      this.#next.handle(request, response);
      return;
    }
    if (match === 'wrong-method') {
      answerError(response, 405, 'method not allowed');
      return;
    }
    const { route, id } = match;
    this.#run(route, id, request).then(
      (reply) => {
        if (reply.status === 204) response.cork(() => {
          response.writeStatus(statusLine(204));
          response.end();
        });
        else sendJson(response, reply.status, reply.body, reply.headers);
      },
      (error: unknown) => {
        const { status, message, internal } = wireError(error);
        if (internal) this.#onError(error);
        answerError(response, status, message);
      },
    );
  }

  /** The route and its `{id}` (decoded); null when no Jupyter route has the path. */
  #match(method: string, path: string): { route: Route; id: string } | 'wrong-method' | null {
    let pathKnown = false;
    for (const route of this.#routes) {
      const found = route.pattern.exec(path);
      if (!found) continue;
      pathKnown = true;
      if (route.method !== method) continue;
      try {
        return { route, id: decodeURIComponent(found[1] ?? '') };
      } catch {
        // Not valid percent-encoding: no kernel or session has that id.
        return { route, id: '' };
      }
    }
    return pathKnown ? 'wrong-method' : null;
  }

  async #run(route: Route, id: string, request: HttpRequest): Promise<Reply> {
    const token = tokenFromRequest(request.headers.authorization ?? '', request.query);
    if (token === null) throw new ProtocolError('UNAUTHORIZED', 'a token is required (Authorization: token <token>, or ?token=<token>)');
    const tenant = await this.#authenticator.tenantOf(token);
    if (tenant === null) throw new ProtocolError('FORBIDDEN', 'the token is not valid');
    return route.handler({ tenant, id, request });
  }

  async #createSession({ tenant, request }: Call): Promise<Reply> {
    const body = await readJson(request);
    const path = stringField(body, 'path') ?? stringField(body, 'name') ?? '';
    const existing = (await this.#state.notebooks(tenant)).find((notebook) => notebook.path === path && path !== '');
    if (existing && (await this.#alive(tenant, existing))) return created(await this.#session(tenant, existing), `/api/sessions/${existing.id}`);
    const notebook: NotebookSession = {
      id: randomUUID(),
      path,
      name: stringField(body, 'name') ?? '',
      type: stringField(body, 'type') ?? 'notebook',
      kernelId: await this.#kernelFor(tenant, body.kernel),
    };
    await this.#state.saveNotebook(tenant, notebook);
    return created(await this.#session(tenant, notebook), `/api/sessions/${notebook.id}`);
  }

  async #patchSession({ tenant, id, request }: Call): Promise<Reply> {
    const notebook = await this.#notebook(tenant, id);
    const body = await readJson(request);
    const changed: NotebookSession = {
      ...notebook,
      path: stringField(body, 'path') ?? notebook.path,
      name: stringField(body, 'name') ?? notebook.name,
      type: stringField(body, 'type') ?? notebook.type,
    };
    if (body.kernel !== undefined) changed.kernelId = await this.#kernelFor(tenant, body.kernel);
    await this.#state.saveNotebook(tenant, changed);
    // A notebook moved to another kernel leaves its old one, as Jupyter Server shuts it down.
    if (changed.kernelId !== notebook.kernelId) await this.#kernels.shutdown(tenant, notebook.kernelId).catch(ignoreNotFound);
    return ok(await this.#session(tenant, changed));
  }

  /** The kernel a session body names: an existing one by id, or a new one. */
  async #kernelFor(tenant: string, kernel: unknown): Promise<string> {
    const spec = kernel !== null && typeof kernel === 'object' ? (kernel as Record<string, unknown>) : {};
    if (typeof spec.id === 'string') return (await this.#kernels.model(tenant, spec.id)).id;
    checkKernelName(spec.name);
    return (await this.#kernels.start(tenant)).id;
  }

  /** The tenant's notebook sessions whose kernel still runs; the others are forgotten, as Jupyter culls them. */
  async #sessions(tenant: string): Promise<unknown[]> {
    const models: unknown[] = [];
    for (const notebook of await this.#state.notebooks(tenant)) {
      if (await this.#alive(tenant, notebook)) models.push(await this.#session(tenant, notebook));
    }
    return models;
  }

  async #alive(tenant: string, notebook: NotebookSession): Promise<boolean> {
    try {
      await this.#kernels.model(tenant, notebook.kernelId);
      return true;
    } catch (error) {
      ignoreNotFound(error);
      await this.#state.deleteNotebook(tenant, notebook.id);
      return false;
    }
  }

  async #notebook(tenant: string, id: string): Promise<NotebookSession> {
    const notebook = (await this.#state.notebooks(tenant)).find((candidate) => candidate.id === id);
    if (!notebook) throw new ProtocolError('NOT_FOUND', `no session \`${id}\``);
    return notebook;
  }

  async #session(tenant: string, notebook: NotebookSession): Promise<unknown> {
    const kernel: KernelModel = await this.#kernels.model(tenant, notebook.kernelId);
    const { id, path, name, type } = notebook;
    return { id, path, name, type, kernel, notebook: { path, name } };
  }
}

function created(model: unknown, location: string): Reply {
  return { status: 201, body: model, headers: { location } };
}

function checkKernelName(name: unknown): void {
  if (name !== undefined && name !== null && name !== '' && name !== KERNEL_NAME) {
    throw new ProtocolError('BAD_REQUEST', `no kernelspec \`${String(name).slice(0, 64)}\`: this server has \`${KERNEL_NAME}\``);
  }
}

function stringField(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  return typeof value === 'string' ? value : undefined;
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof ProtocolError) || error.code !== 'NOT_FOUND') throw error;
}

/** Jupyter Server's error body. */
function answerError(response: HttpResponse, status: number, message: string): void {
  sendText(response, status, 'application/json', JSON.stringify({ message, reason: statusLine(status).slice(4) }));
}
