/**
 * An execution's events as the text a model reads: console lines in order (stderr-level ones
 * marked), the value preview, the exception with its stack, and a last line when it did not end
 * `ok`. The text is bounded: past OUTPUT_CHAR_LIMIT the rest is left out, with a note that names
 * `read_output` and the seq to continue from, so a large output never floods the model's context
 * and nothing is lost (every event stays in the store).
 */
import type { EventFrame, EventPayloads } from '../../protocol/types.js';

/** At most this many characters of text per result, the note included. */
export const OUTPUT_CHAR_LIMIT = 64_000;
/** Room kept for the truncation note and a late exception, so they always fit. */
const TAIL_RESERVE = 4_000;
/** A progress message or an exception after a cut carries at most this much. */
const SHORT_LINE = 200;

const STDERR_LEVELS = new Set(['warn', 'error']);

/** One event as lines of text; `done` only says something when the status is not ok. */
export function eventText(event: EventFrame): string | null {
  switch (event.type) {
    case 'console': {
      const { level, text } = event.payload as EventPayloads['console'];
      return STDERR_LEVELS.has(level) ? `[stderr] ${text}` : text;
    }
    case 'value':
      return `=> ${(event.payload as EventPayloads['value']).preview}`;
    case 'exception': {
      const { name, message, stack } = event.payload as EventPayloads['exception'];
      return `Uncaught ${stack || `${name}: ${message}`}`;
    }
    case 'session.restoring': {
      const { inputs, replayed } = event.payload as EventPayloads['session.restoring'];
      return `[vmstream] rebuilding the session's context before this runs: ${replayed} of ${inputs} earlier inputs re-run so far`;
    }
    case 'session.restored':
      return `[vmstream] the session's context was rebuilt (${(event.payload as EventPayloads['session.restored']).replayed} earlier inputs re-run)`;
    case 'session.lost':
      return `[vmstream] the session's state was lost: ${(event.payload as EventPayloads['session.lost']).reason}`;
    case 'done': {
      const { status, reason } = event.payload as EventPayloads['done'];
      return status === 'ok' ? null : `[vmstream] ended with status ${status}${reason ? ` (${reason})` : ''}`;
    }
    default:
      return null;
  }
}

/** The last line of an event's text, short: what a progress notification shows. */
export function latestLine(event: EventFrame): string | null {
  const text = eventText(event);
  if (text === null) return null;
  const last = text.slice(text.lastIndexOf('\n') + 1);
  return last.length > SHORT_LINE ? `${last.slice(0, SHORT_LINE)}…` : last;
}

/**
 * Accumulates events into bounded text. Events are kept whole: the text stops before the first
 * one that does not fit, and `cutAfter` is the seq of the last event it holds. After a cut, an
 * exception or a non-ok ending is still reported (shortened), as it is what a model needs most.
 */
export class OutputText {
  readonly #parts: string[] = [];
  #length = 0;
  #lastSeq = 0;
  /** Seq of the last event in the text once one did not fit; null while everything fits. */
  cutAfter: number | null = null;
  #tail: string[] = [];

  get truncated(): boolean {
    return this.cutAfter !== null;
  }

  add(event: EventFrame): void {
    const text = eventText(event);
    if (text !== null) {
      if (this.cutAfter === null && this.#length + text.length + 1 <= OUTPUT_CHAR_LIMIT - TAIL_RESERVE) {
        this.#parts.push(text);
        this.#length += text.length + 1;
      } else {
        this.cutAfter ??= this.#lastSeq;
        if (event.type === 'exception' || event.type === 'done') this.#tail.push(clip(text, SHORT_LINE * 5));
      }
    }
    if (this.cutAfter === null) this.#lastSeq = event.seq;
  }

  /** The text; `lastSeq` is the log's last seq, for the note. */
  render(executionId: string, lastSeq: number): string {
    const parts = [...this.#parts];
    if (this.cutAfter !== null) {
      parts.push(
        `[vmstream] output truncated at ${OUTPUT_CHAR_LIMIT} characters: events ${this.cutAfter + 1} to ${lastSeq} are not shown. ` +
          `Call read_output with {"execution_id": ${JSON.stringify(executionId)}, "after_seq": ${this.cutAfter}} to read them.`,
        ...this.#tail,
      );
    }
    return parts.length > 0 ? parts.join('\n') : '(no output)';
  }
}

/** `text` cut to `max` characters, an ellipsis marking the cut. */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
