/**
 * Small shared pieces for the black-box tests: a server + client pair torn down with the test,
 * and checks on event streams (contiguity, terminal `done`) expressed over frames as received.
 */
import { removeDir, startServer, type ServerOptions, type TestServer } from './server.js';
import { TestClient } from './client.js';
import type { EventFrame } from '../../protocol/types.js';

type Tap = {
  teardown(fn: () => unknown): void;
};

export const TERMINAL = ['ok', 'error', 'timeout', 'cancelled', 'crashed'];
export const STATUSES = ['queued', 'running', ...TERMINAL];

/** Starts a server whose teardown stops it (SIGTERM, short grace) and removes its folders. */
export async function serverFor(t: Tap, options: ServerOptions & { keepDirs?: boolean } = {}): Promise<TestServer> {
  const server = await startServer({ ...options, env: { VMSTREAM_SHUTDOWN_GRACE_MS: '100', ...options.env } });
  t.teardown(async () => {
    await server.stop();
    if (!options.keepDirs) {
      removeDir(server.dataDir);
      removeDir(server.workspaceDir);
    }
  });
  return server;
}

/** Connects a client closed at teardown. */
export async function clientFor(t: Tap, server: TestServer, options: { useQuery?: boolean } = {}): Promise<TestClient> {
  const client = await TestClient.connect(server.url, server.token, options);
  t.teardown(() => client.close());
  return client;
}

/** Event frames of `executionId` that arrived after `frame` (a reply the client received), in arrival order. */
export function eventsAfter(client: TestClient, frame: object, executionId: string, until?: object): EventFrame[] {
  const start = client.frames.indexOf(frame as never);
  if (start < 0) throw new Error('frame not received by this client');
  const end = until ? client.frames.indexOf(until as never) : client.frames.length;
  return client.frames
    .slice(start + 1, end < 0 ? client.frames.length : end)
    .filter((f) => f.op === 'event' && f.execution_id === executionId) as unknown as EventFrame[];
}

/** True when `values` is from, from+1, from+2, … */
export function contiguousFrom(values: number[], from: number): boolean {
  return values.every((value, index) => value === from + index);
}

/** Describes the first problem with a seq list expected to start at `from`, or null. */
export function seqProblem(values: number[], from: number): string | null {
  for (let index = 0; index < values.length; index++) {
    if (values[index] !== from + index) {
      return `at index ${index}: expected seq ${from + index}, got ${values[index]} (around: ${values.slice(Math.max(0, index - 3), index + 3).join(',')})`;
    }
  }
  return null;
}

/** Waits until the client has an event of `executionId` matching `predicate` (a type guard such as `(e) => e.type === 'done'` narrows it). */
export function waitEvent<F extends EventFrame>(client: TestClient, executionId: string, predicate: (event: EventFrame) => event is F, timeoutMs?: number): Promise<F>;
export function waitEvent(client: TestClient, executionId: string, predicate: (event: EventFrame) => boolean, timeoutMs?: number): Promise<EventFrame>;
export function waitEvent(client: TestClient, executionId: string, predicate: (event: EventFrame) => boolean, timeoutMs?: number) {
  return client.waitFor((f) => f.op === 'event' && f.execution_id === executionId && predicate(f as unknown as EventFrame), timeoutMs) as unknown as Promise<EventFrame>;
}

/** Highest seq of `executionId` this client has received, 0 when none. */
export function maxSeq(client: TestClient, executionId: string): number {
  const events = client.events.get(executionId) ?? [];
  return events.reduce((max, event) => Math.max(max, event.seq), 0);
}

/** Sends execute without waiting for done; resolves with the reply frame. */
export function startExecution(client: TestClient, sessionId: string, code: string, extra: Record<string, unknown> = {}) {
  return client.expect('execution', { op: 'execute', session_id: sessionId, kind: 'repl', code, ...extra });
}

/** Round-trips a ping: everything the server sent before it has arrived when this resolves. */
export async function sync(client: TestClient): Promise<void> {
  await client.expect('pong', { op: 'ping' });
}

/** Terminal `done` payload check: exactly one, and last. */
export function doneProblems(events: EventFrame[]): string | null {
  const dones = events.filter((event) => event.type === 'done');
  if (dones.length !== 1) return `expected exactly one done, got ${dones.length}`;
  if (events[events.length - 1]!.type !== 'done') return 'done is not the last event';
  return null;
}

/**
 * Waits for a frame matching `predicate` that arrived after `anchor` (a frame this client received),
 * without rescanning the whole history on every incoming frame.
 */
export function waitAfter(client: TestClient, anchor: object, predicate: (frame: Record<string, any>) => boolean, timeoutMs?: number) {
  const start = client.frames.indexOf(anchor as never);
  if (start < 0) throw new Error('anchor frame not received by this client');
  for (let index = start + 1; index < client.frames.length; index++) {
    if (predicate(client.frames[index]!)) return Promise.resolve(client.frames[index]!);
  }
  const existing = client.frames.length;
  return client.waitFor((f) => client.frames.length > existing && client.frames[client.frames.length - 1] === f && predicate(f), timeoutMs);
}

/**
 * One server for the subtests of a file that need no special configuration: started on first use,
 * stopped when the file's root test ends. Subtests run one after another, each with its own sessions.
 */
export function sharedServer(root: Tap, options: ServerOptions = {}): () => Promise<TestServer> {
  let starting: Promise<TestServer> | null = null;
  return () => (starting ??= serverFor(root, options));
}

/** Frames as plain data (what a replay is compared by). */
export const plain = (events: EventFrame[]) => events.map((e) => JSON.parse(JSON.stringify(e)));

/** Every event of an execution after `afterSeq`, read by a subscribe on `client`, through its `done`. */
export async function replay(client: TestClient, executionId: string, afterSeq = 0): Promise<EventFrame[]> {
  const reply = await client.expect('subscribed', { op: 'subscribe', execution_id: executionId, after_seq: afterSeq });
  await waitAfter(client, reply, (f) => f.op === 'event' && f.execution_id === executionId && f.type === 'done');
  await sync(client);
  return eventsAfter(client, reply, executionId);
}
