/** The few DOM builders the console's modules share. Text is always set as text, never as HTML. */

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A small button whose title says what it does, to a pointer and to a screen reader. */
export function smallButton(className: string, text: string, title: string, onClick: () => void): HTMLButtonElement {
  const button = el('button', `small ${className}`, text);
  button.type = 'button';
  button.title = title;
  button.setAttribute('aria-label', title);
  button.onclick = onClick;
  return button;
}
