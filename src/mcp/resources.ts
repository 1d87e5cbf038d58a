/**
 * Executions as MCP resources: `vmstream://executions/{execution_id}` is one execution's log as
 * text (rendered and bounded as run_code's result), and `vmstream://sessions/{session_id}/executions`
 * lists a session's executions with their URIs. Listing resources lists the recent executions of
 * every open session, so a client can show them per session.
 */
import { ResourceTemplate, type McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ReadResourceResult, Resource } from '@modelcontextprotocol/sdk/types.js';
import { EVENTS_LIMIT_MAX } from '../../protocol/http.js';
import type { EventFrame, ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import { decodeValue } from '../../protocol/codec.js';
import type { ExecutionService } from '../sessions/service.js';
import { clip, OutputText } from './output.js';

/** A listing shows the start of each execution's code; its log resource has the rest of the story. */
const CODE_PREVIEW = 2_000;

export const EXECUTION_URI = 'vmstream://executions/{execution_id}';
export const SESSION_EXECUTIONS_URI = 'vmstream://sessions/{session_id}/executions';

const executionUri = (id: string) => `vmstream://executions/${encodeURIComponent(id)}`;
const sessionUri = (id: string) => `vmstream://sessions/${encodeURIComponent(id)}/executions`;

export function registerResources(server: McpServer, service: ExecutionService, tenant: string): void {
  server.registerResource('execution', new ResourceTemplate(EXECUTION_URI, {
    list: async () => ({ resources: (await Promise.all(service.listSessions(tenant).map((session) => executionResources(service, tenant, session)))).flat() }),
  }), {
    title: 'Execution log',
    description:
      'The output of one run_code execution as text: console lines, value, exception, and how it ended. ' +
      'Bounded like run_code\'s result; read_output pages the whole log.',
    mimeType: 'text/plain',
  }, async (uri, variables) => {
    const executionId = String(variables.execution_id);
    const record = await service.getExecution(tenant, executionId);
    return text(uri.href, 'text/plain', `${header(record)}\n${await renderLog(service, tenant, record)}`);
  });

  server.registerResource('session-executions', new ResourceTemplate(SESSION_EXECUTIONS_URI, {
    list: async () => ({
      resources: service.listSessions(tenant).map((session) => ({
        uri: sessionUri(session.session_id),
        name: `executions of ${session.name || session.session_id}`,
        mimeType: 'application/json',
      })),
    }),
  }), {
    title: 'A session\'s executions',
    description: 'The recent executions of one session, newest first, each with its status, code and resource URI.',
    mimeType: 'application/json',
  }, async (uri, variables) => {
    const executions = await service.listExecutions(tenant, String(variables.session_id));
    const items = executions.map((record) => ({ ...summary(record), uri: executionUri(record.execution_id) }));
    return text(uri.href, 'application/json', JSON.stringify(items));
  });
}

async function executionResources(service: ExecutionService, tenant: string, session: SessionRecord): Promise<Resource[]> {
  const executions = await service.listExecutions(tenant, session.session_id);
  return executions.map((record) => ({
    uri: executionUri(record.execution_id),
    name: `${session.name || session.session_id} #${record.number}`,
    description: `In session ${session.session_id}; status ${record.status}`,
    mimeType: 'text/plain',
  }));
}

/** The log as it stands now (a running execution is not waited for), read page by page until the text is full. */
async function renderLog(service: ExecutionService, tenant: string, record: ExecutionRecord): Promise<string> {
  const output = new OutputText();
  let afterSeq = 0;
  let lastSeq = 0;
  do {
    const page = await service.readEvents(tenant, record.execution_id, afterSeq, EVENTS_LIMIT_MAX);
    lastSeq = page.lastSeq;
    for (const stored of page.events) output.add(decodeValue(stored.frame) as EventFrame);
    if (page.events.length === 0) break;
    afterSeq = page.events.at(-1)!.seq;
  } while (!output.truncated && afterSeq < lastSeq);
  return output.render(record.execution_id, lastSeq);
}

function summary(record: ExecutionRecord) {
  const { execution_id, session_id, number, status, reason, last_seq, code, path } = record;
  const input = code === undefined ? { path } : { code: clip(code, CODE_PREVIEW) };
  return { execution_id, session_id, number, status, ...(reason === undefined ? {} : { reason }), last_seq, ...input };
}

function header(record: ExecutionRecord): string {
  return `execution ${record.execution_id} (session ${record.session_id}, #${record.number}): ${record.status}${record.reason ? ` (${record.reason})` : ''}, ${record.last_seq} events`;
}

function text(uri: string, mimeType: string, body: string): ReadResourceResult {
  return { contents: [{ uri, mimeType, text: body }] };
}
