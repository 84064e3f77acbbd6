#!/usr/bin/env bash
# Installs a Node project's packages (`npm ci`) only when they are missing or older than its
# package-lock.json, so that the suites sharing tests/realtime, bench/socketio or packaging do not
# reinstall the same tree each time. npm writes node_modules/.package-lock.json at every install;
# a lockfile newer than it means the installed tree may differ from the locked one.
#
#   scripts/npm-deps.sh DIR...
set -euo pipefail

for dir in "$@"; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
     || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
