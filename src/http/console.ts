/**
 * The web console's files (built by scripts/build-web.mjs into dist/web), served at `/` and
 * `/assets/…` in front of the HTTP API. They are read into memory once at start: a handful of
 * small text files, so a request never touches the file system and no path can escape the folder.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpHandler, HttpRequest, HttpResponse } from './port.js';
import { sendText } from './respond.js';

/** dist/web, seen from dist/src/http/console.js. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
});

/**
 * The page talks only to its own origin; the token it reads from `?token=` must not leak through
 * a Referer. Asset names carry a content hash, so they can be cached for good; the page cannot.
 */
const POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
const PAGE_HEADERS = Object.freeze({
  'content-security-policy': POLICY,
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
});
const ASSET_HEADERS = Object.freeze({ ...PAGE_HEADERS, 'cache-control': 'public, max-age=31536000, immutable' });
/** Where the page's HTML takes each response's style nonce (web/index.html). */
const NONCE_SLOT = '__CSP_NONCE__';

/**
 * The editor (CodeMirror) puts its styles in a <style> element, which `style-src 'self'` refuses:
 * each page response gets a fresh nonce for it, in the policy and in the page, rather than
 * allowing every inline style.
 */
function withNonce(file: ConsoleFile): ConsoleFile {
  const nonce = randomBytes(16).toString('base64');
  return {
    ...file,
    body: file.body.replaceAll(NONCE_SLOT, nonce),
    headers: { ...file.headers, 'content-security-policy': `${POLICY}; style-src 'self' 'nonce-${nonce}'` },
  };
}

interface ConsoleFile { type: string; body: string; headers: Readonly<Record<string, string>> }

export class ConsoleFiles {
  readonly #files: ReadonlyMap<string, ConsoleFile>;

  private constructor(files: Map<string, ConsoleFile>) {
    this.#files = files;
  }

  /** The built console, or null when it has not been built (`npm run build` builds it). */
  static async load(dir = CONSOLE_DIR): Promise<ConsoleFiles | null> {
    const files = new Map<string, ConsoleFile>();
    let index: string;
    try {
      index = await readFile(path.join(dir, 'index.html'), 'utf8');
    } catch {
      return null;
    }
    files.set('/', { type: TYPES['.html']!, body: index, headers: PAGE_HEADERS });
    const assets = await readdir(path.join(dir, 'assets')).catch(() => []);
    for (const name of assets) {
      const type = TYPES[path.extname(name)];
      if (type) files.set(`/assets/${name}`, { type, body: await readFile(path.join(dir, 'assets', name), 'utf8'), headers: ASSET_HEADERS });
    }
    return new ConsoleFiles(files);
  }

  get(urlPath: string): ConsoleFile | undefined {
    return this.#files.get(urlPath);
  }
}

/** Answers GETs for the console's files; everything else goes on to `next` (the HTTP API). */
export class ConsoleHandler implements HttpHandler {
  readonly #files: ConsoleFiles;
  readonly #next: HttpHandler;

  constructor(files: ConsoleFiles, next: HttpHandler) {
    this.#files = files;
    this.#next = next;
  }

  handle(request: HttpRequest, response: HttpResponse): void {
    const stored = request.method === 'GET' ? this.#files.get(request.path) : undefined;
    const file = stored && request.path === '/' ? withNonce(stored) : stored;
    if (file) sendText(response, 200, file.type, file.body, { ...file.headers });
    else this.#next.handle(request, response);
  }
}
