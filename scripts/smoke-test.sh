#!/usr/bin/env bash
# Smoke test: starts the real server on a free port with a throwaway data folder, drives the HTTP
# API with curl and the socket with a small ws + msgpackr client, and exits non-zero on any failure.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/server.sh
. "$ROOT/scripts/lib/server.sh"
begin_script smoke
start_server
echo "# server on $BASE"

# Operator endpoints, no token.
check "GET /healthz" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" 200
check "GET /readyz" "$(curl -s "$BASE/readyz" | json d.status)" ready
check "GET /metrics has vmstream_executions_total" \
  "$(curl -s "$BASE/metrics" | grep -c '^vmstream_executions_total{status="ok"}')" 1

# The API.
read -r status body <<<"$(api POST /api/v1/sessions '{"name":"smoke"}')"
check "POST /api/v1/sessions" "$status" 201
SESSION=$(json d.session_id <<<"$body")
read -r status body <<<"$(api POST /api/v1/executions/repl "{\"session_id\":\"$SESSION\",\"code\":\"console.log('hi'); 6 * 7\"}")"
check "POST /api/v1/executions/repl" "$status" 201
EXECUTION=$(json d.execution_id <<<"$body")
check "SSE streams the events to done" "$(sse "/api/v1/executions/$EXECUTION/events")" "1 2 3"
read -r status body <<<"$(api GET "/api/v1/executions/$EXECUTION")"
check "GET /api/v1/executions/{id}" "$status $(json d.status <<<"$body")" "200 ok"
read -r status body <<<"$(api GET "/api/v1/executions/$EXECUTION/events?after_seq=1")"
check "GET events?after_seq=1" "$status $(json 'd.items.map(e => e.type).join()' <<<"$body")" "200 value,done"
check "the value is 42" "$(json 'd.items[0].payload.preview' <<<"$body")" 42
read -r status body <<<"$(api GET /api/v1/sessions)"
check "GET /api/v1/sessions lists it" "$status $(json "d.items.some(s => s.session_id === '$SESSION')" <<<"$body")" "200 true"

# Errors.
check "no token is 401" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/v1/sessions")" 401
read -r status body <<<"$(api GET /api/v1/nothing-here)"
check "an unknown route is 404 NOT_FOUND" "$status $(json d.error.code <<<"$body")" "404 NOT_FOUND"
read -r status body <<<"$(api PUT /api/v1/sessions '{}')"
check "a wrong method is 405" "$status $(json d.error.code <<<"$body")" "405 METHOD_NOT_ALLOWED"
read -r status body <<<"$(api POST /api/v1/executions/repl '{"session_id":')"
check "bad JSON is 400" "$status $(json d.error.code <<<"$body")" "400 BAD_REQUEST"

# The socket.
if node "$ROOT/scripts/lib/ws-client.mjs" "$WS_URL" "$TOKEN" smoke; then ok "socket smoke"; else not_ok "socket smoke"; fi

stop_server TERM
check "the server stopped cleanly" "$(grep -c '"msg":"stopped"' "$WORK/server.log")" 1
finish smoke-test
