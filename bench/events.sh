#!/usr/bin/env bash
# Benchmark: the AMI event stream through amibridge to a Redis subscriber.
# ami-sim floods SimFlood events at increasing rates; each step must reach
# the subscriber complete, in order, without a gap. Reports the highest rate
# sustained with zero loss, the end-to-end latency (ami-sim write -> Redis
# subscriber read) at half that rate, and redis-benchmark PUBLISH with the
# same payload size on one pipelined connection as the ceiling, all in one
# run on this machine.
#
#   bash bench/events.sh [BUILD_DIR]      (or: make bench)
#   STEP_S=3 RATES="2500 5000 10000 15000 20000 30000 40000 60000 80000 120000 160000"
set -uo pipefail
BUILD=${1:-build}
STEP_S=${STEP_S:-3}
RATES=${RATES:-"2500 5000 10000 15000 20000 30000 40000 60000 80000 120000 160000"}
TOKEN=bench-token-0123456789
tmp=$(mktemp -d /tmp/amibridge-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" &
pids+=($!)
"$BUILD/ami-sim" --listen 127.0.0.1:0 --ready-file "$tmp/sim.port" --quiet &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/sim.port" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
SIM_PORT=$(cat "$tmp/sim.port")

HTTP_PORT=$(free_port)
URL=http://127.0.0.1:$HTTP_PORT
AMIBRIDGE_LISTEN=127.0.0.1:$HTTP_PORT AMIBRIDGE_AMI_PORT=$SIM_PORT \
AMIBRIDGE_AMI_USERNAME=bridge AMIBRIDGE_AMI_SECRET=bridgesecret AMIBRIDGE_LOG_LEVEL=warn \
AMIBRIDGE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
AMIBRIDGE_API_KEYS="bench:$TOKEN:actions,read" "$BUILD/amibridge" 2>"$tmp/bridge.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "$URL/readyz" | grep -q '"redis":{"state":"up"' && break; sleep 0.1; done

flood() {
    curl -fs -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"Flood\":\"$1\",\"FloodCount\":\"$2\"}" "$URL/v1/actions/SimControl" >/dev/null
}
# the sum of every series whose name{labels starts with $1
metric() { curl -fs "$URL/metrics" | awk -v m="$1" 'index($1, m) == 1 {s += $2} END {print s + 0}'; }

# one step: subscribe, flood RATE for STEP_S seconds, collect
step() {
    local rate=$1 count=$(($1 * STEP_S))
    rm -f "$tmp/ready"
    "$BUILD/events-bench" --port "$REDIS_PORT" --channel ami.default.SimFlood \
        --count "$count" --ready-file "$tmp/ready" --idle-ms 3000 >"$tmp/step.json" &
    local sub=$!
    for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
    flood "$rate" "$count"
    wait "$sub"
    cat "$tmp/step.json"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/step.json" "$1"; }

echo "== machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== flood steps of ${STEP_S}s: ami-sim -> amibridge -> Redis PUBLISH -> subscriber"
best=0
for rate in $RATES; do
    printf '%8s/s  ' "$rate"
    step "$rate"
    # a step passes when every event arrived, in order, and nothing was dropped
    if [ "$(field missing)" = 0 ] && [ "$(field seq_gaps)" = 0 ] && [ "$(field out_of_order)" = 0 ]; then
        best=$rate
    else
        break
    fi
done
drops=$(metric 'amibridge_events_dropped_total{outlet="redis"')
if [ "$best" = 0 ]; then echo "no rate was sustained without loss"; exit 1; fi

half=$((best / 2))
echo "== latency at half the best rate: $half/s"
printf '%8s/s  ' "$half"
step "$half"
p50=$(field p50_ms)
p99=$(field p99_ms)
size=$(field avg_payload_bytes)
[ "$(field missing)" = 0 ] || echo "WARNING: the half-rate step lost events"

# the ceiling: Redis itself, PUBLISH of the same payload size, one pipelined
# connection (as amibridge publishes), with one subscriber listening
payload=$(python3 -c "import sys; print('x' * int(sys.argv[1]))" "$size")
redis-cli -p "$REDIS_PORT" subscribe ami.default.SimFlood >/dev/null &
pids+=($!)
sleep 0.2
echo "== redis-benchmark -c 1 -P 64 -n 500000 PUBLISH ami.default.SimFlood <${size} bytes>"
ceiling=$(redis-benchmark -p "$REDIS_PORT" -c 1 -P 64 -n 500000 -q \
    PUBLISH ami.default.SimFlood "$payload" | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | awk '{print $1}')
echo "$ceiling PUBLISH/s"

echo
echo "| measure | value |"
echo "| --- | --- |"
echo "| highest flood rate with zero loss (steps: $RATES) | $best events/s |"
echo "| end-to-end latency at $half events/s | p50 ${p50} ms, p99 ${p99} ms |"
echo "| redis-benchmark PUBLISH, ${size}-byte payload, 1 conn, pipeline 64 | $ceiling/s |"
echo "| events dropped by the Redis outlet over the run (metric) | ${drops:-?} |"
python3 -c "import sys; print('ratio amibridge/redis ceiling: %.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$best" "$ceiling"
