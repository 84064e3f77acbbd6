# The one entry point for building, running and testing Wrenchline. `make run` and `make test`
# set everything up first (scripts/setup.sh), so both work on a fresh Debian or Ubuntu machine.

SHELL := /bin/bash
# Every suite finds the binaries it runs here (tests/support/server.mjs reads it too).
export CARGO_TARGET_DIR := $(shell scripts/target-dir.sh)
export CARGO_TERM_COLOR ?= never
# Every debug build and test run is `--workspace`, so dependency features unify the same way each
# time and one compile serves every suite (a `-p` build compiles about 110 crates again). Binaries
# are built with `--bins --examples`: examples bring in the dev-dependencies' features as the test
# build does, where `--bins` alone compiles reqwest and the workspace crates above it once more.
BIN := $(CARGO_TARGET_DIR)/debug
DATABASE_URL ?= sqlite://wrenchline.db
BIND ?= 127.0.0.1:8080
# The Chromium the test suites drive headless (Debian's: Playwright's download does not work here).
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup ui run serve cluster test test-rust test-postgres test-s3 test-realtime test-cluster test-browser test-desktop test-fuzz test-schemathesis test-bundle test-deploy bundle bench bench-quick soak measure-desk lint ui-check browser-deps

setup:
	@scripts/setup.sh

# ui/dist, built only when ui/'s sources changed (scripts/ui-build.sh keeps a content hash), so the
# release server and the desktop app that embed it are not compiled again by every suite.
ui: setup
	@scripts/ui-build.sh

# Server on embedded SQLite with a demo mechanic; with a display, the desktop app beside it, its
# sign-in form filled in with the demo mechanic the server printed (debug builds read
# WRENCHLINE_DEMO_SIGN_IN), so one click leads to the request list.
run: ui
	cargo build -p wrenchline-server -p wrenchline-desk
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  out=$$(mktemp); \
	  $(BIN)/wrenchline-server serve --demo --bind $(BIND) --database-url $(DATABASE_URL) > >(tee "$$out") & server=$$!; \
	  trap "kill $$server; rm -f $$out" EXIT; \
	  for _ in $$(seq 100); do grep -q '^demo mechanic:' "$$out" && break; sleep 0.1; done; \
	  url=$$(sed -n 's/^listening on \(http[^ ]*\)$$/\1/p' "$$out" | head -n1); \
	  demo=$$(sed -n 's|^demo mechanic: \([^ ]*\) / \([^ ]*\)$$|\1 \2|p' "$$out" | head -n1); \
	  WRENCHLINE_DEMO_SIGN_IN="$$url $$demo" $(BIN)/wrenchline-desk; \
	else \
	  echo "no display: running the server alone"; \
	  exec $(BIN)/wrenchline-server serve --demo --bind $(BIND) --database-url $(DATABASE_URL); \
	fi

# A cluster on this machine: PostgreSQL, Redis, three nodes and HAProxy in front
# (deploy/haproxy.cfg), the customer link and the demo mechanic printed; Ctrl-C stops them all.
cluster: ui
	cargo build --workspace --bins --examples --locked
	scripts/cluster.sh

# The server alone.
serve: ui
	cargo run -p wrenchline-server -- serve --demo --bind $(BIND) --database-url $(DATABASE_URL)

# Everything CI runs, in order: front-end checks and build, formatting, lints, the Rust suite on
# SQLite, the storage and API suite again on PostgreSQL.
# Each suite's time is printed as it ends and in a table at the end (scripts/suites.sh).
SUITES := ui-check lint test-rust test-postgres test-s3 test-realtime test-cluster test-browser test-desktop test-fuzz \
  test-schemathesis test-bundle bench-quick test-deploy
test: setup
	@scripts/suites.sh $(SUITES)
	@echo "make test: all suites passed"

# The TypeScript wire types in ui/src/lib/generated must match crates/protocol (ts-rs; regenerate
# with scripts/ui-types.sh), then type checks and unit tests.
ui-check: ui
	scripts/ui-types.sh --check
	cd ui && npm run check && npm test

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# In the kill -9 test of both runs one customer is the real chat page in Chromium
# (WRENCHLINE_BROWSER; without it the test runs its Rust clients alone and says so).
test-rust: ui browser-deps
	WRENCHLINE_BROWSER=$(CHROMIUM) cargo nextest run --workspace --locked --no-fail-fast \
	  -E 'not binary_id(wrenchline-server::redis)'

test-postgres: ui browser-deps
	WRENCHLINE_BROWSER=$(CHROMIUM) scripts/with-postgres.sh cargo nextest run --workspace --locked --no-fail-fast \
	  -E 'binary_id(wrenchline-server::api)'

# The S3 media store (--media-url) against moto's S3-API server from PyPI (scripts/with-s3.sh).
test-s3: ui
	scripts/with-s3.sh cargo nextest run --workspace --locked --no-fail-fast --run-ignored all \
	  -E 'binary_id(wrenchline-server::api) and test(/^attachments::s3_/)'

# Chromium and tests/browser's npm packages, for test-rust and test-postgres.
browser-deps: setup
	@[ -x $(CHROMIUM) ] || { echo "browser-deps: installing Debian's chromium"; \
	  sudo_=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo_ apt-get update -qq && $$sudo_ apt-get install -y -qq chromium; }
	@scripts/npm-deps.sh tests/browser

# The unmodified @supabase/realtime-js and phoenix clients from npm against the real server.
test-realtime: ui
	cargo build --workspace --bins --examples --locked
	scripts/npm-deps.sh tests/realtime
	cd tests/realtime && npm test

# Three nodes on a throwaway PostgreSQL and Redis (real processes; tests/cluster/README.md): the
# shared counters, presence expiry and reaper against Redis, then the Node suite with the unmodified realtime-js of
# tests/realtime (customer and mechanic on different nodes, the accept race, kill -9 of a node,
# Redis killed and restarted, a rolling restart), and the customer page in Chromium through HAProxy
# (deploy/haproxy.cfg) in front of the cluster.
test-cluster: ui browser-deps
	cargo build --workspace --bins --examples --locked
	scripts/npm-deps.sh tests/realtime
	scripts/with-postgres.sh scripts/with-redis.sh bash -c \
	  'cargo nextest run --workspace --run-ignored all --locked \
	   -E "binary_id(wrenchline-server::redis) | binary_id(wrenchline-server::cluster)" \
	   && (cd tests/cluster && npm test) \
	   && cd tests/browser && node --test --test-timeout=300000 test/cluster.test.mjs'

# The customer's pages in headless Chromium against the real server, the mechanic played by the
# Rust client; screenshots at 375 and 1280 px go to tests/artifacts/browser/.
test-browser: setup
	tests/browser/run.sh

# A short bounded run of every fuzz target (after replaying known reproducers); a long run is
# `scripts/fuzz.sh 3600`, see fuzz/README.md.
test-fuzz: setup
	scripts/fuzz.sh 15

# schemathesis against /api/openapi.json of a running server: no 5xx, every response as documented;
# on SQLite and on a throwaway PostgreSQL cluster (which refuses what SQLite stores, U+0000), the
# two runs side by side after one build, each with its full 250 examples per operation and phase.
test-schemathesis: ui
	scripts/schemathesis.sh --sqlite-and-postgres

# Signed .deb and .rpm of the desktop app and of wrenchline-server, SHA256SUMS and updater
# signatures into dist/, with keys from the environment (see docs/deploy.md).
bundle: ui
	scripts/bundle.sh --skip-ui

# The bundle command with throwaway keys, every signature verified, tampered copies refused.
test-bundle: ui
	tests/bundle/run.sh --skip-ui

# The server package installed into a throwaway root (maintainer scripts, systemd-analyze verify),
# the nginx and Caddy configs on Debian's nginx and caddy, the realtime flow through each of them in
# front of the packaged server, and the guide's backup and PostgreSQL steps. Packs the release server
# that bench-quick built (builds it when missing).
test-deploy: ui
	tests/deploy/run.sh

# The desktop app as a real window under Xvfb, driven through tauri-driver, with a session D-Bus,
# a notification daemon and an unlocked gnome-keyring, against a real server.
test-desktop: ui
	tests/desktop/run.sh

# Every benchmark scenario beside the bare relay and Socket.IO, release builds; a table and
# bench/results/latest.json. `bench-quick` is the small version CI runs so it cannot rot.
bench: ui
	scripts/bench.sh

bench-quick: ui
	scripts/bench.sh --quick

# Not part of `test`: 10,000 realtime connections for 30 minutes with churn, failing unless there
# were no errors and the server's memory and file descriptors stayed flat (docs/soak.md).
# Smaller or longer: make soak SOAK_ARGS="--connections 2000 --duration 5m".
soak: ui
	scripts/soak.sh $(SOAK_ARGS)

# Not part of `test`: the release desktop app beside a bare Tauri window built the same way, under
# Xvfb: launch to interactive, idle memory of the app and its WebKit processes, binary and .deb size.
measure-desk: ui
	scripts/measure-desk.sh
