/**
 * `vmstream repl [url]`: a terminal REPL on a vmstream session. node:readline gives line editing
 * and history; input that stops mid-expression asks for another line; output streams as it comes.
 * Ctrl-C cancels the running execution (again: exit), and a line says when the connection drops,
 * when it is back, and whether the session's state was restored on the server.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { AbortError, type Client } from '../client/index.js';
import { isIncomplete } from '../sandbox/incomplete.js';
import { connectFromArgs, CONNECTION_OPTIONS } from './connect.js';
import { traceName } from './follow.js';
import { Renderer } from './render.js';

const HISTORY_SIZE = 1000;
const HELP = `.break      discard the lines typed so far (Ctrl-C does too)
.editor     enter editor mode: type many lines, Ctrl-D runs them, Ctrl-C cancels
.exit       leave (Ctrl-D does too)
.help       this text
.load FILE  run a local file in this session
.save FILE  save what this session ran (from this REPL) to a file
Enter runs the input, or asks for more when it is incomplete. Tab completes, _ is the last value.
Ctrl-C cancels a running execution.`;

const COMMANDS = ['.break', '.editor', '.exit', '.help', '.load', '.save'];

/** A typed line, or a whole input to run as it is (from .editor or .load). */
type Input = { line: string } | { code: string; filename?: string };

export async function repl(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...CONNECTION_OPTIONS, session: { type: 'string' } },
  });
  const { client, url } = await connectFromArgs(positionals[0] ?? values.url, values.token);
  const session = values.session ?? (await client.createSession('repl')).session_id;
  return new Repl(client, session).run(url);
}

class Repl {
  readonly #client: Client;
  readonly #session: string;
  readonly #rl: readline.Interface;
  readonly #render: Renderer;
  readonly #historyFile: string | null;
  readonly #queue: Input[] = [];
  /** What this REPL ran, for .save. */
  readonly #ran: string[] = [];
  #buffer: string[] = [];
  /** The lines of .editor mode, or null outside it. */
  #editor: string[] | null = null;
  #running: AbortController | null = null;
  #busy = false;
  #promptShown = false;
  #inputEnded = false;
  #exitArmed = false;
  #exiting = false;
  #resolveExit!: (code: number) => void;

  constructor(client: Client, session: string) {
    this.#client = client;
    this.#session = session;
    const env = process.env.VMSTREAM_REPL_HISTORY;
    this.#historyFile = env === '' ? null : env ?? path.join(os.homedir(), '.vmstream_repl_history');
    const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    this.#rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal,
      prompt: '> ',
      history: this.#loadHistory(),
      historySize: HISTORY_SIZE,
      removeHistoryDuplicates: true,
      completer: (line: string, callback: (error: null, result: [string[], string]) => void) => {
        this.#complete(line).then((result) => callback(null, result), () => callback(null, [[], line]));
      },
    });
    this.#render = new Renderer(process.stdout, { showValues: true, around: (write) => this.#aboveThePrompt(write) });
    this.#interceptCtrlD();
  }

  /**
   * In .editor mode Ctrl-D ends the input instead of the REPL. readline has no hook for that key, so
   * its key handler is wrapped, as Node's own REPL does.
   */
  #interceptCtrlD(): void {
    const rl = this.#rl as unknown as { _ttyWrite?: (text: string, key: { ctrl?: boolean; name?: string } | undefined) => void; line: string };
    const original = rl._ttyWrite;
    if (typeof original !== 'function') return; // not a terminal: no keys, no editor mode
    rl._ttyWrite = (text, key) => {
      if (this.#editor === null || !key?.ctrl || key.name !== 'd') return original.call(rl, text, key);
      const lines = rl.line.length > 0 ? [...this.#editor, rl.line] : this.#editor;
      this.#editor = null;
      this.#rl.write(null, { ctrl: true, name: 'u' });
      process.stdout.write('\n');
      this.#promptShown = false;
      this.#queue.push({ code: lines.join('\n') });
      void this.#pump();
    };
  }

  run(url: string): Promise<number> {
    const exit = new Promise<number>((resolve) => (this.#resolveExit = resolve));
    this.#rl.on('line', (line) => {
      this.#promptShown = false;
      this.#exitArmed = false;
      this.#queue.push({ line });
      void this.#pump();
    });
    this.#rl.on('SIGINT', () => this.#interrupt());
    this.#rl.on('close', () => {
      this.#inputEnded = true;
      void this.#pump();
    });
    this.#rl.on('history', (history: string[]) => this.#saveHistory(history));
    void this.#watchStatus();
    this.#render.line(this.#render.paint('grey', `vmstream repl on ${url}, session ${this.#session}`));
    this.#render.line(this.#render.paint('grey', 'Ctrl-C cancels what runs, Ctrl-D exits, .help for more'));
    this.#prompt();
    return exit;
  }

  /** Handles typed lines one at a time: lines typed while code runs wait their turn. */
  async #pump(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    while (this.#queue.length > 0 && !this.#exiting) await this.#handle(this.#queue.shift()!);
    this.#busy = false;
    if (this.#exiting) return;
    if (this.#inputEnded) this.#exit(0);
    else this.#prompt();
  }

  async #handle(input: Input): Promise<void> {
    if ('code' in input) return this.#execute(input.code, input.filename);
    const { line } = input;
    if (this.#editor !== null) {
      this.#editor.push(line);
      return;
    }
    const command = /^\.(\w+)(?:\s+(.*?))?\s*$/.exec(line.trim());
    if (this.#buffer.length === 0 && command) return this.#command(command[1]!, command[2]);
    this.#buffer.push(line);
    const code = this.#buffer.join('\n');
    if (isIncomplete(code)) return;
    this.#buffer = [];
    if (code.trim() === '') return;
    return this.#execute(code);
  }

  /**
   * Tab: the dot-commands at the start of an input, else the names the session's live context
   * offers (the server's `complete`), for the text typed so far, earlier lines of the input included.
   */
  async #complete(line: string): Promise<[string[], string]> {
    const earlier = this.#editor ?? this.#buffer;
    if (earlier.length === 0 && /^\.\w*$/.test(line)) {
      return [COMMANDS.filter((name) => name.startsWith(line)), line];
    }
    const before = earlier.length > 0 ? `${earlier.join('\n')}\n` : '';
    const code = before + line;
    const { matches, start, end } = await this.#client.complete(this.#session, code);
    return [matches, code.slice(Math.max(start, before.length), end)];
  }

  async #execute(code: string, filename?: string): Promise<void> {
    const controller = new AbortController();
    this.#running = controller;
    this.#ran.push(code);
    try {
      await this.#client.execute(this.#session, code, {
        signal: controller.signal,
        onEvent: (event) => this.#render.event(event),
        ...(filename === undefined ? {} : { filename }),
      });
    } catch (error) {
      if (this.#exiting) return;
      if (error instanceof AbortError) this.#render.note('cancelled', 'yellow');
      else this.#render.error(error);
    } finally {
      this.#running = null;
    }
  }

  /** The dot-commands, worded as Node's REPL words them where it has the same one. */
  async #command(name: string, argument: string | undefined): Promise<void> {
    switch (name) {
      case 'exit': return this.#exit(0);
      case 'help': return this.#render.line(HELP);
      case 'break':
        this.#buffer = [];
        return;
      case 'editor':
        this.#editor = [];
        return this.#render.line('// Entering editor mode (Ctrl+D to finish, Ctrl+C to cancel)');
      case 'load': {
        if (!argument) return this.#render.error('.load needs a FILE');
        let code: string;
        try {
          code = await readFile(argument, 'utf8');
        } catch {
          return this.#render.line(`Failed to load: ${argument}`);
        }
        return this.#execute(code, traceName(argument));
      }
      case 'save': {
        if (!argument) return this.#render.error('.save needs a FILE');
        try {
          await writeFile(argument, this.#ran.map((code) => `${code}\n`).join(''));
          return this.#render.line(`Session saved to: ${argument}`);
        } catch {
          return this.#render.line(`Failed to save: ${argument}`);
        }
      }
      default:
        return this.#render.line(`Invalid REPL keyword .${name} (.help lists them)`);
    }
  }

  #interrupt(): void {
    if (this.#running) {
      if (this.#running.signal.aborted) return this.#exit(130);
      this.#running.abort(new Error('interrupted (Ctrl-C)'));
      this.#render.note('cancelling… (Ctrl-C again exits)', 'yellow');
      return;
    }
    const rl = this.#rl as readline.Interface & { line: string };
    if (this.#editor !== null || this.#buffer.length > 0 || rl.line.length > 0) {
      this.#editor = null;
      this.#buffer = [];
      this.#exitArmed = false;
      rl.write(null, { ctrl: true, name: 'e' });
      rl.write(null, { ctrl: true, name: 'u' });
      process.stdout.write('^C\n');
      this.#prompt();
      return;
    }
    if (this.#exitArmed) return this.#exit(0);
    this.#exitArmed = true;
    process.stdout.write('\n');
    this.#render.line('(To exit, press Ctrl-C again or Ctrl-D, or type .exit)');
    this.#prompt();
  }

  async #watchStatus(): Promise<void> {
    for await (const status of this.#client.status()) {
      if (status.type === 'disconnected') {
        this.#render.note(`connection lost (${status.code}${status.reason ? `: ${status.reason}` : ''}); reconnecting…`, 'yellow');
      } else if (status.type === 'reconnecting' && status.attempt > 1 && status.attempt % 10 === 0) {
        this.#render.note(`still reconnecting (attempt ${status.attempt})…`, 'yellow');
      } else if (status.type === 'connected' && status.reconnect) {
        this.#render.note(`reconnected${status.resumed > 0 ? '; resuming the running execution where its output stopped' : ''}`, 'green');
      } else if (status.type === 'closed' && status.error) {
        this.#render.error(status.error);
        this.#exit(1);
      }
    }
  }

  #prompt(): void {
    if (this.#exiting || this.#inputEnded) return;
    this.#rl.setPrompt(this.#editor !== null ? '' : this.#buffer.length > 0 ? '... ' : '> ');
    this.#rl.prompt(true);
    this.#promptShown = true;
  }

  /** A line printed while the prompt is up goes above it, and the prompt (with what was typed) is redrawn. */
  #aboveThePrompt(write: () => void): void {
    if (!this.#promptShown || !process.stdout.isTTY) return write();
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    write();
    this.#rl.prompt(true);
  }

  #exit(code: number): void {
    if (this.#exiting) return;
    this.#exiting = true;
    this.#promptShown = false;
    this.#rl.close();
    void this.#client.close().finally(() => this.#resolveExit(code));
  }

  #loadHistory(): string[] {
    if (!this.#historyFile) return [];
    try {
      return readFileSync(this.#historyFile, 'utf8').split('\n').filter(Boolean).reverse().slice(0, HISTORY_SIZE);
    } catch {
      return [];
    }
  }

  #saveHistory(history: string[]): void {
    if (!this.#historyFile) return;
    try {
      writeFileSync(this.#historyFile, `${[...history].reverse().join('\n')}\n`, { mode: 0o600 });
    } catch {
      // History is a convenience: an unwritable home must not break the REPL.
    }
  }
}
