# Shared by scripts/smoke-test.sh and scripts/test-e2e.sh (sourced, not run): start and stop the
# real server on a free port, read JSON, count checks. Expects ROOT to be set; begin_script sets WORK.

PASS=0
FAIL=0
SERVER_PID=""
PORT=""
WS_URL=""
BASE=""

# What every script does first: a work folder and a token of its own (both gone at exit), curl,
# and a built tree. $1 names the script.
begin_script() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmstream-$1-XXXXXX")
  TOKEN="$1-$(date +%s)-$$"
  trap 'stop_server KILL; rm -rf "$WORK"' EXIT
  command -v curl >/dev/null || { echo "not ok - curl is not installed"; exit 1; }
  node "$ROOT/scripts/prepare.mjs" >/dev/null || { echo "not ok - build failed"; exit 1; }
  mkdir -p "$WORK/workspace"
}

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }

# check "<what>" <actual> <expected>
check() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', expected '$3'"; fi
}

# json '<js expression over d>' <<< "$json": prints the value (strings bare, the rest as JSON).
json() {
  node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{const d=JSON.parse(s);const v=eval(process.argv[1]);process.stdout.write(typeof v==="string"?v:JSON.stringify(v))})' "$1"
}

# start_server: VMSTREAM_* from the environment plus a data folder under $WORK; sets PORT, BASE, WS_URL.
start_server() {
  : >"$WORK/stdout"
  VMSTREAM_PORT=0 VMSTREAM_DATA="$WORK/data" VMSTREAM_WORKSPACE="$WORK/workspace" VMSTREAM_TOKEN="$TOKEN" \
    VMSTREAM_WORKERS=2 node "$ROOT/dist/src/cli/main.js" >"$WORK/stdout" 2>>"$WORK/server.log" &
  SERVER_PID=$!
  local line=""
  for _ in $(seq 1 200); do
    line=$(grep -m1 '^vmstream listening on ' "$WORK/stdout" || true)
    [ -n "$line" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$line" ]; then
    echo "not ok - server did not start; its log:"
    tail -n 20 "$WORK/server.log"
    exit 1
  fi
  WS_URL=${line#vmstream listening on }
  PORT=$(sed -E 's#^wss?://[^/]*:([0-9]+)/.*#\1#' <<<"$WS_URL")
  BASE="http://127.0.0.1:$PORT"
  # Ready once the worker threads have booted.
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "not ok - server never became ready"
  exit 1
}

# stop_server [signal]: signals our server (by its pid) and waits for it.
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "-${1:-TERM}" "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  SERVER_PID=""
}

# api METHOD PATH [JSON]: prints "<status> <body>" on one line.
api() {
  local args=(-s -X "$1" -H "Authorization: Bearer $TOKEN" -w '\n%{http_code}')
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  local out
  out=$(curl "${args[@]}" "$BASE$2")
  echo "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out")"
}

# sse PATH [curl args…]: the ids of an event stream, space-separated, once the server ends it.
sse() {
  local path=$1
  shift
  curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" -H 'Accept: text/event-stream' "$@" "$BASE$path" \
    | sed -nE 's/^id: ([0-9]+)$/\1/p' | tr '\n' ' ' | sed 's/ $//'
}

# finish <name>: the summary (worded so it is not taken for a run's closing line) and the status.
finish() {
  echo "# $1: $PASS checks passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}
