/**
 * Where a process tree's CPU goes, thread by thread, from Linux's /proc: per task its user and
 * system time, voluntary and involuntary context switches, and per process its minor page faults.
 * A server's CPU per event is more than its event loop's: its sandbox processes, LevelDB's write in
 * libuv's pool, V8's GC helpers and every wake-up between them count too, and the units measure
 * none of the hand-offs. Node 20 names no thread (every one is `node`), so a thread's role is read
 * from its place in the process's creation order (checked with gdb on Node 20: see roleOf).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { CLOCK_TICKS, descendantPids } from './proc-stats.js';

interface TaskSample {
  /** `<pid>/<tid>`: a task's identity across two samples. */
  key: string;
  group: string;
  cpu: number;
  voluntary: number;
  involuntary: number;
}

interface ProcessSample {
  pid: number;
  /** utime + stime of the whole process, dead threads included: what its threads must sum to. */
  cpu: number;
  minorFaults: number;
  tasks: TaskSample[];
}

/** What one group of threads spent between two samples. */
export interface ThreadGroupUsage {
  group: string;
  threads: number;
  cpuSeconds: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

export interface TreeUsage {
  groups: ThreadGroupUsage[];
  /** The processes' own totals (/proc/<pid>/stat), against which the groups' sum is checked. */
  processCpuSeconds: number;
  minorFaults: number;
}

function statFields(path: string): string[] {
  const stat = readFileSync(path, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces: field 3 is [0].
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function switches(path: string): [number, number] {
  const status = readFileSync(path, 'utf8');
  const voluntary = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(status);
  const involuntary = /^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status);
  return [Number(voluntary?.[1] ?? NaN), Number(involuntary?.[1] ?? NaN)];
}

/**
 * A thread's role in a Node 20 process, by its rank in creation order (tids ascending, which gdb
 * backtraces confirmed): the main thread; the platform's delayed-task thread; V8's four platform
 * workers (concurrent marking, parallel scavenge, compile jobs); one more started with them; then
 * what starts later: in the server libuv's pool of four (LevelDB's reads and writes, fs) and past
 * it LevelDB's own compaction thread; in a sandbox process its `worker_threads` (user code).
 */
function roleOf(rank: number, laterRank: number, processRole: string): string {
  if (rank === 0) return 'main';
  if (rank <= 1) return 'platform delayed tasks';
  if (rank <= 5) return 'V8 platform workers (GC)';
  if (rank === 6) return 'startup other';
  if (processRole === 'sandbox') return laterRank < 4 ? 'libuv pool' : 'worker threads (user code)';
  return laterRank < 4 ? 'libuv pool (LevelDB, fs)' : 'later threads (LevelDB compaction)';
}

function sampleProcess(pid: number, processRole: string): ProcessSample | null {
  try {
    const own = statFields(`/proc/${pid}/stat`);
    const tids = readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
    const tasks: TaskSample[] = [];
    tids.forEach((tid, rank) => {
      try {
        const fields = statFields(`/proc/${pid}/task/${tid}/stat`);
        const [voluntary, involuntary] = switches(`/proc/${pid}/task/${tid}/status`);
        tasks.push({
          key: `${pid}/${tid}`,
          group: `${processRole}: ${roleOf(rank, rank - 7, processRole)}`,
          cpu: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS,
          voluntary,
          involuntary,
        });
      } catch {
        // the thread ended meanwhile
      }
    });
    return { pid, cpu: (Number(own[11]) + Number(own[12])) / CLOCK_TICKS, minorFaults: Number(own[7]), tasks };
  } catch {
    return null;
  }
}

/** Node processes of the tree: the root is `rootRole`; every node below it (not bwrap) a `sandbox`. */
function sampleTree(rootPid: number, rootRole: string): ProcessSample[] {
  const samples: ProcessSample[] = [];
  const root = sampleProcess(rootPid, rootRole);
  if (root) samples.push(root);
  for (const pid of descendantPids(rootPid)) {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const sample = sampleProcess(pid, comm === 'node' ? 'sandbox' : comm);
    if (sample) samples.push(sample);
  }
  return samples;
}

/**
 * Starts a meter of a process tree's CPU by thread group. A thread born meanwhile counts from zero;
 * one that ended meanwhile is missing from the groups but not from `processCpuSeconds` (the
 * difference says so).
 */
export function treeThreadMeter(rootPid: number, rootRole = 'server'): () => TreeUsage {
  const before = sampleTree(rootPid, rootRole);
  const tasks0 = new Map(before.flatMap((p) => p.tasks).map((t) => [t.key, t]));
  const procs0 = new Map(before.map((p) => [p.pid, p]));
  return () => {
    const after = sampleTree(rootPid, rootRole);
    const groups = new Map<string, ThreadGroupUsage>();
    let processCpuSeconds = 0;
    let minorFaults = 0;
    for (const proc of after) {
      const proc0 = procs0.get(proc.pid);
      processCpuSeconds += proc.cpu - (proc0?.cpu ?? 0);
      minorFaults += proc.minorFaults - (proc0?.minorFaults ?? 0);
      for (const task of proc.tasks) {
        const task0 = tasks0.get(task.key);
        const group = groups.get(task.group) ?? { group: task.group, threads: 0, cpuSeconds: 0, voluntarySwitches: 0, involuntarySwitches: 0 };
        group.threads += 1;
        group.cpuSeconds += task.cpu - (task0?.cpu ?? 0);
        group.voluntarySwitches += task.voluntary - (task0?.voluntary ?? 0);
        group.involuntarySwitches += task.involuntary - (task0?.involuntary ?? 0);
        groups.set(task.group, group);
      }
    }
    return { groups: [...groups.values()], processCpuSeconds, minorFaults };
  };
}

/** A usage as lines of µs and context switches per `what` (an event, a frame): the `--threads` table. */
export function formatTreeUsage(usage: TreeUsage, count: number, what: string): string {
  const per = (value: number, scale = 1): string => ((value * scale) / count).toFixed(3);
  const sum = usage.groups.reduce((total, group) => total + group.cpuSeconds, 0);
  const lines = [`thread group | threads | CPU µs per ${what} | voluntary switches per ${what} | involuntary per ${what}`];
  for (const group of [...usage.groups].sort((a, b) => b.cpuSeconds - a.cpuSeconds)) {
    lines.push(`${group.group} | ${group.threads} | ${per(group.cpuSeconds, 1e6)} | ${per(group.voluntarySwitches)} | ${per(group.involuntarySwitches)}`);
  }
  lines.push(`sum of threads | | ${per(sum, 1e6)} | | `);
  lines.push(`processes' own total | | ${per(usage.processCpuSeconds, 1e6)} | minor faults per ${what}: ${per(usage.minorFaults)} |`);
  return lines.join('\n');
}
