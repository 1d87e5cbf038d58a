/**
 * The input editor: CodeMirror 6 with JavaScript highlighting, bracket matching, Tab indenting
 * (Escape then Tab leaves the editor, for keyboard users; Tab or Enter takes a completion), Shift+Enter or Ctrl/Cmd+Enter to run,
 * Up/Down at the first/last line to walk the session's earlier inputs, and completion of names
 * from the session's live context (the server's `complete` request).
 */
import { acceptCompletion, autocompletion, closeBrackets, closeBracketsKeymap, type CompletionContext, type CompletionResult } from '@codemirror/autocomplete';
import { defaultKeymap, history, historyKeymap, indentWithTab, temporarilySetTabFocusMode } from '@codemirror/commands';
import { javascript } from '@codemirror/lang-javascript';
import { bracketMatching, HighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { EditorState } from '@codemirror/state';
import { drawSelection, EditorView, keymap, placeholder } from '@codemirror/view';
import { tags } from '@lezer/highlight';
import type { Completion } from '../src/client/index.js';

export interface EditorHost {
  run(code: string): void;
  /** Names completing `code` at `cursor`, from the current session. */
  complete(code: string, cursor: number): Promise<Completion>;
  /** Earlier inputs, oldest first, for Up/Down. */
  inputs(): string[];
}

const highlight = HighlightStyle.define([
  { tag: [tags.keyword, tags.controlKeyword, tags.moduleKeyword, tags.operatorKeyword], color: '#c792ea' },
  { tag: [tags.string, tags.special(tags.string), tags.regexp], color: '#7bd88f' },
  { tag: [tags.number, tags.bool, tags.null], color: '#f5c04a' },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: '#8a93a0', fontStyle: 'italic' },
  { tag: [tags.function(tags.variableName), tags.function(tags.propertyName)], color: '#6cc6e8' },
  { tag: [tags.definition(tags.variableName), tags.className], color: '#ffcb6b' },
  { tag: tags.propertyName, color: '#d8dde5' },
]);

const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--line)', borderRadius: '6px' },
  '&.cm-focused': { outline: '2px solid #5f7fe0' },
  '.cm-content': { fontFamily: 'var(--mono)', fontSize: '13px', padding: '0.5rem 0', caretColor: 'var(--text)' },
  '.cm-scroller': { fontFamily: 'var(--mono)', maxHeight: '40vh', overflow: 'auto' },
  '.cm-matchingBracket': { backgroundColor: '#3a4a6a', outline: '1px solid #6c8ad8' },
  '.cm-placeholder': { color: 'var(--muted)' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground': { backgroundColor: '#2f4470' },
  '.cm-tooltip': { backgroundColor: '#23272e', border: '1px solid var(--line)' },
  '.cm-tooltip-autocomplete ul li[aria-selected]': { backgroundColor: '#2d5bd7', color: 'white' },
}, { dark: true });

export class InputEditor {
  readonly view: EditorView;
  readonly #host: EditorHost;
  /** Where Up/Down stands in the inputs (inputs().length: the draft), and the draft it left. */
  #position = -1;
  #draft = '';

  constructor(parent: HTMLElement, host: EditorHost) {
    this.#host = host;
    const runKey = (view: EditorView) => {
      this.#host.run(view.state.doc.toString());
      return true;
    };
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        extensions: [
          history(),
          drawSelection(),
          indentOnInput(),
          bracketMatching(),
          closeBrackets(),
          javascript(),
          syntaxHighlighting(highlight),
          // As in a browser's console, Enter or Tab takes the highlighted name as soon as the list shows.
          autocompletion({ override: [(context) => this.#complete(context)], activateOnTyping: true, interactionDelay: 0 }),
          placeholder('JavaScript: state persists between runs; top-level await works. Shift+Enter runs.'),
          keymap.of([
            { key: 'Shift-Enter', run: runKey },
            { key: 'Mod-Enter', run: runKey },
            { key: 'ArrowUp', run: (view) => this.#walk(view, -1) },
            { key: 'ArrowDown', run: (view) => this.#walk(view, 1) },
            { key: 'Escape', run: temporarilySetTabFocusMode },
            { key: 'Tab', run: acceptCompletion },
            ...closeBracketsKeymap,
            ...historyKeymap,
            indentWithTab,
            ...defaultKeymap,
          ]),
          EditorView.lineWrapping,
          // The server's style-src allows the editor's <style> element only with this page's nonce.
          EditorView.cspNonce.of(document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? ''),
          EditorView.contentAttributes.of({ 'aria-label': 'Code input' }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged && !update.transactions.some((tr) => tr.isUserEvent('input.history'))) this.#position = -1;
          }),
          theme,
        ],
      }),
    });
  }

  get code(): string {
    return this.view.state.doc.toString();
  }

  set code(text: string) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text }, selection: { anchor: text.length }, userEvent: 'input.history' });
  }

  focus(): void {
    this.view.focus();
  }

  /** Up on the first line (Down on the last) steps through earlier inputs; elsewhere it moves the cursor. */
  #walk(view: EditorView, step: -1 | 1): boolean {
    const { state } = view;
    const selection = state.selection.main;
    const line = state.doc.lineAt(selection.head).number;
    if (!selection.empty || (step < 0 ? line !== 1 : line !== state.doc.lines)) return false;
    const inputs = this.#host.inputs();
    if (this.#position < 0) {
      if (step > 0) return false;
      this.#position = inputs.length;
      this.#draft = state.doc.toString();
    }
    const next = this.#position + step;
    if (next < 0 || next > inputs.length) return true;
    this.#position = next;
    this.code = next === inputs.length ? this.#draft : inputs[next]!;
    return true;
  }

  async #complete(context: CompletionContext): Promise<CompletionResult | null> {
    const before = context.state.sliceDoc(Math.max(0, context.pos - 200), context.pos);
    const typing = /[\w$]$/.test(before);
    const afterDot = /\.\s*$/.test(before);
    if (!context.explicit && !typing && !afterDot) return null;
    let answer: Completion;
    try {
      answer = await this.#host.complete(context.state.doc.toString(), context.pos);
    } catch {
      return null; // no session yet, or the connection is down: no names to offer
    }
    if (context.aborted || answer.matches.length === 0) return null;
    return {
      from: answer.start,
      to: answer.end,
      options: answer.matches.map((label) => ({ label, type: 'variable' })),
      validFor: /^[\w$]*$/,
    };
  }
}
