#!/usr/bin/env bash
# CI regression guard (make bench-guard): a short run of the figures of
# bench/run-all.sh that fails (exit 1) when one falls below a floor, far
# enough below its target that a noisy shared CI machine does not trip it
# but a real regression (a lock, a copy per event, a leak at start) does.
# Every figure is printed, passed or not. About a minute:
#   1. POST /v1/actions/Ping through amibridge to ami-sim against
#      build/mhd-baseline, the same wrk command (DURATION s each, ROUNDS
#      interleaved rounds, best of each); the ratio must be >= 0.25;
#   2. SimFlood ami-sim -> amibridge -> Redis -> build/events-bench at RATES
#      (STEP_S s each): a step passes when every event arrived in order and
#      the subscriber received them at >= 80 % of the flood rate (the bridge
#      holds AMI events back when Redis is slower, so "nothing lost" alone
#      would pass a bridge that only buffers; 80 % leaves room for the
#      ramp-up and the scheduling noise of a 2 s step); the highest passing
#      rate must be >= 125,000/s; a failed step is tried once more;
#   3. VmRSS of an idle bridge right after /readyz 200: <= 20 MiB;
#   4. instructions per request of the action route in user space, amibridge
#      against mhd-baseline (bench/instructions.sh, callgrind, CG_S s each):
#      the ratio must be <= 1.6.
# Floors, each half of its target (bench/run-all.sh, issue 17):
#   action ratio 0.25  the target is 0.5 of the bare responder; the ratio is
#                      measured in one run, so a slow machine slows both
#                      sides; half leaves room for the wrk/bridge/ami-sim
#                      contention on 2 cores (0.51-0.54 on the 2-core
#                      machine of bench/README.md, December 2026);
#   events 125,000/s   the target is 250,000/s; an absolute rate, so it
#                      depends on the machine (that 2-core machine keeps up
#                      with 160,000/s, not 200,000/s): a CI runner with less
#                      than its 2 cores' worth may need FLOOR_EVENTS lowered
#                      (the Redis ceiling of the same run is printed beside
#                      it to tell a slow machine from a slow bridge);
#   idle RSS 20 MiB    twice the 10 MiB target (an RSS regression of 10 MiB
#                      is a library or a buffer that should not be there);
#   instructions 1.6   no target of its own: amibridge needed 1.19 x the
#                      responder's instructions per request in December
#                      2026 (1.89 before the work on them); a count, not a
#                      time, so the machine's noise does not move it and the
#                      ceiling can be closer: a third more work per request
#                      (a copy, a lookup, a format per request) trips it.
#
#   bash bench/guard.sh [BUILD_DIR]        (or: make bench-guard)
#   DURATION=3 ROUNDS=2 CONNS=64 THREADS=2 POOL=4 STEP_S=2 RATES="62500 125000"
#   FLOOR_RATIO=0.25 FLOOR_EVENTS=125000 FLOOR_RSS_MIB=20 CEIL_INSTR_RATIO=1.6 CG_S=2 TIMEOUT_S=240
set -uo pipefail
BUILD=${1:-build}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
POOL=${POOL:-4}
STEP_S=${STEP_S:-2}
RATES=${RATES:-"62500 125000"}
FLOOR_RATIO=${FLOOR_RATIO:-0.25}
FLOOR_EVENTS=${FLOOR_EVENTS:-125000}
FLOOR_RSS_MIB=${FLOOR_RSS_MIB:-20}
CEIL_INSTR_RATIO=${CEIL_INSTR_RATIO:-1.6}
CG_S=${CG_S:-2}
TIMEOUT_S=${TIMEOUT_S:-240}

for b in ami-sim amibridge events-bench mhd-baseline; do
    [ -x "$BUILD/$b" ] || { echo "missing $BUILD/$b: run 'make all'" >&2; exit 2; }
done
for c in wrk curl python3 redis-server redis-cli redis-benchmark valgrind; do
    command -v "$c" >/dev/null 2>&1 || { echo "missing $c (wrk: sh tools/deps.sh wrk)" >&2; exit 2; }
done

TOKEN=bench-token-0123456789
export BENCH_TOKEN=$TOKEN
BIN=$BUILD
NAME=guard.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

failed=0
verdict() { # NAME VALUE BOUND OK(1/0)
    if [ "$4" = 1 ]; then
        printf 'guard: %-44s %12s  %s  ok\n' "$1" "$2" "$3"
    else
        printf 'guard: %-44s %12s  %s  FAIL\n' "$1" "$2" "$3"
        failed=1
    fi
}

echo "== guard: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
T_START=$(date +%s)

# --- 1. the action route against the bare responder ---------------------------------------
echo "== 1. POST /v1/actions/Ping: amibridge vs mhd-baseline, wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds"
start_sim
start_bridge actions AMIBRIDGE_AMI_POOL_SIZE="$POOL"
rm -f "$tmp/base.port"
"$BUILD/mhd-baseline" --ready-file "$tmp/base.port" &
BASE_PID=$!
pids+=("$BASE_PID")
for _ in $(seq 100); do [ -s "$tmp/base.port" ] && break; sleep 0.02; done
BASE_URL=http://127.0.0.1:$(cat "$tmp/base.port")
best_base=0 best_bridge=0
for r in $(seq "$ROUNDS"); do
    for side in base bridge; do
        if [ "$side" = base ]; then url=$BASE_URL; else url=$BRIDGE_URL; fi
        timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s bench/post_ping.lua \
            "$url/v1/actions/Ping" >"$tmp/wrk.txt" 2>&1
        rps=$(wrk_rps "$tmp/wrk.txt")
        printf '  round %s: %-6s %s req/s\n' "$r" "$side" "${rps:-?}"
        [ -n "$rps" ] || continue
        if [ "$side" = base ]; then
            best_base=$(calc 'max(float(sys.argv[1]), float(sys.argv[2]))' "$rps" "$best_base")
        else
            best_bridge=$(calc 'max(float(sys.argv[1]), float(sys.argv[2]))' "$rps" "$best_bridge")
        fi
    done
done
ratio=$(calc '"%.2f" % (float(sys.argv[1]) / max(float(sys.argv[2]), 1))' "$best_bridge" "$best_base")
stop_pid "$BASE_PID"
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"

# --- 2. events to Redis ---------------------------------------------------------------------
echo "== 2. events: SimFlood steps of ${STEP_S}s at $RATES/s, ami-sim -> amibridge -> Redis -> events-bench"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" &
REDIS_PID=$!
pids+=("$REDIS_PID")
start_sim
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
READY_GREP='"redis":{"state":"up"' start_bridge events AMIBRIDGE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
# step RATE: 0 when every event came, in order, at >= 80 % of RATE
step() {
    local count=$(($1 * STEP_S)) sub
    rm -f "$tmp/ready" "$tmp/step.json"
    timeout $((STEP_S + 30)) "$BUILD/events-bench" --port "$REDIS_PORT" --channel ami.default.SimFlood \
        --count "$count" --ready-file "$tmp/ready" --idle-ms 2000 >"$tmp/step.json" &
    sub=$!
    pids+=("$sub")
    for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
    flood "$1" "$count"
    wait "$sub"
    stop_pid "$sub"
    [ -s "$tmp/step.json" ] || { echo "  $1/s: events-bench failed"; return 1; }
    local got missing gaps disorder rate
    got=$(jfield "$tmp/step.json" received) missing=$(jfield "$tmp/step.json" missing)
    gaps=$(jfield "$tmp/step.json" seq_gaps) disorder=$(jfield "$tmp/step.json" out_of_order)
    rate=$(jfield "$tmp/step.json" rate_per_s)
    printf '  %s/s: received %s of %s (missing %s, gaps %s, out of order %s) at %s/s, p99 %s ms\n' \
        "$1" "$got" "$count" "$missing" "$gaps" "$disorder" "$rate" "$(jfield "$tmp/step.json" p99_ms)"
    [ "$missing" = 0 ] && [ "$gaps" = 0 ] && [ "$disorder" = 0 ] &&
        calc 'int(float(sys.argv[1]) >= 0.8 * float(sys.argv[2]))' "$rate" "$1" | grep -q 1
}
best_events=0
for rate in $RATES; do
    if step "$rate" || { echo "  once more:" && step "$rate"; }; then best_events=$rate; else break; fi
done
size=$(jfield "$tmp/step.json" avg_payload_bytes 2>/dev/null || echo 187)
payload=$(python3 -c "import sys; print('x' * int(sys.argv[1]))" "$size")
redis-cli -p "$REDIS_PORT" config set client-output-buffer-limit "pubsub 0 0 0" >/dev/null
redis-cli -p "$REDIS_PORT" subscribe ami.default.SimFlood >/dev/null 2>&1 &
rsub=$!
pids+=("$rsub")
sleep 0.2
ceiling=$(timeout 60 redis-benchmark -p "$REDIS_PORT" -c 1 -P 64 -n 200000 -q \
    PUBLISH ami.default.SimFlood "$payload" | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | awk '{print $1}' | tail -1)
stop_pid "$rsub"
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"
stop_pid "$REDIS_PID"

# --- 3. idle RSS --------------------------------------------------------------------------------
echo "== 3. idle RSS right after /readyz 200"
start_sim
start_bridge idle
rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$BRIDGE_PID/status")
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"

# --- 4. instructions per request ----------------------------------------------------------------
echo "== 4. instructions per request, user space (bench/instructions.sh, callgrind, ${CG_S}s each)"
if TIMEOUT_S=120 CG_S=$CG_S bash "$(dirname "$0")/instructions.sh" "$BUILD" >"$tmp/instr.json" 2>"$tmp/instr.err"; then
    cat "$tmp/instr.json"
    instr_ratio=$(jfield "$tmp/instr.json" ratio)
else
    cat "$tmp/instr.err" >&2
    instr_ratio=
fi

echo
echo "== figures ($(($(date +%s) - T_START)) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
printf 'guard: %-44s %12s\n' "mhd-baseline req/s (best of $ROUNDS)" "$(calc '"%.0f" % float(sys.argv[1])' "$best_base")"
printf 'guard: %-44s %12s\n' "amibridge req/s (best of $ROUNDS)" "$(calc '"%.0f" % float(sys.argv[1])' "$best_bridge")"
verdict "action route ratio amibridge/mhd-baseline" "$ratio" "floor $FLOOR_RATIO (target 0.5)" \
    "$(calc 'int(float(sys.argv[1]) >= float(sys.argv[2]))' "$ratio" "$FLOOR_RATIO")"
printf 'guard: %-44s %12s\n' "redis-benchmark PUBLISH/s, one subscriber" "${ceiling:-?}"
verdict "events/s, zero loss, kept up with" "$best_events" "floor $FLOOR_EVENTS (target 250000)" \
    "$(calc 'int(int(sys.argv[1]) >= int(sys.argv[2]))' "$best_events" "$FLOOR_EVENTS")"
printf 'guard: %-44s %12s\n' "events ratio to redis-benchmark" \
    "$(calc '"%.2f" % (float(sys.argv[1]) / max(float(sys.argv[2] or 0), 1))' "$best_events" "${ceiling:-0}")"
verdict "idle RSS (MiB)" "$(calc '"%.1f" % (int(sys.argv[1]) / 1024)' "${rss:-0}")" "floor $FLOOR_RSS_MIB (target 10)" \
    "$(calc 'int(0 < int(sys.argv[1]) <= float(sys.argv[2]) * 1024)' "${rss:-0}" "$FLOOR_RSS_MIB")"
if [ -n "$instr_ratio" ]; then
    printf 'guard: %-44s %12s\n' "instructions per request, amibridge" "$(jfield "$tmp/instr.json" amibridge)"
    printf 'guard: %-44s %12s\n' "instructions per request, mhd-baseline" "$(jfield "$tmp/instr.json" baseline)"
    verdict "instructions ratio amibridge/mhd-baseline" "$instr_ratio" "ceiling $CEIL_INSTR_RATIO" \
        "$(calc 'int(float(sys.argv[1]) <= float(sys.argv[2]))' "$instr_ratio" "$CEIL_INSTR_RATIO")"
else
    verdict "instructions ratio amibridge/mhd-baseline" "not counted" "ceiling $CEIL_INSTR_RATIO" 0
fi
if [ "$failed" = 1 ]; then
    echo "guard: FAILED: a figure passed its floor or ceiling (see above; bench/run-all.sh measures it in full)"
    exit 1
fi
echo "guard: all figures within their floors and ceilings"
