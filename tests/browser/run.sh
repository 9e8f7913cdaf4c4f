#!/bin/sh
# The live dashboard in a real browser.
#
#   sh tests/browser/run.sh BUILD_DIR
#
# Needs Debian's chromium and Node.js 18.17+ (make test installs both); the
# pinned playwright-core comes from the npm registry (npm ci, only when
# package-lock.json changed) and never downloads a browser. Screenshots go to
# BUILD_DIR/screenshots.
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$(pwd)/$build ;;
esac

fail() {
    echo "browser: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed"
command -v npm >/dev/null 2>&1 || fail "npm is not installed"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "${CHROMIUM:-/usr/bin/chromium} is missing (Debian package chromium)"

stamp=$here/node_modules/.browser-package-lock.json
if ! cmp -s "$here/package-lock.json" "$stamp" 2>/dev/null; then
    log=$(mktemp "${TMPDIR:-/tmp}/amibridge-browser-npm.XXXXXX")
    if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --include=dev \
        --no-update-notifier --loglevel=error) >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        fail "npm ci failed in tests/browser"
    fi
    rm -f "$log"
    cp "$here/package-lock.json" "$stamp"
fi

node "$here/dashboard.mjs" "$build" "$build/screenshots"
