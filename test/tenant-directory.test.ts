/**
 * TenantDirectory alone, as several servers use it: each reads the same tokens file and remembers
 * the tokens that passed. A token revoked in the file must be refused by every directory at its
 * next use, whether or not that directory's own `watch` tick has come (here none runs at all).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { newTenantLine, TenantDirectory } from '../src/auth/tenants.js';
import { tempDir } from './helpers/server.js';

t.test('a remembered token is refused by every directory once its line is gone or replaced', async (t) => {
  const file = path.join(tempDir('tenant-directory'), 'tokens');
  const frank = await newTenantLine('frank');
  const grace = await newTenantLine('grace');
  writeFileSync(file, `${frank.line}\n${grace.line}\n`, { mode: 0o600 });

  const nodes = [new TenantDirectory(file), new TenantDirectory(file)];
  const revoked: string[][] = [[], []];
  for (const [index, node] of nodes.entries()) {
    node.load();
    // Revocations are heard through `watch`'s callback; its timer is stopped at once, so only a
    // token's use can notice the change below.
    node.watch((tenant) => revoked[index]!.push(tenant), () => {});
    node.stop();
    t.equal(await node.tenantOf(frank.token), 'frank', `node ${index} accepts frank's token`);
    t.equal(await node.tenantOf(grace.token), 'grace', `node ${index} accepts grace's token`);
  }

  // Frank gets a new secret: his line is replaced, in place (same inode, same size).
  const rotated = await newTenantLine('frank');
  writeFileSync(file, `${rotated.line}\n${grace.line}\n`);

  for (const [index, node] of nodes.entries()) {
    t.equal(await node.tenantOf(frank.token), null, `node ${index} refuses frank's old token at once`);
    t.equal(await node.tenantOf(rotated.token), 'frank', `node ${index} accepts his new token`);
    t.equal(await node.tenantOf(grace.token), 'grace', `node ${index} still accepts grace's`);
    t.same(revoked[index], ['frank'], `node ${index} reported frank revoked, once`);
  }
});

t.test('a token whose check was under way when its line went is refused', async (t) => {
  const file = path.join(tempDir('tenant-directory'), 'tokens');
  const frank = await newTenantLine('frank');
  writeFileSync(file, `${frank.line}\n`, { mode: 0o600 });
  const node = new TenantDirectory(file);
  node.load();

  // Not yet remembered: this check runs scrypt, and the line is removed while it does.
  const checking = node.tenantOf(frank.token);
  writeFileSync(file, '# frank removed\n');
  t.equal(await checking, null, 'the check under way refuses it');
  t.equal(await node.tenantOf(frank.token), null, 'and so does the next use');
});
