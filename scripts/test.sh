#!/usr/bin/env bash
# `npm test`: the whole suite, as CI runs it. With arguments, only tap on them (a developer's loop:
# `npm test -- test/execute.test.ts`). Without: every tap file; then the protocol and end-to-end
# files a second time against 3-node clusters; then the smoke test and the end-to-end scenario
# against the real server (plain and on a cluster). Ends with "N passed, N failed": tap's own
# closing counts plus one per script. Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$#" -gt 0 ] && exec npx tap "$@"

pass=0
fail=0
status=0

# Runs tap with the given arguments and adds its closing counts ("# { total: 12, pass: 11, fail: 1 }")
# to pass/fail. A failure tap did not count as an assertion (a crashed file, a timeout) counts as one.
run_tap() {
  local log summary p f t code
  log=$(mktemp)
  npx tap "$@" 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  # -a: test output may hold raw bytes (garbage-frame tests), which would make grep call it binary.
  summary=$(grep -a -E '^# \{ total: [0-9]+' "$log" | tail -n 1)
  rm -f "$log"
  p=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
  f=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
  t=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
  p=${p:-0}
  f=${f:-0}
  if [ -z "$summary" ]; then
    echo "tap printed no summary"
    f=1
  elif [ "$code" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=$(( ${t:-0} - p > 0 ? ${t:-0} - p : 1 ))
  fi
  pass=$((pass + p))
  fail=$((fail + f))
  [ "$code" -ne 0 ] || [ "$f" -ne 0 ] && status=1
  return 0
}

run_tap

# The protocol and end-to-end files a second time, each server a 3-node cluster on one nats-server
# behind a round-robin front (test/helpers/cluster.ts); one file at a time (three nodes per server
# on two cores), with a longer file timeout.
cluster_files=(
  test/execute.test.ts test/subscribe-replay.test.ts test/sessions.test.ts test/semantics.test.ts
  test/errors-frames.test.ts test/http-api.test.ts test/http-sse.test.ts test/faults-cancel.test.ts test/limits-quotas.test.ts
  test/tenants.test.ts test/client-execute.test.ts test/retention-sweep.test.ts test/restart.test.ts
  test/crash-kill9-replay.test.ts
)
VMSTREAM_TEST_TARGET=cluster run_tap --jobs 1 --timeout 360 "${cluster_files[@]}"

# The smoke test and the end-to-end scenario against the real server (curl + a socket client), and
# the scenario again against a 3-node cluster: each counts as one test.
for run in "scripts/smoke-test.sh" "scripts/test-e2e.sh" "scripts/test-e2e.sh cluster"; do
  read -r script target <<<"$run"
  if VMSTREAM_E2E_TARGET="${target:-}" bash "$script"; then
    pass=$((pass + 1))
  else
    echo "$run failed"
    fail=$((fail + 1))
    status=1
  fi
done

echo "$pass passed, $fail failed"
exit "$status"
