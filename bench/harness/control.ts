/**
 * The harness's own socket to a vmstream server, for a scenario's set-up and its gates (create a
 * session, start an execution, open a gate by cancelling it): never on a measured path, which is the
 * load generator's, in its own process.
 */
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import WebSocket from 'ws';
import type { ServerFrame } from '../../protocol/types.js';

const CALL_TIMEOUT_MS = 30_000;

export class ControlClient {
  #nextId = 0;
  readonly #listeners = new Set<(frame: ServerFrame) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const frame = decodeValue(data) as ServerFrame;
      for (const listener of [...this.#listeners]) listener(frame);
    });
  }

  static connect(url: string, token: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, headers: { authorization: `Bearer ${token}` } });
      ws.once('open', () => {
        ws.off('error', reject);
        ws.on('error', () => {});
        resolve(new ControlClient(ws));
      });
      ws.once('error', reject);
    });
  }

  /** The first frame `match` accepts, within `timeoutMs`. */
  waitFor(match: (frame: ServerFrame) => boolean, what: string, timeoutMs = CALL_TIMEOUT_MS): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const listener = (frame: ServerFrame): void => {
        if (!match(frame)) return;
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(frame);
      };
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(new Error(`control: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#listeners.add(listener);
    });
  }

  /** Sends a request and resolves with its reply; an `error` reply rejects. */
  async call<T extends ServerFrame['op']>(frame: { op: string } & Record<string, unknown>, expect: T): Promise<Extract<ServerFrame, { op: T }>> {
    const id = `control-${++this.#nextId}`;
    const reply = this.waitFor((f) => f.op !== 'event' && f.op !== 'events' && f.id === id, `reply to ${frame.op}`);
    this.ws.send(encodeFrame({ ...frame, id }));
    const answer = await reply;
    if (answer.op === 'error') throw new Error(`control ${frame.op}: ${answer.code}: ${answer.message}`);
    if (answer.op !== expect) throw new Error(`control ${frame.op}: expected ${expect}, got ${answer.op}`);
    return answer as Extract<ServerFrame, { op: T }>;
  }

  async createSession(name: string): Promise<string> {
    return (await this.call({ op: 'session.create', name }, 'session')).session.session_id;
  }

  /** Starts an execution and stops listening to it, so its events cost this process nothing. */
  async executeDetached(sessionId: string, code: string, executionId: string, timeoutMs: number): Promise<void> {
    await this.call({ op: 'execute', session_id: sessionId, kind: 'repl', code, execution_id: executionId, timeout_ms: timeoutMs }, 'execution');
    await this.call({ op: 'unsubscribe', execution_id: executionId }, 'unsubscribed');
  }

  close(): void {
    this.ws.terminate();
  }
}
