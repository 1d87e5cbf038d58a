/**
 * What a worker thread makes of a run's output: each console line, value, exception and `done` as
 * one record of its output ring (output-ring.ts). A plain console line (no structured fields) is
 * its wire frame (console-frame.ts), encoded straight into the ring where it fits in one piece:
 * the server stores and sends those bytes without decoding them. Anything else is an OutputItem.
 * It runs once per printed line, on the thread running the user's loop (bench/units/console-line.ts).
 */
import { Packr } from 'msgpackr';
import type { RunOutput } from '../sandbox/session-context.js';
import { ConsoleRecordEncoder, type RecordPrefix } from './console-frame.js';
import { ItemKind, type OutputItem } from './messages.js';
import type { RingWriter } from './output-ring.js';

export class RunOutputs {
  readonly #ring: RingWriter;
  readonly #written: () => void;
  readonly #packr = new Packr({ useRecords: false });
  readonly #consoleRecords = new ConsoleRecordEncoder();

  /** `written` is called after each record lands in `ring`. */
  constructor(ring: RingWriter, written: () => void) {
    this.#ring = ring;
    this.#written = written;
  }

  /** The output of the run `xid`; `ended` is told of its end before its `done` is written. */
  for(xid: string, ended: (xid: string) => void): RunOutput {
    // Made at the run's first console line: most runs print nothing.
    let prefix: RecordPrefix | null | undefined;
    return {
      console: (level, text, truncated, extra) => this.#console(xid, prefix === undefined ? (prefix = this.#consoleRecords.prefix(xid)) : prefix, level, text, truncated, extra),
      value: (type, preview, extra) => this.push(xid, ItemKind.Value, type, preview, 0, extra),
      exception: (name, message, stack) => this.push(xid, ItemKind.Exception, name, message, stack),
      done: (status) => {
        ended(xid);
        this.push(xid, ItemKind.Done, status, 0, 0);
      },
    };
  }

  /** An OutputItem record; `extra` is JSON the context wrote (in-context-preview.ts). */
  push(xid: string, kind: ItemKind, a: string | number | boolean, b: string | number | boolean, c: string | number | boolean, extra = ''): void {
    const structured = extra === '' ? undefined : parseExtra(extra);
    const item: OutputItem = structured === undefined ? [xid, kind, Date.now(), a, b, c] : [xid, kind, Date.now(), a, b, c, structured];
    this.#write(this.#packr.pack(item));
  }

  #console(xid: string, prefix: RecordPrefix | null, level: number, text: string, truncated: boolean, extra: string): void {
    if (prefix && extra === '') {
      const ring = this.#ring;
      const start = ring.reserve(this.#consoleRecords.maxBytes(prefix, text));
      if (start >= 0) {
        const end = this.#consoleRecords.encodeInto(ring.bytes, ring.view, start, prefix, level, text, truncated, Date.now());
        if (end >= 0) {
          ring.commit(start, end);
          return this.#written();
        }
      } else {
        // Where the ring wraps: encoded aside, then copied in two pieces.
        const record = this.#consoleRecords.encode(prefix, level, text, truncated, Date.now());
        if (record) return this.#write(record);
      }
    }
    // Structured, or arguments no honest context passes (the server refuses the item).
    this.push(xid, ItemKind.Console, level, text, truncated, extra);
  }

  #write(record: Uint8Array): void {
    this.#ring.write(record);
    this.#written();
  }
}

/** `extra` is JSON the context wrote; parsed here, it is plain host data. */
function parseExtra(extra: string): unknown {
  try {
    return JSON.parse(extra);
  } catch {
    return undefined;
  }
}
