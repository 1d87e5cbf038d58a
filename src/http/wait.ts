/**
 * `?wait=MS` (or `Prefer: wait=SECONDS`, RFC 7240) on the execute routes: the answer waits, up to
 * WAIT_MS_MAX, for the execution to end, and then carries its events, so a short piece of code is
 * one request. The waiting is done by an EventSink subscribed from seq 1, exactly as a socket's
 * execute is subscribed, so no event is missed or doubled; a subscription that ends short of the
 * `done` (events/end-reason.ts) makes the answer its error.
 */
import { WAIT_MS_MAX } from '../../protocol/http.js';
import { decodeValue } from '../../protocol/codec.js';
import type { ProtocolError } from '../../protocol/errors.js';
import type { EventFrame } from '../../protocol/types.js';
import { endedEarlyError } from '../events/end-reason.js';
import { SendResult, type EndReason, type EventSink } from '../events/subscription-hub.js';
import { publicExecutionId } from '../sessions/live.js';

export class EventCollector implements EventSink {
  readonly events: EventFrame[] = [];
  /**
   * Why the subscription ended short of the execution's `done` (LOG_DELETED, LOG_UNREADABLE,
   * LOG_REFUSED), once it has: the answer is that error, as on every other door, not a record that
   * seems to have stopped.
   */
  endedEarly: ProtocolError | null = null;
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

  ended(executionId: string, reason: EndReason): void {
    this.endedEarly = endedEarlyError(publicExecutionId(executionId), reason);
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
