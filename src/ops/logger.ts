/**
 * Structured logs: pino, JSON lines on stderr (stdout carries only the `listening on` line, which
 * tools parse). On a terminal the lines go through pino-pretty instead (one line each, so they do not scroll the URLs away); it is loaded only then, in
 * this thread (no transport worker), so a server writing to a pipe or a file never loads it.
 */
import { isatty } from 'node:tty';
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const OPTIONS: LoggerOptions = {
  base: { service: 'vmstream' },
  // A safety net: the code logs no secret, and these paths say so again.
  redact: { paths: ['token', 'config.token', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
};

/** A logger writing to file descriptor `fd` (stderr by default). */
export async function createLogger(level: LogLevel, fd = 2): Promise<Logger> {
  if (isatty(fd)) {
    try {
      const { default: pretty } = await import('pino-pretty');
      return pino({ ...OPTIONS, level }, pretty({ destination: fd, sync: true, colorize: true, singleLine: true }));
    } catch {
      // No pretty printer: plain JSON lines are fine on a terminal too.
    }
  }
  // Synchronous writes: a line logged right before process.exit is not lost.
  return pino({ ...OPTIONS, level }, pino.destination({ fd, sync: true }));
}

/**
 * Lets one routine line through per interval and counts the ones it held back, for lines that
 * would otherwise come once per request (a synchronous write each: at 10 000 executes/s the
 * `execution ended` line alone was ~8 % of the main thread).
 */
export class LineSampler {
  readonly #intervalMs: number;
  #last = -Infinity;
  #held = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** null: hold this line back; otherwise it goes out, and this many were held back before it. */
  take(now = performance.now()): number | null {
    if (now - this.#last < this.#intervalMs) {
      this.#held++;
      return null;
    }
    const held = this.#held;
    this.#held = 0;
    this.#last = now;
    return held;
  }
}
