/**
 * `vmstream repl [url]`: a terminal REPL on a vmstream session. node:readline gives line editing
 * and history; input that stops mid-expression asks for another line; output streams as it comes.
 * Ctrl-C cancels the running execution (again: exit), and a line says when the connection drops,
 * when it is back, and whether the session's state was restored on the server.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { AbortError, type Client } from '../client/index.js';
import { connectFromArgs, CONNECTION_OPTIONS } from './connect.js';
import { isIncomplete } from './incomplete.js';
import { Renderer } from './render.js';

const HISTORY_SIZE = 1000;
const HELP = `.break  discard the lines typed so far (Ctrl-C does too)
.exit   leave (Ctrl-D does too)
.help   this text
Enter runs the input, or asks for more when it is incomplete. Ctrl-C cancels a running execution.`;

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
  readonly #queue: string[] = [];
  #buffer: string[] = [];
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
    });
    this.#render = new Renderer(process.stdout, { showValues: true, around: (write) => this.#aboveThePrompt(write) });
  }

  run(url: string): Promise<number> {
    const exit = new Promise<number>((resolve) => (this.#resolveExit = resolve));
    this.#rl.on('line', (line) => {
      this.#promptShown = false;
      this.#exitArmed = false;
      this.#queue.push(line);
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

  async #handle(line: string): Promise<void> {
    if (this.#buffer.length === 0 && /^\.\w+\s*$/.test(line.trim())) return this.#command(line.trim());
    this.#buffer.push(line);
    const code = this.#buffer.join('\n');
    if (isIncomplete(code)) return;
    this.#buffer = [];
    if (code.trim() === '') return;
    const controller = new AbortController();
    this.#running = controller;
    try {
      await this.#client.execute(this.#session, code, { signal: controller.signal, onEvent: (event) => this.#render.event(event) });
    } catch (error) {
      if (this.#exiting) return;
      if (error instanceof AbortError) this.#render.note('cancelled', 'yellow');
      else this.#render.error(error);
    } finally {
      this.#running = null;
    }
  }

  #command(command: string): void {
    if (command === '.exit') this.#exit(0);
    else if (command === '.help') this.#render.line(HELP);
    else if (command === '.break') this.#buffer = [];
    else this.#render.error(`unknown command ${command} (.help lists them)`);
  }

  #interrupt(): void {
    if (this.#running) {
      if (this.#running.signal.aborted) return this.#exit(130);
      this.#running.abort(new Error('interrupted (Ctrl-C)'));
      this.#render.note('cancelling… (Ctrl-C again exits)', 'yellow');
      return;
    }
    const rl = this.#rl as readline.Interface & { line: string };
    if (this.#buffer.length > 0 || rl.line.length > 0) {
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
    this.#rl.setPrompt(this.#buffer.length > 0 ? '... ' : '> ');
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
