/**
 * Load-generator process: receives one job over IPC, runs it, sends back {type:'result', result} or
 * {type:'error', message}, and exits. A process of its own so its CPU is not the server's.
 */
import { bindToParent, receiveFromParent, sendToParent } from '../harness/child.js';
import { runRtt } from './rtt.js';
import { runSink } from './sink.js';
import type { LoadJob } from './types.js';

bindToParent();
const { job } = await receiveFromParent<{ type: 'job'; job: LoadJob }>('job');
try {
  const result = job.driver === 'rtt' ? await runRtt(job) : await runSink(job);
  await sendToParent({ type: 'result', result });
} catch (error) {
  await sendToParent({ type: 'error', message: (error as Error).stack ?? String(error) });
}
process.exit(0);
