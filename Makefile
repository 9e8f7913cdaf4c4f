# amibridge — build, test, run.
#
#   make            build everything into build/
#   make deps       install missing Debian packages (apt-get)
#   make test       install what is missing, build, run every test
#   make stdwebhooks   webhook deliveries against the official Standard Webhooks verifier
#   make asan       the whole test suite under ASan + UBSan (build/asan)
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (default 60), FUZZ_JOBS at once (2)
#   make lint       clang-format check + cppcheck
#   make bench      benchmarks (bench/*.sh), figures printed and kept in bench/
#   make bench-guard   a minute of benchmarks that fails below half of a target (CI)
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean

VERSION := 0.1.0
BUILD ?= build
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 2

PKGS := gnutls jansson hiredis libcurl libuv nettle
# The tests check hashes and signatures with OpenSSL, an implementation other
# than the one they test, and speak TLS with it.
TEST_PKGS := cmocka libssl libcrypto
# Debian packages that provide the above, plus the tools the tests and
# benchmarks start. libcurl's GnuTLS flavour: its webhooks' TLS uses the
# GnuTLS and nettle that HTTPS loads anyway instead of setting OpenSSL up
# (memory). It replaces libcurl4-openssl-dev (apt removes that); libssl-dev
# is the tests'. libmicrohttpd is only the benchmarks' bare responder
# (build/mhd-baseline), the ceiling amibridge's HTTP is measured against.
DEB_PKGS := build-essential pkg-config libmicrohttpd-dev libgnutls28-dev nettle-dev \
            libjansson-dev libhiredis-dev libcurl4-gnutls-dev libuv1-dev libssl-dev \
            libcmocka-dev redis-server curl python3 nodejs
DEB_FUZZ_PKGS := clang libclang-rt-14-dev
DEB_LINT_PKGS := clang-format cppcheck

OPT ?= -O2 -g
SAN ?=
WARN := -Wall -Wextra -Wshadow -pedantic -Werror
# Lazily expanded: pkg-config runs in the make that compiles, which is a
# sub-make started after `deps` when libraries had to be installed.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(TEST_PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
CPPFLAGS_ALL = -D_GNU_SOURCE -DAMIBRIDGE_VERSION='"$(VERSION)"' -Isrc -Itests
CFLAGS_ALL = -std=c11 $(WARN) $(OPT) $(SAN) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

GEN_SRCS := $(BUILD)/gen/openapi_yaml.c $(BUILD)/gen/web_index_html.c $(BUILD)/gen/web_app_js.c \
            $(BUILD)/gen/web_style_css.c
LIB_SRCS := $(sort $(wildcard src/core/*.c src/ami/*.c src/http/*.c src/admit/*.c src/api/*.c src/bus/*.c src/call/*.c)) \
            $(GEN_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/libamibridge.a

# tests/sim/ holds the simulator and its own tests (test_*.c)
SIM_SRCS := $(sort $(filter-out tests/sim/test_%.c,$(wildcard tests/sim/*.c)))
SIM_OBJS := $(SIM_SRCS:%.c=$(BUILD)/obj/%.o)
SIM := $(if $(SIM_SRCS),$(BUILD)/ami-sim)

BRIDGE_SRCS := $(wildcard src/main.c)
BRIDGE := $(if $(BRIDGE_SRCS),$(BUILD)/amibridge)

BENCH_TOOL := $(BUILD)/ami-bench $(BUILD)/events-bench $(BUILD)/webhooks-bench
# 100 SSE streams read by one epoll loop: the fan-out figure of bench/run-all.sh
BENCH_TOOL += $(BUILD)/sse-bench
# load and abuse of a running bridge (tests/soak/run.sh)
BENCH_TOOL += $(BUILD)/soak
# a bare libmicrohttpd JSON responder: the ceiling of bench/run-all.sh
BENCH_TOOL += $(BUILD)/mhd-baseline
# requests at a fixed rate, open loop: the p99 figure of bench/run-all.sh
BENCH_TOOL += $(BUILD)/pace-bench
# how long the machine takes a busy core away: the first row of bench/run-all.sh
BENCH_TOOL += $(BUILD)/stall-probe

SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c tests/sim/test_*.c tests/integration/test_*.c \
                                 tests/replicas/test_*.c))
TEST_BINS := $(TEST_SRCS:%.c=$(BUILD)/%)

FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all deps ensure-deps check-deps test test-c test-build contract browser stdwebhooks run asan valgrind chaos fuzz fuzz-deps lint install clean bench \
        bench-all bench-guard \
        docker-test

all: check-deps $(LIB) $(SIM) $(BRIDGE) $(BENCH_TOOL)

# --- dependencies ----------------------------------------------------------

check-deps:
	@missing=""; for p in $(PKGS) $(TEST_PKGS); do \
	  pkg-config --exists $$p 2>/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "missing libraries:$$missing -- run 'make deps' (or 'make test', which does)" >&2; exit 1; fi

# Install only what is missing; refresh the package lists once if apt cannot
# find a package (a fresh machine has none).
deps:
	@sh tools/deps.sh $(DEB_PKGS)

ensure-deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists $(PKGS) $(TEST_PKGS) \
	    || ! command -v redis-server >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1 \
	    || ! command -v node >/dev/null 2>&1; then $(MAKE) --no-print-directory deps; fi

# --- build -----------------------------------------------------------------

# files the binary carries (no runtime lookups)
$(BUILD)/gen/openapi_yaml.c: openapi/openapi.yaml tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh openapi_yaml $< > $@

# the dashboard (web/): served at / by src/api/dashboard.c
$(BUILD)/gen/web_index_html.c: web/index.html tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh web_index_html $< > $@
$(BUILD)/gen/web_app_js.c: web/app.js tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh web_app_js $< > $@
$(BUILD)/gen/web_style_css.c: web/style.css tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh web_style_css $< > $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/ami-sim: $(SIM_OBJS) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $(SIM_OBJS) $(LIB) $(PKG_LIBS) -lm

$(BUILD)/ami-bench: $(BUILD)/obj/bench/ami_bench.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(PKG_LIBS) -lm

$(BUILD)/events-bench: $(BUILD)/obj/bench/events_bench.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(PKG_LIBS) -lm

$(BUILD)/sse-bench: $(BUILD)/obj/bench/sse_bench.o
	$(CC) $(LDFLAGS_ALL) -o $@ $<

$(BUILD)/soak: $(BUILD)/obj/tests/soak/soak.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(PKG_LIBS) -lm

$(BUILD)/pace-bench: $(BUILD)/obj/bench/pace_bench.o
	$(CC) $(LDFLAGS_ALL) -o $@ $<

$(BUILD)/stall-probe: $(BUILD)/obj/bench/stall_probe.o
	$(CC) $(LDFLAGS_ALL) -pthread -o $@ $<

$(BUILD)/mhd-baseline: $(BUILD)/obj/bench/mhd_baseline.o
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(shell pkg-config --libs libmicrohttpd)

# a real HTTP/1.1 receiver (tests/support/receiver.c, threaded) inside the tool;
# it checks signatures with libcrypto, not the code it measures
$(BUILD)/webhooks-bench: $(BUILD)/obj/bench/webhooks_bench.o $(BUILD)/obj/tests/support/receiver.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -pthread -o $@ $< $(BUILD)/obj/tests/support/receiver.o $(LIB) $(PKG_LIBS) \
	    $(shell pkg-config --libs libcrypto) -lm

$(BUILD)/amibridge: $(BUILD)/obj/src/main.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(PKG_LIBS) -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(SUPPORT_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -pthread -o $@ $< $(SUPPORT_OBJS) $(LIB) $(PKG_LIBS) $(TEST_LIBS) -lm

# reached only through the pattern rule above, these objects are intermediate
# files: make would delete them after linking, and every later make would
# compile every test program again
.SECONDARY: $(TEST_BINS:$(BUILD)/%=$(BUILD)/obj/%.o) $(SUPPORT_OBJS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- run -------------------------------------------------------------------

run: ensure-deps
	@$(MAKE) --no-print-directory all
	@bash tools/run.sh $(BUILD)

# --- test ------------------------------------------------------------------

test-build: check-deps $(LIB) $(SIM) $(BRIDGE) $(TEST_BINS)

test: ensure-deps
	@$(MAKE) --no-print-directory test-c
	@$(MAKE) --no-print-directory contract
	@$(MAKE) --no-print-directory stdwebhooks
	@$(MAKE) --no-print-directory browser

# the CMocka programs only (unit, the simulator's, integration, replicas)
test-c: ensure-deps
	@$(MAKE) --no-print-directory test-build
	@BUILD=$(BUILD) bash tests/run.sh $(TEST_BINS)

# OpenAPI lint (@redocly/cli) and the contract test of the real binary;
# Node.js comes from Debian when the machine has none
contract: ensure-deps
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || sh tools/deps.sh nodejs npm
	@$(MAKE) --no-print-directory $(SIM) $(BRIDGE)
	@sh tests/contract/run.sh $(BUILD)

# real deliveries checked by the official Standard Webhooks verifier (npm
# standardwebhooks) and by a Python verifier written from the spec
stdwebhooks: ensure-deps
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || sh tools/deps.sh nodejs npm
	@$(MAKE) --no-print-directory $(SIM) $(BRIDGE)
	@sh tests/standard-webhooks/run.sh $(BUILD)

# the live dashboard in Debian's headless Chromium (playwright-core from npm)
browser: ensure-deps
	@[ -x /usr/bin/chromium ] || sh tools/deps.sh chromium
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || sh tools/deps.sh nodejs npm
	@$(MAKE) --no-print-directory $(SIM) $(BRIDGE)
	@sh tests/browser/run.sh $(BUILD)

# every CMocka program with its binaries under ASan + UBSan (the contract
# and the browser check replies and pages, which the sanitizers do not change)
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-c

# faults under steady load (tests/chaos): prints the table in bench/README.md
CHAOS_BIN := $(BUILD)/tests/chaos/test_chaos
chaos: ensure-deps
	@$(MAKE) --no-print-directory $(LIB) $(SIM) $(BRIDGE) $(CHAOS_BIN)
	@AMIBRIDGE_TEST_BUILD=$(BUILD) AMIBRIDGE_TEST_DATA=tests/data $(CHAOS_BIN)

# every amibridge and ami-sim the integration and replica tests start, under
# valgrind memcheck; fails on any invalid access or definite/indirect leak
VALGRIND_TESTS = $(filter $(BUILD)/tests/sim/% $(BUILD)/tests/integration/% $(BUILD)/tests/replicas/%,$(TEST_BINS))
valgrind: ensure-deps
	@command -v valgrind >/dev/null 2>&1 || sh tools/deps.sh valgrind
	@$(MAKE) --no-print-directory test-build
	@bash tools/valgrind.sh $(BUILD) $(VALGRIND_TESTS)

# --- containers ------------------------------------------------------------

# docker/Dockerfile and docker/compose.yaml for real (root, Debian 12): a
# private dockerd, debootstrapped base images (cached in build/docker-base),
# the compose stack up, a smoke test from the host, everything torn down.
docker-test:
	@bash docker/test.sh

# --- benchmarks ------------------------------------------------------------

bench: ensure-deps
	@command -v wrk >/dev/null 2>&1 || sh tools/deps.sh wrk
	@$(MAKE) --no-print-directory all
	@bash bench/actions.sh $(BUILD)
	@bash bench/events.sh $(BUILD)
	@bash bench/webhooks.sh $(BUILD)

# every headline figure against its ceiling and target, one table
# (bench/run-all.sh; WEBHOOKS=1 adds bench/webhooks.sh, 3 more minutes)
bench-all: ensure-deps
	@command -v wrk >/dev/null 2>&1 || sh tools/deps.sh wrk
	@command -v valgrind >/dev/null 2>&1 || sh tools/deps.sh valgrind
	@$(MAKE) --no-print-directory all
	@bash bench/run-all.sh $(BUILD)

# a minute of the same figures, failing when one falls below half of its
# target or the instructions per request grow by a third (bench/guard.sh):
# the regression guard CI runs
bench-guard: ensure-deps
	@command -v wrk >/dev/null 2>&1 || sh tools/deps.sh wrk
	@command -v valgrind >/dev/null 2>&1 || sh tools/deps.sh valgrind
	@$(MAKE) --no-print-directory all
	@bash bench/guard.sh $(BUILD)

# --- soak ------------------------------------------------------------------

# load and abuse (tests/soak/run.sh): soak-short for CI (about a minute),
# soak with the full numbers (1,000,000 requests, 5,000 idle connections)
.PHONY: soak soak-short
soak: ensure-deps
	@$(MAKE) --no-print-directory all
	@bash tests/soak/run.sh $(BUILD) long

soak-short: ensure-deps
	@$(MAKE) --no-print-directory all
	@bash tests/soak/run.sh $(BUILD) short

# --- fuzz ------------------------------------------------------------------

FUZZ_CC := clang
FUZZ_BASE := -std=c11 -g -O1 $(CPPFLAGS_ALL)
FUZZ_FLAGS := $(FUZZ_BASE) -fsanitize=fuzzer,address,undefined

# the whole library, instrumented once, linked into every target
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_LIB := $(BUILD)/fuzz/libamibridge-fuzz.a

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer-no-link,address,undefined $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

# a changed header rebuilds the instrumented objects too
-include $(shell find $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB) $(PKG_LIBS) -lm

# clang when missing: a target of its own so that CI installs it before it
# starts `make docker-test` (which runs apt too) alongside the fuzzing
fuzz-deps: ensure-deps
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || sh tools/deps.sh $(DEB_FUZZ_PKGS)

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@bash tools/fuzz.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_BINS)

# --- lint ------------------------------------------------------------------

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src tests -name '*.[ch]')

lint:
	@command -v clang-format >/dev/null 2>&1 && command -v cppcheck >/dev/null 2>&1 \
	  || sh tools/deps.sh $(DEB_LINT_PKGS)
	clang-format --dry-run --Werror $(C_FILES)
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
	  --inline-suppr -D_GNU_SOURCE -Isrc -Itests $(C_FILES)

# --- install / clean -------------------------------------------------------

install: all
	$(if $(SIM),install -D -m 0755 $(SIM) $(DESTDIR)$(PREFIX)/bin/ami-sim)
	$(if $(BRIDGE),install -D -m 0755 $(BRIDGE) $(DESTDIR)$(PREFIX)/bin/amibridge)
	$(if $(wildcard openapi/openapi.yaml),install -D -m 0644 openapi/openapi.yaml $(DESTDIR)$(PREFIX)/share/amibridge/openapi.yaml)
	install -D -m 0644 docs/amibridge.service $(DESTDIR)$(PREFIX)/share/amibridge/amibridge.service

clean:
	rm -rf build
