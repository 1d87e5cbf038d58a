/**
 * Frames lately committed for executions whose subscribers fell behind, kept in memory for their
 * catch-up (subscription-hub.ts). A socket that pauses under a stream used to read back from the
 * store everything committed while it waited: about a third of a million-line stream's events went
 * through LevelDB a second time (an iterator, a copy into new buffers, a view per frame) for frames
 * the server had held a moment before.
 *
 * The hub keeps a chunk here only while a subscriber of its execution is paused or catching up, and
 * drops an execution's chunks once none is. What is kept is bounded over all executions: past
 * `maxBytes`, the chunks kept least recently go first, and a subscriber whose cursor is older than
 * what is kept reads the store, as before. Each execution's chunks are contiguous (a chunk that
 * does not follow the last one kept starts them again), so a catch-up from here has no gap.
 *
 * What a kept frame costs is the buffer it views, not its own bytes: a console line read from a
 * sandbox process's pipe is a view of its run's copy (pool/pipe-frames.ts: up to a pipe read, and
 * the run holds the lines of every execution of that process that wrote in it), a frame the server
 * encoded views msgpackr's shared 8 KiB, one read back from the store its stored chunk. So each
 * buffer the kept frames view is counted whole (once, when frames in a row view it): a 40-byte line
 * may count 64 KiB, and what is counted is never less than what keeping holds.
 */
import type { CommittedChunk } from './commit-log.js';

/**
 * Counted per frame beside the buffer it views: the typed array that views it, with its slot in its
 * chunk's array (measured on Node 20: a million 40-byte subarrays of one buffer, ~107 bytes each).
 */
const FRAME_OVERHEAD_BYTES = 112;

interface Kept {
  chunk: CommittedChunk;
  /**
   * What it holds: each buffer its frames view, once, except the one its first frame views when the
   * chunk kept before it (of its execution) views that one too and counts it.
   */
  bytes: number;
}

interface Tail {
  kept: Kept[];
  /** The seq after the last frame kept: the next chunk must start there. */
  nextSeq: number;
}

export class RecentFrames {
  /** By execution, least recently kept first (a tail moves to the end when a chunk is added). */
  readonly #tails = new Map<string, Tail>();
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes kept now, over all executions: the buffers the kept frames view, and their views. */
  get bytes(): number {
    return this.#bytes;
  }

  keep(chunk: CommittedChunk): void {
    if (chunk.frames.length === 0) return;
    let tail = this.#tails.get(chunk.executionId);
    if (tail && tail.nextSeq !== chunk.firstSeq) {
      this.drop(chunk.executionId);
      tail = undefined;
    }
    if (tail) this.#tails.delete(chunk.executionId);
    else tail = { kept: [], nextSeq: chunk.firstSeq };
    this.#tails.set(chunk.executionId, tail);
    const before = tail.kept[tail.kept.length - 1];
    const bytes = sizeOf(chunk.frames, before && lastBuffer(before.chunk));
    tail.kept.push({ chunk, bytes });
    tail.nextSeq = chunk.firstSeq + chunk.frames.length;
    this.#bytes += bytes;
    while (this.#bytes > this.#maxBytes) this.#evictOldest();
  }

  /** The kept chunk holding `seq` of the execution's log, if it is kept. */
  find(executionId: string, seq: number): CommittedChunk | undefined {
    const tail = this.#tails.get(executionId);
    if (!tail || seq >= tail.nextSeq || seq < tail.kept[0]!.chunk.firstSeq) return undefined;
    // Chunks in seq order: the last one starting at or before seq holds it.
    let low = 0;
    let high = tail.kept.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (tail.kept[middle]!.chunk.firstSeq <= seq) low = middle;
      else high = middle - 1;
    }
    return tail.kept[low]!.chunk;
  }

  drop(executionId: string): void {
    const tail = this.#tails.get(executionId);
    if (!tail) return;
    for (const { bytes } of tail.kept) this.#bytes -= bytes;
    this.#tails.delete(executionId);
  }

  #evictOldest(): void {
    const [executionId, tail] = this.#tails.entries().next().value as [string, Tail];
    const evicted = tail.kept.shift()!;
    let freed = evicted.bytes;
    // The buffer it shares with the next chunk stays held by that one, which counts it from now on.
    const next = tail.kept[0];
    const shared = lastBuffer(evicted.chunk);
    if (next && next.chunk.frames[0]!.buffer === shared) {
      next.bytes += shared.byteLength;
      freed -= shared.byteLength;
    }
    this.#bytes -= freed;
    if (tail.kept.length === 0) this.#tails.delete(executionId);
  }
}

function lastBuffer(chunk: CommittedChunk): ArrayBufferLike {
  return chunk.frames[chunk.frames.length - 1]!.buffer;
}

/** What keeping `frames` holds, but for `counted`, a buffer counted already (the chunk before views it). */
function sizeOf(frames: readonly Uint8Array[], counted: ArrayBufferLike | undefined): number {
  let bytes = frames.length * FRAME_OVERHEAD_BYTES;
  let last = counted;
  for (const frame of frames) {
    // A run's frames come in a row: one compare per frame finds each buffer once.
    if (frame.buffer === last) continue;
    last = frame.buffer;
    bytes += last.byteLength;
  }
  return bytes;
}
