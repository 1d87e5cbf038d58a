# Shared by scripts/smoke-test.sh and scripts/test-e2e.sh (sourced, not run): start and stop the
# real server on a free port, read JSON, count checks. Expects ROOT to be set; begin_script sets WORK.

PASS=0
FAIL=0
SERVER_PID=""
# VMSTREAM_E2E_TARGET=cluster: three nodes on one nats-server behind a round-robin front instead.
NODE_PIDS=()
NATS_PID=""
NATS_PORT=""
PORT=""
WS_URL=""
BASE=""

# What every script does first: a work folder and a token of its own (both gone at exit), curl,
# and a built tree. $1 names the script.
begin_script() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmstream-$1-XXXXXX")
  TOKEN="$1-$(date +%s)-$$"
  trap 'stop_server KILL; stop_nats; rm -rf "$WORK"' EXIT
  command -v curl >/dev/null || { echo "not ok - curl is not installed"; exit 1; }
  node "$ROOT/scripts/prepare.mjs" >/dev/null || { echo "not ok - build failed"; exit 1; }
  mkdir -p "$WORK/workspace"
  # Production's Node flags (src/cli/node-flags.ts, read from the build): the servers run as shipped.
  SERVER_NODE_FLAGS=$(node --input-type=module -e \
    "import { SERVER_NODE_FLAGS } from '$ROOT/dist/src/cli/node-flags.js'; console.log(SERVER_NODE_FLAGS.join(' '))") \
    || { echo "not ok - the server's node flags could not be read"; exit 1; }
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
  if [ "${VMSTREAM_E2E_TARGET:-}" = cluster ]; then
    start_cluster
  else
    start_node "$WORK/data" "$WORK/stdout"
    SERVER_PID=$NODE_PID
  fi
  WS_URL=$NODE_URL
  PORT=$(url_port "$WS_URL")
  BASE="http://127.0.0.1:$PORT"
  # Ready once the worker threads have booted.
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "not ok - server never became ready"
  exit 1
}

# start_node <data dir> <stdout file>: one server process; sets NODE_PID, NODE_URL.
start_node() {
  local data=$1 out=$2
  : >"$out"
  VMSTREAM_PORT=0 VMSTREAM_DATA="$data" VMSTREAM_WORKSPACE="$WORK/workspace" VMSTREAM_TOKEN="$TOKEN" \
    VMSTREAM_WORKERS=2 node $SERVER_NODE_FLAGS "$ROOT/dist/src/cli/main.js" >"$out" 2>>"$WORK/server.log" &
  NODE_PID=$!
  wait_listening "$NODE_PID" "$out"
}

# wait_listening <pid> <stdout file>: waits for the server's "listening on" line; sets NODE_URL.
wait_listening() {
  local line=""
  for _ in $(seq 1 300); do
    line=$(grep -m1 '^vmstream listening on ' "$2" || true)
    [ -n "$line" ] && break
    if ! kill -0 "$1" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$line" ]; then
    echo "not ok - server did not start; its log:"
    tail -n 20 "$WORK/server.log"
    exit 1
  fi
  NODE_URL=${line#vmstream listening on }
}

url_port() {
  sed -E 's#^wss?://[^/]*:([0-9]+)/.*#\1#' <<<"$1"
}

# start_cluster: a nats-server (once per script: the same port and store at every start), three
# nodes started side by side (a node restarted after a kill may wait out its previous run's
# heartbeat), and the round-robin front (scripts/lib/round-robin.mjs), which SERVER_PID is; sets NODE_URL.
start_cluster() {
  if [ -z "$NATS_PID" ]; then
    NATS_PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
    nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >/dev/null 2>&1 &
    NATS_PID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
  fi
  local i pids=() ports=() front=""
  for i in 0 1 2; do
    : >"$WORK/stdout-$i"
    env VMSTREAM_PORT=0 VMSTREAM_DATA="$WORK/data/node-$i" VMSTREAM_WORKSPACE="$WORK/workspace" VMSTREAM_TOKEN="$TOKEN" \
      VMSTREAM_WORKERS=2 VMSTREAM_STORE=jetstream VMSTREAM_NATS_URL="nats://127.0.0.1:$NATS_PORT" VMSTREAM_JS_PREFIX=e2e \
      VMSTREAM_NODE_ID="node-$i" node $SERVER_NODE_FLAGS "$ROOT/dist/src/cli/main.js" >"$WORK/stdout-$i" 2>>"$WORK/server.log" &
    pids+=($!)
  done
  NODE_PIDS=("${pids[@]}")
  for i in 0 1 2; do
    wait_listening "${pids[$i]}" "$WORK/stdout-$i"
    ports+=("$(url_port "$NODE_URL")")
  done
  : >"$WORK/front"
  node "$ROOT/scripts/lib/round-robin.mjs" "${ports[@]}" >"$WORK/front" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do front=$(head -n 1 "$WORK/front"); [ -n "$front" ] && break; sleep 0.05; done
  NODE_URL=$(sed -E "s#:[0-9]+/#:$front/#" <<<"$NODE_URL")
}

# stop_server [signal]: signals our server (every node of a cluster, then its front) by pid and waits.
stop_server() {
  local pid
  for pid in "${NODE_PIDS[@]}" "$SERVER_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "-${1:-TERM}" "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  NODE_PIDS=()
  SERVER_PID=""
}

stop_nats() {
  if [ -n "$NATS_PID" ]; then
    kill -KILL "$NATS_PID" 2>/dev/null
    wait "$NATS_PID" 2>/dev/null
  fi
  NATS_PID=""
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
