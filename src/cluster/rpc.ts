/**
 * Requests one node forwards to another: NATS request/reply on `<P>.node.<node id>.rpc`, msgpack
 * `{op, tenant, args}` in, `{ok: result}` or `{error: {code, message}}` out (ProtocolErrors keep
 * their code; NOT_OWNER: the receiver does not own the session). Only the operations that need the
 * session's live context travel (routing.ts's ForwardedOp); reads are served by any node from the
 * shared store.
 *
 * Every forwarded operation is idempotent (an `execute` always carries its execution_id, chosen by
 * the forwarding node when the client gave none), so a forwarder may resend one after a timeout.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { isErrorCode, ProtocolError } from '../../protocol/errors.js';
import type { Names } from '../store/jetstream/names.js';
import { NotOwnerError, type ForwardedRequest } from './routing.js';

/** The owner did not answer: gone ("no responders"), cut off, or too slow (timeout). */
export class OwnerUnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OwnerUnreachableError';
  }
}

type Reply = { ok: unknown } | { error: { code: string; message: string } };

const NOT_OWNER = 'NOT_OWNER';
const packr = new Packr({ useRecords: false });

/** Answers this node's forwarded requests with `handle` (ExecutionService.serveForwarded). */
export class RpcServer {
  readonly #subscription: Subscription;

  constructor(nc: NatsConnection, names: Names, nodeId: string, handle: (request: ForwardedRequest) => Promise<unknown>, onError: (error: unknown) => void) {
    this.#subscription = nc.subscribe(names.rpcSubject(nodeId), {
      callback: (error, msg) => {
        if (error) return onError(error);
        void answer(msg, handle, onError);
      },
    });
  }

  close(): void {
    this.#subscription.unsubscribe();
  }
}

async function answer(msg: Msg, handle: (request: ForwardedRequest) => Promise<unknown>, onError: (error: unknown) => void): Promise<void> {
  let reply: Reply;
  try {
    reply = { ok: await handle(packr.unpack(msg.data) as ForwardedRequest) };
  } catch (error) {
    if (error instanceof ProtocolError) reply = { error: { code: error.code, message: error.message } };
    else if (error instanceof NotOwnerError) reply = { error: { code: NOT_OWNER, message: error.message } };
    else {
      onError(error);
      reply = { error: { code: 'INTERNAL', message: 'the owner of the session failed to handle the request' } };
    }
  }
  msg.respond(packr.pack(reply));
}

/** Sends one request to one node; rejects with NotOwnerError, OwnerUnreachableError, or the owner's ProtocolError. */
export async function sendForwarded(nc: NatsConnection, names: Names, nodeId: string, request: ForwardedRequest, timeoutMs: number): Promise<unknown> {
  let msg: Msg;
  try {
    msg = await nc.request(names.rpcSubject(nodeId), packr.pack(request), { timeout: timeoutMs });
  } catch (error) {
    throw new OwnerUnreachableError(`node ${nodeId} did not answer: ${(error as Error).message}`, { cause: error });
  }
  const reply = packr.unpack(msg.data) as Reply;
  if ('ok' in reply) return reply.ok;
  if (reply.error.code === NOT_OWNER) throw new NotOwnerError(reply.error.message);
  throw new ProtocolError(isErrorCode(reply.error.code) ? reply.error.code : 'INTERNAL', reply.error.message);
}
