#!/usr/bin/env bash
# Instructions per request of POST /v1/actions/Ping, counted by
# `valgrind --tool=callgrind` in amibridge (through ami-sim) and in
# build/mhd-baseline (the bare libmicrohttpd responder of bench/run-all.sh)
# under the same load: wrk -t1 -c$CONNS for CG_S seconds each. The count
# runs from a zeroing of callgrind's counters after a warm-up to a dump
# after wrk stops, and is divided by the requests wrk saw answered.
#
# Unlike the req/s of the other rows, this does not depend on what else the
# machine is doing: the same binaries, libraries and load give the same
# count within a few per cent, whatever the other core runs. It counts
# user space only: the system calls' work in the kernel (about two thirds
# of the bridge's CPU per request on the machines of bench/README.md) is
# not in it. Prints one JSON line:
#   {"amibridge": I, "baseline": I, "ratio": R, "requests": [N, N]}
#
#   bash bench/instructions.sh [BUILD_DIR]
#   CG_S=5 CONNS=8 POOL=4 TIMEOUT_S=180
set -uo pipefail
BUILD=${1:-build}
CG_S=${CG_S:-5}
CONNS=${CONNS:-8}
POOL=${POOL:-4}
TIMEOUT_S=${TIMEOUT_S:-180}

for b in ami-sim amibridge mhd-baseline; do
    [ -x "$BUILD/$b" ] || { echo "missing $BUILD/$b: run 'make all'" >&2; exit 2; }
done
for c in wrk curl python3 valgrind callgrind_control; do
    command -v "$c" >/dev/null 2>&1 || { echo "missing $c (sh tools/deps.sh wrk valgrind)" >&2; exit 2; }
done

TOKEN=bench-token-0123456789
export BENCH_TOKEN=$TOKEN
BIN=$BUILD
NAME=instructions.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# count NAME PID URL: zero PID's counters, wrk for CG_S s, dump; sets
# INSTR (instructions counted) and REQS (requests answered)
count() {
    local name=$1 pid=$2 url=$3 dump
    for _ in 1 2 3; do
        curl -fs -m 10 -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "$url/v1/actions/Ping" ||
            { echo "$name: the warm-up request failed" >&2; exit 2; }
    done
    callgrind_control -z "$pid" >/dev/null 2>&1 || { echo "$name: callgrind_control -z failed" >&2; exit 2; }
    timeout $((CG_S + 30)) wrk -t1 -c"$CONNS" -d"${CG_S}s" -s bench/post_ping.lua \
        "$url/v1/actions/Ping" >"$tmp/wrk-$name.txt" 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1 || { echo "$name: callgrind_control -d failed" >&2; exit 2; }
    dump=$(ls "$tmp/cg-$name".*.1 2>/dev/null | head -1)
    [ -n "$dump" ] || { echo "$name: no callgrind dump" >&2; exit 2; }
    INSTR=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
    REQS=$(awk '/requests in/ {print $1; exit}' "$tmp/wrk-$name.txt")
    if awk '/Non-2xx|Socket errors/ {bad = 1} END {exit !bad}' "$tmp/wrk-$name.txt"; then
        echo "$name: wrk saw errors:" >&2
        cat "$tmp/wrk-$name.txt" >&2
        exit 2
    fi
    [ -n "$INSTR" ] && [ "${REQS:-0}" -gt 0 ] || { echo "$name: nothing counted" >&2; exit 2; }
}

start_sim
RUN_UNDER="valgrind --tool=callgrind --callgrind-out-file=$tmp/cg-bridge.%p" \
    start_bridge callgrind AMIBRIDGE_AMI_POOL_SIZE="$POOL"
count bridge "$BRIDGE_PID" "$BRIDGE_URL"
bridge_instr=$INSTR bridge_reqs=$REQS
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"

port=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg-baseline.%p" "$BIN/mhd-baseline" \
    --listen "127.0.0.1:$port" 2>"$tmp/baseline.log" &
BASE_PID=$!
pids+=("$BASE_PID")
for _ in $(seq 200); do curl -fs -m 1 -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
count baseline "$BASE_PID" "http://127.0.0.1:$port"
base_instr=$INSTR base_reqs=$REQS
stop_pid "$BASE_PID"

calc '"{\"amibridge\": %d, \"baseline\": %d, \"ratio\": %.2f, \"requests\": [%d, %d]}" % (
    int(sys.argv[1]) // int(sys.argv[2]), int(sys.argv[3]) // int(sys.argv[4]),
    (int(sys.argv[1]) / int(sys.argv[2])) / (int(sys.argv[3]) / int(sys.argv[4])),
    int(sys.argv[2]), int(sys.argv[4]))' "$bridge_instr" "$bridge_reqs" "$base_instr" "$base_reqs"
