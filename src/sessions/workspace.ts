/**
 * Each tenant's files, in a folder of its own under the workspace root (`<root>/<tenant>/`): what
 * run-file runs (and session rebuilds read again), and what the HTTP API puts, lists and deletes.
 * A path names something inside the tenant's folder and nothing else: no absolute paths, no `..`
 * that climbs out, no NUL bytes, no symlink whose real path lies outside (checked on the resolved
 * real path, after the lexical checks). Writes keep within the per-file and per-tenant limits.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, realpath, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ProtocolError } from '../../protocol/errors.js';
import { TENANT_PATTERN } from '../auth/tenants.js';
import type { Config } from '../config.js';

export interface WorkspaceLimits {
  /** Largest file run-file reads or a PUT writes. */
  maxFileBytes: number;
  /** All of a tenant's files together. */
  maxTenantBytes: number;
  maxTenantFiles: number;
}

export interface WorkspaceFile {
  /** Relative to the tenant's folder, with `/` between segments. */
  path: string;
  size: number;
  modified_at: number;
}

export class Workspace {
  readonly root: string;
  readonly #limits: WorkspaceLimits;

  constructor(root: string, limits: WorkspaceLimits) {
    this.root = path.resolve(root);
    this.#limits = limits;
  }

  /** The workspace the config describes: VMSTREAM_WORKSPACE and its limits. */
  static of(config: Pick<Config, 'workspaceDir' | 'maxRunFileBytes' | 'maxWorkspaceBytes' | 'maxWorkspaceFiles'>): Workspace {
    return new Workspace(config.workspaceDir, {
      maxFileBytes: config.maxRunFileBytes,
      maxTenantBytes: config.maxWorkspaceBytes,
      maxTenantFiles: config.maxWorkspaceFiles,
    });
  }

  /** The text of a file (run-file, and GET). */
  async read(tenant: string, relativePath: string): Promise<string> {
    const { folder, target } = this.#locate(tenant, relativePath);
    let real: string;
    try {
      real = await realpath(target);
    } catch {
      throw new ProtocolError('NOT_FOUND', `no file \`${relativePath}\` in the workspace`);
    }
    if (!isInside(await realpath(folder), real)) throw new ProtocolError('BAD_REQUEST', 'field `path` leads outside the workspace');
    const info = await stat(real);
    if (!info.isFile()) throw new ProtocolError('BAD_REQUEST', `\`${relativePath}\` is not a file`);
    if (info.size > this.#limits.maxFileBytes) {
      throw new ProtocolError('LIMIT_EXCEEDED', `\`${relativePath}\` is ${info.size} bytes; the limit is ${this.#limits.maxFileBytes}`);
    }
    return readFile(real, 'utf8');
  }

  /** Creates or replaces a file (its folders made as needed); true when it is new. */
  async write(tenant: string, relativePath: string, text: string): Promise<{ file: WorkspaceFile; created: boolean }> {
    const { folder, target } = this.#locate(tenant, relativePath);
    const size = Buffer.byteLength(text);
    if (size > this.#limits.maxFileBytes) {
      throw new ProtocolError('LIMIT_EXCEEDED', `the file is ${size} bytes; the limit is ${this.#limits.maxFileBytes}`);
    }
    await mkdir(folder, { recursive: true });
    const realFolder = await realpath(folder);
    // The deepest folder that exists must be inside before any folder is made below it.
    if (!isInside(realFolder, await realpath(await deepestExisting(path.dirname(target))), true)) {
      throw new ProtocolError('BAD_REQUEST', 'field `path` leads outside the workspace');
    }
    const existing = await lstat(target).catch(() => null);
    if (existing && !existing.isFile()) throw new ProtocolError('BAD_REQUEST', `\`${relativePath}\` is not a regular file`);
    const files = await this.list(tenant);
    const total = files.reduce((sum, file) => sum + file.size, 0) - (existing?.size ?? 0) + size;
    if (total > this.#limits.maxTenantBytes) {
      throw new ProtocolError('LIMIT_EXCEEDED', `the workspace would hold ${total} bytes; the limit is ${this.#limits.maxTenantBytes}`);
    }
    if (!existing && files.length >= this.#limits.maxTenantFiles) {
      throw new ProtocolError('LIMIT_EXCEEDED', `the workspace holds ${files.length} files, the limit`);
    }
    await mkdir(path.dirname(target), { recursive: true });
    // O_NOFOLLOW: a symlink put in the file's place since the check is refused, not followed.
    const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
    try {
      await handle.writeFile(text);
      const info = await handle.stat();
      return { file: { path: toPosix(path.relative(folder, target)), size: info.size, modified_at: Math.round(info.mtimeMs) }, created: !existing };
    } finally {
      await handle.close();
    }
  }

  async remove(tenant: string, relativePath: string): Promise<void> {
    const { folder, target } = this.#locate(tenant, relativePath);
    const info = await lstat(target).catch(() => null);
    if (!info) throw new ProtocolError('NOT_FOUND', `no file \`${relativePath}\` in the workspace`);
    if (info.isDirectory()) throw new ProtocolError('BAD_REQUEST', `\`${relativePath}\` is a folder`);
    if (!isInside(await realpath(folder), await realpath(path.dirname(target)), true)) {
      throw new ProtocolError('BAD_REQUEST', 'field `path` leads outside the workspace');
    }
    await unlink(target);
  }

  /** The tenant's regular files, by path; symlinks are not followed (nor listed). */
  async list(tenant: string): Promise<WorkspaceFile[]> {
    const { folder } = this.#locate(tenant, '.');
    const files: WorkspaceFile[] = [];
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) {
          const info = await stat(full);
          files.push({ path: toPosix(path.relative(folder, full)), size: info.size, modified_at: Math.round(info.mtimeMs) });
        }
      }
    };
    await walk(folder);
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The lexical checks: the tenant's folder, and the path inside it. */
  #locate(tenant: string, relativePath: string): { folder: string; target: string } {
    // Checked again here, since the name becomes a folder name.
    if (!TENANT_PATTERN.test(tenant)) throw new Error(`not a tenant name: ${JSON.stringify(tenant)}`);
    if (relativePath.includes('\0')) throw new ProtocolError('BAD_REQUEST', 'field `path` must not contain NUL bytes');
    if (path.isAbsolute(relativePath) || /^[a-zA-Z]:/.test(relativePath)) {
      throw new ProtocolError('BAD_REQUEST', 'field `path` must be relative to the workspace');
    }
    const folder = path.join(this.root, tenant);
    const target = path.resolve(folder, relativePath);
    if (relativePath !== '.' && !isInside(folder, target)) throw new ProtocolError('BAD_REQUEST', 'field `path` must stay inside the workspace');
    return { folder, target };
  }
}

async function deepestExisting(dir: string): Promise<string> {
  for (let current = dir; ; current = path.dirname(current)) {
    if (await lstat(current).then(() => true, () => false)) return current;
    if (path.dirname(current) === current) return current;
  }
}

function isInside(root: string, candidate: string, orSame = false): boolean {
  const relative = path.relative(root, candidate);
  if (relative === '') return orSame;
  return relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function toPosix(relative: string): string {
  return relative.split(path.sep).join('/');
}
