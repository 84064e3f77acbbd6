# Sourced (from the repository root) by the scripts that build and run release binaries of the
# server and the load generator (bench.sh, soak.sh): the cargo target dir, `$release`, and the web
# UI that the server embeds at build time.
export CARGO_TARGET_DIR=$(scripts/target-dir.sh)
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
release="$CARGO_TARGET_DIR/release"

scripts/ui-build.sh
