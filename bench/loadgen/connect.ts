/** Opening the load generator's `ws` connections, with a bound on how long that may take. */
import WebSocket from 'ws';

const CONNECT_TIMEOUT_MS = 5_000;

export function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // No compression: it would measure zlib, and the baselines' server does not offer it.
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connect ${url}: no open within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
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

export async function connectAll(url: string, count: number): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  try {
    // One at a time: a burst of handshakes measures the accept queue, not the steady state.
    for (let i = 0; i < count; i++) sockets.push(await connect(url));
    return sockets;
  } catch (error) {
    for (const ws of sockets) ws.terminate();
    throw error;
  }
}
