/**
 * The shared-token check, and the token itself: VMSTREAM_TOKEN, or one generated on first start
 * and kept in <data>/token (mode 0600) so that clients keep working across restarts.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TenantDirectory } from './tenants.js';

export interface ResolvedToken {
  token: string;
  /** True when the token was generated or read from <data>/token, not given by the operator. */
  generated: boolean;
}

export async function resolveToken(configured: string | null, dataDir: string): Promise<ResolvedToken> {
  if (configured !== null) return { token: configured, generated: false };
  const file = path.join(dataDir, 'token');
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored.length >= 8) return { token: stored, generated: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(24).toString('base64url');
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return { token, generated: true };
}

/** The tenant of the shared VMSTREAM_TOKEN. */
export const DEFAULT_TENANT = 'default';

/**
 * Maps a presented token to its tenant: the shared token (compared in constant time, both sides
 * hashed first so lengths leak nothing) belongs to `default`; the tokens file names the others.
 */
export class Authenticator {
  readonly #shared: Buffer | null;
  readonly #directory: TenantDirectory | null;

  constructor(sharedToken: string | null, directory: TenantDirectory | null) {
    this.#shared = sharedToken === null ? null : digest(sharedToken);
    this.#directory = directory;
  }

  async tenantOf(token: string | null): Promise<string | null> {
    if (token === null || token.length > 1024) return null;
    if (this.#shared !== null && timingSafeEqual(this.#shared, digest(token))) return DEFAULT_TENANT;
    return this.#directory ? this.#directory.tenantOf(token) : null;
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * The token of a request: `Authorization: Bearer <token>` (or `token <token>`, as Jupyter clients
 * send it), else `?token=<token>`.
 */
export function tokenFromRequest(authorization: string, query: string): string | null {
  const bearer = /^(?:Bearer|token)\s+(\S+)\s*$/i.exec(authorization);
  if (bearer) return bearer[1]!;
  const fromQuery = new URLSearchParams(query).get('token');
  return fromQuery && fromQuery.length > 0 ? fromQuery : null;
}
