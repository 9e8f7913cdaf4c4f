#!/usr/bin/env bash
# The integration and replica tests with every amibridge and ami-sim they
# start running under valgrind memcheck (AMIBRIDGE_TEST_WRAPPER). Each
# process writes its own log; the run fails when any log reports an error
# or a definite/indirect leak. Processes a test kills with SIGKILL on
# purpose leave a log without a summary: those are counted, not judged.
#   bash tools/valgrind.sh BUILD test-binary...
set -u
build=$1
shift
logs=$build/valgrind
rm -rf "$logs"
mkdir -p "$logs"
supp=$(cd "$(dirname "$0")/.." && pwd)/tests/valgrind.supp
export AMIBRIDGE_TEST_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --suppressions=$supp --log-file=$logs/%p.log"
export AMIBRIDGE_TEST_BUILD=$build AMIBRIDGE_TEST_DATA=${AMIBRIDGE_TEST_DATA:-tests/data}
failed_tests=""
for t in "$@"; do
    echo "### $t (under valgrind)"
    "$t" || failed_tests="$failed_tests $t"
done
clean=0 dirty=0 killed=0
for f in "$logs"/*.log; do
    [ -e "$f" ] || continue
    if ! grep -q 'ERROR SUMMARY' "$f"; then
        killed=$((killed + 1))
    elif grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
        clean=$((clean + 1))
    else
        dirty=$((dirty + 1))
        echo "valgrind: errors in $f:" >&2
        sed -n '/Invalid\|uninitialised\|definitely lost\|indirectly lost/,+12p' "$f" | head -60 >&2
    fi
done
echo "valgrind: $clean process logs clean, $dirty with errors, $killed without a summary (killed on purpose)"
[ -n "$failed_tests" ] && echo "valgrind: test programs that failed under valgrind (slower processes):$failed_tests"
[ "$dirty" -eq 0 ]
