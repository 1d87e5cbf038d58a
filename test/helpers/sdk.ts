/**
 * Shared pieces of the SDK tests: a client against a test server, the status it went through,
 * and a server restarted on the same port and data folder.
 */
import { Client, type ClientOptions, type EventFrame, type Status } from 'vmstream/client';
import { TestClient } from './client.js';
import { freePort, startServer, type ServerOptions, type TestServer } from './server.js';

export async function connect(url: string, token: string, options: ClientOptions = {}): Promise<{ client: Client; statuses: Status[]; until(type: Status['type'], count?: number): Promise<void> }> {
  const client = await Client.connect(url, { token, reconnectDelayMs: 50, maxReconnectDelayMs: 500, ...options });
  const statuses: Status[] = [];
  const waiters: Array<{ type: Status['type']; count: number; resolve(): void }> = [];
  const seen = (type: Status['type']) => statuses.filter((status) => status.type === type).length;
  void (async () => {
    for await (const status of client.status()) {
      statuses.push(status);
      for (const waiter of waiters.filter((w) => seen(w.type) >= w.count)) waiter.resolve();
    }
  })();
  return {
    client,
    statuses,
    until: (type, count = 1) => (seen(type) >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ type, count, resolve }))),
  };
}

/**
 * A server on a port of its own choosing, to restart on later. (uWS sets SO_REUSEADDR only for a
 * non-zero port: a server started on port 0 leaves TIME_WAIT sockets its successor cannot bind past.)
 */
export async function startOnFixedPort(options: ServerOptions = {}): Promise<TestServer> {
  return startServer({ ...options, env: { ...options.env, VMSTREAM_PORT: String(await freePort()) } });
}

/** Starts the server again over the same LevelDB, on the same port, as a restart would. */
export function restart(server: TestServer, env: Record<string, string> = {}): Promise<TestServer> {
  return startServer({ dataDir: server.dataDir, workspaceDir: server.workspaceDir, env: { ...env, VMSTREAM_PORT: String(server.port) } });
}

export function consoleTexts(events: EventFrame[]): string[] {
  return events.filter((event) => event.type === 'console').map((event) => (event as EventFrame<'console'>).payload.text);
}

/** Code that prints `line 1` … `line n`, yielding to the event loop between lines so it streams. */
export function linesCode(n: number, delayMs = 5): string {
  return `for (let i = 1; i <= ${n}; i++) { console.log('line ' + i); await new Promise((r) => setTimeout(r, ${delayMs})); }`;
}

/** The console lines an execution's log holds, read from the start by a plain protocol client. */
export async function loggedLines(server: TestServer, executionId: string): Promise<string[]> {
  const direct = await TestClient.connect(server.url, server.token);
  try {
    await direct.expect('subscribed', { op: 'subscribe', execution_id: executionId, after_seq: 0 });
    return consoleTexts(await direct.untilDone(executionId));
  } finally {
    await direct.close();
  }
}
