#!/usr/bin/env bash
# Builds the web UI (ui/dist: `vite build`) only when what it is built from changed, so that a
# second `make ui` touches nothing. ui/dist is embedded by the release wrenchline-server and by
# the desktop app: new file times there make cargo compile both again, so every suite that needs
# the UI calls this instead of `npm run build`.
#
#   scripts/ui-build.sh           build when the inputs changed (or ui/dist is incomplete)
#   scripts/ui-build.sh --force   build in any case
#
# The inputs are hashed by content (file names and bytes): ui/src, the two HTML entry points,
# package.json and package-lock.json, the Vite, Svelte and TypeScript configs, and the installed
# packages' lockfile (ui/node_modules/.package-lock.json). The hash of the last build is kept in
# ui/node_modules/.cache/wrenchline-dist.sha256, beside Vite's own cache and outside ui/dist, which
# the server serves file by file. Installs ui/node_modules first when it is missing or older than
# package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../ui"

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "ui-build.sh: unknown argument $1" >&2; exit 2 ;;
esac

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

stamp=node_modules/.cache/wrenchline-dist.sha256
inputs() {
  find src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  sha256sum index.html desktop.html package.json package-lock.json vite.config.ts svelte.config.js \
    tsconfig.json node_modules/.package-lock.json
}
hash=$(inputs | sha256sum | cut -d' ' -f1)

if [ "$force" = 0 ] && [ -f dist/index.html ] && [ -f dist/desktop.html ] && [ -f "$stamp" ] \
   && [ "$(cat "$stamp")" = "$hash" ]; then
  echo "ui-build.sh: ui/dist is up to date"
  exit 0
fi
rm -f "$stamp"
npm run build
mkdir -p "$(dirname "$stamp")"
echo "$hash" > "$stamp"
