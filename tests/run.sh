#!/bin/sh
# Run every test binary given as an argument; CMocka prints its own summary
# for each. Exit non-zero when any test binary fails. Integration tests find
# the binaries under $BUILD and the fixtures under tests/data.
set -u
BUILD=${BUILD:-build}
export AMIBRIDGE_TEST_BUILD="$BUILD"
export AMIBRIDGE_TEST_DATA="${AMIBRIDGE_TEST_DATA:-tests/data}"
failed=""
total=0
for t in "$@"; do
    total=$((total + 1))
    echo "### $t"
    start=$(date +%s)
    if ! "$t"; then
        failed="$failed $t"
    fi
    echo "### $t: $(($(date +%s) - start)) s"
done
if [ -n "$failed" ]; then
    echo "FAILED test programs:$failed" >&2
    exit 1
fi
echo "all $total test programs passed"
