#!/usr/bin/env bash
# Soak test of wrenchline-server: holds many realtime connections for a long time in the mix
# production sees (mechanics on the request feed, customer/mechanic pairs in live sessions with
# presence and messages), with connections dropping and coming back and sessions ending and
# starting all the time; samples the server's memory, file descriptors and threads, and fails
# unless there were no errors and memory and descriptors stayed flat. Not part of `make test`.
# See docs/soak.md.
#
#   scripts/soak.sh                                  10,000 connections for 30 minutes
#   scripts/soak.sh --connections 2000 --duration 5m
# Any other arguments go to `wrenchline-bench soak` (e.g. --churn 0.01 --session-churn 2
# --message-interval 5s --out bench/results/soak.json); `wrenchline-bench soak --help` lists them.
# The run is niced (SOAK_NICE, default 10) so that it yields to interactive work on a shared
# machine; the figures it judges are memory and descriptors, not latency.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/release-env.sh
nice -n "${SOAK_NICE:-10}" cargo build --release --locked -p wrenchline-server -p wrenchline-bench

# The load generator and the server are two processes, each with its own open-file limit:
# raise the soft limit to the hard one here so both inherit it.
ulimit -n "$(ulimit -Hn)"
exec nice -n "${SOAK_NICE:-10}" "$release/wrenchline-bench" soak \
  --server-bin "$release/wrenchline-server" \
  "$@"
