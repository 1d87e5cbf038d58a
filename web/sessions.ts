/**
 * The sidebar's list of the tenant's open sessions: name, status and number of runs, with buttons
 * to switch to, rename and close each. It shows what it is given; the page fetches and acts.
 */
import type { SessionRecord } from '../src/client/index.js';
import { el, smallButton } from './dom.js';

export interface SessionActions {
  open(sessionId: string): void;
  rename(session: SessionRecord): void;
  close(session: SessionRecord): void;
}

export class SessionList {
  readonly #list: HTMLUListElement;
  readonly #actions: SessionActions;
  #records: SessionRecord[] = [];
  #current: string | null = null;

  constructor(list: HTMLUListElement, actions: SessionActions) {
    this.#list = list;
    this.#actions = actions;
  }

  get records(): readonly SessionRecord[] {
    return this.#records;
  }

  find(sessionId: string | null): SessionRecord | undefined {
    return this.#records.find((record) => record.session_id === sessionId);
  }

  /** Shows `records`, updated in place when they are the same sessions, so that keyboard focus stays where it is. */
  show(records: SessionRecord[]): void {
    this.#records = records;
    const items = [...this.#list.children] as HTMLLIElement[];
    if (items.length === records.length && items.every((item, index) => item.dataset.id === records[index]!.session_id)) {
      records.forEach((record, index) => describe(items[index]!, record));
    } else {
      this.#list.replaceChildren(...records.map((record) => this.#item(record)));
      this.mark(this.#current);
    }
  }

  /** Marks the session on screen. */
  mark(sessionId: string | null): void {
    this.#current = sessionId;
    for (const item of this.#list.children) {
      if ((item as HTMLElement).dataset.id === sessionId) item.setAttribute('aria-current', 'true');
      else item.removeAttribute('aria-current');
    }
  }

  /** Focus on the session on screen (or the first one): where a keyboard user opening the drawer starts. */
  focus(): void {
    this.#list.querySelector<HTMLButtonElement>('[aria-current] .pick, .pick')?.focus();
  }

  #item(record: SessionRecord): HTMLLIElement {
    const id = record.session_id;
    const item = el('li', '');
    item.dataset.id = id;
    const pick = el('button', 'pick');
    pick.type = 'button';
    pick.append(el('span', 'name'), el('small', ''));
    pick.onclick = () => this.#actions.open(id);
    // The record as listed now: it may have been renamed since this item was built.
    const current = () => this.find(id) ?? record;
    const rename = smallButton('rename', '✎', '', () => this.#actions.rename(current()));
    const close = smallButton('close', '×', '', () => this.#actions.close(current()));
    item.append(pick, rename, close);
    describe(item, record);
    return item;
  }
}

function describe(item: HTMLLIElement, record: SessionRecord): void {
  const label = sessionLabel(record);
  item.querySelector('.name')!.textContent = label;
  item.querySelector('small')!.textContent = `${record.status} · ${record.execution_count} run${record.execution_count === 1 ? '' : 's'}`;
  for (const [selector, verb] of [['.rename', 'Rename'], ['.close', 'Close']] as const) {
    const button = item.querySelector<HTMLButtonElement>(selector)!;
    button.title = `${verb} session ${label}`;
    button.setAttribute('aria-label', button.title);
  }
}

/** A session's name, or the start of its id when it has none. */
export function sessionLabel(record: SessionRecord): string {
  return record.name || record.session_id.slice(0, 7);
}
