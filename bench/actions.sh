#!/usr/bin/env bash
# Benchmark: POST /v1/actions/Ping through amibridge to ami-sim (wrk), and
# ami-sim's own raw AMI Ping rate on one connection (ami-bench), in one run
# on this machine. Prints req/s, p50/p99 and the ratio.
#
#   bash bench/actions.sh [BUILD_DIR]      (or: make bench)
#   DURATION=10 CONNS=64 THREADS=2 WINDOW=64 POOL=4
set -euo pipefail
BUILD=${1:-build}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
WINDOW=${WINDOW:-64}
POOL=${POOL:-4}
export BENCH_TOKEN=bench-token-0123456789
tmp=$(mktemp -d /tmp/amibridge-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$BUILD/ami-sim" --listen 127.0.0.1:0 --ready-file "$tmp/sim.port" --quiet &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/sim.port" ] && break; sleep 0.1; done
SIM_PORT=$(cat "$tmp/sim.port")

HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AMIBRIDGE_LISTEN=127.0.0.1:$HTTP_PORT AMIBRIDGE_AMI_PORT=$SIM_PORT \
AMIBRIDGE_AMI_USERNAME=bridge AMIBRIDGE_AMI_SECRET=bridgesecret \
AMIBRIDGE_AMI_POOL_SIZE=$POOL AMIBRIDGE_LOG_LEVEL=warn \
AMIBRIDGE_API_KEYS="bench:$BENCH_TOKEN:actions" "$BUILD/amibridge" 2>"$tmp/bridge.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.1; done

echo "== machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== wrk -t$THREADS -c$CONNS -d${DURATION}s --latency POST /v1/actions/Ping (pool $POOL)"
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s bench/post_ping.lua \
    "http://127.0.0.1:$HTTP_PORT/v1/actions/Ping" | tee "$tmp/wrk.txt"
bridge_rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.txt")
bridge_p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk.txt")
bridge_p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $5}' "$tmp/wrk.txt")

# raw AMI on one connection, as many Pings as the bridge answered (at least 50k)
count=$(awk -v r="$bridge_rps" -v d="$DURATION" 'BEGIN {n=int(r*d); if (n<50000) n=50000; print n}')
echo "== ami-bench --count $count --window $WINDOW (raw AMI Ping, one connection)"
"$BUILD/ami-bench" --port "$SIM_PORT" --count "$count" --window "$WINDOW" | tee "$tmp/raw.json"
raw_rps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["req_per_s"])' "$tmp/raw.json")
raw_p50=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p50_ms"])' "$tmp/raw.json")
raw_p99=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p99_ms"])' "$tmp/raw.json")

echo
echo "| path | req/s | p50 | p99 |"
echo "| --- | --- | --- | --- |"
echo "| HTTP POST /v1/actions/Ping via amibridge ($CONNS conns, pool $POOL) | $bridge_rps | $bridge_p50 | $bridge_p99 |"
echo "| raw AMI Ping, one connection, window $WINDOW | $raw_rps | ${raw_p50}ms | ${raw_p99}ms |"
python3 -c "import sys; print('ratio amibridge/raw: %.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$bridge_rps" "$raw_rps"
[ -z "${non2xx:-}" ] || { echo "WARNING: $non2xx non-2xx answers"; exit 1; }
