#!/usr/bin/env bash
# compare.sh: measure the same server under the same load with wrk and with
# 'countersign bench', and print both req/s. They must agree within 25% for
# the harness's figures to be trusted.
#
# Two targets, each loaded alternately by the harness and by wrk, ROUNDS
# times, CONNS connections, closed loop, DURATION per run (after a 1 s
# warmup), both generators pinned to LOAD_CPU:
#   validate  countersign serve (durability sync) on a temporary data
#             directory, pinned to SERVER_CPU with GOMAXPROCS=1, with the
#             seeded sessions' validate bodies sent round-robin;
#   ceiling   the harness's ceiling server (fasthttp answering a fixed
#             validate answer), pinned the same way: it shows which
#             generator saturates first when the server costs nothing.
#
#   bench/wrk/compare.sh                 # defaults below
#   CONNS=16 DURATION=20s ROUNDS=3 bench/wrk/compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin/countersign}
ADDR=${ADDR:-127.0.0.1:18080}
CEILING_ADDR=${CEILING_ADDR:-127.0.0.1:18081}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
SESSIONS=${SESSIONS:-200}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

command -v wrk >/dev/null || { echo "compare.sh: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
go build -o "$BIN" ./cmd/countersign

pin_server=() pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c "$SERVER_CPU") pin_load=(taskset -c "$LOAD_CPU")
  pinning="server on CPU $SERVER_CPU (GOMAXPROCS=1), wrk and harness on CPU $LOAD_CPU"
else
  pinning="none (taskset missing or fewer than 2 CPUs)"
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "compare.sh: nothing listens on $1" >&2; exit 1
}

"$BIN" init --data "$tmp/data" --org wrk --json >"$tmp/cred.json"
cid=$(sed -n 's/.*"cid":"\([^"]*\)".*/\1/p' "$tmp/cred.json")
key=$(sed -n 's/.*"apiKey":"\([^"]*\)".*/\1/p' "$tmp/cred.json")
GOMAXPROCS=1 "${pin_server[@]}" "$BIN" serve --data "$tmp/data" --addr "$ADDR" --durability sync --log-level warn &
server_pid=$!
pids+=("$server_pid")
GOMAXPROCS=1 "${pin_server[@]}" "$BIN" bench --serve-ceiling "$CEILING_ADDR" &
pids+=("$!")
wait_port "$ADDR"
wait_port "$CEILING_ADDR"

# harness TARGET: prints "req/s p50 p99" of one harness run.
harness() {
  local args=(--scenario validate --ceiling off --addr "$ADDR" --server-pid "$server_pid"
    --sessions "$SESSIONS" --validate-bodies "$tmp/bodies.jsonl") field=validateRps row='| validate'
  if [ "$1" = ceiling ]; then
    args=(--scenario ceiling --ceiling-addr "$CEILING_ADDR") field=ceilingRps row='| ceiling'
  fi
  "${pin_load[@]}" "$BIN" bench "${args[@]}" --cid "$cid" --apikey "$key" --pin off \
    --connections "$CONNS" --duration "$DURATION" --warmup 1s --out "$tmp/results" >"$tmp/harness.md" 2>"$tmp/harness.log" ||
    { cat "$tmp/harness.log" >&2; return 1; }
  local rps p50 p99
  rps=$(sed -n "s/.*\"$field\": \([0-9.]*\).*/\1/p" "$tmp/results/latest.json" | head -1)
  p50=$(grep -m1 "^$row" "$tmp/harness.md" | awk -F'|' '{gsub(/ /,"",$6); print $6}')
  p99=$(grep -m1 "^$row" "$tmp/harness.md" | awk -F'|' '{gsub(/ /,"",$8); print $8}')
  echo "$rps $p50 $p99"
}

# wrkrun TARGET: prints "req/s p50 p99" of one wrk run (after a 1 s warmup run).
wrkrun() {
  local url="http://$ADDR"
  [ "$1" = ceiling ] && url="http://$CEILING_ADDR"
  BODIES="$tmp/bodies.jsonl" APIKEY="$key" "${pin_load[@]}" wrk -t1 -c"$CONNS" -d1s -s bench/wrk/validate.lua "$url" >/dev/null
  BODIES="$tmp/bodies.jsonl" APIKEY="$key" "${pin_load[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
    -s bench/wrk/validate.lua "$url" >"$tmp/wrk.txt"
  if grep -q 'Non-2xx' "$tmp/wrk.txt"; then grep 'Non-2xx' "$tmp/wrk.txt" >&2; fi
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk.txt")
  echo "$rps $p50 $p99"
}

echo "pinning: $pinning"
echo "server pid $server_pid on $ADDR, ceiling on $CEILING_ADDR; $CONNS connections, closed loop, $DURATION per run, $ROUNDS rounds"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for target in validate ceiling; do
  printf '\n%-9s %-6s %-8s %12s %10s %10s\n' target round tool "req/s" p50 p99
  sum_h=0 sum_w=0
  for round in $(seq "$ROUNDS"); do
    for tool in harness wrk; do
      if [ "$tool" = harness ]; then out=$(harness "$target") || exit 1; else out=$(wrkrun "$target") || exit 1; fi
      read -r rps p50 p99 <<<"$out"
      [ -n "${rps:-}" ] || { echo "compare.sh: the $tool run on $target printed no rate" >&2; exit 1; }
      printf '%-9s %-6s %-8s %12.0f %10s %10s\n' "$target" "$round" "$tool" "$rps" "$p50" "$p99"
      if [ "$tool" = harness ]; then sum_h=$(awk -v a="$sum_h" -v b="$rps" 'BEGIN {print a + b}')
      else sum_w=$(awk -v a="$sum_w" -v b="$rps" 'BEGIN {print a + b}'); fi
    done
  done
  awk -v t="$target" -v h="$sum_h" -v w="$sum_w" -v n="$ROUNDS" 'BEGIN {
    r = h / w
    printf "%s mean: harness %.0f req/s, wrk %.0f req/s, harness/wrk %.2f: %s\n", t, h / n, w / n, r,
      (r >= 0.75 && r <= 1.25) ? "within 25%" : "NOT within 25%"
    exit !(r >= 0.75 && r <= 1.25)
  }' || status=1
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
