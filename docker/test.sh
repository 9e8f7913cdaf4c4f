#!/usr/bin/env bash
# make docker-test: prove docker/Dockerfile and docker/compose.yaml for real.
#
# Needs root on Debian 12 and nothing but Debian's package mirror:
#   1. installs Debian's docker.io, docker-compose and debootstrap when missing;
#   2. makes debian:bookworm and debian:bookworm-slim with debootstrap
#      --variant=minbase from the mirror apt uses (cached under build/);
#   3. starts a private dockerd (own data and exec roots, own socket, no
#      default bridge, no NAT, no iptables or ip_forward changes: builds use
#      the host's network), stopped by its pid at the end. Only where the
#      host's FORWARD policy is DROP (another Docker engine) and br_netfilter
#      is on, one ACCEPT rule for its own address pool, removed at the end;
#   4. builds the images from docker/Dockerfile unchanged, plus a Redis image
#      from Debian's redis-server in place of the official one;
#   5. checks the images (labels, user, healthcheck, no keys -> no start);
#   6. brings docker/compose.yaml up, waits for every service to be healthy and
#      smoke-tests it from the host: /readyz, a generic Ping, a click-to-dial
#      against the simulator, and an AMI event seen on Redis from a container
#      on the stack's network; a clean SIGTERM stop; then the `asterisk`
#      profile with ami-sim standing in for an external Asterisk;
#   7. tears everything down, also on failure or timeout.
#
# Environment:
#   DOCKER_TEST_TIMEOUT        seconds for the whole run (default 1200)
#   DOCKER_TEST_CACHE          base-image cache (default build/docker-base)
#   DOCKER_TEST_LOGS           full build and engine logs (default build/docker-test)
#   DOCKER_TEST_CACHE_DAYS     reuse cached base images up to this age (7; 0: never)
#   DOCKER_TEST_WORKDIR        where the engine's data goes (default /var/tmp)
#   DOCKER_TEST_STORAGE_DRIVER overlay2 (default; falls back to vfs) or vfs
#   DOCKER_TEST_ADDRESS_POOL   the engine's networks (172.28.0.0/16; it holds
#                              the compose file's AMI subnet 172.28.58.0/24)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOTAL_TIMEOUT=${DOCKER_TEST_TIMEOUT:-1200}

# The whole run under one time limit. timeout signals our process group (not
# dockerd, which runs in its own session); the EXIT trap then tears down.
if [[ -z "${_AMIBRIDGE_DOCKER_TEST_TIMED:-}" ]]; then
    export _AMIBRIDGE_DOCKER_TEST_TIMED=1
    rc=0
    timeout --kill-after=120 "$TOTAL_TIMEOUT" bash "${BASH_SOURCE[0]}" "$@" || rc=$?
    if [[ $rc -eq 124 ]]; then
        echo "docker-test: FAILED: the run exceeded DOCKER_TEST_TIMEOUT=${TOTAL_TIMEOUT}s" >&2
    fi
    exit "$rc"
fi

cd "$ROOT"
# the original stdout and stderr, for the teardown (a signal can arrive while
# a redirected function runs)
exec 7>&1 8>&2

VERSION=0.1.0
SUITE=bookworm
PROJECT=amibridge-dtest
BRIDGE_IMAGE=amibridge/amibridge:$VERSION
SIM_IMAGE=amibridge/ami-sim:$VERSION
REDIS_IMAGE=amibridge-test/redis:$SUITE
CACHE_DIR=${DOCKER_TEST_CACHE:-$ROOT/build/docker-base}
LOG_DIR=${DOCKER_TEST_LOGS:-$ROOT/build/docker-test}
CACHE_DAYS=${DOCKER_TEST_CACHE_DAYS:-7}
WORKDIR_PARENT=${DOCKER_TEST_WORKDIR:-/var/tmp}
STORAGE_DRIVER=${DOCKER_TEST_STORAGE_DRIVER:-overlay2}
ADDRESS_POOL=${DOCKER_TEST_ADDRESS_POOL:-172.28.0.0/16}
DOCKER_BIN=/usr/bin/docker # Debian's client, matching Debian's engine

START=$(date +%s)
WORK=""
DOCKERD_PID=""
SUB_NAME=""
COMPOSE_UP=""
FORWARD_RULE=()
PASSED=0
FAILED=0

# --- output ------------------------------------------------------------------

elapsed() { local s=$(($(date +%s) - START)); printf '%d:%02d' $((s / 60)) $((s % 60)); }
step() { printf '\n== [%s] %s\n' "$(elapsed)" "$*"; }
info() { printf '   %s\n' "$*"; }
ok() { PASSED=$((PASSED + 1)); printf '   ok   %s\n' "$*"; }
fail() {
    FAILED=$((FAILED + 1))
    printf '   FAIL %s\n' "$*" >&2
    exit 1
}

# --- teardown, always ---------------------------------------------------------

docker() { "$DOCKER_BIN" "$@"; }
compose() { docker-compose --ansi never -p "$PROJECT" -f "$ROOT/docker/compose.yaml" "$@"; }

dump_diagnostics() {
    [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null || return 0
    echo "--- diagnostics"
    if [[ -n "$COMPOSE_UP" ]]; then
        compose --profile asterisk ps 2>&1 | sed 's/^/   /'
        compose --profile asterisk logs --no-color --tail=60 2>&1 | sed 's/^/   /'
    fi
    [[ -n "$SUB_NAME" ]] && docker logs "$SUB_NAME" 2>&1 | tail -n 20 | sed 's/^/   sub| /'
    echo "--- dockerd log (last 30 lines; full logs in $LOG_DIR)"
    tail -n 30 "$WORK/dockerd.log" 2>/dev/null | sed 's/^/   /'
}

stop_dockerd() {
    if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        kill -TERM "$DOCKERD_PID" 2>/dev/null || true
        local i=0
        while kill -0 "$DOCKERD_PID" 2>/dev/null && [[ $i -lt 300 ]]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            info "dockerd ($DOCKERD_PID) ignored SIGTERM for 30 s: SIGKILL"
            kill -KILL "$DOCKERD_PID" 2>/dev/null || true
        fi
    fi
    DOCKERD_PID=""
    # Whatever the engine started and left behind (its containerd and shims):
    # only processes whose command line names this run's own directory.
    [[ $WORK == "$WORKDIR_PARENT"/amibridge-docker-test.* ]] || return 0
    local pid
    for pid in $(pgrep -f -- "$WORK/" 2>/dev/null || true); do
        if [[ "$pid" != "$$" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    exec 1>&7 2>&8
    if [[ $rc -ne 0 ]]; then dump_diagnostics; fi
    step "teardown"
    if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        [[ -n "$SUB_NAME" ]] && docker rm -f "$SUB_NAME" >/dev/null 2>&1
        if [[ -n "$COMPOSE_UP" ]]; then
            compose --profile asterisk down --volumes --remove-orphans --timeout 10 2>&1 | sed 's/^/   /'
        fi
    fi
    stop_dockerd
    if [[ ${#FORWARD_RULE[@]} -gt 0 ]]; then
        iptables -D "${FORWARD_RULE[@]}" && info "removed the FORWARD rule"
    fi
    [[ -f "$WORK/dockerd.log" ]] && cp "$WORK/dockerd.log" "$LOG_DIR/dockerd.log"
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        # overlay and network-namespace mounts the engine may have left
        findmnt -rn -o TARGET 2>/dev/null | grep -F -- "$WORK/" | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
        rm -rf "$WORK"
        info "engine stopped, $WORK removed"
    fi
    local total=$(($(date +%s) - START))
    if [[ $rc -eq 0 ]]; then
        echo "docker-test: $PASSED passed, $FAILED failed (${total}s)"
    else
        [[ $FAILED -eq 0 ]] && FAILED=1
        echo "docker-test: $PASSED passed, $FAILED failed (${total}s)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- 1. host prerequisites -----------------------------------------------------

step "host packages"
mkdir -p "$LOG_DIR"
[[ $(id -u) -eq 0 ]] || fail "run as root (it installs packages and starts dockerd)"
command -v apt-get >/dev/null || fail "needs a Debian host (apt-get)"
sh tools/deps.sh docker.io docker-compose debootstrap curl procps util-linux
[[ -x $DOCKER_BIN ]] || fail "$DOCKER_BIN missing after installing docker.io"
info "$($DOCKER_BIN --version); $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'); debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"

# --- 2. the Debian mirror apt uses ------------------------------------------------

# Print "URI SUITE" for every enabled deb source, one-line and deb822 formats.
apt_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                          if (i + 1 <= NF) print $i, $(i + 1) }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        awk 'function flush(  u, s, nu, ns, i, j) {
                 if (types ~ /(^| )deb( |$)/ && enabled !~ /^(no|false)$/) {
                     nu = split(uris, u, " "); ns = split(suites, s, " ")
                     for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
                 }
                 types = uris = suites = enabled = ""
             }
             /^[ \t]*#/ { next }
             /^[ \t]*$/ { flush(); next }
             tolower($1) == "types:"   { $1 = ""; types = $0 }
             tolower($1) == "uris:"    { $1 = ""; uris = $0 }
             tolower($1) == "suites:"  { $1 = ""; suites = $0 }
             tolower($1) == "enabled:" { enabled = tolower($2) }
             END { flush() }' "$f"
    done
}

step "Debian mirror"
# shellcheck disable=SC1091
HOST_CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
SOURCES=$(apt_sources | awk '{ sub(/\/+$/, "", $1); print }')
MIRROR=$(awk -v a="$SUITE" -v b="$HOST_CODENAME" '$2 == a || $2 == b { print $1; exit }' <<<"$SOURCES")
SECURITY=$(awk -v a="$SUITE-security" -v b="$HOST_CODENAME-security" '$2 == a || $2 == b { print $1; exit }' <<<"$SOURCES")
HAS_UPDATES=$(awk -v a="$SUITE-updates" -v b="$HOST_CODENAME-updates" '$2 == a || $2 == b { print "yes"; exit }' <<<"$SOURCES")
[[ -n "$MIRROR" ]] || fail "no Debian archive for $SUITE${HOST_CODENAME:+ or $HOST_CODENAME} in /etc/apt/sources.list*"
info "archive:  $MIRROR ($SUITE${HAS_UPDATES:+, $SUITE-updates})"
info "security: ${SECURITY:-(none configured on this host: left out of the images)}"

# apt's proxy, if it has one, for debootstrap and the builds
APT_PROXY=""
eval "$(apt-config shell APT_PROXY Acquire::http::Proxy)"
if [[ -n "$APT_PROXY" && -z "${http_proxy:-}" ]]; then export http_proxy=$APT_PROXY; fi
BUILD_ARGS=()
for v in http_proxy https_proxy no_proxy; do
    [[ -n "${!v:-}" ]] && BUILD_ARGS+=(--build-arg "$v=${!v}")
done

# --- 3. base images: debootstrap --variant=minbase, cached ---------------------------

ARCH=$(dpkg --print-architecture)
DEBOOTSTRAP_INCLUDE=""
[[ $MIRROR == https:* || $SECURITY == https:* ]] && DEBOOTSTRAP_INCLUDE=ca-certificates

# What the official images add to a minbase tree (debuerreotype's
# minimizing config); `slim` also drops docs, man pages and translations.
finish_rootfs() {
    local r=$1 variant=$2
    rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
    rm -rf "$r"/var/lib/apt/lists/* "$r"/tmp/* "$r"/var/tmp/*
    mkdir -p "$r"/var/lib/apt/lists/partial
    find "$r"/var/log -type f -delete
    rm -f "$r"/var/cache/ldconfig/aux-cache
    : >"$r"/etc/machine-id
    : >"$r"/etc/resolv.conf
    echo localhost >"$r"/etc/hostname
    rm -f "$r"/etc/apt/sources.list
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s%s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$MIRROR" "$SUITE" "${HAS_UPDATES:+ $SUITE-updates}"
        if [[ -n "$SECURITY" ]]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$SECURITY" "$SUITE"
        fi
    } >"$r"/etc/apt/sources.list.d/debian.sources
    printf '#!/bin/sh\nexit 101\n' >"$r"/usr/sbin/policy-rc.d
    chmod 0755 "$r"/usr/sbin/policy-rc.d
    echo 'force-unsafe-io' >"$r"/etc/dpkg/dpkg.cfg.d/docker-apt-speedup
    cat >"$r"/etc/apt/apt.conf.d/docker-clean <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$r"/etc/apt/apt.conf.d/docker-no-languages
    echo 'Acquire::GzipIndexes "true";' >"$r"/etc/apt/apt.conf.d/docker-gzip-indexes
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r"/etc/apt/apt.conf.d/docker-autoremove-suggests
    if [[ $variant == slim ]]; then
        cat >"$r"/etc/dpkg/dpkg.cfg.d/docker <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
        find "$r"/usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
        find "$r"/usr/share/doc -mindepth 1 -depth -type d -empty -delete
        rm -rf "$r"/usr/share/man/* "$r"/usr/share/groff/* "$r"/usr/share/info/* \
            "$r"/usr/share/lintian/* "$r"/usr/share/linda/*
        find "$r"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    fi
}

# The cache is reused only when it was made from the same mirror, suite,
# architecture and recipe, completely (manifest written last, checksums
# match), and recently enough (security updates).
CACHE_KEY=$(printf '%s\n' "$SUITE" "$ARCH" "$MIRROR" "$SECURITY" "$HAS_UPDATES" "$DEBOOTSTRAP_INCLUDE" \
    "$(declare -f finish_rootfs)" | sha256sum | cut -c1-16)
BASE_FULL=$CACHE_DIR/debian-$SUITE-$ARCH.tar
BASE_SLIM=$CACHE_DIR/debian-$SUITE-slim-$ARCH.tar
MANIFEST=$CACHE_DIR/debian-$SUITE-$ARCH.manifest

cache_valid() {
    [[ $CACHE_DAYS -gt 0 && -f $MANIFEST && -f $BASE_FULL && -f $BASE_SLIM ]] || return 1
    [[ $(sed -n 's/^key=//p' "$MANIFEST") == "$CACHE_KEY" ]] || return 1
    [[ -n $(find "$MANIFEST" -mtime "-$CACHE_DAYS" 2>/dev/null) ]] || return 1
    (cd "$CACHE_DIR" && grep '^[0-9a-f]\{64\}  ' "$MANIFEST" | sha256sum --check --quiet --strict) 2>/dev/null
}

step "base images debian:$SUITE and debian:$SUITE-slim"
mkdir -p "$CACHE_DIR"
# one run at a time per cache (held until this script exits)
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
    info "another docker-test holds $CACHE_DIR/.lock: waiting"
    flock 9
fi
if cache_valid; then
    info "cached in $CACHE_DIR (made $(sed -n 's/^made=//p' "$MANIFEST"))"
else
    rm -f "$MANIFEST" "$BASE_FULL" "$BASE_SLIM"
    ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    info "debootstrap --variant=minbase $SUITE from $MIRROR (log: $CACHE_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --arch="$ARCH" ${DEBOOTSTRAP_INCLUDE:+--include=$DEBOOTSTRAP_INCLUDE} \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE_DIR/debootstrap.log" >&2
        rm -rf "$ROOTFS"
        fail "debootstrap failed"
    fi
    finish_rootfs "$ROOTFS" full
    tar --numeric-owner --xattrs -C "$ROOTFS" -cf "$BASE_FULL.tmp" .
    finish_rootfs "$ROOTFS" slim
    tar --numeric-owner --xattrs -C "$ROOTFS" -cf "$BASE_SLIM.tmp" .
    rm -rf "$ROOTFS"
    mv "$BASE_FULL.tmp" "$BASE_FULL"
    mv "$BASE_SLIM.tmp" "$BASE_SLIM"
    {
        echo "key=$CACHE_KEY"
        echo "made=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "mirror=$MIRROR"
        (cd "$CACHE_DIR" && sha256sum "$(basename "$BASE_FULL")" "$(basename "$BASE_SLIM")")
    } >"$MANIFEST.tmp"
    mv "$MANIFEST.tmp" "$MANIFEST"
    info "made $(du -h "$BASE_FULL" | cut -f1) + $(du -h "$BASE_SLIM" | cut -f1), cached in $CACHE_DIR"
fi

# --- 4. a private engine -----------------------------------------------------------

start_dockerd() {
    local driver=$1
    rm -rf "$WORK/data" "$WORK/exec"
    mkdir -p "$WORK/data" "$WORK/exec"
    # Own session (setsid) so that only we stop it; no default bridge and no
    # iptables or ip_forward changes: builds use the host's network, the stack
    # its own bridge networks, and published ports go through docker-proxy.
    setsid dockerd \
        --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/exec/dockerd.pid" \
        --host "unix://$WORK/exec/docker.sock" --storage-driver "$driver" \
        --bridge none --iptables=false --ip-forward=false --ip-masq=false \
        --default-address-pool "base=$ADDRESS_POOL,size=24" \
        --log-level warn >"$WORK/dockerd.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
    DOCKERD_PID=$!
    export DOCKER_HOST="unix://$WORK/exec/docker.sock"
    local i=0
    while [[ $i -lt 600 ]]; do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            DOCKERD_PID=""
            return 1
        fi
        docker version >/dev/null 2>&1 && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

step "private dockerd"
mkdir -p "$WORKDIR_PARENT"
WORK=$(mktemp -d "$WORKDIR_PARENT/amibridge-docker-test.XXXXXX")
if ! start_dockerd "$STORAGE_DRIVER"; then
    info "dockerd did not start with --storage-driver $STORAGE_DRIVER:"
    tail -n 15 "$WORK/dockerd.log" | sed 's/^/     /'
    stop_dockerd
    [[ $STORAGE_DRIVER != vfs ]] || fail "dockerd does not start here"
    info "retrying with --storage-driver vfs"
    start_dockerd vfs || { tail -n 30 "$WORK/dockerd.log" >&2; fail "dockerd does not start here"; }
fi
info "dockerd pid $DOCKERD_PID, $(docker info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}'), root $WORK"

# Traffic between containers on one bridge passes the host's FORWARD chain
# when br_netfilter is on; another Docker engine on the host sets its policy
# to DROP. Then let this engine's networks talk to each other, until teardown.
if [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null) == 1 ]] &&
    iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP'; then
    FORWARD_RULE=(FORWARD -s "$ADDRESS_POOL" -d "$ADDRESS_POOL" -m comment --comment amibridge-docker-test -j ACCEPT)
    iptables -I "${FORWARD_RULE[@]}" || fail "cannot add the FORWARD rule for $ADDRESS_POOL"
    info "FORWARD policy is DROP and br_netfilter is on: accepting $ADDRESS_POOL <-> $ADDRESS_POOL until teardown"
fi

step "import base images"
docker import --change 'CMD ["bash"]' "$BASE_FULL" "debian:$SUITE" >/dev/null
docker import --change 'CMD ["bash"]' "$BASE_SLIM" "debian:$SUITE-slim" >/dev/null
docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' debian | sed 's/^/   /'

# --- 5. build ------------------------------------------------------------------------

# BuildKit (built into Debian's engine and client); RUN steps use the host's
# network, which reaches the mirror, so the engine needs no NAT.
export DOCKER_BUILDKIT=1
build() { # LOGNAME docker-build-args...
    local name=$1 t0
    shift
    t0=$(date +%s)
    # the steps and their times here, everything in the log
    if ! docker build --network host --progress plain "${BUILD_ARGS[@]}" "$@" >"$LOG_DIR/build-$name.log" 2>&1; then
        tail -n 40 "$LOG_DIR/build-$name.log" | sed 's/^/   | /' >&2
        fail "docker build $* (log: $LOG_DIR/build-$name.log)"
    fi
    awk '/^#[0-9]+ \[/ { sub(/^#[0-9]+ /, ""); step = substr($0, 1, 100) }
         /^#[0-9]+ (DONE|CACHED)/ && step != "" { printf "   | %-100s %s\n", step, $2 == "CACHED" ? "cached" : $3; step = "" }
         /^#[0-9]+ [0-9.]+ runtime packages:/ { sub(/^#[0-9]+ [0-9.]+ /, ""); print "   | " $0 }' "$LOG_DIR/build-$name.log"
    ok "built $(grep -o -- '-t [^ ]*' <<<"$*" | cut -c4-) in $(($(date +%s) - t0)) s"
}

step "build $SIM_IMAGE (docker/Dockerfile, target ami-sim)"
build ami-sim -f docker/Dockerfile --target ami-sim -t "$SIM_IMAGE" .
step "build $BRIDGE_IMAGE (docker/Dockerfile, default target)"
build amibridge -f docker/Dockerfile -t "$BRIDGE_IMAGE" .
step "build $REDIS_IMAGE (Debian's redis-server, in place of the official image)"
build redis -t "$REDIS_IMAGE" - <<EOF
FROM debian:$SUITE-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
EOF

step "images"
docker images --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' | sed 's/^/   /'

# --- 6. the images themselves --------------------------------------------------------

step "image checks"
label() { docker image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$2\"}}" "$1"; }
for img in "$BRIDGE_IMAGE" "$SIM_IMAGE"; do
    for l in title description version source licenses; do
        [[ -n $(label "$img" "$l") ]] || fail "$img: label org.opencontainers.image.$l missing"
    done
    [[ $(label "$img" version) == "$VERSION" && $(label "$img" licenses) == MIT ]] ||
        fail "$img: version/licenses labels are $(label "$img" version)/$(label "$img" licenses)"
done
ok "OCI labels (title, description, version $VERSION, source, licenses MIT) on both images"
cfg=$(docker image inspect -f '{{.Config.User}} {{json .Config.ExposedPorts}} {{.Config.StopSignal}} {{json .Config.Healthcheck.Test}}' "$BRIDGE_IMAGE")
info "amibridge: $cfg"
[[ $cfg == '10001:10001 {"8080/tcp":{}} SIGTERM ["CMD","/usr/local/bin/amibridge","--healthcheck"]' ]] ||
    fail "amibridge image config (user, ports, stop signal, healthcheck)"
ok "amibridge: user 10001, EXPOSE 8080, STOPSIGNAL SIGTERM, HEALTHCHECK amibridge --healthcheck"
cfg=$(docker image inspect -f '{{.Config.User}} {{json .Config.ExposedPorts}} {{.Config.StopSignal}} {{if .Config.Healthcheck}}healthcheck{{end}}' "$SIM_IMAGE")
[[ $cfg == '10001:10001 {"5038/tcp":{}} SIGTERM healthcheck' ]] || fail "ami-sim image config: $cfg"
ok "ami-sim: user 10001, EXPOSE 5038, STOPSIGNAL SIGTERM, HEALTHCHECK (AMI banner)"
out=$(docker run --rm --network none "$BRIDGE_IMAGE" --version 2>&1) || fail "amibridge --version: $out"
ok "runs: $(head -n1 <<<"$out")"
out=$(docker run --rm --network none --entrypoint sh "$BRIDGE_IMAGE" -c \
    'command -v curl wget gcc make || true; ls /usr/share/man 2>/dev/null | head -n 3')
[[ -z $out ]] || fail "runtime image carries build or fetch tools/docs: $out"
ok "runtime image has no compiler, curl, wget or man pages"
rc=0
out=$(docker run --rm --network none -e AMIBRIDGE_AMI_USERNAME=u -e AMIBRIDGE_AMI_SECRET=s "$BRIDGE_IMAGE" 2>&1) || rc=$?
info "without API keys: exit $rc: $(head -n1 <<<"$out")"
[[ $rc -ne 0 ]] || fail "amibridge started on 0.0.0.0:8080 without API keys"
grep -qi 'key' <<<"$out" || fail "refusal does not name the API keys: $out"
ok "listens on 0.0.0.0:8080 in the container, so it refuses to start without API keys"

# --- 7. the compose stack ------------------------------------------------------------

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
HTTP_PORT=18080
while ! port_free "$HTTP_PORT" && [[ $HTTP_PORT -lt 18180 ]]; do HTTP_PORT=$((HTTP_PORT + 1)); done
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export AMIBRIDGE_API_KEYS="smoke:$TOKEN:read,call,control,actions,admin"
export AMIBRIDGE_PORT=$HTTP_PORT
export REDIS_IMAGE
# The asterisk profile, tested below with ami-sim standing in for an external
# Asterisk: the AMI secret comes from a file (readable by the container's uid).
printf 'amibridge-demo-secret\n' >"$WORK/ami-secret"
chmod 0644 "$WORK/ami-secret"
export ASTERISK_AMI_SECRET_FILE=$WORK/ami-secret ASTERISK_HOST=ami-sim
BASE=http://127.0.0.1:$HTTP_PORT

step "compose up (project $PROJECT, API on 127.0.0.1:$HTTP_PORT)"
compose config -q || fail "docker/compose.yaml does not validate"
compose --profile asterisk config -q || fail "docker/compose.yaml (profile asterisk) does not validate"
ok "compose.yaml validates, with and without the asterisk profile"
COMPOSE_UP=1
t0=$(date +%s)
if ! compose up -d --no-build 2>&1 | sed 's/^/   /'; then fail "compose up"; fi

step "wait for health"
health() { docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null || echo missing; }
declare -A CID
wait_healthy() { # SERVICE...
    local s h now last="" all deadline=$(($(date +%s) + 180))
    for s in "$@"; do CID[$s]=$(compose --profile asterisk ps -q "$s"); done
    while :; do
        now=""
        all=1
        for s in "$@"; do
            h=$(health "${CID[$s]}")
            now+="$s=$h "
            [[ $h == healthy ]] || all=0
            [[ $h == unhealthy ]] && fail "$s is unhealthy"
        done
        [[ $now != "$last" ]] && info "[$(elapsed)] $now"
        last=$now
        [[ $all -eq 1 ]] && return 0
        [[ $(date +%s) -lt $deadline ]] || fail "not all healthy after 180 s"
        sleep 1
    done
}
wait_healthy redis ami-sim amibridge
ok "redis, ami-sim and amibridge healthy $(($(date +%s) - t0)) s after compose up"

# --- 8. smoke test from the host ---------------------------------------------------------

step "smoke test from the host"
req() { # METHOD PATH [BODY] -> prints "STATUS BODY"
    local args=(-sS -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" --max-time 20)
    [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data "$3")
    local code
    code=$(curl "${args[@]}" "$BASE$2") || code="curl-error"
    printf '%s %s' "$code" "$(cat "$WORK/body" 2>/dev/null)"
}

r=$(curl -sS --max-time 10 -w ' %{http_code}' "$BASE/readyz") || fail "GET /readyz: no answer"
info "GET /readyz -> $r"
[[ $r == *' 200' ]] || fail "GET /readyz is not 200"
ok "GET /readyz 200 through the published port"

r=$(req POST /v1/actions/Ping '{}')
info "POST /v1/actions/Ping -> $r"
[[ $r == 200* && $r == *'"Pong"'* ]] || fail "generic Ping"
ok "POST /v1/actions/Ping: Pong from ami-sim, as the least-privilege AMI user"

# The event check listens from inside the stack's network, as a consumer
# would: a redis-cli container on the bus network, subscribed before the call.
BUS_NET=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "${CID[redis]}" | tr ' ' '\n' | grep '_bus$' || true)
[[ -n $BUS_NET ]] || fail "no *_bus network on the redis container"
SUB_NAME=$PROJECT-events
# (the engine warns that IPv4 forwarding is off: that only concerns traffic
# leaving the machine, which nothing here needs)
if ! docker run -d --name "$SUB_NAME" --network "$BUS_NET" --read-only --cap-drop ALL "$REDIS_IMAGE" \
    redis-cli -h redis --csv PSUBSCRIBE 'ami.*' 2>&1 >/dev/null | { grep -v 'IPv4 forwarding is disabled' || true; } >&2; then
    fail "could not start redis-cli on $BUS_NET"
fi
i=0
until docker logs "$SUB_NAME" 2>&1 | grep -q '"psubscribe","ami\.\*",1'; do
    [[ $i -lt 100 ]] || fail "redis-cli on $BUS_NET could not subscribe: $(docker logs "$SUB_NAME" 2>&1 | tail -n 3)"
    sleep 0.1
    i=$((i + 1))
done
info "subscribed to ami.* from a container on $BUS_NET"

r=$(req POST /v1/calls '{"channel":"Local/100@demo","context":"demo","exten":"100"}')
info "POST /v1/calls -> $r"
[[ $r == 200* && $r == *'"status":"answered"'* ]] || fail "click-to-dial against the simulator"
ok "POST /v1/calls Local/100@demo: answered"

i=0
while :; do
    events=$(docker logs "$SUB_NAME" 2>&1 | awk -F, '$1 == "\"pmessage\"" { gsub(/"/, "", $3); print $3 }')
    if grep -q '^ami\.default\.' <<<"$events" && docker logs "$SUB_NAME" 2>&1 | grep -q 'Local/100@demo'; then
        break
    fi
    if [[ $i -ge 150 ]]; then
        if [[ -z $events ]]; then
            fail "no AMI event on Redis (ami.*) within 15 s of the call: is the Redis event publisher in this build of amibridge?"
        fi
        fail "events on Redis, but none of ami.default.* about Local/100@demo: $(sort -u <<<"$events" | tr '\n' ' ')"
    fi
    sleep 0.1
    i=$((i + 1))
done
info "channels seen: $(sort <<<"$events" | uniq -c | awk '{ printf "%s%s x%d", sep, $2, $1; sep = ", " }')"
ok "AMI events of the call seen on Redis (ami.default.<Event>) through the container network"
docker rm -f "$SUB_NAME" >/dev/null
SUB_NAME=""

uid=$(docker exec "${CID[amibridge]}" id -u) || fail "docker exec id"
[[ $uid == 10001 ]] || fail "amibridge runs as uid $uid"
ok "amibridge runs as uid 10001 in a read-only container without capabilities"

# --- 9. clean stop ----------------------------------------------------------------------

step "stop (SIGTERM)"
t0=$(date +%s)
if ! compose stop -t 20 amibridge 2>&1 | sed 's/^/   /'; then fail "compose stop"; fi
took=$(($(date +%s) - t0))
code=$(docker inspect -f '{{.State.ExitCode}}' "${CID[amibridge]}")
info "amibridge exited with $code after ${took} s"
[[ $code == 0 ]] || fail "amibridge did not exit 0 on SIGTERM (exit $code; 137 = killed after the grace period)"
ok "amibridge stops cleanly on SIGTERM (exit 0, ${took} s)"

# --- 10. the asterisk profile ----------------------------------------------------------

step "profile asterisk (ami-sim standing in for an external Asterisk)"
t0=$(date +%s)
if ! compose --profile asterisk up -d --no-build amibridge-asterisk 2>&1 | sed 's/^/   /'; then
    fail "compose --profile asterisk up"
fi
wait_healthy amibridge-asterisk
ok "amibridge-asterisk healthy $(($(date +%s) - t0)) s after up (AMI secret from AMIBRIDGE_AMI_SECRET_FILE)"
r=$(req POST /v1/actions/Ping '{}')
info "POST /v1/actions/Ping -> $r"
[[ $r == 200* && $r == *'"Pong"'* ]] || fail "Ping through the asterisk profile"
ok "POST /v1/actions/Ping through the asterisk profile's bridge"
if ! compose --profile asterisk stop -t 20 amibridge-asterisk 2>&1 | sed 's/^/   /'; then fail "compose stop"; fi
code=$(docker inspect -f '{{.State.ExitCode}}' "${CID[amibridge-asterisk]}")
[[ $code == 0 ]] || fail "amibridge-asterisk did not exit 0 on SIGTERM (exit $code)"
ok "amibridge-asterisk stops cleanly on SIGTERM"
