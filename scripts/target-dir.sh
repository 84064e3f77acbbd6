#!/usr/bin/env bash
# Prints the cargo target directory of this checkout: $CARGO_TARGET_DIR when set, else one under
# ~/.cache/wrenchline/targets named after the checkout's path. Each checkout keeps its own:
# cargo judges a workspace crate fresh by relative paths and times, so two checkouts sharing one
# directory could each run binaries the other built, with the other's paths compiled into them
# (its fixtures, its ui/dist). A clone made again at the same path finds its dependencies built.
set -euo pipefail
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  echo "$CARGO_TARGET_DIR"
  exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd -P)
key=$(printf '%s' "$root" | sha256sum | cut -c1-12)
echo "$HOME/.cache/wrenchline/targets/$(basename "$root")-$key"
