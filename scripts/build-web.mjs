#!/usr/bin/env node
// Builds the web console (web/) with Vite into dist/web, which the server serves at `/`. Skipped
// when dist/web is newer than every file it is built from (web/, src/client/, protocol/), so
// `npm start` and `npm test` pay for it only after a change. `--force` builds regardless.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist', 'web');
const inputs = ['web', 'src/client', 'protocol'].map((dir) => path.join(root, dir));

function newest(target) {
  const stat = statSync(target);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(target).map((name) => newest(path.join(target, name))));
}

function builtAt() {
  try {
    return statSync(path.join(outDir, 'index.html')).mtimeMs;
  } catch {
    return -1;
  }
}

if (!process.argv.includes('--force') && builtAt() > Math.max(...inputs.map(newest))) process.exit(0);

// The page and, through its imports, the SDK are type-checked against the DOM alone: this is
// where a Node-only API creeping into src/client would be caught.
execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'web')], { stdio: 'inherit' });
const { build } = await import('vite');
await build({
  configFile: false,
  root: path.join(root, 'web'),
  base: '/',
  logLevel: 'warn',
  // One ~500 kB script (~170 kB gzipped), most of it the editor (CodeMirror): loaded once and cached for good.
  build: { outDir, emptyOutDir: true, target: 'es2022', reportCompressedSize: false, chunkSizeWarningLimit: 1024 },
});
console.error(`web console built in ${path.relative(root, outDir)}`);
