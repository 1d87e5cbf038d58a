/**
 * Pipelined JetStream publishes: plain publishes with a reply subject under one wildcard inbox
 * subscription, acks matched by their token. `js.publish()` builds a request per message and was 4×
 * slower in JETSTREAM.md's measurements; here many chunks of one commit are in flight at once.
 *
 * An ack that does not come within `timeoutMs` (nats-server restarting) fails that publish as
 * unavailable: the caller resends the same message with the same Msg-Id, which JetStream answers
 * `duplicate` if the first one was stored after all.
 */
import { createInbox, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { StoreError } from '../event-store.js';

export interface PublishAck {
  /** Stream seq of the message (of the stored original, for a duplicate). */
  seq: number;
  duplicate: boolean;
}

/** JetStream's error code for a failed `Nats-Expected-Last-Subject-Sequence`. */
const WRONG_LAST_SEQUENCE = 10071;

interface Pending {
  resolve(ack: PublishAck): void;
  reject(error: StoreError): void;
  timer: NodeJS.Timeout;
}

export class AckPublisher {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  readonly #timeoutMs: number;
  #next = 0;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#sub = nc.subscribe(`${this.#inbox}.*`, {
      callback: (error, msg) => {
        if (error) return;
        const token = msg.subject.slice(this.#inbox.length + 1);
        const pending = this.#pending.get(token);
        if (!pending) return;
        this.#settle(token);
        // A status reply (503: no stream listens on the subject) has headers and no body.
        if (msg.headers?.code && msg.headers.code >= 300) {
          pending.reject(new StoreError('STORE_UNAVAILABLE', `JetStream answered ${msg.headers.code} ${msg.headers.description}`));
          return;
        }
        const answer = parseAck(msg.data);
        if (answer instanceof StoreError) pending.reject(answer);
        else pending.resolve(answer);
      },
    });
  }

  publish(subject: string, data: Uint8Array, headers: MsgHdrs): Promise<PublishAck> {
    const token = String(this.#next++);
    return new Promise<PublishAck>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#settle(token);
        reject(new StoreError('STORE_UNAVAILABLE', `no JetStream ack within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(token, { resolve, reject, timer });
      try {
        this.#nc.publish(subject, data, { reply: `${this.#inbox}.${token}`, headers });
      } catch (error) {
        this.#settle(token);
        reject(new StoreError('STORE_UNAVAILABLE', `could not publish: ${(error as Error).message}`, { cause: error }));
      }
    });
  }

  /** Fails every publish still waiting (the store is closing). */
  close(): void {
    for (const [token, pending] of this.#pending) {
      this.#settle(token);
      pending.reject(new StoreError('STORE_UNAVAILABLE', 'the store closed before JetStream acked'));
    }
    this.#sub.unsubscribe();
  }

  #settle(token: string): void {
    const pending = this.#pending.get(token);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.#pending.delete(token);
  }
}

/** A JetStream publish ack: `{stream, seq, duplicate?}` or `{error: {err_code, description}}`. */
function parseAck(data: Uint8Array): PublishAck | StoreError {
  let ack: { seq?: number; duplicate?: boolean; error?: { err_code?: number; description?: string } };
  try {
    ack = JSON.parse(Buffer.from(data).toString('utf8')) as typeof ack;
  } catch {
    return new StoreError('STORE_UNAVAILABLE', 'JetStream sent an ack that is not JSON');
  }
  if (ack.error) {
    const fenced = ack.error.err_code === WRONG_LAST_SEQUENCE;
    return new StoreError(fenced ? 'STORE_FENCED' : 'STORE_UNAVAILABLE', `JetStream refused the chunk: ${ack.error.description ?? 'unknown error'}`);
  }
  if (typeof ack.seq !== 'number') return new StoreError('STORE_UNAVAILABLE', 'JetStream sent an ack without a seq');
  return { seq: ack.seq, duplicate: ack.duplicate === true };
}
