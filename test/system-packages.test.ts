/**
 * The step `npm test` runs first to install what the suite needs from the operating system
 * (scripts/system-packages.mjs). Nothing is uninstalled here (the machine is shared): the decision
 * is tested on its own, and the script end to end in --dry-run with a faked PATH.
 */
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT, removeDir, tempDir } from './helpers/server.js';
// @ts-expect-error: a plain ES module of the build scripts, without type declarations
import { SYSTEM_PACKAGES, isDebian, missingPackages, plan } from '../scripts/system-packages.mjs';

interface Entry { deb: string; command: string; for: string }
const SCRIPT = path.join(ROOT, 'scripts', 'system-packages.mjs');
const packages = SYSTEM_PACKAGES as Entry[];

function dryRun(searchPath: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, '--dry-run'], { env: { PATH: searchPath } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A folder holding an executable stub for each named command. */
function fakeBin(commands: string[]): string {
  const dir = tempDir('bin');
  for (const command of commands) {
    writeFileSync(path.join(dir, command), '#!/bin/sh\n');
    chmodSync(path.join(dir, command), 0o755);
  }
  return dir;
}

t.test('the list names chromium and tmux, each with the command that proves it is there', async (t) => {
  const names = packages.map((entry) => entry.deb);
  t.ok(names.includes('chromium') && names.includes('tmux'));
  for (const entry of packages) t.match(entry, { deb: /^[a-z0-9.+-]+$/, command: /\S/, for: /\S/ }, entry.deb);
});

t.test('a command counts as present only when it is executable on PATH', async (t) => {
  const bin = fakeBin(['tmux']);
  t.teardown(() => removeDir(bin));
  writeFileSync(path.join(bin, 'chromium'), 'not executable');
  const missing = missingPackages(packages, bin) as Entry[];
  t.same(missing.map((entry) => entry.deb), packages.map((entry) => entry.deb).filter((name) => name !== 'tmux'));
});

t.test('root on Debian installs with apt-get; elsewhere one line says what is missing and how', async (t) => {
  const missing = packages.filter((entry) => entry.deb === 'chromium' || entry.deb === 'tmux');
  t.same(plan([], { root: false, debian: false }), { action: 'none' });
  t.same(plan(missing, { root: true, debian: true }).commands, [
    ['apt-get', 'update', '-qq'],
    ['apt-get', 'install', '-y', '-qq', 'chromium', 'tmux'],
  ]);
  const notRoot = plan(missing, { root: false, debian: true });
  t.equal(notRoot.action, 'tell');
  t.match(notRoot.message, /chromium \(the `chromium` command\), tmux \(the `tmux` command\).*as root: apt-get install -y chromium tmux/);
  t.notMatch(notRoot.message, /\n/, 'one line');
  const elsewhere = plan(missing, { root: true, debian: false });
  t.match(elsewhere.message, /chromium.*tmux.*with your package manager/);
});

t.test('--dry-run with nothing on PATH prints what it would do on this machine', async (t) => {
  const empty = fakeBin([]);
  t.teardown(() => removeDir(empty));
  const result = await dryRun(empty);
  const names = packages.map((entry) => entry.deb).join(' ');
  if (process.getuid?.() === 0 && isDebian()) {
    t.equal(result.code, 0, result.stderr);
    t.equal(result.stdout, `would run: apt-get update -qq\nwould run: apt-get install -y -qq ${names}\n`);
  } else {
    t.equal(result.code, 1, 'not root on Debian: nothing can be installed, and the tests would not run');
    t.match(result.stderr, /^vmstream's tests need .* which are missing: install them .*\n$/);
  }
});

t.test('--dry-run with every command present installs nothing', async (t) => {
  const bin = fakeBin(packages.map((entry) => entry.command));
  t.teardown(() => removeDir(bin));
  const result = await dryRun(bin);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, 'nothing to install\n');
});
