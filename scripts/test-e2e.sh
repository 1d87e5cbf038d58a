#!/usr/bin/env bash
# End to end, against the real server: a session; a repl input; a file put in the workspace and
# run (run-file); a listing with a limit;
# an events page after a seq; an SSE stream resumed with Last-Event-ID; then the server is killed
# (kill -9) and started again on the same data, and everything is replayed: records, pages, streams,
# the socket's subscribe, and the session's state, rebuilt for its next execution.
# VMSTREAM_E2E_TARGET=cluster runs it against three nodes on one nats-server behind a round-robin
# front (scripts/lib/server.sh), each request landing on the next node.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/server.sh
. "$ROOT/scripts/lib/server.sh"
begin_script e2e
start_server
echo "# server on $BASE"

read -r status body <<<"$(api PUT /api/v1/workspace/lib/double.js "console.log('doubling');
globalThis.doubled = x * 2;")"
check "put a workspace file" "$status $(json d.path <<<"$body")" "201 lib/double.js"

# A session, a repl input, a run-file that uses the repl's state.
read -r status body <<<"$(api POST /api/v1/sessions '{"name":"e2e"}')"
check "create a session" "$status" 201
SESSION=$(json d.session_id <<<"$body")
read -r status body <<<"$(api POST /api/v1/executions/repl "{\"session_id\":\"$SESSION\",\"code\":\"var x = 21; console.log('one'); console.log('two'); x\",\"execution_id\":\"e2e-first\"}")"
check "repl: 201" "$status" 201
check "repl: its events, streamed" "$(sse /api/v1/executions/e2e-first/events)" "1 2 3 4"
read -r status body <<<"$(api POST /api/v1/executions/run-file "{\"session_id\":\"$SESSION\",\"path\":\"lib/double.js\"}")"
check "run-file: 201" "$status $(json d.kind <<<"$body")" "201 run-file"
FILE_RUN=$(json d.execution_id <<<"$body")
check "run-file: its events" "$(sse "/api/v1/executions/$FILE_RUN/events")" "1 2"
read -r status body <<<"$(api POST /api/v1/executions/repl "{\"session_id\":\"$SESSION\",\"code\":\"doubled + 1\"}")"
THIRD=$(json d.execution_id <<<"$body")
sse "/api/v1/executions/$THIRD/events" >/dev/null
read -r status body <<<"$(api GET "/api/v1/executions/$THIRD/events")"
check "the file saw the repl's state" "$(json 'd.items[0].payload.preview' <<<"$body")" 43

# Listings and pages.
read -r status body <<<"$(api GET "/api/v1/executions?session_id=$SESSION&limit=2")"
check "list with limit=2: newest first" "$status $(json 'd.items.map(r => r.number).join()' <<<"$body")" "200 3,2"
read -r status body <<<"$(api GET "/api/v1/executions/e2e-first/events?after_seq=2")"
check "events after_seq=2" "$(json 'd.items.map(e => e.seq).join() + " " + d.last_seq + " " + d.done' <<<"$body")" "3,4 4 true"
read -r status body <<<"$(api GET "/api/v1/executions/e2e-first/events?after_seq=0&limit=2")"
check "events limit=2" "$(json 'd.items.map(e => e.seq).join()' <<<"$body")" "1,2"

# SSE resumed where a client left off, and 204 when it has everything.
check "SSE with Last-Event-ID: 2" "$(sse /api/v1/executions/e2e-first/events -H 'Last-Event-ID: 2')" "3 4"
check "SSE with after_seq=3" "$(sse '/api/v1/executions/e2e-first/events?after_seq=3')" "4"
check "SSE with nothing left is 204" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Accept: text/event-stream' -H 'Last-Event-ID: 4' "$BASE/api/v1/executions/e2e-first/events")" 204

# A long execution is running when the server dies.
read -r status body <<<"$(api POST /api/v1/executions/repl "{\"session_id\":\"$SESSION\",\"code\":\"console.log('before'); await new Promise((r) => setTimeout(r, 60000))\",\"execution_id\":\"e2e-cut\"}")"
check "a long execution starts" "$status" 201
seen=""
for _ in $(seq 1 100); do
  read -r status body <<<"$(api GET /api/v1/executions/e2e-cut/events)"
  seen=$(json 'd.items.map(e => e.type).join()' <<<"$body")
  [ -n "$seen" ] && break
  sleep 0.05
done
check "its first event is durable" "$seen" console

stop_server KILL
start_server
echo "# restarted on $BASE"

# Everything is still there.
read -r status body <<<"$(api GET /api/v1/executions/e2e-first)"
check "after restart: the record" "$status $(json d.status <<<"$body") $(json d.last_seq <<<"$body")" "200 ok 4"
read -r status body <<<"$(api GET "/api/v1/executions/e2e-first/events")"
check "after restart: the events page" "$(json 'd.items.map(e => e.type).join()' <<<"$body")" "console,console,value,done"
check "after restart: SSE replays the log" "$(sse /api/v1/executions/e2e-first/events)" "1 2 3 4"
check "after restart: SSE resumes with Last-Event-ID" "$(sse /api/v1/executions/e2e-first/events -H 'Last-Event-ID: 3')" "4"
read -r status body <<<"$(api GET /api/v1/executions/e2e-cut)"
check "the cut execution ended as crashed" "$(json 'd.status + " " + d.reason' <<<"$body")" "crashed server_restart"
check "its log: the event seen before, then done" "$(sse /api/v1/executions/e2e-cut/events)" "1 2"
if node "$ROOT/scripts/lib/ws-client.mjs" "$WS_URL" "$TOKEN" replay e2e-first 1,2,3,4; then ok "after restart: the socket replays"; else not_ok "after restart: the socket replays"; fi
read -r status body <<<"$(api GET "/api/v1/executions?session_id=$SESSION&limit=100")"
check "after restart: the session's executions" "$(json 'd.items.length' <<<"$body")" 4

# The session's state is rebuilt for its next execution.
read -r status body <<<"$(api POST /api/v1/executions/repl "{\"session_id\":\"$SESSION\",\"code\":\"x + doubled\"}")"
check "after restart: the session takes work" "$status" 201
NEXT=$(json d.execution_id <<<"$body")
sse "/api/v1/executions/$NEXT/events" >/dev/null
read -r status body <<<"$(api GET "/api/v1/executions/$NEXT/events")"
# A rebuild is announced as it starts (session.restoring), then how it went (session.restored).
check "after restart: rebuilt, then run" "$(json 'd.items.map(e => e.type).join()' <<<"$body")" "session.restoring,session.restored,value,done"
check "after restart: the state is back" "$(json 'd.items.find(e => e.type === "value").payload.preview' <<<"$body")" 63

stop_server TERM
finish test-e2e
