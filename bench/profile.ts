/**
 * `node dist/bench/profile.js [--top N] FILE.cpuprofile...`: prints each profile's self time by area
 * and by function. `npm run bench -- --profile DIR SCENARIO` writes such files (and these summaries).
 */
import { parseArgs } from 'node:util';
import { formatProfile, summarizeProfile } from './harness/cpuprofile.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
if (positionals.length === 0) {
  process.stderr.write('usage: node dist/bench/profile.js [--top N] FILE.cpuprofile...\n');
  process.exitCode = 2;
}
for (const file of positionals) process.stdout.write(`${formatProfile(file, summarizeProfile(file), Number(values.top))}\n\n`);
