#!/bin/bash
# Run every test binary given as an argument, JOBS at a time (default 2),
# the slowest first: tests/durations lists each program's seconds (by
# basename) from a sequential run, and a program it does not list counts as
# slow. A program's stdout and stderr (CMocka's summary among them) go to a
# file that is printed whole when the program ends, so outputs never mix.
# Exit non-zero when any test binary fails: its exit status, or a line of
# CMocka's saying FAILED or ERROR. Integration tests find the
# binaries under $BUILD and the fixtures under tests/data; each server they
# start gets a port of its own (tests/support/proc.c), so programs running
# at once do not collide.
#
# Refresh tests/durations from a sequential run:
#   JOBS=1 make test-c | sed -n 's|^### .*/\(test_[^/:]*\): \([0-9]*\) s$|\1 \2|p' \
#     | sort -k2,2nr > tests/durations.new && mv tests/durations.new tests/durations
set -u
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
DURATIONS=${DURATIONS:-$(dirname "$0")/durations}
export AMIBRIDGE_TEST_BUILD="$BUILD"
export AMIBRIDGE_TEST_DATA="${AMIBRIDGE_TEST_DATA:-tests/data}"
case $JOBS in '' | *[!0-9]* | 0) echo "tests/run.sh: JOBS must be a positive number, not '$JOBS'" >&2; exit 2 ;; esac

declare -A secs=()
if [ -r "$DURATIONS" ]; then
    while read -r name s _; do
        case $name in '' | '#'*) continue ;; esac
        secs[$name]=$s
    done < "$DURATIONS"
fi

# slowest first; equal ones keep the order given; unknown ones before all
order=()
i=0
while IFS= read -r line; do
    order+=("${line#* * }")
done < <(for t in "$@"; do
             b=${t##*/}
             printf '%s %06d %s\n' "${secs[$b]:-999999}" "$i" "$t"
             i=$((i + 1))
         done | sort -k1,1nr -k2,2n)

out=$(mktemp -d "${TMPDIR:-/tmp}/amibridge-run.XXXXXX") || exit 2
declare -A pid_of=() start_of=() log_of=()
cleanup() {
    for p in "${!pid_of[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed=""
total=0
t0=$(date +%s)

# wait for one program to end, then print its output whole
reap() {
    local p rc=0 t
    wait -n -p p "${!pid_of[@]}" || rc=$?
    t=${pid_of[$p]}
    echo "### $t"
    cat "${log_of[$p]}"
    # CMocka's own verdicts count even when the exit status does not carry
    # them (a group set-up or tear-down that fails or crashes)
    if [ "$rc" -ne 0 ] || grep -qE '^\[  (FAILED  |ERROR   )\]' "${log_of[$p]}"; then
        failed="$failed $t"
    fi
    echo "### $t: $(($(date +%s) - ${start_of[$p]})) s"
    unset "pid_of[$p]" "start_of[$p]" "log_of[$p]"
}

for t in "${order[@]}"; do
    while [ "${#pid_of[@]}" -ge "$JOBS" ]; do reap; done
    total=$((total + 1))
    log="$out/$total.log"
    "$t" > "$log" 2>&1 < /dev/null &
    pid_of[$!]=$t
    start_of[$!]=$(date +%s)
    log_of[$!]=$log
done
while [ "${#pid_of[@]}" -gt 0 ]; do reap; done

echo "### $total test programs, $JOBS at a time: $(($(date +%s) - t0)) s"
if [ -n "$failed" ]; then
    echo "FAILED test programs:$failed" >&2
    exit 1
fi
echo "all $total test programs passed"
