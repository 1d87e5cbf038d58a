/**
 * Reads run-file inputs from the workspace folder and from nowhere else: no absolute paths, no
 * `..` that climbs out, no NUL bytes, and no symlink whose target lies outside (checked on the
 * resolved real path, after the lexical checks).
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ProtocolError } from '../../protocol/errors.js';

export class Workspace {
  readonly root: string;
  readonly #maxFileBytes: number;
  #realRoot: Promise<string> | null = null;

  constructor(root: string, maxFileBytes: number) {
    this.root = path.resolve(root);
    this.#maxFileBytes = maxFileBytes;
  }

  async read(relativePath: string): Promise<string> {
    if (relativePath.includes('\0')) throw new ProtocolError('BAD_REQUEST', 'field `path` must not contain NUL bytes');
    if (path.isAbsolute(relativePath) || /^[a-zA-Z]:/.test(relativePath)) {
      throw new ProtocolError('BAD_REQUEST', 'field `path` must be relative to the workspace');
    }
    const root = await this.#resolvedRoot();
    const lexical = path.resolve(root, relativePath);
    if (!isInside(root, lexical)) throw new ProtocolError('BAD_REQUEST', 'field `path` must stay inside the workspace');
    let real: string;
    try {
      real = await realpath(lexical);
    } catch {
      throw new ProtocolError('NOT_FOUND', `no file \`${relativePath}\` in the workspace`);
    }
    if (!isInside(root, real)) throw new ProtocolError('BAD_REQUEST', 'field `path` leads outside the workspace');
    const info = await stat(real);
    if (!info.isFile()) throw new ProtocolError('BAD_REQUEST', `\`${relativePath}\` is not a file`);
    if (info.size > this.#maxFileBytes) {
      throw new ProtocolError('LIMIT_EXCEEDED', `\`${relativePath}\` is ${info.size} bytes; the limit is ${this.#maxFileBytes}`);
    }
    return readFile(real, 'utf8');
  }

  #resolvedRoot(): Promise<string> {
    // The workspace may be created after start-up; until it exists, nothing in it does either.
    this.#realRoot ??= realpath(this.root).catch((error) => {
      this.#realRoot = null;
      throw new ProtocolError('NOT_FOUND', `the workspace folder ${this.root} does not exist`, { cause: error });
    });
    return this.#realRoot;
  }
}

function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}
