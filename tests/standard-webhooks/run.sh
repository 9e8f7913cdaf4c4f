#!/bin/sh
# Standard Webhooks: real deliveries of the binary checked by the official
# verifiers (npm standardwebhooks; the Python library, vendored in
# vendor/python) and by verify.py (Python 3, written from the spec).
#
#   sh tests/standard-webhooks/run.sh BUILD_DIR
#
# Needs Node.js 18.17+ and python3 (make test installs both); the pinned
# standardwebhooks package comes from the npm registry (npm ci, only when
# package-lock.json changed since the last install), so a machine that has
# installed it once runs this offline.
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$(pwd)/$build ;;
esac

fail() {
    echo "stdwebhooks: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed"
command -v npm >/dev/null 2>&1 || fail "npm is not installed"
command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"

stamp=$here/node_modules/.stdwebhooks-package-lock.json
if ! cmp -s "$here/package-lock.json" "$stamp" 2>/dev/null; then
    log=$(mktemp "${TMPDIR:-/tmp}/amibridge-stdwebhooks-npm.XXXXXX")
    if ! (cd "$here" && npm ci --no-audit --no-fund --include=dev --no-update-notifier \
        --loglevel=error) >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        fail "npm ci failed in tests/standard-webhooks"
    fi
    rm -f "$log"
    cp "$here/package-lock.json" "$stamp"
fi

node "$here/verify.mjs" "$build"
