/**
 * `vmstream run FILE` and `vmstream tail EXECUTION_ID`: follow one execution to its end, program
 * output on stdout, vmstream's own notes on stderr, and exit with its status (0 ok, 130
 * cancelled, 1 otherwise). Ctrl-C cancels what `run` started; `tail` only stops watching.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AbortError, type Client, type ExecutionRecord } from '../client/index.js';
import { connectFromArgs, CONNECTION_OPTIONS, UsageError } from './connect.js';
import { exitCodeOf, Renderer } from './render.js';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...CONNECTION_OPTIONS, session: { type: 'string' }, workspace: { type: 'boolean' }, 'timeout-ms': { type: 'string' } },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError('run takes one FILE');
  const timeoutMs = values['timeout-ms'] === undefined ? undefined : Number(values['timeout-ms']);
  if (timeoutMs !== undefined && !(Number.isSafeInteger(timeoutMs) && timeoutMs > 0)) throw new UsageError('--timeout-ms must be a positive integer');
  // By default the file is read here and its text sent; --workspace names a file the server reads.
  const source = values.workspace ? { path: file } : await readFile(file, 'utf8');
  const { client } = await connectFromArgs(values.url, values.token);
  const session = values.session ?? (await client.createSession(`run ${path.basename(file)}`)).session_id;
  const notes = notesOn(client);
  // The final value is printed as `tail` prints it, unless it is `undefined` (a file that ends in a statement).
  const out = new Renderer(process.stdout, { showValues: 'defined' });
  const controller = new AbortController();
  const execution = client.start(session, source, {
    signal: controller.signal,
    onEvent: (event) => out.event(event),
    filename: traceName(file), // stack traces name the file, not REPL<n>
    ...(timeoutMs ? { timeoutMs } : {}),
  });
  // The SDK chose the id (protocol/ids.ts) in `start`: said before any event can arrive.
  notes.note(`execution ${execution.id} (vmstream tail ${execution.id} follows it)`, 'grey');
  const code = await untilInterrupted(
    execution.result,
    notes,
    () => {
      controller.abort(new Error('interrupted (Ctrl-C)'));
      notes.note('cancelling… (Ctrl-C again exits)', 'yellow');
    },
  );
  if (values.session === undefined) await client.closeSession(session).catch(() => {});
  await client.close();
  return code;
}

export async function tail(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...CONNECTION_OPTIONS, 'after-seq': { type: 'string' } },
  });
  const id = positionals[0];
  if (id === undefined || positionals.length > 1) throw new UsageError('tail takes one EXECUTION_ID');
  const afterSeq = Number(values['after-seq'] ?? 0);
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new UsageError('--after-seq must be an integer >= 0');
  const { client } = await connectFromArgs(values.url, values.token);
  const notes = notesOn(client);
  const out = new Renderer(process.stdout, { showValues: true });
  const execution = client.subscribe(id, { afterSeq });
  const events = (async () => {
    for await (const event of execution) out.event(event);
    return execution.result;
  })();
  const code = await untilInterrupted(events, notes, () => execution.close());
  await client.close();
  return code;
}

/**
 * The name stack traces give a local file: its path from the current folder. (Absolute paths are
 * what the server's own frames look like, and it leaves those out of the traces it reports.)
 */
export function traceName(file: string): string {
  return path.relative(process.cwd(), path.resolve(file)) || file;
}

/** Resolves with the exit status; the first Ctrl-C calls `onInterrupt`, a second one exits at once. */
async function untilInterrupted(result: Promise<ExecutionRecord>, notes: Renderer, onInterrupt: () => void): Promise<number> {
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(130);
    onInterrupt();
  };
  process.on('SIGINT', onSigint);
  try {
    const record = await result;
    return exitCodeOf(record.status);
  } catch (error) {
    if (error instanceof AbortError) return 130;
    if (interrupts > 0) return 130;
    notes.error(error);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** vmstream's own lines, on stderr: the connection dropping and coming back. */
function notesOn(client: Client): Renderer {
  const notes = new Renderer(process.stderr, { showValues: false });
  void (async () => {
    for await (const status of client.status()) {
      if (status.type === 'disconnected') notes.note(`connection lost (${status.code}); reconnecting…`, 'yellow');
      else if (status.type === 'connected' && status.reconnect) notes.note('reconnected; resuming from the last line received', 'green');
    }
  })();
  return notes;
}
