/**
 * The scenarios against the real vmstream server, in run order. Each is a module in this directory
 * exporting a Scenario (bench/harness/types.ts); registering one is one line here, and so is running
 * one again on the JetStream store (stores.ts).
 */
import type { Scenario } from '../harness/types.js';
import { connections } from './connections.js';
import { executeTrivial, executeTrivialPlain } from './execute-trivial.js';
import { fanout } from './fanout.js';
import { inProcess } from './in-process.js';
import { forward } from './forward.js';
import { jupyter } from './jupyter.js';
import { latency } from './latency.js';
import { reconnectStorm } from './reconnect-storm.js';
import { replay, replayRate } from './replay.js';
import { replayDeep } from './replay-deep.js';
import { stream } from './stream.js';
import { onJetStream } from './stores.js';
import { takeover } from './takeover.js';

export const scenarios: Scenario[] = [
  executeTrivial,
  executeTrivialPlain,
  inProcess(executeTrivial),
  latency,
  inProcess(latency),
  stream,
  inProcess(stream),
  onJetStream(stream, { against: 'publish_events_per_s' }),
  replay,
  onJetStream(replayRate, { against: 'replay_events_per_s', drop: ['ratio_to_storage_iterator'] }),
  replayDeep,
  onJetStream(replayDeep),
  fanout,
  connections,
  reconnectStorm,
  jupyter,
  forward,
  takeover,
];
