/**
 * `?wait=MS` (or `Prefer: wait=SECONDS`, RFC 7240) on the execute routes: the answer waits, up to
 * WAIT_MS_MAX, for the execution to end, and then carries its events, so a short piece of code is
 * one request. The waiting is done by an EventSink subscribed from seq 1, exactly as a socket's
 * execute is subscribed, so no event is missed or doubled.
 */
import { WAIT_MS_MAX } from '../../protocol/http.js';
import { decodeValue } from '../../protocol/codec.js';
import type { EventFrame } from '../../protocol/types.js';
import { SendResult, type EventSink } from '../events/subscription-hub.js';

export class EventCollector implements EventSink {
  readonly events: EventFrame[] = [];
  readonly #ended: Promise<void>;
  #end!: () => void;

  constructor() {
    this.#ended = new Promise((resolve) => (this.#end = resolve));
  }

  send(frame: Uint8Array): SendResult {
    const event = decodeValue(frame) as EventFrame;
    this.events.push(event);
    if (event.type === 'done') this.#end();
    return SendResult.SENT;
  }

  cork(fn: () => void): void {
    fn();
  }

  ended(): void {
    this.#end();
  }

  /** True when the execution's `done` arrived within `ms`. */
  async finishedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    await Promise.race([this.#ended, timedOut]);
    clearTimeout(timer);
    return this.events.at(-1)?.type === 'done';
  }
}

/**
 * How long the client asked to wait, in ms (0: not at all), and the `Preference-Applied` value to
 * answer with when the ask came as `Prefer: wait=N` (seconds, lowered to the limit). The query wins.
 */
export function requestedWait(queryWaitMs: number | undefined, prefer: string | undefined): { ms: number; applied: string | null } {
  if (queryWaitMs !== undefined) return { ms: queryWaitMs, applied: null };
  const match = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,9})"?/i.exec(prefer ?? '');
  if (!match) return { ms: 0, applied: null };
  const seconds = Math.min(Number(match[1]), WAIT_MS_MAX / 1000);
  return { ms: seconds * 1000, applied: `wait=${seconds}` };
}
