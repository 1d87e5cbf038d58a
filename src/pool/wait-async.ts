/**
 * Atomics.waitAsync: a wait on a shared word that does not block the thread's event loop (the
 * promise settles when the word is notified, or at once when it no longer holds `value`). In Node
 * since 16; in TypeScript's lib only from es2024, newer than this project's.
 */
type WaitAsync = (word: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };

const atomicsWaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** Calls `then` once word[index] is notified or no longer `value` (in a later task either way). */
export function whenChanged(word: Int32Array, index: number, value: number, then: () => void): void {
  const waiting = atomicsWaitAsync(word, index, value);
  if (waiting.async) void waiting.value.then(then);
  else queueMicrotask(then);
}
