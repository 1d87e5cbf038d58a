/**
 * One HTTP request and its response as src/http/port.ts sees them, over uWS: the HTTP API's
 * requests and the socket upgrades (whose refusals are answered like any API error).
 */
import type uWS from '@trufflesuite/uws-js-unofficial';
import { ProtocolError } from '../../protocol/errors.js';
import type { HttpRequest, HttpResponse } from '../http/port.js';

const EMPTY_BODY = new Uint8Array(0);
/**
 * A streamed body is written outside uWS's cork: when a corked write overflows uWS's 16 KB cork
 * buffer and the socket cannot take that buffer, uWS (up to 20.79) drops the overflowing write
 * (AsyncSocket::uncork, fixed upstream in uNetworking/uWebSockets 6b7f354), which corrupts the
 * chunked framing of a reader under backpressure (the client sees HPE_INVALID_CHUNK_SIZE). So the
 * chunks written inside one cork are joined and written once it is over, in pieces that each fit
 * the cork buffer (see #writeNow). Past this many bytes in one cork, write() says the caller should
 * wait for onWritable.
 */
const CORK_BATCH_LIMIT = 256 * 1024;
/** A streamed piece, written in a cork of its own: with its chunk header, well inside uWS's 16 KB cork buffer. */
const CORK_PIECE_BYTES = 12 * 1024;

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
  /** The streamed chunks of the cork under way (null: not in a cork). */
  #batch: string[] | null = null;
  #batchBytes = 0;
  /** end() was called in a cork after a streamed chunk: it follows the batch. */
  #endAfterBatch: { body: string | undefined; closeConnection: boolean } | null = null;
  /** A write returned false: onWritable must follow, from uWS or (if uWS took the batch) from us. */
  #owesWritable = false;
  /** uWS buffered part of a write; it calls onWritable once the socket can take more. */
  #backpressure = false;
  #onWritable: (() => void) | null = null;

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

  get backpressured(): boolean {
    return this.#backpressure;
  }

  cork(fn: () => void): void {
    if (this.aborted || this.ended) return;
    if (this.#batch) return fn();
    this.#batch = [];
    try {
      this.#res.cork(fn);
    } finally {
      this.#flush();
    }
  }

  writeStatus(status: string): void {
    if (!this.aborted && !this.ended) this.#res.writeStatus(status);
  }

  writeHeader(name: string, value: string): void {
    if (!this.aborted && !this.ended) this.#res.writeHeader(name, value);
  }

  write(chunk: string): boolean {
    if (this.aborted || this.ended) return false;
    if (!this.#batch) return this.#writeNow(chunk);
    this.#batch.push(chunk);
    this.#batchBytes += chunk.length;
    if (!this.#backpressure && this.#batchBytes < CORK_BATCH_LIMIT) return true;
    this.#owesWritable = true;
    return false;
  }

  end(body?: string, closeConnection = false): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    if (this.#batch?.length) this.#endAfterBatch = { body, closeConnection };
    else this.#res.end(body, closeConnection);
  }

  onWritable(handler: () => void): void {
    if (this.aborted || this.ended) return;
    this.#onWritable = handler;
    this.#res.onWritable(() => {
      this.#backpressure = false;
      handler();
      return true;
    });
  }

  /** Writes the cork's streamed chunks in pieces (see #writeNow), then the end if it came. */
  #flush(): void {
    const batch = this.#batch ?? [];
    this.#batch = null;
    this.#batchBytes = 0;
    const end = this.#endAfterBatch;
    this.#endAfterBatch = null;
    if (this.aborted) return;
    if (batch.length) this.#writeNow(batch.join(''));
    if (end) this.#res.cork(() => this.#res.end(end.body, end.closeConnection));
    if (this.#owesWritable && !this.#backpressure && !this.ended) {
      // uWS took it all, so it will not call onWritable: the writer that was told to wait resumes now.
      setImmediate(() => {
        if (!this.aborted && !this.ended) this.#onWritable?.();
      });
    }
    this.#owesWritable = false;
  }

  /**
   * Writes in pieces that each fit uWS's cork buffer with their chunk header, one cork each: a cork
   * that does not overflow is flushed whole or buffered by uWS (never dropped), and a write outside
   * any cork would make uWS print a warning on stderr for every call.
   */
  #writeNow(chunk: string): boolean {
    const bytes = Buffer.from(chunk, 'utf8');
    let flushed = true;
    for (let start = 0; start < bytes.length; start += CORK_PIECE_BYTES) {
      const piece = bytes.subarray(start, start + CORK_PIECE_BYTES);
      this.#res.cork(() => {
        if (!this.#res.write(piece)) flushed = false;
      });
    }
    if (!flushed) this.#backpressure = true;
    return flushed;
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
