/**
 * What src/http/ needs of one HTTP exchange. transport/uws-exchange.ts adapts uWS's request and
 * response to these two interfaces, so nothing in src/http/ imports uWS, and its handlers can be
 * driven in a test without a socket.
 */

export interface HttpRequest {
  /** Upper case: GET, POST… */
  readonly method: string;
  /** The path as sent (still percent-encoded), without the query. */
  readonly path: string;
  /** The raw query string, without the `?`. */
  readonly query: string;
  /** Header values by lower-case name, copied out of the transport's request before any await. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The body, read up to the size limit. Rejects with a ProtocolError PAYLOAD_TOO_LARGE past it
   * (told by Content-Length before a byte is read, or counted as chunks arrive).
   */
  body(): Promise<Uint8Array>;
}

export interface HttpResponse {
  /** The client went away; writing is a no-op from then on. */
  readonly aborted: boolean;
  /** end() was called; writing is a no-op from then on. */
  readonly ended: boolean;
  /**
   * A streamed write was left (partly) buffered, and onWritable has not followed yet. Read after a
   * cork: false means everything written so far has gone to the socket.
   */
  readonly backpressured: boolean;
  /**
   * Runs `fn` with the socket corked, so its writes leave in one syscall. Every write that follows
   * an await must be made inside one (uWS corks only the handler's synchronous part).
   */
  cork(fn: () => void): void;
  /** The status line's code and reason, e.g. `404 Not Found`; first, before any header. */
  writeStatus(status: string): void;
  writeHeader(name: string, value: string): void;
  /**
   * Writes a chunk of a streamed body (chunked transfer encoding). False when the socket did not
   * take all of it: the rest is buffered, and onWritable says when to write again.
   */
  write(chunk: string): boolean;
  /** Ends the response with `body`; `closeConnection` also closes the connection after it. */
  end(body?: string, closeConnection?: boolean): void;
  /** `handler` runs each time the socket drains after a write returned false. */
  onWritable(handler: () => void): void;
  /** `handler` runs once if the client goes away before the response ended. */
  onAborted(handler: () => void): void;
}

/** What the transport hands each HTTP request to. */
export interface HttpHandler {
  handle(request: HttpRequest, response: HttpResponse): void;
}
