/**
 * JetStream baseline process: the bare NATS client's ceiling for what the JetStream store does with
 * an execution's log, with nothing of vmstream in it. Event frames packed (msgpack array of frames)
 * into messages of PAGE_EVENTS frames, one subject per page, as the store publishes a long log
 * (src/store/jetstream/event-log.ts); published with a reply inbox and acks matched by token:
 *
 * - pipelined: `window` messages in flight (the store's publisher pipelines a commit's messages);
 * - serial: one message in flight, as the store appends one execution's chunks in order;
 * - replay: every message read back through one ordered consumer and unpacked into its frames.
 *
 * In a process of its own, like the storage baseline, so the harness's heap is not in the figure.
 */
import { performance } from 'node:perf_hooks';
import { connect, createInbox, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Packr } from 'msgpackr';
import { encodeFrame } from '../../protocol/codec.js';
import { PAGE_EVENTS } from '../../src/store/jetstream/names.js';
import { bindToParent, receiveFromParent, sendToParent } from '../harness/child.js';
import { eventFrame } from '../harness/frames.js';
import { peakRssBytes } from '../harness/proc-stats.js';

export interface JetStreamJob {
  natsUrl: string;
  /** Events of the pipelined log (the serial one writes a quarter as many). */
  events: number;
  /** Messages in flight in the pipelined publish. */
  window: number;
  maxMs: number;
}

export interface JetStreamResult {
  publishEventsPerSec: number;
  serialPublishEventsPerSec: number;
  replayEventsPerSec: number;
  events: number;
  messages: number;
  messageBytes: number;
  peakRssBytes: number;
}

const STREAM = 'BENCHRAW';
/** Messages per pull (~6 MB of ~98 KB pages): enough to keep the consumer streaming. */
const FETCH_MESSAGES = 64;
const packr = new Packr({ useRecords: false });

/** One message's worth of frames, packed as the store packs a chunk. */
function pageMessage(): Uint8Array {
  const ts = Date.now();
  return packr.pack(Array.from({ length: PAGE_EVENTS }, (_, i) => encodeFrame(eventFrame(i, ts + i))));
}

/**
 * Publishes `messages` copies of `data` on `log`'s page subjects with at most `window` unacked,
 * and resolves with the events acked per second.
 */
async function publish(nc: NatsConnection, log: string, data: Uint8Array, messages: number, window: number, maxMs: number): Promise<number> {
  const inbox = createInbox();
  let sent = 0;
  let acked = 0;
  const t0 = performance.now();
  let sub: Subscription | undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${acked} of ${messages} publishes acked within ${maxMs} ms`)), maxMs);
    const next = (): void => {
      nc.publish(`benchraw.${log}.${sent}`, data, { reply: `${inbox}.${sent}` });
      sent++;
    };
    sub = nc.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        if (error) return reject(error);
        const ack = JSON.parse(Buffer.from(msg.data).toString('utf8')) as { seq?: number; error?: { description?: string } };
        if (ack.error || typeof ack.seq !== 'number') return reject(new Error(`JetStream refused a publish: ${ack.error?.description ?? 'no seq'}`));
        if (++acked === messages) {
          clearTimeout(timer);
          resolve();
        } else if (sent < messages) next();
      },
    });
    while (sent < Math.min(window, messages)) next();
  }).finally(() => sub?.unsubscribe());
  return (messages * PAGE_EVENTS) / ((performance.now() - t0) / 1000);
}

/** Reads `log` back through one ordered consumer, unpacking every message; events per second. */
async function replay(jsm: JetStreamManager, log: string, messages: number): Promise<number> {
  const consumer = await jsm.jetstream().consumers.get(STREAM, { filter_subjects: `benchraw.${log}.>` });
  const t0 = performance.now();
  let events = 0;
  let read = 0;
  while (read < messages) {
    const batch = await consumer.fetch({ max_messages: Math.min(FETCH_MESSAGES, messages - read), expires: 5_000 });
    const before = read;
    for await (const message of batch) {
      events += (packr.unpack(message.data) as Uint8Array[]).length;
      read++;
    }
    if (read === before) throw new Error(`the replay found ${read} of ${messages} messages`);
  }
  return events / ((performance.now() - t0) / 1000);
}

export async function runJetStream(job: JetStreamJob): Promise<JetStreamResult> {
  const nc = await connect({ servers: job.natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: STREAM, subjects: ['benchraw.>'], allow_direct: true, max_msg_size: 1024 * 1024 });
    const data = pageMessage();
    const messages = Math.max(1, Math.ceil(job.events / PAGE_EVENTS));
    const serialMessages = Math.max(1, Math.ceil(messages / 4));
    const publishEventsPerSec = await publish(nc, 'pipelined', data, messages, job.window, job.maxMs);
    const serialPublishEventsPerSec = await publish(nc, 'serial', data, serialMessages, 1, job.maxMs);
    const replayEventsPerSec = await replay(jsm, 'pipelined', messages);
    return {
      publishEventsPerSec,
      serialPublishEventsPerSec,
      replayEventsPerSec,
      events: messages * PAGE_EVENTS,
      messages,
      messageBytes: data.length,
      peakRssBytes: peakRssBytes(),
    };
  } finally {
    await nc.close();
  }
}

bindToParent();
const { job } = await receiveFromParent<{ type: 'job'; job: JetStreamJob }>('job');
try {
  await sendToParent({ type: 'result', result: await runJetStream(job) });
} catch (error) {
  await sendToParent({ type: 'error', message: (error as Error).stack ?? String(error) });
}
process.exit(0);
