/** Opening the load generator's `ws` connections, with a bound on how long that may take. */
import WebSocket from 'ws';

const CONNECT_TIMEOUT_MS = 5_000;

export function connect(url: string, token?: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // No compression: it would measure zlib, and the baselines' server does not offer it.
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: 16 * 1024 * 1024,
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connect ${url}: no open within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    ws.once('error', onError);
    ws.once('open', () => {
      clearTimeout(timer);
      ws.off('error', onError);
      // A later error surfaces as 'close', which the drivers watch; unheard, it would crash the process.
      ws.on('error', () => {});
      resolve(ws);
    });
  });
}

/**
 * `count` connections, at most `concurrency` opening at once. One at a time (the default) for the
 * throughput drivers: a burst of handshakes measures the accept queue, not the steady state. The
 * memory and storm drivers open thousands and go wider.
 */
export async function connectAll(url: string, count: number, token?: string, concurrency = 1): Promise<WebSocket[]> {
  const sockets: WebSocket[] = new Array(count);
  let next = 0;
  let failure: unknown = null;
  const lane = async (): Promise<void> => {
    while (failure === null && next < count) {
      const index = next++;
      try {
        sockets[index] = await connect(url, token);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, lane));
  if (failure !== null) {
    for (const ws of sockets) ws?.terminate();
    throw failure;
  }
  return sockets;
}
