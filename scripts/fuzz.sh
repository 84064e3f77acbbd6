#!/usr/bin/env bash
# Fuzzes the realtime wire types (crates/protocol) with cargo-fuzz/libFuzzer: builds every target
# in fuzz/, runs each for a bounded time, and fails if any of them crashes. See fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS per target (default 20); all targets by default
#
# libFuzzer needs nightly compiler flags (-Zsanitizer=address, sancov passes). On the stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them, so no nightly is needed.
# Each target first replays its known reproducers (fuzz/regressions/<target>/), then fuzzes from
# the seeds captured from realtime-js (fuzz/corpus/<target>/) plus its working corpus. Targets run
# side by side, one per core (FUZZ_JOBS overrides), each for the full SECONDS.
# Environment: FUZZ_TARGET_DIR (build dir), FUZZ_WORK (the growing working corpora),
# FUZZ_SANITIZER (address by default; `none` builds and runs faster), FUZZ_FEATURES (features of
# the fuzz crate to build with; it has none of its own today).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
if command -v rustup >/dev/null 2>&1; then
  export RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable}
fi
# Beside the checkout's own target directory (scripts/target-dir.sh), for the same reason.
target_dir=${FUZZ_TARGET_DIR:-$(CARGO_TARGET_DIR= scripts/target-dir.sh)-fuzz}
work=${FUZZ_WORK:-$HOME/.cache/wrenchline/fuzz-corpus}
sanitizer=${FUZZ_SANITIZER:-address}
features=${FUZZ_FEATURES:-}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# -O: optimised; -a: debug assertions on, so integer overflow and debug_assert! count as crashes.
build_flags=(--fuzz-dir fuzz --target-dir "$target_dir" -O -a --sanitizer "$sanitizer")
[ -z "$features" ] || build_flags+=(--features "$features")
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer${features:+, features: $features})"
cargo fuzz build "${build_flags[@]}" >"${TMPDIR:-/tmp}/wrenchline-fuzz-build.log" 2>&1 || {
  tail -n 40 "${TMPDIR:-/tmp}/wrenchline-fuzz-build.log" >&2
  echo "fuzz: build failed" >&2
  exit 1
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/wrenchline-fuzz.XXXXXX")
# One target: replay its reproducers, fuzz it, and leave its summary line in $logs/$t.summary
# (and $logs/$t.failed when it failed).
fuzz_one() {
  local t=$1 r replay="" rc=0 execs rate
  # New inputs go to the working corpus (kept between runs); fuzz/corpus/<target> holds the
  # committed seeds captured from realtime-js and is only read.
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  local regressions=(fuzz/regressions/"$t"/*)
  if [ -e "${regressions[0]}" ]; then
    # Given files rather than directories, libFuzzer runs each once and stops at the first crash.
    for r in "${regressions[@]}"; do
      if ! cargo fuzz run "${build_flags[@]}" "$t" "$r" >"$logs/$t.replay.log" 2>&1; then
        replay+=" ${r##*/}"
        echo "fuzz: $t crashes on the known reproducer $r:" >&2
        grep -m1 -A2 'panicked at' "$logs/$t.replay.log" | cut -c1-400 >&2 || true
      fi
    done
  fi
  echo "fuzz: $t for ${seconds}s"
  cargo fuzz run "${build_flags[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -n 1)
  if [ "$rc" -ne 0 ] || grep -qE '^==[0-9]+==|^SUMMARY: libFuzzer' "$logs/$t.log"; then
    touch "$logs/$t.failed"
    printf '%-14s %12s executions  %8s/s  CRASH (exit %s)\n' "$t" "${execs:-?}" "${rate:-?}" "$rc" >"$logs/$t.summary"
    echo "fuzz: $t FAILED (log: $logs/$t.log):" >&2
    { grep -m1 -A3 -E 'panicked at|^==[0-9]+==ERROR' "$logs/$t.log" | cut -c1-600
      grep -A2 -E '^Failing input:' "$logs/$t.log"; } >&2 || true
  elif [ -n "$replay" ]; then
    touch "$logs/$t.failed"
    printf '%-14s %12s executions  %8s/s  ok, but known reproducers crash:%s\n' "$t" "${execs:-?}" "${rate:-?}" "$replay" >"$logs/$t.summary"
  else
    printf '%-14s %12s executions  %8s/s  ok\n' "$t" "${execs:-?}" "${rate:-?}" >"$logs/$t.summary"
  fi
}

# libFuzzer runs one process on one core: FUZZ_JOBS targets (default: one per core) run side by
# side, each for the full SECONDS.
jobs=${FUZZ_JOBS:-$(nproc)}
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait || true

failed=()
summary=()
for t in "${targets[@]}"; do
  summary+=("$(cat "$logs/$t.summary" 2>/dev/null || printf '%-14s did not finish' "$t")")
  if [ -e "$logs/$t.failed" ] || [ ! -e "$logs/$t.summary" ]; then failed+=("$t"); fi
done

echo
echo "fuzz: ${seconds}s per target; logs in $logs"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing: ${failed[*]}; new crashes are in fuzz/artifacts/<target>/ (re-run one with" >&2
  echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -O -a <target> fuzz/artifacts/<target>/<file>)" >&2
  exit 1
fi
echo "fuzz: no crashes"
