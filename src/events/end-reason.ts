/**
 * What a client is told when its subscription ended short of its execution's `done`: without it,
 * the client would wait for a `done` that never comes. Every door (socket, event stream, MCP,
 * Jupyter) builds its error here, so a reason means the same code everywhere.
 */
import { ProtocolError } from '../../protocol/errors.js';
import type { EndReason } from './subscription-hub.js';

/** The error for a subscription of `executionId` (the client's id) that ended for `reason`; null when it ended as it should. */
export function endedEarlyError(executionId: string, reason: EndReason): ProtocolError | null {
  switch (reason) {
    case 'complete':
    case 'detached':
      return null;
    case 'deleted':
      return new ProtocolError('LOG_DELETED', `the events of execution \`${executionId}\` were deleted (retention) while they were being sent; they cannot be read again`);
    case 'unreadable':
      return new ProtocolError('LOG_UNREADABLE', `reading the events of execution \`${executionId}\` failed (the server logged why); subscribe again from the last seq received`);
    case 'gap':
      return new ProtocolError('LOG_UNREADABLE', `the events of execution \`${executionId}\` after the last one sent could not be found, although its log goes on (the server logged it); subscribe again from the last seq received`);
    case 'refused':
      return new ProtocolError('LOG_REFUSED', `the store refused the events of execution \`${executionId}\` for good (the server logged why): it was stopped, and its log ends with the last event sent, without a \`done\``);
  }
}
