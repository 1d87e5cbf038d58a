/**
 * Whether REPL input stops in the middle of something (an open brace, call, template or comment),
 * so Enter should ask for another line rather than send it. acorn tells: it fails at the very end
 * of such input. Anything else, valid or not, is sent as is and the server reports its errors.
 * A property of the source text alone, asked by the CLI's REPL and by Jupyter's
 * `is_complete_request`; it imports nothing but acorn, so a client process may load it.
 */
import { parse } from 'acorn';

export function isIncomplete(code: string): boolean {
  try {
    parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true, allowHashBang: true });
    return false;
  } catch (error) {
    const { message, pos } = error as { message?: string; pos?: number };
    if (typeof message !== 'string') return false;
    // A string cannot run past its line (Node's REPL reports it too); a template or comment can.
    if (/^Unterminated (template|comment)/.test(message)) return true;
    return message.startsWith('Unexpected token') && typeof pos === 'number' && pos >= code.trimEnd().length;
  }
}
