/**
 * A program in a real pseudo-terminal: tmux runs it in a detached session of its own (its own
 * server socket, no user config, a clean environment), `send-keys` types, `capture-pane` reads
 * the screen. Waiting is for what the screen shows, not for time.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './server.js';

let sessions = 0;

export function tmuxAvailable(): string | null {
  try {
    return execFileSync('tmux', ['-V'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

export class Terminal {
  readonly #socket: string;
  readonly #config: string;

  private constructor(socket: string, config: string) {
    this.#socket = socket;
    this.#config = config;
  }

  /** Starts `command` in a width × height terminal; the pane stays after it exits, to read its status. */
  static start(command: string[], env: Record<string, string>, size = { width: 120, height: 50 }): Terminal {
    const dir = tempDir('tmux');
    const config = path.join(dir, 'tmux.conf');
    writeFileSync(config, 'set -g remain-on-exit on\nset -g history-limit 10000\n');
    const terminal = new Terminal(`vmstream-test-${process.pid}-${++sessions}`, config);
    // A clean environment: the test runner's own (NO_COLOR, FORCE_COLOR=0, its loaders) stays out.
    const clean = { PATH: process.env.PATH ?? '', HOME: dir, TERM: 'screen', ...env };
    const envArgs = Object.entries(clean).map(([name, value]) => `${name}=${value}`);
    // A shell reaps the program and prints its status: tmux's own pane status is not always
    // filled in (under load it was seen leaving the exited program a zombie).
    const wrapped = ['sh', '-c', '"$@"; echo "[exited with status $?]"', 'sh', ...command];
    terminal.#tmux('new-session', '-d', '-x', String(size.width), '-y', String(size.height), '--', 'env', '-i', ...envArgs, ...wrapped);
    return terminal;
  }

  /** Types text literally, then Enter. */
  type(text: string): void {
    this.#tmux('send-keys', '-t', '0', '-l', text);
    this.#tmux('send-keys', '-t', '0', 'Enter');
  }

  /** Sends keys by tmux name: C-c, C-d, Enter. */
  keys(...keys: string[]): void {
    this.#tmux('send-keys', '-t', '0', ...keys);
  }

  /** Everything printed so far, scrollback included, wrapped lines joined; `escapes` keeps colours. */
  screen(escapes = false): string {
    return this.#tmux('capture-pane', '-p', '-J', '-S', '-10000', '-t', '0', ...(escapes ? ['-e'] : []));
  }

  lines(): string[] {
    return this.screen().split('\n').map((line) => line.trimEnd());
  }

  /** True when the last line printed (of `screen`, else of the screen now) is an empty prompt. */
  atPrompt(screen = this.screen(), prompt = '>'): boolean {
    return screen.split('\n').map((line) => line.trimEnd()).filter(Boolean).at(-1) === prompt;
  }

  /** Resolves once the screen satisfies `test` (a string it must contain, or a predicate). */
  async waitFor(test: string | RegExp | ((screen: string) => boolean), timeoutMs = 60_000): Promise<string> {
    const check = typeof test === 'function' ? test : (screen: string) => (typeof test === 'string' ? screen.includes(test) : test.test(screen));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (check(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`the screen never showed ${String(test)}; it shows:\n${screen}`);
      // Polling the screen is the only way to learn what a terminal shows; the interval is not a wait for work.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The program's exit status once it has exited, else null. */
  exitStatus(screen = this.screen()): number | null {
    const match = /\[exited with status (\d+)\]/.exec(screen);
    return match ? Number(match[1]) : null;
  }

  kill(): void {
    try {
      this.#tmux('kill-server');
    } catch {
      // already gone
    }
  }

  #tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.#socket, '-f', this.#config, ...args], { encoding: 'utf8' });
  }
}
