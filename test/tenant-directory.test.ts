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
    await node.load();
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

t.test('callers arriving together share one look at the file and all see a change made before them', async (t) => {
  const file = path.join(tempDir('tenant-directory'), 'tokens');
  const frank = await newTenantLine('frank');
  writeFileSync(file, `${frank.line}\n`, { mode: 0o600 });
  const node = new TenantDirectory(file);
  await node.load();
  t.equal(await node.tenantOf(frank.token), 'frank');

  // One use starts a look at the file; the file changes; the uses that follow must not be answered
  // by that first look, which may have read the file before the change.
  const first = node.tenantOf(frank.token);
  writeFileSync(file, '# frank removed\n');
  const after = await Promise.all([node.tenantOf(frank.token), node.tenantOf(frank.token)]);
  await first;
  t.same(after, [null, null], 'uses after the change refuse the token');
});
