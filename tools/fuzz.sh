#!/usr/bin/env bash
# Run libFuzzer targets, FUZZ_JOBS at a time, each for SECONDS, seeded from
# tests/fuzz/corpus/<name> with a work corpus under BUILD/fuzz. A finding
# (crash-*, leak-*, timeout-*, oom-* in BUILD/fuzz/findings) fails the run
# and its log is printed.
#   bash tools/fuzz.sh BUILD SECONDS JOBS target...
set -u
build=$1
secs=$2
jobs=$3
shift 3
out=$build/fuzz/findings
mkdir -p "$out"
run_one() {
    f=$1
    name=$(basename "$f")
    seeds=tests/fuzz/corpus/${name#fuzz_}
    work=$build/fuzz/work-$name
    mkdir -p "$work"
    "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$name-" "$work" "$seeds" >"$build/fuzz/$name.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz/$name.log")
    if [ $rc -eq 0 ]; then
        echo "fuzz: $name: ${runs:-?} runs in ${secs}s, no finding"
    else
        echo "fuzz: $name FAILED (exit $rc); its log:" >&2
        tail -60 "$build/fuzz/$name.log" >&2
        return 1
    fi
}
fail=0
pids=""
for f in "$@"; do
    run_one "$f" &
    pids="$pids $!"
    # at most $jobs at once
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
done
for p in $pids; do wait "$p" || fail=1; done
exit $fail
