/**
 * One HTTP request and its response as src/http/port.ts sees them, over uWS: the HTTP API's
 * requests and the socket upgrades (whose refusals are answered like any API error).
 */
import type uWS from '@trufflesuite/uws-js-unofficial';
import { ProtocolError } from '../../protocol/errors.js';
import type { HttpRequest, HttpResponse } from '../http/port.js';

const EMPTY_BODY = new Uint8Array(0);

/**
 * One HTTP request and its response, as src/http/port.ts sees them. Everything is copied out of
 * `req` in the constructor (uWS invalidates it when the handler returns), onAborted is registered
 * before anything can await, and every use of `res` after it was aborted or ended is a no-op
 * (uWS throws on those). The body is read from the start, chunks copied (uWS reuses their memory),
 * and refused as soon as it passes the limit: by Content-Length before a byte, or by count.
 */
export class UwsExchange implements HttpRequest, HttpResponse {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: Record<string, string> = {};
  aborted = false;
  ended = false;
  readonly #res: uWS.HttpResponse;
  readonly #limit: number;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #body: 'reading' | 'done' | 'too-large' = 'done';
  #waiters: Array<{ resolve(body: Uint8Array): void; reject(error: unknown): void }> = [];
  #onAborted: Array<() => void> = [];

  constructor(res: uWS.HttpResponse, req: uWS.HttpRequest, limit: number) {
    this.#res = res;
    this.#limit = limit;
    this.method = req.getMethod().toUpperCase();
    this.path = req.getUrl();
    this.query = req.getQuery() ?? '';
    req.forEach((name, value) => (this.headers[name] = value));
    res.onAborted(() => this.#aborted());
    const length = Number(this.headers['content-length'] ?? 0);
    if (length > limit) this.#body = 'too-large';
    else if (length > 0 || this.headers['transfer-encoding'] !== undefined) {
      this.#body = 'reading';
      res.onData((chunk, isLast) => this.#data(chunk, isLast));
    }
  }

  body(): Promise<Uint8Array> {
    if (this.#body === 'too-large') return Promise.reject(this.#tooLarge());
    if (this.#body === 'done') return Promise.resolve(this.#chunks.length === 1 ? this.#chunks[0]! : EMPTY_BODY);
    if (this.aborted) return Promise.reject(new Error('request aborted'));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  cork(fn: () => void): void {
    if (!this.aborted && !this.ended) this.#res.cork(fn);
  }

  writeStatus(status: string): void {
    if (!this.aborted && !this.ended) this.#res.writeStatus(status);
  }

  writeHeader(name: string, value: string): void {
    if (!this.aborted && !this.ended) this.#res.writeHeader(name, value);
  }

  write(chunk: string): boolean {
    if (this.aborted || this.ended) return false;
    return this.#res.write(chunk);
  }

  end(body?: string, closeConnection = false): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    this.#res.end(body, closeConnection);
  }

  onWritable(handler: () => void): void {
    if (this.aborted || this.ended) return;
    this.#res.onWritable(() => {
      handler();
      return true;
    });
  }

  onAborted(handler: () => void): void {
    this.#onAborted.push(handler);
  }

  #data(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.#body !== 'reading') return;
    this.#size += chunk.byteLength;
    if (this.#size > this.#limit) {
      this.#body = 'too-large';
      this.#chunks = [];
      this.#settle();
      return;
    }
    this.#chunks.push(new Uint8Array(chunk.slice(0)));
    if (!isLast) return;
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    this.#body = 'done';
    this.#settle();
  }

  #settle(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) this.body().then(waiter.resolve, waiter.reject);
  }

  #tooLarge(): ProtocolError {
    return new ProtocolError('PAYLOAD_TOO_LARGE', `the body is over the ${this.#limit}-byte limit`);
  }

  #aborted(): void {
    this.aborted = true;
    for (const waiter of this.#waiters) waiter.reject(new Error('request aborted'));
    this.#waiters = [];
    for (const handler of this.#onAborted) handler();
  }
}
