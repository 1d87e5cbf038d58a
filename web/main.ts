/**
 * The web console: a sidebar of the tenant's sessions, the current session's executions as blocks,
 * and an editor, all through the SDK. The URL names the session (`?session=`), so a link reopens it.
 * The SDK reconnects on its own and resumes every execution it follows; this page says when.
 */
import { Client, type Execution, type ExecutionRecord, type SessionRecord, type Status } from '../src/client/index.js';
import { ExecutionBlock } from './blocks.js';
import { el } from './dom.js';
import { InputEditor } from './editor.js';
import { askForToken, checkToken, forgetToken, takeToken } from './login.js';
import { SessionList, sessionLabel } from './sessions.js';

/** How often a visible page lists the sessions, to see executions other tabs or clients created in its own. */
const POLL_MS = 1500;

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusBadge = byId<HTMLSpanElement>('status');
const output = byId<HTMLElement>('output');
const sessionTitle = byId<HTMLElement>('session');

/** The session on screen: its blocks, and the executions this page follows in it. */
interface SessionView {
  id: string;
  blocks: Map<string, ExecutionBlock>;
  followed: Set<Execution>;
  /** Executions whose blocks were cleared from view: not shown again by the poll. */
  cleared: Set<string>;
  /** A closed session, opened by its link: its log is shown, nothing runs in it. */
  closed: boolean;
}

let client: Client;
let view: SessionView | null = null;
let editor: InputEditor;
/**
 * The first session being put on screen. The page is connected and takes input a few round trips
 * before that (list, create, list); a run in between waits for it rather than being dropped.
 */
let firstOpen: Promise<void>;
const sidebar = new SessionList(byId<HTMLUListElement>('sessions'), {
  open: (sessionId) => attempt(open(sessionId, true)),
  rename: (session) => attempt(renameSession(session)),
  close: (session) => attempt(closeSession(session)),
});

function showStatus(type: Status['type'] | 'connecting', text: string): void {
  statusBadge.dataset.status = type;
  statusBadge.textContent = text;
}

async function main(): Promise<void> {
  const token = takeToken();
  if (!token) return askForToken();
  const refused = await checkToken(token);
  if (refused) {
    forgetToken();
    showStatus('closed', 'not connected');
    return askForToken(refused);
  }
  try {
    client = await Client.connect(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`, { token });
  } catch (error) {
    showStatus('closed', 'not connected');
    return askForToken(`Cannot connect: ${(error as Error).message}`);
  }
  void watchStatus();
  editor = new InputEditor(byId('editor'), {
    run: (code) => run(code),
    complete: (code, cursor) => (view ? client.complete(view.id, code, cursor) : Promise.reject(new Error('no session'))),
    inputs: () => (view ? [...view.blocks.values()].sort((a, b) => a.number - b.number).map((block) => block.code) : []),
  });
  byId<HTMLButtonElement>('run').onclick = () => run(editor.code);
  byId<HTMLButtonElement>('clear').onclick = () => clearView();
  byId<HTMLButtonElement>('new-session').onclick = () => attempt(newSession());
  byId<HTMLButtonElement>('menu').onclick = () => setSidebar(!document.body.classList.contains('sidebar-open'));
  byId('sidebar').addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || !document.body.classList.contains('sidebar-open')) return;
    setSidebar(false);
    byId('menu').focus();
  });
  window.addEventListener('popstate', () => attempt(open(new URLSearchParams(location.search).get('session'))));
  byId('app').hidden = false;
  firstOpen = refreshSessions().then(() => open(new URLSearchParams(location.search).get('session')));
  attempt(firstOpen);
  setInterval(() => void poll(), POLL_MS);
  editor.focus();
}

async function refreshSessions(): Promise<void> {
  sidebar.show(await client.listSessions());
}

/** A sidebar action that failed (the connection is down, the session was closed meanwhile) is said, not thrown away. */
function attempt(action: Promise<void>): void {
  action.catch((error: Error) => note(`That did not work: ${error.message}`, true));
}

async function renameSession(session: SessionRecord): Promise<void> {
  const name = prompt('New name of the session', session.name);
  if (name === null) return;
  const renamed = await client.renameSession(session.session_id, name.trim());
  await refreshSessions();
  if (view?.id === renamed.session_id) showTitle(renamed);
}

function showTitle(session: SessionRecord | undefined): void {
  sessionTitle.textContent = session ? sessionLabel(session) : '';
  document.title = `${sessionTitle.textContent} · vmstream`;
}

async function newSession(): Promise<void> {
  const name = prompt('Name of the new session', `session ${sidebar.records.length + 1}`);
  if (name === null) return;
  const created = await client.createSession(name.trim());
  await refreshSessions();
  await open(created.session_id, true);
}

async function closeSession(session: SessionRecord): Promise<void> {
  if (!confirm(`Close session "${sessionLabel(session)}"? Its running and queued executions are cancelled; its log stays readable.`)) return;
  await client.closeSession(session.session_id);
  await refreshSessions();
  if (view?.id === session.session_id) await open(null, true);
}

/**
 * Shows a session: the one named (read-only when it is closed), else the newest open one, else a
 * new one. Its last 50 executions are replayed from the server's log, and followed while they run.
 */
async function open(sessionId: string | null, push = false): Promise<void> {
  let target = sidebar.find(sessionId)?.session_id;
  // Not open: a closed session still has its log (execution.list answers), an unknown one has none.
  const closed = !target && sessionId !== null && (await client.listExecutions(sessionId, { limit: 1 }).then(() => true, () => false));
  if (closed) target = sessionId!;
  if (!target) {
    target = sidebar.records[0]?.session_id ?? (await client.createSession('console')).session_id;
    await refreshSessions();
  }
  if (view?.id === target) return;
  leave();
  view = { id: target, blocks: new Map(), followed: new Set(), cleared: new Set(), closed };
  const url = `${location.pathname}?session=${encodeURIComponent(target)}`;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
  showTitle(sidebar.find(target));
  if (sessionId && sessionId !== target) note(`There is no session ${sessionId} for this token: showing another one.`, true);
  if (closed) {
    sessionTitle.textContent = `${target.slice(0, 7)} (closed)`;
    note('This session is closed: its log is shown here, and nothing more runs in it. Pick or create another one to run code.');
  }
  sidebar.mark(target);
  setSidebar(false);
  await showNew(target, 50);
}

/** Stops following the old session's executions (they go on running on the server) and empties the view. */
function leave(): void {
  if (!view) return;
  for (const execution of view.followed) execution.close();
  output.replaceChildren();
  view = null;
}

/** Executions of the session this page has no block for (another tab's, or from before): shown and followed. */
async function showNew(sessionId: string, limit: number): Promise<void> {
  const records = await client.listExecutions(sessionId, { limit });
  for (const record of records.reverse()) {
    const current = view;
    if (!current || current.id !== sessionId) return;
    if (current.blocks.has(record.execution_id) || current.cleared.has(record.execution_id)) continue;
    const block = addBlock(current, record.execution_id, record.code ?? record.path ?? '');
    block.describe(record);
    void follow(current, client.subscribe(record.execution_id), block);
  }
}

/** While the page is visible: new executions of its session (the simplest correct way to see another tab's), and the sidebar's counts. */
async function poll(): Promise<void> {
  if (document.visibilityState !== 'visible' || !view || !client.connected) return;
  try {
    await refreshSessions();
    const current = view;
    const shown = sidebar.find(current?.id ?? null);
    if (!current || !shown) return; // switched meanwhile, or a closed session: nothing new comes
    showTitle(shown); // it may have been renamed in another tab
    // The session's count says how many executions this page has not seen: list that many (at most
    // the protocol's 100), and nothing when there are none.
    const numbers = [...current.blocks.values()].map((block) => block.number).filter(Number.isFinite);
    const unseen = shown.execution_count - Math.max(0, ...numbers);
    if (unseen > 0) await showNew(current.id, Math.min(unseen, 100));
  } catch {
    // The connection dropped meanwhile: the status badge says so, and the next poll tries again.
  }
}

function run(code: string): void {
  if (code.trim() === '') return;
  if (view) {
    if (runIn(view, code)) editor.code = '';
    return;
  }
  // Taken before the first session is on screen: it runs there once it is.
  editor.code = '';
  const giveBack = () => {
    if (editor.code === '') editor.code = code;
  };
  firstOpen.then(() => (view && runIn(view, code)) || giveBack(), giveBack);
}

/** Starts `code` in the session on screen and follows it in a new block; false (said in a note) when that session is closed. */
function runIn(current: SessionView, code: string): boolean {
  if (current.closed) {
    note('This session is closed: pick or create another one to run code.');
    return false;
  }
  const execution = client.start(current.id, code);
  const block = addBlock(current, execution.id, code);
  execution.accepted.then(() => execution.record && block.describe(execution.record), () => {});
  void follow(current, execution, block);
  return true;
}

function addBlock(current: SessionView, id: string, code: string): ExecutionBlock {
  const block = new ExecutionBlock(id, code, {
    cancel: (executionId) => void client.cancel(executionId).catch((error: Error) => block.note(`cancel failed: ${error.message}`, true)),
    rerun: (input) => run(input),
  });
  current.blocks.set(id, block);
  output.append(block.element);
  block.element.scrollIntoView({ block: 'end' });
  return block;
}

async function follow(current: SessionView, execution: Execution, block: ExecutionBlock): Promise<void> {
  current.followed.add(execution);
  try {
    for await (const event of execution) {
      block.render(event);
      if (output.scrollHeight - output.scrollTop - output.clientHeight < 120) output.scrollTop = output.scrollHeight;
    }
    const record: ExecutionRecord = await execution.result;
    block.describe(record);
  } catch (error) {
    if (view === current) {
      block.note((error as Error).message, true);
      block.setStatus('failed');
    }
  } finally {
    current.followed.delete(execution);
  }
}

/** Clears the blocks on screen; the session's log on the server is untouched. */
function clearView(): void {
  if (!view) return;
  for (const id of view.blocks.keys()) view.cleared.add(id);
  output.replaceChildren();
  note('View cleared: the executions are still in the session\'s log (reload to see them again).');
  editor.focus();
}

function note(text: string, trouble = false): void {
  output.append(el('div', trouble ? 'note trouble' : 'note', text));
}

/** The sessions drawer of narrow screens (on wide ones the sidebar is always shown). */
function setSidebar(open: boolean): void {
  document.body.classList.toggle('sidebar-open', open);
  byId('menu').setAttribute('aria-expanded', String(open));
  if (open) sidebar.focus();
}

/** The status badge, and a line in each running execution where its stream was cut and where it resumed. */
async function watchStatus(): Promise<void> {
  const running = () => (view ? [...view.followed].map((execution) => [execution, view!.blocks.get(execution.id)!] as const) : []);
  for await (const status of client.status()) {
    if (status.type === 'connected') {
      showStatus('connected', 'connected');
      if (status.reconnect) for (const [execution, block] of running()) block.note(`reconnected: resuming after event ${execution.lastSeq}`);
    } else if (status.type === 'disconnected') {
      showStatus('disconnected', 'connection lost');
      for (const [, block] of running()) block.note('connection lost: reconnecting…', true);
    } else if (status.type === 'reconnecting') {
      showStatus('reconnecting', `reconnecting (attempt ${status.attempt})…`);
    } else {
      showStatus('closed', status.error ? `closed: ${status.error.message}` : 'closed');
    }
  }
}

void main();
