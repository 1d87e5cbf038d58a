/**
 * How the terminal commands print an execution's events: console output by level, values, errors
 * and the notes vmstream adds ([vmstream] …), in colour on a terminal that has it (NO_COLOR and
 * FORCE_COLOR respected through Node's own hasColors()).
 */
import type { EventFrame } from '../client/index.js';

const CODES = { red: [31, 39], yellow: [33, 39], green: [32, 39], cyan: [36, 39], magenta: [35, 39], grey: [90, 39], bold: [1, 22] } as const;
export type Colour = keyof typeof CODES;
/** Which `value` events to print: all, none, or all but `undefined`. */
export type ShowValues = boolean | 'defined';

export class Renderer {
  readonly #out: NodeJS.WritableStream;
  readonly #colour: boolean;
  /** Called around every write, so the REPL can take its prompt down and put it back. */
  readonly #around: (write: () => void) => void;
  readonly #showValues: ShowValues;

  constructor(out: NodeJS.WriteStream, options: { showValues: ShowValues; around?: (write: () => void) => void }) {
    this.#out = out;
    this.#colour = typeof out.hasColors === 'function' && out.isTTY ? out.hasColors() : false;
    this.#showValues = options.showValues;
    this.#around = options.around ?? ((write) => write());
  }

  paint(colour: Colour, text: string): string {
    if (!this.#colour) return text;
    const [open, close] = CODES[colour];
    return `\u001b[${open}m${text}\u001b[${close}m`;
  }

  line(text: string): void {
    this.#around(() => this.#out.write(`${text}\n`));
  }

  /** A line of vmstream's own (status, reconnects), set apart from the program's output. */
  note(text: string, colour: Colour = 'magenta'): void {
    this.line(this.paint(colour, `[vmstream] ${text}`));
  }

  error(error: unknown): void {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    this.line(this.paint('red', `[vmstream] ${typeof code === 'string' ? `${code}: ` : ''}${message}`));
  }

  event(event: EventFrame): void {
    switch (event.type) {
      case 'console': {
        const { level, text, truncated } = event.payload;
        const body = truncated ? `${text}${this.paint('grey', ' …(truncated)')}` : text;
        if (level === 'error') return this.line(this.paint('red', body));
        if (level === 'warn') return this.line(this.paint('yellow', body));
        if (level === 'info') return this.line(this.paint('cyan', body));
        if (level === 'debug') return this.line(this.paint('grey', body));
        return this.line(body);
      }
      case 'value': {
        const { type, preview } = event.payload;
        if (!this.#showValues || (this.#showValues === 'defined' && type === 'undefined')) return;
        return this.line(this.paint(valueColour(type), preview));
      }
      case 'exception': {
        const { name, message, stack } = event.payload;
        return this.line(this.paint('red', `Uncaught ${stack || `${name}: ${message}`}`));
      }
      case 'session.restoring': {
        const { inputs, replayed } = event.payload;
        if (replayed === 0) return this.note(`the session's state is being rebuilt: re-running its ${inputs} earlier input${inputs === 1 ? '' : 's'}…`);
        return this.note(`rebuilding: ${replayed} of ${inputs} inputs re-run…`);
      }
      case 'session.restored': {
        const { replayed } = event.payload;
        return this.note(`session restored: its state was rebuilt by re-running ${replayed} earlier input${replayed === 1 ? '' : 's'}; values they computed (Date.now(), Math.random(), I/O) may differ from the first time`);
      }
      case 'session.lost': {
        const { reason } = event.payload;
        return this.note(`session lost (${reason}): its earlier state is gone`, 'yellow');
      }
      case 'done': {
        const { status, reason, duration_ms: duration } = event.payload;
        if (status === 'ok' || (status === 'error' && reason === undefined)) return;
        if (status === 'timeout') return this.note(`timed out after ${duration} ms`, 'yellow');
        if (reason === 'server_restart' || reason === 'shutdown') return this.note(`interrupted: the server stopped before it finished (${status}: ${reason})`, 'red');
        return this.note(`${status}${reason && reason !== status ? ` (${reason})` : ''}`, status === 'cancelled' ? 'yellow' : 'red');
      }
    }
  }
}

function valueColour(type: string): Colour {
  if (type === 'string') return 'green';
  if (type === 'number' || type === 'bigint' || type === 'boolean') return 'yellow';
  if (type === 'undefined' || type === 'null') return 'grey';
  return 'cyan';
}

/** Exit status of a command that followed one execution: 0 ok, 130 cancelled (as for SIGINT), else 1. */
export function exitCodeOf(status: string): number {
  if (status === 'ok') return 0;
  return status === 'cancelled' ? 130 : 1;
}
