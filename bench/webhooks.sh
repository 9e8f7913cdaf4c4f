#!/usr/bin/env bash
# Benchmark: webhook deliveries, ami-sim -> amibridge -> HTTP POST to local
# receivers (build/webhooks-bench: real HTTP/1.1 servers with keep-alive,
# in-process). Twice in one run on this machine: without Redis (the
# delivery queue in memory) and with a redis-server on a free port (every
# delivery RPUSHed to a Redis list before its first attempt, LREMed after).
# Each time:
#   - throughput: ami-sim floods SimFlood at FLOOD/s for DURATION s, faster
#     than one subscription delivers (one attempt in flight, in order), so
#     the queue holds the backlog; deliveries/s counted at the receiver
#     from first to last arrival, with 1 and with SUBS subscriptions (one
#     receiver each). Every Seq 1..N must arrive exactly once and in order
#     per subscription; the receiver counts its TCP connections (keep-alive:
#     one per subscription);
#   - latency at fixed rates (LAT_RATES, LAT_S s each): receiver arrival
#     (CLOCK_REALTIME) minus the event's "time" (when amibridge read it);
#   - a sample of signatures (1 in N, first and last) checked with HMAC.
# Prints a table (figure, value, command); exits 1 when a step lost,
# duplicated or reordered a delivery or a signature did not match.
#
#   bash bench/webhooks.sh [BUILD_DIR]      (or: make bench)
#   DURATION=10 FLOOD=20000 SUBS=4 LAT_RATES="500 2000" LAT_S=10 MODES="memory redis"
#   TIMEOUT_S=1500 (the whole run), STEP_TIMEOUT_S=240 (one step, from ready to the last delivery)
set -uo pipefail
BUILD=${1:-build}
DURATION=${DURATION:-10}
FLOOD=${FLOOD:-20000}
SUBS=${SUBS:-4}
LAT_RATES=${LAT_RATES-"500 2000"}
LAT_S=${LAT_S:-10}
MODES=${MODES:-"memory redis"}
TIMEOUT_S=${TIMEOUT_S:-1500}
STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-240}
VERIFY=${VERIFY:-1000}
for b in ami-sim amibridge webhooks-bench; do
    [ -x "$BUILD/$b" ] || { echo "missing $BUILD/$b: run 'make all'" >&2; exit 2; }
done
command -v redis-server >/dev/null 2>&1 || MODES=${MODES//redis/}

tmp=$(mktemp -d /tmp/amibridge-bench.XXXXXX)
pids=()      # everything started here, by pid
stack=()     # the current mode's ami-sim, redis-server and amibridge
watchdog=
cleanup() {
    [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    stop_stack
    for p in "${pids[@]}" $watchdog; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "webhooks.sh: interrupted" >&2; exit 130' INT TERM
# the whole run has a budget: past it the script is stopped and cleans up
(
    sleep "$TIMEOUT_S" &
    s=$!
    trap 'kill $s 2>/dev/null; exit 0' TERM
    wait "$s" && { echo "webhooks.sh: timeout after ${TIMEOUT_S}s" >&2; kill -TERM $$; }
) &
watchdog=$!

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/step.json" "$1"; }
fmt() { python3 -c 'import sys; print(f"{float(sys.argv[1]):,.0f}")' "$1"; }
# the sum of every series whose name{labels starts with $1 in $tmp/metrics
metric() { awk -v m="$1" 'index($1, m) == 1 {s += $2} END {print s + 0}' "$tmp/metrics"; }

# ami-sim, optionally redis-server, and amibridge without API keys on loopback
start_stack() {
    local mode=$1 redis_env=()
    stack=()
    REDIS_PORT=
    if [ "$mode" = redis ]; then
        REDIS_PORT=$(free_port)
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$tmp" --logfile "$tmp/redis.log" &
        stack+=($!)
        redis_env=("AMIBRIDGE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT")
        for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    rm -f "$tmp/sim.port"
    "$BUILD/ami-sim" --listen 127.0.0.1:0 --ready-file "$tmp/sim.port" --quiet &
    stack+=($!)
    for _ in $(seq 50); do [ -s "$tmp/sim.port" ] && break; sleep 0.1; done
    local sim_port
    sim_port=$(cat "$tmp/sim.port")
    HTTP_PORT=$(free_port)
    URL=http://127.0.0.1:$HTTP_PORT
    # the queue holds a whole throughput step's backlog
    local queue=$((FLOOD * DURATION + 1000))
    [ "$queue" -le 1000000 ] || queue=1000000
    env "${redis_env[@]}" AMIBRIDGE_LISTEN=127.0.0.1:$HTTP_PORT AMIBRIDGE_AMI_PORT=$sim_port \
        AMIBRIDGE_AMI_USERNAME=bridge AMIBRIDGE_AMI_SECRET=bridgesecret AMIBRIDGE_LOG_LEVEL=warn \
        AMIBRIDGE_WEBHOOK_ALLOW_NETS=127.0.0.0/8 AMIBRIDGE_WEBHOOK_QUEUE=$queue \
        "$BUILD/amibridge" 2>"$tmp/bridge-$mode.log" &
    stack+=($!)
    local want='"ready":true'
    [ "$mode" = redis ] && want='"redis":{"state":"up"'
    for _ in $(seq 100); do curl -fs -m 2 "$URL/readyz" 2>/dev/null | grep -q "$want" && return 0; sleep 0.1; done
    echo "amibridge did not get ready ($mode); its log:" >&2
    cat "$tmp/bridge-$mode.log" >&2
    return 1
}

# TERM, and KILL what is still there after 5 s (a stalled event loop)
stop_stack() {
    local p
    for p in "${stack[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${stack[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${stack[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${stack[@]}"; do wait "$p" 2>/dev/null || true; done
    stack=()
}

flood() {
    curl -fs -m 5 -X POST -H 'Content-Type: application/json' \
        -d "{\"Flood\":\"$1\",\"FloodCount\":\"$2\"}" "$URL/v1/actions/SimControl" >/dev/null
}

# one step: SUBS receivers subscribed to SimFlood, RATE/s for SECONDS,
# collected. Sets CMD and BAD ("" when every delivery arrived once, in
# order, signed right); returns 1 when the tool itself failed.
CMD=
BAD=
step() {
    local subs=$1 rate=$2 secs=$3 count=$(($2 * $3)) args
    args=(--bridge "$URL" --subs "$subs" --events SimFlood --count "$count" --verify "$VERIFY"
          --ready-file "$tmp/ready" --idle-ms 5000 --timeout-s "$STEP_TIMEOUT_S")
    [ -z "$REDIS_PORT" ] || args+=(--redis-port "$REDIS_PORT")
    CMD="webhooks-bench --subs $subs --count $count; SimControl Flood=$rate FloodCount=$count"
    BAD=
    rm -f "$tmp/ready" "$tmp/step.json"
    "$BUILD/webhooks-bench" "${args[@]}" >"$tmp/step.json" &
    local b=$!
    pids+=("$b")
    for _ in $(seq 100); do { [ -s "$tmp/ready" ] || ! kill -0 "$b" 2>/dev/null; } && break; sleep 0.05; done
    [ -s "$tmp/ready" ] && flood "$rate" "$count"
    wait "$b"
    local rc=$? keep=() p
    for p in "${pids[@]}"; do [ "$p" = "$b" ] || keep+=("$p"); done
    pids=("${keep[@]}")
    cat "$tmp/step.json"
    if [ "$rc" != 0 ] || [ ! -s "$tmp/step.json" ]; then
        BAD="webhooks-bench failed (exit $rc)"
        return 1
    fi
    BAD=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
keys=("missing","duplicates","delivery_id_duplicates","out_of_order","bridge_seq_out_of_order","malformed",
      "bad_headers","non_200","signatures_bad")
bad=["%s=%d" % (k, d[k]) for k in keys if d[k]]
if d["redis_left"] > 0: bad.append("redis_left=%d" % d["redis_left"])
if d["stopped"] != "complete": bad.append("stopped: %s" % d["stopped"])
print(" ".join(bad))' "$tmp/step.json")
    SIG_CHECKED=$((SIG_CHECKED + $(field signatures_checked)))
    SIG_BAD=$((SIG_BAD + $(field signatures_bad)))
}

# the bridge's webhook counters, added up over the stacks of one mode
M_DELIVERED=0 M_ATTEMPTS=0 M_DROPPED=0 M_FAILED=0 M_LOST=0
take_metrics() {
    curl -fs -m 5 "$URL/metrics" >"$tmp/metrics" || { M_LOST=$((M_LOST + 1)); return; }
    M_DELIVERED=$((M_DELIVERED + $(metric 'amibridge_webhook_deliveries_total{result="delivered"')))
    M_ATTEMPTS=$((M_ATTEMPTS + $(metric 'amibridge_webhook_attempts_total{outcome="')))
    M_DROPPED=$((M_DROPPED + $(metric 'amibridge_webhook_deliveries_total{result="dropped"')))
    M_FAILED=$((M_FAILED + $(metric 'amibridge_webhook_deliveries_total{result="failed"')))
}

FAIL=0
rows=()
row() { rows+=("| $1 | $2 | \`$3\` |"); }

echo "== machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
for mode in $MODES; do
    if [ "$mode" = redis ]; then label="Redis queue"; else label="memory queue"; fi
    echo "== $label: ami-sim -> amibridge -> POST http://127.0.0.1:PORT/hook (webhooks-bench)"
    SIG_CHECKED=0 SIG_BAD=0 M_DELIVERED=0 M_ATTEMPTS=0 M_DROPPED=0 M_FAILED=0 M_LOST=0
    up=0
    # steps: subs_rate_seconds_kind
    for spec in "1_${FLOOD}_${DURATION}_tput" "${SUBS}_${FLOOD}_${DURATION}_tput" \
                $(for r in $LAT_RATES; do echo "1_${r}_${LAT_S}_lat"; done); do
        read -r subs rate secs kind <<<"${spec//_/ }"
        if [ "$up" = 0 ]; then
            start_stack "$mode" || { FAIL=1; stop_stack; break; }
            up=1
        fi
        if [ "$kind" = tput ]; then
            printf '  throughput, %s sub(s), flood %s/s x %ss: ' "$subs" "$rate" "$secs"
        else
            printf '  latency, %s sub, %s/s x %ss: ' "$subs" "$rate" "$secs"
        fi
        if ! step "$subs" "$rate" "$secs"; then
            echo "         FAILED: $BAD; amibridge's last warnings:"
            tail -n 5 "$tmp/bridge-$mode.log" | cut -c1-300 | sed 's/^/           /'
            row "$kind $subs x $rate/s, $label" "FAILED: $BAD" "$CMD"
            FAIL=1
            take_metrics; stop_stack; up=0
            continue
        fi
        verdict=""
        [ -z "$BAD" ] || verdict="FAILED ($BAD): "
        if [ "$kind" = tput ]; then
            extra=""
            [ -z "$REDIS_PORT" ] || extra="; RPUSH $(field redis_rpush), LREM $(field redis_lrem), $(field redis_left) left in Redis"
            row "deliveries/s, $subs subscription(s) -> $subs receiver(s), $label" \
                "$verdict$(fmt "$(field rate_per_s)")/s ($(field received)/$(field expected) delivered in $(field seconds) s, $(field missing) missing, $(field duplicates) dup, $(field out_of_order) out of order; $(field connections) TCP connection(s)$extra)" \
                "$CMD"
            # the flood must outrun delivery, or this measured the flood
            python3 -c 'import sys; sys.exit(float(sys.argv[1]) < 0.9 * float(sys.argv[2]))' \
                "$(field rate_per_s)" "$((rate * subs))" \
                && echo "         WARNING: delivery kept up with the flood; raise FLOOD to measure the ceiling"
        else
            row "event -> delivery latency at $rate events/s, $label" \
                "${verdict}p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, max $(field max_ms) ms ($(field received)/$(field expected) delivered)" \
                "$CMD"
        fi
        if [ -n "$BAD" ]; then
            # a step that did not finish leaves a backlog behind: start afresh
            echo "         FAILED: $BAD (restarting the stack); amibridge's last warnings:"
            tail -n 5 "$tmp/bridge-$mode.log" | cut -c1-300 | sed 's/^/           /'
            FAIL=1
            take_metrics; stop_stack; up=0
        fi
    done
    [ "$up" = 0 ] || { take_metrics; stop_stack; }
    row "signatures verified (HMAC-SHA256, libcrypto), $label" "$SIG_CHECKED checked, $SIG_BAD bad" \
        "webhooks-bench --verify $VERIFY"
    row "bridge metrics over the run, $label" \
        "delivered $M_DELIVERED, attempts $M_ATTEMPTS, dropped $M_DROPPED, failed $M_FAILED$([ "$M_LOST" = 0 ] || echo " ($M_LOST bridge(s) did not answer /metrics: not counted)")" \
        "GET /metrics"
    [ "$SIG_BAD" = 0 ] && [ "$M_DROPPED" = 0 ] && [ "$M_FAILED" = 0 ] || FAIL=1
done

echo
echo "| figure | value | command |"
echo "| --- | --- | --- |"
for r in "${rows[@]}"; do echo "$r"; done
[ "$FAIL" = 0 ] || { echo "FAILED: see the steps above" >&2; exit 1; }
