#!/bin/sh
# Lint openapi/openapi.yaml and check real replies of the binary against it.
#
#   sh tests/contract/run.sh BUILD_DIR
#
# 1. installs the pinned Node packages (npm ci) when node_modules is missing
#    or package-lock.json changed since the last install (needs the npm
#    registry, nothing else);
# 2. `redocly lint` with tests/contract/redocly.yaml: any error or warning
#    fails;
# 3. tests/contract/contract.mjs: BUILD_DIR/ami-sim and BUILD_DIR/amibridge
#    on free loopback ports, every reply checked against the spec.
#
# Quiet on success except for one line per check; exit status 0 only when
# everything passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$(pwd)/$build ;;
esac
spec=$root/openapi/openapi.yaml
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amibridge-contract-run.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

fail() {
    echo "contract: $*" >&2
    exit 1
}

# Node 18.17+ (what @redocly/cli 1.34 needs; Debian 12 ships 18.19)
command -v node >/dev/null 2>&1 || fail "node is not installed (Node.js 18.17 or later is needed)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed"
node -e '
const [a, b] = process.versions.node.split(".").map(Number);
process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1);
' || fail "Node.js $(node -v) is too old: 18.17 or later is needed"

# 1. packages
stamp=$here/node_modules/.contract-package-lock.json
if ! cmp -s "$here/package-lock.json" "$stamp" 2>/dev/null; then
    if ! (cd "$here" && npm ci --no-audit --no-fund --include=dev --no-update-notifier \
        --loglevel=error) >"$tmp/npm.log" 2>&1; then
        cat "$tmp/npm.log" >&2
        fail "npm ci failed in tests/contract"
    fi
    cp "$here/package-lock.json" "$stamp"
fi

# 2. lint
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
redocly=$here/node_modules/.bin/redocly
"$redocly" lint --config "$here/redocly.yaml" --format=json "$spec" >"$tmp/lint.json" 2>"$tmp/lint.err"
lint_rc=$?
totals=$(node -e '
const fs = require("fs");
try {
  const t = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).totals;
  console.log(`${t.errors} ${t.warnings}`);
} catch (e) {
  console.log("? ?");
}' "$tmp/lint.json")
if [ "$lint_rc" -ne 0 ] || [ "$totals" != "0 0" ]; then
    "$redocly" lint --config "$here/redocly.yaml" "$spec" 2>&1 | grep -v -e '║' -e '╔' -e '╚'
    set -- $totals
    fail "lint of openapi/openapi.yaml FAILED (errors: $1, warnings: $2)"
fi
echo "lint: openapi/openapi.yaml: no errors, no warnings"

# 3. the binary against the spec
node "$here/contract.mjs" "$build"
