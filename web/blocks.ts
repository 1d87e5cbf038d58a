/**
 * One execution as a block of the output: its number, input, status and its own buttons (cancel
 * this one, run it again, copy its output), then its events as they stream. A block renders events
 * only; following the execution is the session view's job.
 */
import type { EventFrame, ExecutionRecord } from '../src/client/index.js';
import { el, smallButton } from './dom.js';
import { renderException, renderNode, renderTable, renderValue } from './values.js';

export interface BlockActions {
  cancel(id: string): void;
  rerun(code: string): void;
}

const ACTIVE = new Set(['queued', 'running']);

export class ExecutionBlock {
  readonly id: string;
  readonly element: HTMLElement;
  readonly code: string;
  readonly #out: HTMLElement;
  readonly #badge: HTMLElement;
  readonly #label: HTMLElement;
  readonly #cancel: HTMLButtonElement;
  number = Number.POSITIVE_INFINITY;
  /** The rebuild's note, updated in place as its progress comes. */
  #restoring: HTMLElement | null = null;

  constructor(id: string, code: string, actions: BlockActions) {
    this.id = id;
    this.code = code;
    this.element = el('article', 'execution');
    this.element.dataset.id = id;
    const head = el('div', 'head');
    this.#label = el('span', 'label', '[ ]');
    this.#badge = el('span', 'badge', 'queued');
    const input = el('pre', 'input', code);
    const tools = el('div', 'tools');
    this.#cancel = smallButton('cancel', 'Cancel', 'Cancel this execution', () => actions.cancel(id));
    tools.append(
      this.#cancel,
      smallButton('rerun', 'Re-run', 'Run this input again', () => actions.rerun(code)),
      smallButton('copy', 'Copy', 'Copy this execution\'s output', () => this.#copy()),
    );
    head.append(this.#label, input, tools, this.#badge);
    this.#out = el('div', 'out');
    this.element.append(head, this.#out);
    this.setStatus('queued');
  }

  describe(record: ExecutionRecord): void {
    this.number = record.number;
    this.#label.textContent = `[${record.number}]`;
    this.element.setAttribute('aria-label', `Input ${record.number}`);
    this.setStatus(record.status);
  }

  setStatus(status: string): void {
    this.element.dataset.status = status;
    this.#badge.textContent = status;
    this.#cancel.hidden = !ACTIVE.has(status);
  }

  get status(): string {
    return this.element.dataset.status ?? '';
  }

  note(text: string, trouble = false): HTMLElement {
    const line = el('div', trouble ? 'note trouble' : 'note', text);
    this.#out.append(line);
    return line;
  }

  render(event: EventFrame): void {
    if (this.status === 'queued' && event.type !== 'done' && event.type !== 'session.restoring') this.setStatus('running');
    const line = this.#line(event);
    line.dataset.seq = String(event.seq);
    if (line !== this.#restoring || !line.isConnected) this.#out.append(line);
  }

  #line(event: EventFrame): HTMLElement {
    switch (event.type) {
      case 'console': {
        const { level, text, data, table } = (event as EventFrame<'console'>).payload;
        const line = el('div', `line console ${level}`);
        if (table) line.append(renderTable(table));
        else if (data) data.forEach((part, index) => line.append(index > 0 ? ' ' : '', part.kind === 'string' ? part.text ?? '' : renderNode(part)));
        else line.textContent = text;
        return line;
      }
      case 'value': {
        const { type, preview, data } = (event as EventFrame<'value'>).payload;
        const line = el('div', `line value ${type}`);
        if (data) line.append(renderValue(data));
        else line.textContent = preview;
        return line;
      }
      case 'exception': {
        const { name, message, stack } = (event as EventFrame<'exception'>).payload;
        const line = el('div', 'line exception');
        line.append(renderException(name, message, stack));
        return line;
      }
      case 'session.restoring': {
        const { inputs, replayed } = (event as EventFrame<'session.restoring'>).payload;
        this.#restoring ??= el('div', 'note restoring');
        this.#badge.textContent = 'waiting: rebuild';
        this.#restoring.textContent = `The session's state is being rebuilt on the server: re-running its ${plural(inputs, 'earlier input')}${replayed > 0 ? ` (${replayed} done)` : ''}…`;
        return this.#restoring;
      }
      case 'session.restored': {
        const { replayed } = (event as EventFrame<'session.restored'>).payload;
        return el('div', 'note restored', `Session restored on the server: its state was rebuilt by re-running ${plural(replayed, 'earlier input')}. Values they computed (Date.now(), Math.random(), anything fetched) may differ from the first time.`);
      }
      case 'session.lost': {
        const { reason } = (event as EventFrame<'session.lost'>).payload;
        return el('div', 'note trouble', `Session lost (${reason}): its earlier state is gone, this input runs in what there is.`);
      }
      case 'done': {
        const { status, duration_ms: duration, reason } = (event as EventFrame<'done'>).payload;
        this.setStatus(status);
        return el('div', 'done', `${status}${reason && reason !== status ? ` (${reason})` : ''} · ${duration} ms`);
      }
      default:
        return el('div', 'note', `(an event of a newer protocol: ${(event as EventFrame).type})`);
    }
  }

  async #copy(): Promise<void> {
    const text = this.#out.innerText;
    try {
      await navigator.clipboard.writeText(text);
      this.#flash('copied');
    } catch {
      // No clipboard (an insecure origin, or permission refused): select it for Ctrl+C instead.
      getSelection()?.selectAllChildren(this.#out);
      this.#flash('selected: press Ctrl+C');
    }
  }

  #flash(text: string): void {
    const copy = this.element.querySelector<HTMLButtonElement>('.copy')!;
    copy.textContent = text;
    setTimeout(() => (copy.textContent = 'Copy'), 1500);
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
