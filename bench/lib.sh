# bench/lib.sh: what bench/run-all.sh and bench/guard.sh share. Sourced
# (bash) after the caller set BIN (where the binaries are), TOKEN (the
# bench's API key), TIMEOUT_S and NAME (for messages); it makes $tmp, keeps
# every process it starts in `pids`, stops them all on exit, and stops the
# whole run after TIMEOUT_S.
# shellcheck shell=bash

tmp=$(mktemp -d "/tmp/amibridge-$NAME.XXXXXX")
pids=() # everything started here and still running, by pid
watchdog=
stop_pid() { # TERM, KILL after 5 s; forget it
    local p=$1 keep=() q
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    pids=("${keep[@]}")
}
cleanup() {
    [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}" $watchdog; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "$NAME: interrupted" >&2; exit 130' INT TERM
(
    sleep "$TIMEOUT_S" &
    s=$!
    trap 'kill $s 2>/dev/null; exit 0' TERM
    wait "$s" && { echo "$NAME: timeout after ${TIMEOUT_S}s" >&2; kill -TERM $$; }
) &
watchdog=$!

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
calc() { python3 -c "import sys; print($1)" "${@:2}"; }
fmt0() { python3 -c 'import sys; print(f"{float(sys.argv[1]):,.0f}")' "$1"; }
jfield() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }

# wait_ready URL PID [grep]: /readyz 200 (and its body matching grep) within 10 s
wait_ready() {
    for _ in $(seq 500); do
        if curl -fs -m 1 "$1/readyz" 2>/dev/null | grep -q "${3:-.}"; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}

# start_sim: a fresh ami-sim; sets SIM_PID and SIM_PORT
start_sim() {
    rm -f "$tmp/sim.port"
    "$BIN/ami-sim" --listen 127.0.0.1:0 --ready-file "$tmp/sim.port" --quiet &
    SIM_PID=$!
    pids+=("$SIM_PID")
    for _ in $(seq 100); do [ -s "$tmp/sim.port" ] && break; sleep 0.05; done
    [ -s "$tmp/sim.port" ] || { echo "ami-sim did not start" >&2; exit 2; }
    SIM_PORT=$(cat "$tmp/sim.port")
}

# start_bridge NAME [VAR=value...]: a bridge on the current ami-sim, ready;
# sets BRIDGE_PID, BRIDGE_URL (the readiness check: $READY_GREP). With
# RUN_UNDER set (a command and its flags, e.g. valgrind's), the bridge runs
# under it, in the same process.
start_bridge() {
    local name=$1 port
    shift
    port=$(free_port)
    BRIDGE_URL=http://127.0.0.1:$port
    env AMIBRIDGE_LISTEN="127.0.0.1:$port" AMIBRIDGE_AMI_HOST=127.0.0.1 AMIBRIDGE_AMI_PORT="$SIM_PORT" \
        AMIBRIDGE_AMI_USERNAME=bridge AMIBRIDGE_AMI_SECRET=bridgesecret AMIBRIDGE_LOG_LEVEL=warn \
        AMIBRIDGE_API_KEYS="bench:$TOKEN:actions,read" "$@" ${RUN_UNDER:-} "$BIN/amibridge" \
        2>"$tmp/bridge-$name.log" &
    BRIDGE_PID=$!
    pids+=("$BRIDGE_PID")
    wait_ready "$BRIDGE_URL" "$BRIDGE_PID" "${READY_GREP:-.}" && return 0
    echo "amibridge ($name) did not get ready; its log:" >&2
    cat "$tmp/bridge-$name.log" >&2
    exit 2
}

# flood RATE COUNT: ami-sim's SimFlood through the bridge's generic action route
flood() {
    curl -fs -m 5 -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"Flood\":\"$1\",\"FloodCount\":\"$2\"}" "$BRIDGE_URL/v1/actions/SimControl" >/dev/null
}
