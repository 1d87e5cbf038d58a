/**
 * A TCP proxy in front of the real server that can break the connection at an exact frame: it
 * passes the client's bytes through, and parses the server's WebSocket frames (unmasked, so the
 * header is 2-10 bytes) so a test can drop, repeat, hold back or cut at a given reply or event.
 * Plain HTTP (the console's page) passes through untouched.
 */
import net from 'node:net';
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import type { ServerFrame } from '../../protocol/types.js';


/** The seqs an `event` or `events` frame carries (the SDK asks for `events`); none for a reply. */
export function seqsOf(frame: ServerFrame): number[] {
  if (frame.op === 'event') return [frame.seq];
  if (frame.op === 'events') return frame.events.map((event) => event.seq);
  return [];
}

/** A frame as the server would send it (binary, unmasked), for a filter to add to what it passes on. */
export function serverFrame(frame: object): Buffer {
  const payload = Buffer.from(encodeFrame(frame));
  const length = payload.length;
  if (length < 126) return Buffer.concat([Buffer.from([0x82, length]), payload]);
  const header = Buffer.alloc(length < 65536 ? 4 : 10);
  header[0] = 0x82;
  if (length < 65536) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

/** What to send on for one server frame: these raw frames (none drops it), or 'cut' the connection. */
export type FrameAction = Buffer[] | 'cut';
export type FrameFilter = (frame: ServerFrame, raw: Buffer, connection: number) => FrameAction;

export class FrameProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  readonly #waiters: Array<{ count: number; resolve(): void }> = [];
  targetPort: number;
  filter: FrameFilter | null = null;
  /** WebSocket upgrades that succeeded, over the proxy's life. */
  upgrades = 0;

  private constructor(server: net.Server, targetPort: number) {
    this.#server = server;
    this.targetPort = targetPort;
  }

  static async start(targetPort: number): Promise<FrameProxy> {
    const server = net.createServer();
    const proxy = new FrameProxy(server, targetPort);
    server.on('connection', (client) => proxy.#accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Resolves once `count` upgrades have gone through. */
  upgraded(count: number): Promise<void> {
    if (this.upgrades >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** Breaks every open connection, both sides, as a network failure would. */
  dropAll(): void {
    for (const [client, upstream] of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.#pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    let connection = 0;
    let head: Buffer | null = Buffer.alloc(0);
    let frames: Buffer = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      if (head !== null) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const rest = head.subarray(end + 4);
        client.write(head.subarray(0, end + 4));
        const upgradedNow = head.subarray(0, 12).toString() === 'HTTP/1.1 101';
        head = null;
        if (!upgradedNow) {
          // Plain HTTP: no frames to look at.
          upstream.removeAllListeners('data');
          if (rest.length > 0) client.write(rest);
          upstream.pipe(client);
          return;
        }
        connection = ++this.upgrades;
        for (const waiter of this.#waiters.filter((w) => w.count <= this.upgrades)) waiter.resolve();
        chunk = rest;
      }
      frames = frames.length === 0 ? chunk : Buffer.concat([frames, chunk]);
      let offset = 0;
      for (;;) {
        const size = frameSize(frames, offset);
        if (size === 0) break;
        const raw = frames.subarray(offset, offset + size);
        offset += size;
        const action = this.#judge(raw, connection);
        if (action === 'cut') {
          drop();
          return;
        }
        for (const out of action) client.write(out);
      }
      frames = frames.subarray(offset);
    });
  }

  #judge(raw: Buffer, connection: number): FrameAction {
    const opcode = raw[0]! & 0x0f;
    if (!this.filter || opcode !== 2) return [raw];
    const payload = raw.subarray(headerSize(raw));
    return this.filter(decodeValue(payload) as ServerFrame, Buffer.from(raw), connection);
  }
}

function headerSize(buffer: Buffer, offset = 0): number {
  const length = buffer[offset + 1]! & 0x7f;
  return 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + (buffer[offset + 1]! & 0x80 ? 4 : 0);
}

/** Bytes of the complete frame at `offset`, or 0 when it has not all arrived. */
function frameSize(buffer: Buffer, offset: number): number {
  if (buffer.length - offset < 2) return 0;
  const length7 = buffer[offset + 1]! & 0x7f;
  const extra = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  if (buffer.length - offset < 2 + extra) return 0;
  const payload = length7 === 126 ? buffer.readUInt16BE(offset + 2) : length7 === 127 ? Number(buffer.readBigUInt64BE(offset + 2)) : length7;
  const total = headerSize(buffer, offset) + payload;
  return buffer.length - offset < total ? 0 : total;
}
