#!/usr/bin/env bash
# Benchmarks wrenchline-server on loopback, side by side with a bare tokio-tungstenite relay (the
# limit) and a Socket.IO server (the peer), all driven by bench/'s load generator: relay sweep,
# live sessions, idle connections, persisted chat (SQLite, PostgreSQL, and three nodes of a
# cluster on PostgreSQL and Redis with every message crossing nodes), request fan-out, the
# accept race, and 100,000 connections held across the nodes of a cluster (one load generator
# process per node, each under the open-file limit), and the desktop app beside a bare Tauri
# window (size of binary and .deb, launch to interactive). Prints a table and writes
# bench/results/latest.json.
#
#   scripts/bench.sh           the full run (about 50 minutes on 2 cores), the desktop app included
#   scripts/bench.sh --quick   seconds per scenario, small sizes: for CI; fails only when a
#                              scenario cannot run, never on a missed target
# Any other arguments go to `wrenchline-bench suite` (e.g. --only relay,idle --runs 5 --no-pin).
# On a machine shared with other work, --priority -10 gives this session's scheduling group (the
# load generator, the servers, PostgreSQL) precedence for the duration; the results record it,
# and every measuring window reports the CPU other processes still took ("other load cores").
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/release-env.sh
cargo build --release --locked -p wrenchline-server -p wrenchline-bench
scripts/npm-deps.sh bench/socketio

# The desktop app and a bare Tauri window, both release builds with their .debs, for the desk
# scenario: in a full run, or when --only names desk.
desk=()
only=""; quick=""; prev=""
for a in "$@"; do
  case "$a" in --quick) quick=1 ;; --only=*) only=${a#--only=} ;; esac
  [ "$prev" = --only ] && only=$a
  prev=$a
done
if [ -z "$quick" ] && { [ -z "$only" ] || [[ ",$only," == *,desk,* ]]; }; then
  desk=(--desk-dir "$(scripts/measure-desk.sh --build-only)")
fi

# A throwaway PostgreSQL cluster on its own port and a throwaway Redis, removed afterwards.
export WRENCHLINE_PG_PORT=${WRENCHLINE_BENCH_PG_PORT:-55439}
exec scripts/with-postgres.sh scripts/with-redis.sh "$release/wrenchline-bench" suite \
  --server-bin "$release/wrenchline-server" \
  --bare-bin "$release/bare-relay" \
  --socketio-dir bench/socketio \
  --out bench/results/latest.json \
  "${desk[@]}" "$@"
