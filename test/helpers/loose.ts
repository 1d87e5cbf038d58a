/**
 * Loosely typed views of events for the fault and limit tests, which check payloads by value.
 */
import type { EventFrame } from '../../protocol/types.js';
import type { TestClient } from './client.js';

export type AnyEvent = EventFrame & { payload: any };

/** client.run with payloads typed loosely. */
export function runRepl(client: TestClient, sessionId: string, code: string, extra: Record<string, unknown> = {}) {
  return client.run(sessionId, code, extra) as Promise<{ execution: Record<string, any>; events: AnyEvent[]; done: AnyEvent }>;
}

export function last<T>(items: T[]): T {
  return items[items.length - 1]!;
}

/** A string value's preview: quoted, as Node's REPL shows it. */
export function quoted(text: string): string {
  return `'${text}'`;
}

export function valueOf(events: AnyEvent[]): string | undefined {
  return events.find((e) => e.type === 'value')?.payload.preview;
}

export function consoleTexts(events: AnyEvent[]): string[] {
  return events.filter((e) => e.type === 'console').map((e) => e.payload.text as string);
}

/** The first event past a rebuild's `session.restoring` progress: `session.restored` or `session.lost` when there was one. */
export function afterRestoring<E extends { type: string }>(events: E[]): E | undefined {
  return events.find((e) => e.type !== 'session.restoring');
}
