/**
 * An output record (messages.ts's OutputItem, as a worker writes it to its ring) read back as the
 * SandboxOutput it stands for. Its writer is a thread that runs user code, so the tuple is checked
 * field by field and a fresh object built: the in-process pool reads its rings with it, and the
 * server reads a sandbox process's forwarded records with it (those arrive over the pipe exactly as
 * the worker wrote them: the sandbox process never decodes them).
 */
import type { RunStatus, SandboxOutput } from '../sandbox/sandbox.js';
import { consoleExtras, valueExtras } from '../sandbox/preview-data.js';
import { CONSOLE_LEVELS, ItemKind } from './messages.js';

const RUN_STATUSES: ReadonlySet<unknown> = new Set<RunStatus>(['ok', 'error', 'timeout', 'cancelled']);
const isString = (value: unknown): value is string => typeof value === 'string';

/** `item` as a SandboxOutput when it has exactly an OutputItem's shape; null otherwise. */
export function readOutputItem(item: unknown): SandboxOutput | null {
  if (!Array.isArray(item) || item.length < 6 || item.length > 7) return null;
  const [executionId, kind, ts, a, b, c, extra] = item as unknown[];
  if (!isString(executionId) || typeof ts !== 'number') return null;
  switch (kind) {
    case ItemKind.Console: {
      const level = Number.isInteger(a) ? CONSOLE_LEVELS[a as number] : undefined;
      if (level === undefined || !isString(b) || typeof c !== 'boolean') return null;
      return { kind: 'console', executionId, ts, payload: { level, text: b, ...(c ? { truncated: true } : {}), ...consoleExtras(extra) } };
    }
    case ItemKind.Value:
      if (!isString(a) || !isString(b)) return null;
      return { kind: 'value', executionId, ts, payload: { type: a, preview: b, ...valueExtras(extra) } };
    case ItemKind.Exception:
      if (!isString(a) || !isString(b) || !isString(c)) return null;
      return { kind: 'exception', executionId, ts, payload: { name: a, message: b, stack: c } };
    case ItemKind.Done:
      if (!RUN_STATUSES.has(a)) return null;
      return { kind: 'done', executionId, ts, status: a as RunStatus };
    default:
      return null;
  }
}
