/**
 * The web console: an editor, the streamed output of each execution, and the session's executions
 * with their status, all through the SDK. The SDK reconnects on its own and resumes every running
 * execution from the last event it delivered; this page only says when that happens.
 */
import { Client, ConnectionError, type EventFrame, type Execution, type ExecutionRecord, type Status } from '../src/client/index.js';

const TOKEN_KEY = 'vmstream.token';
const SESSION_KEY = 'vmstream.session';

interface View {
  block: HTMLElement;
  item: HTMLLIElement;
  execution: Execution | null;
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusBadge = byId<HTMLSpanElement>('status');
const editor = byId<HTMLTextAreaElement>('editor');
const runButton = byId<HTMLButtonElement>('run');
const cancelButton = byId<HTMLButtonElement>('cancel');
const output = byId<HTMLElement>('output');
const list = byId<HTMLOListElement>('executions');
const views = new Map<string, View>();
const live = new Set<Execution>();

/** The token: from `?token=` (then kept for this tab and taken out of the address bar), or kept from before. */
function takeToken(): string | null {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, '', location.pathname);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(message?: string): void {
  const form = byId<HTMLFormElement>('login');
  form.hidden = false;
  if (message) showStatus('closed', message);
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, byId<HTMLInputElement>('token').value.trim());
    location.reload();
  };
}

function showStatus(type: Status['type'] | 'connecting', text: string): void {
  statusBadge.dataset.status = type;
  statusBadge.textContent = text;
}

async function main(): Promise<void> {
  const token = takeToken();
  if (!token) return askForToken();
  let client: Client;
  try {
    client = await Client.connect(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`, { token });
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    return askForToken(error instanceof ConnectionError && error.status === 401 ? 'that token was refused' : `cannot connect: ${(error as Error).message}`);
  }
  void watchStatus(client);
  const session = await openSession(client);
  byId('session').textContent = `session ${session}`;
  byId('app').hidden = false;
  runButton.onclick = () => run(client, session);
  editor.onkeydown = (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run(client, session);
    }
  };
  cancelButton.onclick = () => {
    for (const execution of live) execution.cancel().catch(() => {});
  };
  // What the session ran before (a reload, another tab): replayed from the server's log.
  const earlier = await client.listExecutions(session, { limit: 50 });
  for (const record of earlier.reverse()) void follow(client.subscribe(record.execution_id), addView(record.execution_id, record));
  editor.focus();
}

/** The session kept for this tab if it is still open, else a new one. */
async function openSession(client: Client): Promise<string> {
  const kept = sessionStorage.getItem(SESSION_KEY);
  if (kept && (await client.listSessions()).some((session) => session.session_id === kept)) return kept;
  const created = await client.createSession('console');
  sessionStorage.setItem(SESSION_KEY, created.session_id);
  return created.session_id;
}

function run(client: Client, session: string): void {
  const code = editor.value;
  if (code.trim() === '') return;
  const execution = client.start(session, code);
  const view = addView(execution.id, null, code);
  execution.accepted.then(() => execution.record && describe(view, execution.record), () => {});
  void follow(execution, view);
}

async function follow(execution: Execution, view: View): Promise<void> {
  view.execution = execution;
  live.add(execution);
  cancelButton.disabled = false;
  try {
    for await (const event of execution) render(view, event);
    setStatus(view, (await execution.result).status);
  } catch (error) {
    note(view, (error as Error).message, true);
    setStatus(view, 'failed');
  } finally {
    live.delete(execution);
    cancelButton.disabled = live.size === 0;
  }
}

function addView(id: string, record: ExecutionRecord | null, code = record?.code ?? record?.path ?? ''): View {
  const block = document.createElement('div');
  block.className = 'execution';
  block.dataset.id = id;
  const input = document.createElement('div');
  input.className = 'input';
  input.textContent = code;
  block.append(input);
  output.append(block);
  const item = document.createElement('li');
  item.dataset.id = id;
  item.innerHTML = '<span class="number"></span><code></code><span class="badge"></span>';
  item.querySelector('code')!.textContent = code.split('\n')[0]!;
  item.onclick = () => block.scrollIntoView({ behavior: 'smooth', block: 'start' });
  list.prepend(item);
  const view: View = { block, item, execution: null };
  views.set(id, view);
  setStatus(view, record?.status ?? 'queued');
  if (record) describe(view, record);
  block.scrollIntoView({ block: 'end' });
  return view;
}

function describe(view: View, record: ExecutionRecord): void {
  view.item.querySelector('.number')!.textContent = `#${record.number}`;
  view.block.querySelector<HTMLElement>('.input')!.dataset.label = `[${record.number}]`;
}

function setStatus(view: View, status: string): void {
  view.item.dataset.status = status;
  view.block.dataset.status = status;
  view.item.querySelector('.badge')!.textContent = status;
}

function render(view: View, event: EventFrame): void {
  if (view.item.dataset.status === 'queued' && event.type !== 'done') setStatus(view, 'running');
  const line = document.createElement('div');
  line.dataset.seq = String(event.seq);
  switch (event.type) {
    case 'console': {
      const { level, text } = (event as EventFrame<'console'>).payload;
      line.className = `line console ${level}`;
      line.textContent = text;
      break;
    }
    case 'value': {
      const { type, preview } = (event as EventFrame<'value'>).payload;
      line.className = `line value ${type}`;
      line.textContent = preview;
      break;
    }
    case 'exception': {
      const { name, message, stack } = (event as EventFrame<'exception'>).payload;
      line.className = 'line exception';
      line.textContent = `Uncaught ${stack || `${name}: ${message}`}`;
      break;
    }
    case 'session.restored':
      line.className = 'note';
      line.textContent = `session restored on the server: ${(event as EventFrame<'session.restored'>).payload.replayed} earlier inputs replayed`;
      break;
    case 'session.lost':
      line.className = 'note trouble';
      line.textContent = `session lost (${(event as EventFrame<'session.lost'>).payload.reason}): its earlier state is gone`;
      break;
    case 'done': {
      const { status, duration_ms: duration, reason } = (event as EventFrame<'done'>).payload;
      line.className = 'done';
      line.textContent = `${status}${reason && reason !== status ? ` (${reason})` : ''} · ${duration} ms`;
      setStatus(view, status);
      break;
    }
  }
  view.block.append(line);
  if (output.scrollHeight - output.scrollTop - output.clientHeight < 80) output.scrollTop = output.scrollHeight;
}

function note(view: View, text: string, trouble = false): void {
  const line = document.createElement('div');
  line.className = trouble ? 'note trouble' : 'note';
  line.textContent = text;
  view.block.append(line);
}

/** The status badge, and a line in each running execution where its stream was cut and where it resumed. */
async function watchStatus(client: Client): Promise<void> {
  for await (const status of client.status()) {
    if (status.type === 'connected') {
      showStatus('connected', 'connected');
      if (status.reconnect) for (const execution of live) note(views.get(execution.id)!, `reconnected: resuming after event ${execution.lastSeq}`);
    } else if (status.type === 'disconnected') {
      showStatus('disconnected', 'connection lost');
      for (const execution of live) note(views.get(execution.id)!, 'connection lost: reconnecting…', true);
    } else if (status.type === 'reconnecting') {
      showStatus('reconnecting', `reconnecting (attempt ${status.attempt})…`);
    } else {
      showStatus('closed', status.error ? `closed: ${status.error.message}` : 'closed');
    }
  }
}

void main();
