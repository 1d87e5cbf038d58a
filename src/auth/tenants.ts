/**
 * Tenants and their tokens. A token is `<tenant>.<secret>`; the tokens file keeps, one a line,
 * `<tenant>:scrypt$<N>$<r>$<p>$<salt>$<hash>` (base64url), never the secret itself. A presented
 * token is checked against its tenant's line with scrypt (node:crypto) and compared in constant
 * time; tokens that passed are remembered by their SHA-256 so a reconnect storm does not pay scrypt
 * each time. The file is read again when it changed, so a tenant added by scripts/add-tenant works
 * without a restart, and a tenant removed (or given a new line) is revoked: its remembered tokens
 * are forgotten and the server is told, to close what the tenant has open.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
const CACHE_LIMIT = 10_000;
/**
 * How often `watch` looks at the file, to close what a revoked tenant has open within this and one
 * read (a new use of a token looks itself). A stat on a timer, not fs.watch, which loses track of a
 * file that an editor replaces by renaming.
 */
const WATCH_MS = 250;

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

/** Same line in the file: the same parameters, salt and hash. */
function sameEntry(a: TenantEntry, b: TenantEntry): boolean {
  return a.N === b.N && a.r === b.r && a.p === b.p && a.salt.equals(b.salt) && a.hash.equals(b.hash);
}

export class TenantDirectory {
  readonly #file: string;
  #tenants = new Map<string, TenantEntry>();
  /** mtime, size and inode of the file as last read: a rename-write changes the inode. */
  #version = '';
  /** The version of the file that could not be read or parsed, and why: kept until the file changes. */
  #badVersion = '';
  #badReason: unknown = null;
  /** Digest of a verified token → its tenant. */
  readonly #verified = new Map<string, string>();
  #onRevoked: (tenant: string) => void = () => {};
  #timer: NodeJS.Timeout | null = null;

  constructor(file: string) {
    this.#file = file;
  }

  /** Reads the file now: a missing or malformed file stops start-up with its reason. */
  load(): number {
    this.#reloadIfChanged();
    return this.#tenants.size;
  }

  /**
   * Looks at the file every WATCH_MS from now on and calls `onRevoked` for each tenant removed from
   * it or whose line changed. A file that cannot be read or parsed keeps the tenants last read
   * (`onError` hears of it once, until a read succeeds again).
   */
  watch(onRevoked: (tenant: string) => void, onError: (error: unknown) => void): void {
    this.#onRevoked = onRevoked;
    let failing = false;
    this.#timer = setInterval(() => {
      try {
        this.#reloadIfChanged();
        failing = false;
      } catch (error) {
        if (!failing) onError(error);
        failing = true;
      }
    }, WATCH_MS).unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * The tenant a token belongs to, or null. The file's version is checked (one `stat`) before a
   * remembered token is trusted: a revocation takes effect at the token's next use, not at the next
   * tick of `watch`, which matters when several servers read one file and each has its own tick.
   * The check is synchronous on purpose: a remembered token is then answered before uWS regains
   * control, inside its own cork of the upgrade (see upgrade() in transport/uws-server.ts), and a
   * stat of a small local file costs a few microseconds, less than a trip through libuv's pool.
   */
  async tenantOf(token: string): Promise<string | null> {
    this.#reloadOrKeep();
    const digest = createHash('sha256').update(token).digest('base64url');
    const known = this.#verified.get(digest);
    if (known !== undefined) return known;
    const dot = token.indexOf('.');
    if (dot < 1) return null;
    const tenant = token.slice(0, dot);
    const entry = this.#tenants.get(tenant);
    if (!entry) return null;
    const hash = await scryptAsync(token.slice(dot + 1), entry.salt, entry.hash.length, { N: entry.N, r: entry.r, p: entry.p, maxmem: 256 * entry.N * entry.r });
    if (!timingSafeEqual(hash, entry.hash)) return null;
    this.#reloadOrKeep();
    // Revoked while scrypt ran: the line it passed is gone.
    if (this.#tenants.get(tenant) !== entry) return null;
    if (this.#verified.size >= CACHE_LIMIT) this.#verified.clear();
    this.#verified.set(digest, tenant);
    return tenant;
  }

  /** As #reloadIfChanged; a file unreadable or malformed keeps the tenants last read (watch's onError reports it). */
  #reloadOrKeep(): void {
    try {
      this.#reloadIfChanged();
    } catch {
      // The tenants last read stand.
    }
  }

  #reloadIfChanged(): void {
    const info = statSync(this.#file);
    const version = `${info.mtimeMs}:${info.size}:${info.ino}`;
    if (version === this.#version) return;
    if (version === this.#badVersion) throw this.#badReason;
    let read: Map<string, TenantEntry>;
    try {
      read = parseTokensFile(readFileSync(this.#file, 'utf8'));
    } catch (error) {
      // Not read again until it changes: every token's use would otherwise read and parse it anew.
      this.#badVersion = version;
      this.#badReason = error;
      throw error;
    }
    const revoked: string[] = [];
    for (const [tenant, entry] of this.#tenants) {
      const next = read.get(tenant);
      // An unchanged line keeps its entry, so a verification that straddles this reload still counts.
      if (next && sameEntry(entry, next)) read.set(tenant, entry);
      else revoked.push(tenant);
    }
    this.#tenants = read;
    this.#version = version;
    if (revoked.length === 0) return;
    for (const [digest, tenant] of this.#verified) if (revoked.includes(tenant)) this.#verified.delete(digest);
    for (const tenant of revoked) this.#onRevoked(tenant);
  }
}
