/**
 * Summarises a V8 `.cpuprofile` (what `node --cpu-prof` writes) by self time: per function, and per
 * area (a vmstream module, a package, Node's internals, GC, native). Self time is the sum of the
 * sample intervals spent in the function itself, not in what it called: the figure that says where
 * the cycles go.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  area: string;
  ms: number;
}

export interface ProfileSummary {
  /** Sampled wall time, and the part of it the thread was not idle. */
  totalMs: number;
  busyMs: number;
  functions: SelfTime[];
  areas: Array<{ area: string; ms: number }>;
}

/** Where a function lives, in a word: `src/events/commit-log.js`, `msgpackr`, `node:internal`, `(gc)`. */
function areaOf(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') {
    if (frame.functionName === '(garbage collector)') return '(gc)';
    if (frame.functionName === '(idle)') return '(idle)';
    if (frame.functionName === '(program)') return '(program: native, not JS)';
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node: internals';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const dist = url.lastIndexOf('/dist/');
  return dist >= 0 ? url.slice(dist + '/dist/'.length) : url.replace(/^file:\/\//, '');
}

export function summarizeProfile(path: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; the interval a sample stands for is the next delta.
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + us);
  }
  const functions = new Map<string, SelfTime>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const area = areaOf(frame);
    totalUs += us;
    if (area === '(idle)') idleUs += us;
    areas.set(area, (areas.get(area) ?? 0) + us);
    const name = frame.functionName || '(anonymous)';
    const where = frame.url ? `${area}:${frame.lineNumber + 1}` : area;
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { name, where, area, ms: 0 };
    entry.ms += us / 1000;
    functions.set(key, entry);
  }
  return {
    totalMs: totalUs / 1000,
    busyMs: (totalUs - idleUs) / 1000,
    functions: [...functions.values()].filter((f) => f.area !== '(idle)').sort((a, b) => b.ms - a.ms),
    areas: [...areas].filter(([area]) => area !== '(idle)').map(([area, us]) => ({ area, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
  };
}

/** The summary as text: the top functions and areas, each with its share of busy time. */
export function formatProfile(title: string, summary: ProfileSummary, top = 25): string {
  const share = (ms: number): string => `${((ms / summary.busyMs) * 100).toFixed(1).padStart(5)} %`;
  const lines = [
    `${title}: ${(summary.busyMs / 1000).toFixed(2)} s busy of ${(summary.totalMs / 1000).toFixed(2)} s sampled (main thread)`,
    '  self time by area:',
    ...summary.areas.slice(0, 12).map((a) => `    ${share(a.ms)}  ${a.ms.toFixed(0).padStart(7)} ms  ${a.area}`),
    `  self time by function (top ${top}):`,
    ...summary.functions.slice(0, top).map((f) => `    ${share(f.ms)}  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`),
  ];
  return lines.join('\n');
}
