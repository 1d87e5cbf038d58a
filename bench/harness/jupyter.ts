/**
 * Debian's Jupyter Notebook server (6.4, `jupyter-notebook`, with ipykernel 6) for the ipykernel
 * baseline, started the way test/jupyter-notebook.test.ts starts it (its state in a temporary home,
 * a token, loopback, no browser), and a client of one kernel's websocket channel speaking the Jupyter
 * messaging protocol directly (JSON messages, `channel` naming shell or iopub) with `ws`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { freePort, waitForPort } from './ports.js';
import type { Executed, Interpreter } from './interactive.js';
import type { Child, Procs } from './procs.js';

export const NOTEBOOK = '/usr/bin/jupyter-notebook';
const READY_TIMEOUT_MS = 30_000;
const CALL_TIMEOUT_MS = 60_000;
/** The server asks its kernels to shut down on SIGTERM; past this it is killed. */
const STOP_GRACE_MS = 10_000;

/** Why the Jupyter comparison cannot run on this machine, or null when it can. */
export function jupyterMissing(): string | null {
  return existsSync(NOTEBOOK) ? null : `${NOTEBOOK} is not installed (Debian's jupyter-notebook; npm test installs it: scripts/system-packages.mjs)`;
}

export interface Jupyter {
  child: Child;
  url: string;
  token: string;
  /** Starts a python3 kernel and opens its channel once the kernel answers. */
  kernel(): Promise<KernelClient>;
  /** Shuts every kernel down through the API (so none outlives the server), then stops the server. */
  stop(): Promise<void>;
}

export async function startJupyter(procs: Procs, dir: string): Promise<Jupyter> {
  const home = join(dir, 'jupyter-home');
  const notebooks = join(home, 'notebooks');
  mkdirSync(notebooks, { recursive: true });
  const port = await freePort();
  const token = randomBytes(18).toString('hex');
  const child = procs.spawn('jupyter-notebook', NOTEBOOK, [
    '--no-browser', '--allow-root', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0',
    `--NotebookApp.token=${token}`, `--notebook-dir=${notebooks}`,
    // The output rate guards drop a fast kernel's output past 1 MB/s or 1 000 messages/s: a
    // measurement of output must see all of it.
    '--NotebookApp.iopub_data_rate_limit=1e12', '--NotebookApp.iopub_msg_rate_limit=1e9',
  ], { env: { PATH: process.env.PATH ?? '', HOME: home, JUPYTER_RUNTIME_DIR: join(home, 'runtime') }, stderrFile: join(dir, 'jupyter-notebook.log') });
  try {
    await waitForPort(port, READY_TIMEOUT_MS, child.exited);
  } catch (error) {
    throw new Error(`jupyter-notebook did not start: ${(error as Error).message} ${child.stderrTail(600)}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const api = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const response = await fetch(`${url}${path}`, { method, headers: { authorization: `token ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response;
  };
  const kernels: string[] = [];
  return {
    child,
    url,
    token,
    async kernel() {
      const { id } = (await (await api('POST', '/api/kernels', { name: 'python3' })).json()) as { id: string };
      kernels.push(id);
      return KernelClient.open(`ws://127.0.0.1:${port}/api/kernels/${id}/channels?session_id=${randomUUID()}&token=${token}`);
    },
    async stop() {
      try {
        await Promise.all(kernels.splice(0).map((id) => api('DELETE', `/api/kernels/${id}`)));
      } finally {
        await child.stop(STOP_GRACE_MS);
      }
    },
  };
}

interface Message {
  header: { msg_id: string; msg_type: string };
  parent_header: { msg_id?: string };
  content: Record<string, unknown>;
  channel: string;
}

/** What one request's replies add up to: its shell reply, and its iopub output until `idle`. */
interface Pending {
  replied: boolean;
  idle: boolean;
  lines: number;
  /** stdout `stream` messages. */
  messages: number;
  status: string;
  done(): void;
}

export class KernelClient implements Interpreter {
  readonly #session = randomUUID();
  readonly #pending = new Map<string, Pending>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.#onMessage(JSON.parse(data.toString('utf8')) as Message));
  }

  static async open(url: string): Promise<KernelClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.on('error', () => {});
    const client = new KernelClient(ws);
    // The kernel answers kernel_info once it is up: the first execute is not its start-up.
    await client.#request('kernel_info_request', {});
    return client;
  }

  /**
   * Runs `code` and resolves once the execute is complete (its execute_reply and the iopub `idle`
   * after its output), with the time that took and the stdout lines it printed. Throws unless `ok`.
   */
  async execute(code: string): Promise<Executed> {
    const t0 = performance.now();
    const pending = await this.#request('execute_request', { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true });
    const ms = performance.now() - t0;
    if (pending.status !== 'ok') throw new Error(`the kernel ran ${JSON.stringify(code.slice(0, 60))}: ${pending.status}`);
    return { ms, lines: pending.lines, messages: pending.messages };
  }

  close(): void {
    this.ws.terminate();
  }

  #request(type: 'execute_request' | 'kernel_info_request', content: Record<string, unknown>): Promise<Pending> {
    const msgId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(msgId);
        reject(new Error(`no complete ${type} within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      const pending: Pending = {
        replied: false,
        idle: false,
        lines: 0,
        messages: 0,
        status: '',
        done: () => {
          clearTimeout(timer);
          this.#pending.delete(msgId);
          resolve(pending);
        },
      };
      this.#pending.set(msgId, pending);
      this.ws.send(JSON.stringify({
        header: { msg_id: msgId, username: 'bench', session: this.#session, msg_type: type, version: '5.3', date: new Date().toISOString() },
        parent_header: {}, metadata: {}, content, channel: 'shell', buffers: [],
      }));
    });
  }

  #onMessage(message: Message): void {
    const pending = this.#pending.get(message.parent_header.msg_id ?? '');
    if (!pending) return;
    const type = message.header.msg_type;
    if (message.channel === 'shell' && type.endsWith('_reply')) {
      pending.replied = true;
      pending.status = String(message.content.status);
    } else if (type === 'stream' && message.content.name === 'stdout') {
      pending.lines += countLines(String(message.content.text));
      pending.messages++;
    } else if (type === 'status' && message.content.execution_state === 'idle') {
      pending.idle = true;
    }
    if (pending.replied && pending.idle) pending.done();
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) n++;
  return n;
}
