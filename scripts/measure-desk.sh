#!/usr/bin/env bash
# Measures the desktop app beside its baseline, a bare Tauri window (bench/desk-baseline) built
# the same way: both release builds bundled as .deb by the same Tauri CLI, then launched under Xvfb
# with a session D-Bus, a notification daemon and an unlocked keyring (tests/desktop/measure.sh):
# launch to first window, launch to interactive, idle PSS of the app and its WebKit processes, and
# the sizes of the binary and the .deb. Prints a table with the ratios. Not part of `make test`.
#
#   scripts/measure-desk.sh             3 launches each (RUNS=5 for more)
#   SKIP_BUILD=1 scripts/measure-desk.sh   measure the binaries and .debs built last time
#   scripts/measure-desk.sh --build-only   build both into $CARGO_TARGET_DIR/desk-measure and print
#                                       that folder (`make bench` measures them, `--desk-dir`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=$(scripts/target-dir.sh)
out="$CARGO_TARGET_DIR/desk-measure"
tauri="$root/packaging/node_modules/.bin/tauri"

if [ -z "${SKIP_BUILD:-}" ]; then
  (cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build) >&2
  (cd packaging && { [ -x "$tauri" ] || npm ci --no-audit --no-fund --loglevel=error; }) >&2
  rm -rf "$out" && mkdir -p "$out"
  # Tauri writes every bundle to the same folder; each .deb is copied out before the next build.
  for app in wrenchline:. baseline:bench/desk-baseline; do
    label=${app%%:*} dir=${app#*:}
    rm -rf "$CARGO_TARGET_DIR/release/bundle/deb"
    (cd "$dir" && "$tauri" build --ci --bundles deb) >&2
    cp "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb "$out/$label.deb"
  done
  cp "$CARGO_TARGET_DIR/release/wrenchline-desk" "$out/wrenchline"
  cp "$CARGO_TARGET_DIR/release/wrenchline-desk-baseline" "$out/baseline"
fi
if [ "${1:-}" = --build-only ]; then
  echo "$out"
  exit 0
fi

bin_wrenchline="$CARGO_TARGET_DIR/release/wrenchline-desk"
bin_baseline="$CARGO_TARGET_DIR/release/wrenchline-desk-baseline"
RUNS=${RUNS:-3} tests/desktop/measure.sh wrenchline="$bin_wrenchline" baseline="$bin_baseline" \
  | tee "$out/measure.txt"

python3 - "$out" "$bin_wrenchline" "$bin_baseline" <<'PY'
import os, re, statistics, sys
out, bins = sys.argv[1], {"wrenchline": sys.argv[2], "baseline": sys.argv[3]}
runs = {}
for line in open(os.path.join(out, "measure.txt")):
    m = re.match(r"(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+([\d.]+)", line)
    if m:
        runs.setdefault(m[1], []).append(m.groups()[2:])
def median(label, i):
    vals = [float(r[i]) for r in runs.get(label, []) if re.fullmatch(r"[\d.]+", r[i])]
    return statistics.median(vals) if vals else None
rows = [
    ("launch to first window (ms)", lambda l: median(l, 0)),
    ("launch to interactive (ms)", lambda l: median(l, 1)),
    ("idle PSS, app + WebKit (MiB)", lambda l: median(l, 2)),
    ("binary (MiB)", lambda l: os.path.getsize(bins[l]) / 2**20),
    (".deb (MiB)", lambda l: os.path.getsize(os.path.join(out, l + ".deb")) / 2**20
        if os.path.exists(os.path.join(out, l + ".deb")) else None),
]
print(f"\n{'median of the runs':32} {'wrenchline':>12} {'bare Tauri':>12} {'ratio':>8}")
for name, f in rows:
    a, b = f("wrenchline"), f("baseline")
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    ratio = f"{a / b:.2f}x" if a and b else "-"
    print(f"{name:32} {fmt(a):>12} {fmt(b):>12} {ratio:>8}")
PY
