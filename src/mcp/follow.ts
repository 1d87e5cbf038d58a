/**
 * Follows one execution to its `done` for a tool call: an EventSink the subscription hub serves like
 * any socket (stored events first, then live ones, no gap, no duplicate), that renders the events
 * into bounded text as they come and reports each new output line for progress notifications.
 * It keeps only that bounded text, so it never pushes back: every send is SENT.
 */
import type { DonePayload, EventFrame } from '../../protocol/types.js';
import { SendResult, type EndReason, type EventSink } from '../events/subscription-hub.js';
import { endedEarlyError } from '../events/end-reason.js';
import { publicExecutionId } from '../sessions/live.js';
import type { ProtocolError } from '../../protocol/errors.js';
import { decodeValue } from '../../protocol/codec.js';
import { latestLine, OutputText } from './output.js';

export interface Followed {
  text: OutputText;
  /** The `done` payload, or null when the subscription ended without one. */
  done: DonePayload | null;
  lastSeq: number;
  /** Why it ended without a `done` when that was no detach: its log was deleted, could not be read, or was refused by the store. */
  error: ProtocolError | null;
}

export class ExecutionFollower implements EventSink {
  readonly text = new OutputText();
  readonly #onLine: (line: string) => void;
  #lastSeq = 0;
  #done: DonePayload | null = null;
  #resolve!: (followed: Followed) => void;
  /** Settles when the subscription ends: after `done`, or when it was detached. */
  readonly finished = new Promise<Followed>((resolve) => (this.#resolve = resolve));

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  send(frame: Uint8Array): SendResult {
    const event = decodeValue(frame) as EventFrame;
    this.#lastSeq = event.seq;
    this.text.add(event);
    if (event.type === 'done') this.#done = event.payload as DonePayload;
    else {
      const line = latestLine(event);
      if (line !== null) this.#onLine(line);
    }
    return SendResult.SENT;
  }

  cork(fn: () => void): void {
    fn();
  }

  ended(executionId: string, reason: EndReason): void {
    const error = endedEarlyError(publicExecutionId(executionId), reason);
    this.#resolve({ text: this.text, done: this.#done, lastSeq: this.#lastSeq, error });
  }
}
