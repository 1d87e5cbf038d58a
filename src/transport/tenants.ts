/**
 * Tenants and their tokens. A token is `<tenant>.<secret>`; the tokens file keeps, one a line,
 * `<tenant>:scrypt$<N>$<r>$<p>$<salt>$<hash>` (base64url), never the secret itself. A presented
 * token is checked against its tenant's line with scrypt (node:crypto) and compared in constant
 * time; tokens that passed are remembered by their SHA-256 so a reconnect storm does not pay scrypt
 * each time. The file is read again when it changed, so a tenant added by scripts/add-tenant works
 * without a restart.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

export const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
const CACHE_LIMIT = 10_000;

interface TenantEntry { N: number; r: number; p: number; salt: Buffer; hash: Buffer }

function scryptAsync(secret: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(secret, salt, keylen, options, (error, key) => (error ? reject(error) : resolve(key))));
}

/** The line a tokens file keeps for a new tenant, and the token to hand out once. */
export async function newTenantLine(tenant: string): Promise<{ line: string; token: string }> {
  if (!TENANT_PATTERN.test(tenant)) throw new Error('a tenant name is 1-64 characters of A-Z a-z 0-9 _ -');
  const secret = randomBytes(24).toString('base64url');
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  const encoded = ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
  return { line: `${tenant}:${encoded}`, token: `${tenant}.${secret}` };
}

export function parseTokensFile(text: string): Map<string, TenantEntry> {
  const tenants = new Map<string, TenantEntry>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const tenant = line.slice(0, colon);
    const parts = line.slice(colon + 1).split('$');
    if (colon < 1 || !TENANT_PATTERN.test(tenant) || parts.length !== 6 || parts[0] !== 'scrypt') {
      throw new Error(`tokens file line ${index + 1}: expected <tenant>:scrypt$N$r$p$salt$hash`);
    }
    const [, N, r, p, salt, hash] = parts as [string, string, string, string, string, string];
    tenants.set(tenant, { N: Number(N), r: Number(r), p: Number(p), salt: Buffer.from(salt, 'base64url'), hash: Buffer.from(hash, 'base64url') });
  });
  return tenants;
}

export class TenantDirectory {
  readonly #file: string;
  #tenants = new Map<string, TenantEntry>();
  #mtimeMs = -1;
  readonly #verified = new Map<string, string>();

  constructor(file: string) {
    this.#file = file;
  }

  /** Reads the file now: a missing or malformed file stops start-up with its reason. */
  async load(): Promise<number> {
    await this.#reloadIfChanged();
    return this.#tenants.size;
  }

  /** The tenant a token belongs to, or null. */
  async tenantOf(token: string): Promise<string | null> {
    const digest = createHash('sha256').update(token).digest('base64url');
    const known = this.#verified.get(digest);
    if (known !== undefined && this.#tenants.has(known)) return known;
    const dot = token.indexOf('.');
    if (dot < 1) return null;
    const tenant = token.slice(0, dot);
    await this.#reloadIfChanged().catch(() => undefined);
    const entry = this.#tenants.get(tenant);
    if (!entry) return null;
    const hash = await scryptAsync(token.slice(dot + 1), entry.salt, entry.hash.length, { N: entry.N, r: entry.r, p: entry.p, maxmem: 256 * entry.N * entry.r });
    if (!timingSafeEqual(hash, entry.hash)) return null;
    if (this.#verified.size >= CACHE_LIMIT) this.#verified.clear();
    this.#verified.set(digest, tenant);
    return tenant;
  }

  async #reloadIfChanged(): Promise<void> {
    const info = await stat(this.#file);
    if (info.mtimeMs === this.#mtimeMs) return;
    this.#tenants = parseTokensFile(await readFile(this.#file, 'utf8'));
    this.#mtimeMs = info.mtimeMs;
    this.#verified.clear();
  }
}
