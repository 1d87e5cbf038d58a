/**
 * The Jupyter messages an execution's stored events become. It is a pure function of the execution
 * and its events, with ids made from (execution_id, seq, part), so the same events always give the
 * same messages. Each execution is a list of units: unit 0 (busy, execute_input), then one per
 * stored event; `done` becomes the error a stopped run needs, the shell execute_reply and `status:
 * idle`. A unit is what delivery confirms and replays. Consecutive console lines of one stream that
 * are delivered together go out as one `stream` message (a Jupyter kernel buffers its stdout so
 * too), whose id names its first and last seq: the same lines, the same message.
 */
import { parseExpressionAt, type Expression } from 'acorn';
import { TERMINAL_STATUSES, type DonePayload, type EventFrame, type ExceptionPayload, type ExecutionStatus, type TerminalStatus, type ValuePayload } from '../../protocol/types.js';
import { makeMessage, type ExecuteOrigin, type Header, type KernelIdentity, type Message } from './messages.js';

export interface ExecutionView {
  executionId: string;
  number: number;
  /** The In [n] clients show: counted from 1 again after a kernel restart. */
  count: number;
  code: string;
  createdAt: number;
  /** The request that started it; null for an execution a native client started. */
  origin: ExecuteOrigin | null;
  /** Its status and reason when it was listed (the reply of an execution whose events are not delivered says them). */
  status: ExecutionStatus;
  reason?: string;
}

/** What the units of one execution carry from one event to the next (the error its reply repeats). */
export class Derivation {
  readonly parent: Header;
  #error: { ename: string; evalue: string; traceback: string[] } | null = null;

  constructor(readonly kernel: KernelIdentity, readonly execution: ExecutionView) {
    this.parent = parentHeader(execution);
  }

  /** Unit 0: the execution started. */
  start(): Message[] {
    const { execution } = this;
    const messages = [this.#iopub(0, 0, 'status', { execution_state: 'busy' }, execution.createdAt)];
    if (!execution.origin?.flags.silent) {
      messages.push(this.#iopub(0, 1, 'execute_input', { code: execution.code, execution_count: execution.count }, execution.createdAt));
    }
    return messages;
  }

  /**
   * The units of a run of consecutive stored events, in order: each console line that follows one
   * of the same stream joins its message, so a burst of output is one `stream` message.
   */
  events(events: readonly EventFrame[]): Message[] {
    const messages: Message[] = [];
    let index = 0;
    while (index < events.length) {
      const event = events[index]!;
      if (event.type !== 'console') {
        messages.push(...this.event(event));
        index++;
        continue;
      }
      const name = streamOf(event);
      let text = `${event.payload.text}\n`;
      let last = event;
      for (index++; index < events.length; index++) {
        const next = events[index]!;
        if (next.type !== 'console' || streamOf(next) !== name) break;
        last = next;
        text += `${next.payload.text}\n`;
      }
      messages.push(this.#stream(event, last, name, text));
    }
    return messages;
  }

  /** The unit of one stored event. */
  event(event: EventFrame): Message[] {
    const { seq, ts } = event;
    switch (event.type) {
      case 'console':
        return [this.#stream(event, event, streamOf(event), `${event.payload.text}\n`)];
      case 'value':
        return this.#value(event.payload as ValuePayload, seq, ts);
      case 'exception': {
        const { name, message, stack } = event.payload as ExceptionPayload;
        this.#error = { ename: name, evalue: message, traceback: stack.split('\n') };
        return [this.#iopub(seq, 0, 'error', this.#error, ts)];
      }
      case 'session.lost': {
        const { reason } = event.payload as EventFrame<'session.lost'>['payload'];
        const text = `[vmstream] this kernel's earlier state could not be rebuilt (${reason}): it starts afresh\n`;
        return [this.#iopub(seq, 0, 'stream', { name: 'stderr', text }, ts)];
      }
      case 'session.restoring': {
        const { inputs, replayed } = event.payload as EventFrame<'session.restoring'>['payload'];
        const text = `[vmstream] this kernel's state is being rebuilt: ${replayed} of ${inputs} earlier input(s) ran again so far\n`;
        return [this.#iopub(seq, 0, 'stream', { name: 'stderr', text }, ts)];
      }
      case 'session.restored': {
        const { replayed } = event.payload as EventFrame<'session.restored'>['payload'];
        const text = `[vmstream] this kernel's state was rebuilt: ${replayed} earlier input(s) ran again (their output is not shown again)\n`;
        return [this.#iopub(seq, 0, 'stream', { name: 'stderr', text }, ts)];
      }
      case 'done':
        return this.#done(event.payload as DonePayload, seq, ts);
    }
  }

  /**
   * The last unit of an execution whose events will not be delivered (its log was deleted, or could
   * not be read again and again): a note on stderr, then the reply and `idle` its `done` would have
   * brought, so the cell does not wait for them forever. An execution not known to have ended
   * replies with an error (the note): whether it will succeed cannot be told.
   */
  withheld(note: string, ts: number): Message[] {
    const { status, reason } = this.execution;
    const ended = (TERMINAL_STATUSES as readonly string[]).includes(status);
    if (!ended) this.#error ??= { ename: 'OutputUnavailable', evalue: note, traceback: [`OutputUnavailable: ${note}`] };
    const done: DonePayload = ended
      ? { status: status as TerminalStatus, duration_ms: 0, ...(reason === undefined ? {} : { reason }) }
      : { status: 'error', duration_ms: 0 };
    const text = `[vmstream] ${note}\n`;
    return [this.#iopub(WITHHELD, 0, 'stream', { name: 'stderr', text }, ts), ...this.#done(done, WITHHELD, ts)];
  }

  #value({ type, preview }: ValuePayload, seq: number, ts: number): Message[] {
    if (type === 'undefined' || this.execution.origin?.flags.silent) return [];
    const data: Record<string, unknown> = { 'text/plain': preview };
    const json = plainData(preview);
    if (json !== undefined) data['application/json'] = json;
    return [this.#iopub(seq, 0, 'execute_result', { execution_count: this.execution.count, data, metadata: {} }, ts)];
  }

  #done(done: DonePayload, seq: number | string, ts: number): Message[] {
    const { status, reason } = done;
    const messages: Message[] = [];
    // Cancelled before it started (a run stopped while running says what became of the session).
    const aborted = status === 'cancelled' && seq === 1 && done.duration_ms === 0 && !('session' in done);
    if (!aborted && status !== 'ok' && this.#error === null) {
      this.#error = stoppedError(status, reason);
      messages.push(this.#iopub(seq, 0, 'error', this.#error, ts));
    }
    const count = this.execution.count;
    const content = status === 'ok'
      ? { status: 'ok', execution_count: count, user_expressions: {}, payload: [] }
      : aborted ? { status: 'aborted', execution_count: count } : { status: 'error', execution_count: count, ...this.#error! };
    const reply = makeMessage(this.kernel, 'shell', 'execute_reply', content, this.parent, { msgId: this.#id(seq, 1), date: ts });
    reply.metadata = { status: content.status };
    messages.push(reply, this.#iopub(seq, 2, 'status', { execution_state: 'idle' }, ts));
    return messages;
  }

  #iopub(seq: number | string, part: number, type: string, content: Record<string, unknown>, ts: number): Message {
    return makeMessage(this.kernel, 'iopub', type, content, this.parent, { msgId: this.#id(seq, part), date: ts });
  }

  /** The `stream` message of console lines first…last (one line: first is last), dated by its last line. */
  #stream(first: EventFrame<'console'>, last: EventFrame<'console'>, name: string, text: string): Message {
    const seqs = first === last ? first.seq : `${first.seq}-${last.seq}`;
    return this.#iopub(seqs, 0, 'stream', { name, text }, last.ts);
  }

  #id(seq: number | string, part: number): string {
    return `${this.kernel.session}_${this.execution.executionId}_${seq}_${part}`;
  }
}

/** The `seq` in the ids of a withheld execution's last unit (it follows no stored event). */
const WITHHELD = 'withheld';

/** The Jupyter stream a console line goes to: stderr for warn and error, stdout for the rest. */
function streamOf(event: EventFrame<'console'>): 'stdout' | 'stderr' {
  const { level } = event.payload;
  return level === 'warn' || level === 'error' ? 'stderr' : 'stdout';
}

/** The execute_request an execution answers: as the client sent it, or as a native one is named. */
function parentHeader({ origin, executionId, createdAt }: ExecutionView): Header {
  return {
    msg_id: origin?.msgId ?? executionId,
    msg_type: 'execute_request',
    session: origin?.session ?? '',
    username: '',
    date: new Date(createdAt).toISOString(),
    version: '5.3',
  };
}

const STOPPED: Readonly<Record<string, string>> = {
  timeout: 'TimeoutError',
  cancelled: 'KeyboardInterrupt',
  crashed: 'KernelCrashed',
  output_limit: 'OutputLimitExceeded',
};

function stoppedError(status: string, reason: string | undefined): { ename: string; evalue: string; traceback: string[] } {
  const ename = STOPPED[status === 'error' ? reason ?? '' : status] ?? 'Error';
  const evalue = status === 'cancelled' ? 'the execution was interrupted' : `the execution ended: ${status}${reason ? ` (${reason})` : ''}`;
  return { ename, evalue, traceback: [`${ename}: ${evalue}`] };
}

/**
 * The value as JSON when its preview is nothing but plain data (numbers, strings, booleans, null,
 * arrays and plain objects): the preview is then a JavaScript literal, read here without evaluating
 * anything. A cut, a class name, a function, `[Circular]` or `... N more items` makes it undefined.
 */
export function plainData(preview: string): unknown {
  let node: Expression;
  try {
    node = parseExpressionAt(preview, 0, { ecmaVersion: 'latest' });
  } catch {
    return undefined;
  }
  if (node.end !== preview.length) return undefined;
  try {
    return literal(node);
  } catch {
    return undefined;
  }
}

const NOT_PLAIN = new Error('not plain data');

function literal(node: Expression): unknown {
  switch (node.type) {
    case 'Literal':
      if (node.value === null || typeof node.value === 'string' || typeof node.value === 'boolean') return node.value;
      if (typeof node.value === 'number' && Number.isFinite(node.value)) return node.value;
      throw NOT_PLAIN;
    case 'UnaryExpression':
      if (node.operator === '-' && node.argument.type === 'Literal' && typeof node.argument.value === 'number') return -node.argument.value;
      throw NOT_PLAIN;
    case 'ArrayExpression':
      return node.elements.map((element) => {
        if (element === null || element.type === 'SpreadElement') throw NOT_PLAIN;
        return literal(element);
      });
    case 'ObjectExpression': {
      const object: Record<string, unknown> = {};
      for (const property of node.properties) {
        if (property.type !== 'Property' || property.computed || property.kind !== 'init' || property.method) throw NOT_PLAIN;
        const key = property.key.type === 'Identifier' ? property.key.name : property.key.type === 'Literal' ? String(property.key.value) : null;
        if (key === null) throw NOT_PLAIN;
        Object.defineProperty(object, key, { value: literal(property.value as Expression), enumerable: true, writable: true, configurable: true });
      }
      return object;
    }
    default:
      throw NOT_PLAIN;
  }
}
