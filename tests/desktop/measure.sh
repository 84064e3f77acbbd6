#!/usr/bin/env bash
# Measures a desktop binary under Xvfb: launch to first window mapped, launch to interactive (the
# app logs "ui ready N ms after launch" when the UI's first command arrives), idle memory (PSS of
# the process and its WebKit children from /proc/*/smaps_rollup, 10 s after launch, signed out)
# and the binary's size. Give binaries as "label=path"; a binary without the log line (a bare
# Tauri window built the same way, for comparison) gets the window figure only.
#
#   tests/desktop/measure.sh wrenchline=$CARGO_TARGET_DIR/release/wrenchline-desk [bare=/path/to/bare]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${WL_MEASURE_INNER:-}" ]; then
  run_home="$(mktemp -d /tmp/wl-measure-home.XXXXXX)"
  trap 'rm -rf "$run_home" 2>/dev/null || { sleep 2; rm -rf "$run_home"; }' EXIT
  env -i PATH="$PATH" LANG=C.UTF-8 HOME="$run_home" WL_MEASURE_INNER=1 RUNS="${RUNS:-3}" \
    xvfb-run --auto-servernum --server-args="-screen 0 1366x850x24" \
    dbus-run-session -- "$here/measure.sh" "$@"
  exit
fi

eval "$(printf 'pw' | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null
dunst -config /dev/null >/dev/null 2>&1 & dunst_pid=$!
trap 'kill $dunst_pid 2>/dev/null' EXIT

descendants() { # pid and all its descendants
  local p=$1; echo "$p"
  for c in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$p" '$4==p {print $1}'); do descendants "$c"; done
}
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

printf '%-12s %-4s %10s %12s %10s %s\n' binary run map_ms ready_ms pss_MiB "pss by process (KiB)"
for spec in "$@"; do
  label="${spec%%=*}"; bin="${spec#*=}"
  for run in $(seq "$RUNS"); do
    rm -rf "$HOME/.local/share/dev.wrenchline.desk" "$HOME/.config/dev.wrenchline.desk"
    t0=$(now_ms)
    "$bin" >/tmp/wl-measure-$label.log 2>&1 & pid=$!
    map=""
    for _ in $(seq 1500); do
      if xwininfo -root -tree 2>/dev/null | grep -qE '"(Wrenchline|BareTauri)"'; then map=$(( $(now_ms) - t0 )); break; fi
      sleep 0.01
    done
    sleep 10
    ready=$(grep -o 'ui ready [0-9]* ms' /tmp/wl-measure-$label.log | grep -o '[0-9]*' | head -1 || true)
    total=0; detail=""
    for p in $(descendants $pid); do
      kb=$(pss_kb "$p"); total=$((total + kb))
      detail+="$(tr -d '\0' < /proc/$p/comm 2>/dev/null || echo ?):$kb "
    done
    printf '%-12s %-4s %10s %12s %10.1f %s\n' "$label" "$run" "${map:-?}" "${ready:--}" "$(echo "$total/1024" | bc -l)" "$detail"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    sleep 1
  done
  printf '%-12s size %s bytes (%s MiB)\n' "$label" "$(stat -c %s "$bin")" "$(echo "$(stat -c %s "$bin")/1048576" | bc -l | cut -c1-5)"
done
