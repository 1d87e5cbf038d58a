/**
 * One kernel WebSocket (`/api/kernels/{id}/channels`): the shell and control requests a client
 * sends, answered with the reply and the `status: busy`/`idle` pair a Jupyter kernel publishes
 * around each; and, as its feed's connection, the derived messages of the kernel's executions.
 */
import { ProtocolError } from '../../protocol/errors.js';
import { SendResult } from '../events/subscription-hub.js';
import { isIncomplete } from '../sandbox/incomplete.js';
import type { BudgetMember, SendBudget } from '../transport/send-budget.js';
import type { RouteHandler, RouteSocket } from '../transport/uws-server.js';
import type { Feed, FeedConnection } from './feed.js';
import type { Kernels } from './kernels.js';
import { encodeMessage, makeMessage, parseMessage, PROTOCOL_VERSION, type KernelIdentity, type Message } from './messages.js';

/** Close code for a connection another one of the same client session took over (as Jupyter Server). */
const CLOSE_REPLACED = 1000;
/** Close code for a connection that stopped answering pings (the peer is gone without closing). */
const CLOSE_NO_ANSWER = 1001;
/** Close code for a connection whose feed could not read an execution's events (internal error). */
const CLOSE_FAILED = 1011;
/**
 * Every open channel is pinged this often, and one that has not answered since the last time is
 * ended: these sockets have no idle timeout, so a peer gone without closing would stay forever.
 * One timer for all channels.
 */
const KEEPALIVE_MS = 30_000;
const openChannels = new Set<KernelChannel>();
let keepalive: NodeJS.Timeout | null = null;

export interface ChannelOptions {
  backpressureBytes: number;
  /** The server's one bound on bytes waiting in socket buffers, shared with the protocol's sockets and event streams. */
  sendBudget: SendBudget;
  onError(error: unknown): void;
}

export const KERNEL_INFO = Object.freeze({
  status: 'ok',
  protocol_version: PROTOCOL_VERSION,
  implementation: 'vmstream',
  implementation_version: '0.1.0',
  language_info: {
    name: 'javascript',
    version: process.versions.node,
    mimetype: 'application/javascript',
    file_extension: '.js',
    codemirror_mode: 'javascript',
    pygments_lexer: 'javascript',
  },
  banner: `vmstream: JavaScript (Node ${process.versions.node} node:vm) with durable output`,
  help_links: [],
});

export class KernelChannel implements RouteHandler, FeedConnection, BudgetMember {
  open = true;
  readonly #socket: RouteSocket;
  readonly #kernels: Kernels;
  readonly #tenant: string;
  readonly #kernelId: string;
  readonly #identity: KernelIdentity;
  readonly #binary: boolean;
  readonly #options: ChannelOptions;
  #feed: Feed | null = null;
  /** Something (a pong, a message) came since the last keepalive ping. */
  #answered = true;

  constructor(socket: RouteSocket, kernels: Kernels, tenant: string, kernelId: string, binary: boolean, options: ChannelOptions) {
    this.#socket = socket;
    this.#kernels = kernels;
    this.#tenant = tenant;
    this.#kernelId = kernelId;
    this.#identity = { session: kernelId };
    this.#binary = binary;
    this.#options = options;
    kernels.connected(tenant, kernelId, 1);
    openChannels.add(this);
    keepalive ??= setInterval(beat, KEEPALIVE_MS).unref();
  }

  /** Starts the feed once the socket is open. */
  start(feed: Feed): void {
    if (!this.open) return;
    this.#feed = feed;
    feed.attach(this);
  }

  // FeedConnection

  write(messages: Message[]): SendResult {
    if (!this.open) return SendResult.DROPPED;
    let dropped = false;
    this.#socket.cork(() => {
      for (const message of messages) if (this.#socket.send(encodeMessage(message, this.#binary), this.#binary) === 2) dropped = true;
    });
    if (dropped) return SendResult.DROPPED;
    const buffered = this.#socket.bufferedAmount();
    const room = this.#options.sendBudget.hold(this, buffered);
    // Full on its own: its drain resumes it. Full with all the others: it waits its turn.
    if (buffered > this.#options.backpressureBytes) return SendResult.SENT_FULL;
    if (room) return SendResult.SENT;
    this.#options.sendBudget.wait(this);
    return SendResult.SENT_FULL;
  }

  /** Its turn (BudgetMember): its paused subscription catches up; the budget hears when it stopped. */
  proceed(): void {
    void (this.#feed?.drained() ?? Promise.resolve()).then(() => this.#options.sendBudget.settle(this));
  }

  ping(payload: string): void {
    if (this.open) this.#socket.ping(payload);
  }

  cork(fn: () => void): void {
    if (this.open) this.#socket.cork(fn);
  }

  replace(): void {
    this.#end(CLOSE_REPLACED, 'replaced by a newer connection of the same session_id');
  }

  fail(reason: string): void {
    this.#end(CLOSE_FAILED, reason);
  }

  #end(code: number, reason: string): void {
    if (!this.open) return;
    this.#socket.end(code, reason);
    this.close();
  }

  // RouteHandler

  message(data: Uint8Array, isBinary: boolean): void {
    this.#answered = true;
    const request = parseMessage(data, isBinary, this.#binary);
    if (!request) return;
    this.#handle(request).catch((error: unknown) => {
      if (!(error instanceof ProtocolError)) this.#options.onError(error);
    });
  }

  pong(payload: Uint8Array): void {
    this.#answered = true;
    this.#feed?.pong(Buffer.from(payload).toString('utf8'));
  }

  /** Its buffer shrank: the feed goes on, unless other sockets wait for room before it. */
  drain(): void {
    const budget = this.#options.sendBudget;
    const buffered = this.#socket.bufferedAmount();
    budget.hold(this, buffered);
    if (buffered > this.#options.backpressureBytes || budget.isWaiting(this)) return;
    if (budget.open) this.proceed();
    else budget.wait(this);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.#options.sendBudget.remove(this);
    openChannels.delete(this);
    if (openChannels.size === 0 && keepalive) {
      clearInterval(keepalive);
      keepalive = null;
    }
    this.#kernels.connected(this.#tenant, this.#kernelId, -1);
    if (this.#feed) this.#kernels.detached(this.#feed, this);
  }

  /** The keepalive: ends the connection if the last ping went unanswered, else pings again. */
  beat(): void {
    if (!this.#answered) {
      this.#end(CLOSE_NO_ANSWER, 'no answer to ping');
      return;
    }
    this.#answered = false;
    this.#socket.ping('keepalive');
  }

  async #handle(request: Message): Promise<void> {
    const type = request.header.msg_type;
    if (type === 'execute_request') return this.#execute(request);
    const answer = REPLIES[type];
    if (!answer) return;
    this.write([this.#status('busy', request)]);
    let content: Record<string, unknown>;
    try {
      content = await answer(this, request);
    } catch (error) {
      content = errorContent(error);
    }
    const reply = makeMessage(this.#identity, request.channel === 'control' ? 'control' : 'shell', type.replace(/_request$/, '_reply'), content, request.header);
    this.write([reply, this.#status('idle', request)]);
  }

  /**
   * Its messages come through the feed; only a request aborted behind a failure, or refused (kernel
   * gone, queue full), is answered here.
   */
  async #execute(request: Message): Promise<void> {
    this.#feed?.asked(request.header.session);
    try {
      if ((await this.#kernels.execute(this.#tenant, this.#kernelId, request)) === 'aborted') {
        const reply = makeMessage(this.#identity, 'shell', 'execute_reply', { status: 'aborted', execution_count: null }, request.header);
        this.write([this.#status('busy', request), reply, this.#status('idle', request)]);
      }
    } catch (error) {
      const content = errorContent(error);
      this.write([
        this.#status('busy', request),
        makeMessage(this.#identity, 'iopub', 'error', { ename: content.ename, evalue: content.evalue, traceback: content.traceback }, request.header),
        makeMessage(this.#identity, 'shell', 'execute_reply', { ...content, execution_count: null }, request.header),
        this.#status('idle', request),
      ]);
      throw error;
    }
  }

  #status(state: 'busy' | 'idle', parent: Message): Message {
    return makeMessage(this.#identity, 'iopub', 'status', { execution_state: state }, parent.header);
  }

  get tenant(): string {
    return this.#tenant;
  }

  get kernelId(): string {
    return this.#kernelId;
  }

  get kernels(): Kernels {
    return this.#kernels;
  }
}

function beat(): void {
  for (const channel of [...openChannels]) channel.beat();
}

type Answer = (channel: KernelChannel, request: Message) => Promise<Record<string, unknown>>;

/** The requests answered with a reply of their own (execute_request goes through the feed). */
const REPLIES: Readonly<Record<string, Answer>> = {
  kernel_info_request: async () => ({ ...KERNEL_INFO }),
  is_complete_request: async (_channel, { content }) => {
    const code = typeof content.code === 'string' ? content.code : '';
    return isIncomplete(code) ? { status: 'incomplete', indent: '' } : { status: 'complete' };
  },
  comm_info_request: async () => ({ status: 'ok', comms: {} }),
  inspect_request: async () => ({ status: 'ok', found: false, data: {}, metadata: {} }),
  history_request: async ({ kernels, tenant, kernelId }, { content }) => {
    const records = (await kernels.history(tenant, kernelId)).filter((record) => record.kind === 'repl');
    const items = records.map((record) => [0, record.number, record.code ?? '']);
    const n = typeof content.n === 'number' && content.n > 0 ? content.n : items.length;
    return { status: 'ok', history: content.hist_access_type === 'tail' ? items.slice(-n) : items };
  },
  interrupt_request: async ({ kernels, tenant, kernelId }) => {
    await kernels.interrupt(tenant, kernelId);
    return { status: 'ok' };
  },
  complete_request: async ({ kernels, tenant, kernelId }, { content }) => {
    const code = typeof content.code === 'string' ? content.code : '';
    const cursor = typeof content.cursor_pos === 'number' ? content.cursor_pos : [...code].length;
    return { status: 'ok', ...(await kernels.complete(tenant, kernelId, code, cursor)), metadata: {} };
  },
  shutdown_request: async ({ kernels, tenant, kernelId }, { content }) => {
    const restart = content.restart === true;
    if (restart) await kernels.restart(tenant, kernelId);
    else await kernels.shutdown(tenant, kernelId);
    return { status: 'ok', restart };
  },
};

function errorContent(error: unknown): { status: 'error'; ename: string; evalue: string; traceback: string[] } {
  const ename = error instanceof ProtocolError ? error.code : 'InternalError';
  const evalue = error instanceof ProtocolError ? error.message : 'internal error';
  return { status: 'error', ename, evalue, traceback: [`${ename}: ${evalue}`] };
}
