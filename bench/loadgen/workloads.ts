/**
 * What the load generator says and how it recognises the answer, per named workload. A scenario
 * against the real server adds its workload here (one entry) and names it in its job.
 */
import { eventFrame, packr } from '../harness/frames.js';

export interface RttWorkload {
  /** Encodes request `id`; the frame that completes it must let `completes` recover the id. */
  request(id: number): Uint8Array;
  /** The id a decoded server frame completes, or -1 for a frame that completes none. */
  completes(frame: unknown): number;
}

export interface SinkWorkload {
  /** The frame that asks the server for a stream of `count` frames over at most `ms`. */
  start(count: number, ms: number): Uint8Array;
  /** Whether a decoded frame ends the stream. */
  isEnd(frame: unknown): boolean;
}

interface Framed {
  op?: unknown;
  seq?: unknown;
}

/** Echo baseline: an event frame goes out, the same frame comes back; its seq is the request id. */
const echo: RttWorkload = {
  request: (id) => packr.pack(eventFrame(id, Date.now())),
  completes: (frame) => {
    const seq = (frame as Framed).seq;
    return typeof seq === 'number' ? seq : -1;
  },
};

/** Push baseline: one request, then event frames until {op:'end'}. */
const push: SinkWorkload = {
  start: (count, ms) => packr.pack({ op: 'push', count, ms }),
  isEnd: (frame) => (frame as Framed).op === 'end',
};

export const rttWorkloads: Record<string, RttWorkload> = { echo };
export const sinkWorkloads: Record<string, SinkWorkload> = { push };
