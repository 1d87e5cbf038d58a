/**
 * Top-level `await` for repl input. A vm.Script cannot contain `await` at its top level, so input
 * that fails to compile for that reason is rewritten, as Node's own REPL does, into an async wrapper
 * whose top-level declarations are hoisted out of it (so `let x = await f()` still leaves `x` in the
 * session) and whose last expression is returned (so the completion value is still reported).
 * Only input that V8 rejects pays for the acorn parse.
 */
import { parse, type Node, type Pattern, type Program, type Statement } from 'acorn';

export interface TransformedInput {
  code: string;
  /** True when the script's result is the wrapper's promise, to be awaited for the completion value. */
  wrapped: boolean;
}

export function needsAsyncWrapper(error: unknown): boolean {
  return error instanceof SyntaxError && /await is only valid/.test(error.message);
}

/** Returns the async-wrapped form of `code`, or null when acorn cannot parse it either. */
export function wrapTopLevelAwait(code: string): TransformedInput | null {
  let program: Program;
  try {
    program = parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true });
  } catch {
    return null;
  }
  const hoistedVars: string[] = [];
  const hoistedLets: string[] = [];
  const body: string[] = [];
  const text = (node: Node) => code.slice(node.start, node.end);
  const last = program.body.length - 1;

  program.body.forEach((statement: Statement | Node, index) => {
    switch (statement.type) {
      case 'VariableDeclaration': {
        const declaration = statement as Extract<Statement, { type: 'VariableDeclaration' }>;
        const names = declaration.declarations.flatMap((d) => patternNames(d.id));
        (declaration.kind === 'var' ? hoistedVars : hoistedLets).push(...names);
        const assignments = declaration.declarations.filter((d) => d.init).map((d) => `${text(d.id)} = ${text(d.init!)}`);
        body.push(assignments.length ? `void (${assignments.join(', ')});` : ';');
        return;
      }
      case 'FunctionDeclaration': {
        const fn = statement as Extract<Statement, { type: 'FunctionDeclaration' }>;
        hoistedVars.push(fn.id.name);
        body.push(`${fn.id.name} = ${text(fn)};`);
        return;
      }
      case 'ClassDeclaration': {
        const cls = statement as Extract<Statement, { type: 'ClassDeclaration' }>;
        hoistedLets.push(cls.id.name);
        body.push(`${cls.id.name} = ${text(cls)};`);
        return;
      }
      case 'ExpressionStatement':
        if (index === last) {
          const expression = (statement as Extract<Statement, { type: 'ExpressionStatement' }>).expression;
          body.push(`return (${text(expression)});`);
          return;
        }
        break;
      default:
        break;
    }
    body.push(text(statement));
  });

  const hoisted = [
    hoistedVars.length ? `var ${hoistedVars.join(', ')};` : '',
    hoistedLets.length ? `let ${hoistedLets.join(', ')};` : '',
  ].join('');
  return { code: `${hoisted}(async () => {\n${body.join('\n')}\n})()`, wrapped: true };
}

function patternNames(pattern: Pattern): string[] {
  switch (pattern.type) {
    case 'Identifier': return [pattern.name];
    case 'AssignmentPattern': return patternNames(pattern.left);
    case 'RestElement': return patternNames(pattern.argument);
    case 'ArrayPattern': return pattern.elements.flatMap((element) => (element ? patternNames(element) : []));
    case 'ObjectPattern':
      return pattern.properties.flatMap((property) =>
        property.type === 'RestElement' ? patternNames(property.argument) : patternNames(property.value as Pattern));
    default: return [];
  }
}

/**
 * Names a top-level `let`, `const` or `class` of `code` declares: they live in the context's script
 * scope, not on its global object, so completion learns them from the inputs.
 */
export function topLevelLexicalNames(code: string): string[] {
  let program: Program;
  try {
    program = parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true });
  } catch {
    return [];
  }
  return program.body.flatMap((statement: Statement | Node) => {
    if (statement.type === 'ClassDeclaration') return [(statement as Extract<Statement, { type: 'ClassDeclaration' }>).id.name];
    if (statement.type !== 'VariableDeclaration') return [];
    const declaration = statement as Extract<Statement, { type: 'VariableDeclaration' }>;
    return declaration.kind === 'var' ? [] : declaration.declarations.flatMap((d) => patternNames(d.id));
  });
}

/** What completion at the end of `before` is about: an identifier path (maybe empty) and a partial name. */
export interface CompletionTarget { path: string[]; partial: string }

const IDENTIFIER_PART = /[\p{ID_Continue}$\u200c\u200d]/u;
const TRAILING_NAME = /[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u;
const PATH_TAIL = /(?:^|[^\p{ID_Continue}$\u200c\u200d.\])'"`])((?:[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*\s*\??\.\s*)+)$/u;
const RESERVED = new Set(['new', 'typeof', 'void', 'delete', 'await', 'yield', 'return', 'throw', 'case', 'in', 'of', 'instanceof', 'else', 'do']);
/** Completion looks at most this far back from the cursor. */
const LOOK_BACK = 1000;

/**
 * `foo.bar.ba|` → path [foo, bar], partial `ba`; `ba|` → no path; null when the cursor follows
 * something that is not an identifier path (a call, an index, a number).
 */
export function completionTarget(code: string, cursor: number): CompletionTarget | null {
  const before = code.slice(Math.max(0, cursor - LOOK_BACK), cursor);
  const partial = TRAILING_NAME.exec(before)?.[0] ?? '';
  const head = before.slice(0, before.length - partial.length);
  if (partial !== '' && IDENTIFIER_PART.test(head.slice(-1))) return null;
  if (!/\.\s*$/.test(head)) return RESERVED.has(partial) ? null : { path: [], partial };
  const tail = PATH_TAIL.exec(head);
  if (!tail) return null;
  const path = tail[1]!.split(/\s*\??\.\s*/).filter((segment) => segment !== '');
  if (path.some((segment) => RESERVED.has(segment))) return null;
  return { path, partial };
}
