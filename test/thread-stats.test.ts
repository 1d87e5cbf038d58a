/**
 * bench/harness/thread-stats.ts: a process tree's CPU by thread group, from /proc. The test's own
 * process burns CPU on its main thread and a child process on its own: the meter puts it on the
 * right threads, and its groups add up to the processes' own totals.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { treeThreadMeter } from '../bench/harness/thread-stats.js';

/** The child's burn: the same loop, then it says so. */
const burnChild = "const s = process.cpuUsage(); while ((process.cpuUsage(s).user + process.cpuUsage(s).system) / 1000 < ms); process.send('done');";

/** Burns CPU on the calling thread for `ms` of its own CPU time (not wall time: the machine is shared). */
function burn(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  while ((process.cpuUsage(start).user + process.cpuUsage(start).system) / 1000 < ms) x += Math.sqrt(x + 1);
  if (x < 0) throw new Error('unreachable');
}

t.test('CPU is found on the main threads of the root and of a child, and the groups sum to the totals', { skip: process.platform === 'linux' ? false : 'reads /proc (Linux only)' }, async (t) => {
  const child = spawn(process.execPath, ['-e', `process.on('message', (ms) => { ${burnChild} })`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  t.teardown(() => child.kill());
  const meter = treeThreadMeter(process.pid, 'root');
  burn(300);
  child.send(300);
  await once(child, 'message');
  const usage = meter();
  const byGroup = new Map(usage.groups.map((group) => [group.group, group]));
  const root = byGroup.get('root: main');
  t.ok(root && root.cpuSeconds >= 0.25, `the root's main thread: ${root?.cpuSeconds} s`);
  // A forked node below the root is metered as a sandbox process would be.
  const below = byGroup.get('sandbox: main');
  t.ok(below && below.cpuSeconds >= 0.25, `the child's main thread: ${below?.cpuSeconds} s`);
  const sum = usage.groups.reduce((total, group) => total + group.cpuSeconds, 0);
  // Each thread's figure is in 10 ms ticks: the sum may differ from the totals by a tick per thread.
  t.ok(Math.abs(sum - usage.processCpuSeconds) <= 0.01 * usage.groups.reduce((n, group) => n + group.threads, 0), `groups ${sum} s, processes ${usage.processCpuSeconds} s`);
});
