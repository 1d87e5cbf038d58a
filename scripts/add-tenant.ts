/**
 * `npm run tenant:add -- NAME [TOKENS_FILE]`: adds a tenant to the tokens file (default
 * $VMSTREAM_TOKENS_FILE, else ./data/tokens) and prints its token, once: only a scrypt hash of it
 * is kept. A running server picks the new line up on the tenant's first connection.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { newTenantLine, parseTokensFile } from '../src/auth/tenants.js';

async function main(): Promise<void> {
  const [tenant, fileArgument] = process.argv.slice(2);
  if (!tenant) {
    process.stderr.write('usage: npm run tenant:add -- NAME [TOKENS_FILE]\n');
    process.exit(2);
  }
  const file = path.resolve(fileArgument ?? process.env.VMSTREAM_TOKENS_FILE ?? './data/tokens');
  const existing = await readFile(file, 'utf8').catch(() => '');
  if (parseTokensFile(existing).has(tenant)) {
    process.stderr.write(`tenant ${tenant} already exists in ${file}\n`);
    process.exit(1);
  }
  const { line, token } = await newTenantLine(tenant);
  await mkdir(path.dirname(file), { recursive: true });
  await appendFile(file, `${existing === '' || existing.endsWith('\n') ? '' : '\n'}${line}\n`, { mode: 0o600 });
  process.stderr.write(`added tenant ${tenant} to ${file}; its token (shown once):\n`);
  process.stdout.write(`${token}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
});
