/**
 * The package as another project gets it: `npm pack` (its prepack builds), installed into an
 * empty project (from the local npm cache where it can), then used the way the README's "Use it
 * from another project" says: the SDK's types under strict TypeScript, `npx vmstream` as the server,
 * the SDK against it, and `npx vmstream run`. Slow (an npm install): one file, one server.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT, removeDir, startServer, tempDir } from './helpers/server.js';

interface Result { code: number; stdout: string; stderr: string }

function exec(file: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const dir = tempDir('package');
t.teardown(() => removeDir(dir));
const project = path.join(dir, 'project');

// The consumer: strict TypeScript over the published types, compiled to what it runs.
const CONSUMER = `import { Client, type EventFrame } from 'vmstream/client';

export async function main(url: string, token: string): Promise<string> {
  const client = await Client.connect(url, { token });
  const session = await client.createSession('from-another-project');
  const previews: string[] = [];
  const record = await client.execute(session, 'console.log("hi"); 6 * 7', {
    onEvent: (event: EventFrame) => {
      if (event.type === 'value') previews.push(event.payload.preview);
    },
  });
  await client.close();
  return record.status + ' ' + previews.join(',');
}
`;

t.test('npm pack, then npm install of the tarball into an empty project', async (t) => {
  const packed = await exec('npm', ['pack', '--json', '--pack-destination', dir], ROOT);
  t.equal(packed.code, 0, packed.stderr);
  const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
  const paths = files.map((file) => file.path);
  for (const expected of ['LICENSE', 'README.md', 'package.json', 'dist/src/cli/main.js', 'dist/src/client/index.d.ts', 'dist/protocol/types.d.ts', 'dist/web/index.html']) {
    t.ok(paths.includes(expected), `the package carries ${expected}`);
  }
  t.notOk(paths.some((file) => file.startsWith('src/') || file.startsWith('test/') || file.startsWith('dist/test')), 'no sources or tests');

  writeFileSync(path.join(dir, 'package.json'), '{}'); // keeps npm from walking up to another project
  await exec('mkdir', ['-p', project], dir);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // --prefer-offline: the tarballs come from the local cache (npm ci filled it), only the
  // package documents from the registry; --omit=dev proves nothing of the devDependencies is needed.
  const installed = await exec('npm', ['install', path.join(dir, filename), '--prefer-offline', '--omit=dev', '--no-audit', '--no-fund'], project);
  t.equal(installed.code, 0, installed.stderr);
  const manifest = JSON.parse(readFileSync(path.join(project, 'node_modules', 'vmstream', 'package.json'), 'utf8')) as { license: string; engines: { node: string } };
  t.equal(manifest.license, 'MIT');
  t.match(manifest.engines, { node: />=20/ });
});

t.test("import { Client } from 'vmstream/client' type-checks under strict TypeScript", async (t) => {
  writeFileSync(path.join(project, 'consumer.ts'), CONSUMER);
  writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, types: [], outDir: 'out' },
    files: ['consumer.ts'],
  }));
  const compiled = await exec(process.execPath, [TSC, '-p', '.'], project);
  t.equal(compiled.code, 0, compiled.stdout);
});

t.test('npx vmstream serves; the SDK and `npx vmstream run` work against it', async (t) => {
  const server = await startServer({
    dataDir: path.join(dir, 'data'),
    command: { file: 'npx', args: ['--no-install', 'vmstream'], cwd: project },
    env: { VMSTREAM_WORKERS: '1' },
  });
  t.teardown(() => server.stop());
  const main = path.join(project, 'main.mjs');
  writeFileSync(main, "import { main } from './out/consumer.js';\nconsole.log(await main(process.argv[2], process.argv[3]));\n");
  const sdk = await exec(process.execPath, [main, server.url, server.token], project);
  t.equal(sdk.code, 0, sdk.stderr);
  t.equal(sdk.stdout, 'ok 42\n');

  writeFileSync(path.join(project, 'answer.js'), 'console.log("thinking"); 6 * 7');
  const run = await exec('npx', ['--no-install', 'vmstream', 'run', 'answer.js', '--url', server.url, '--token', server.token], project);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^thinking\n/);
});
