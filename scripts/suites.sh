#!/usr/bin/env bash
# Runs the test suites named on the command line (Makefile targets) one after another, as
# `make test` does, and prints how long each took: a line as each one ends, and a table of all of
# them at the end, slowest first, so a suite that grows slower shows in every CI log. Stops at the
# first suite that fails (the table then says which) and exits with its status.
set -uo pipefail
make_cmd=${MAKE:-make}
names=()
secs=()
results=()
started=$(date +%s)

table() {
  echo
  echo "suite times (slowest first):"
  for i in "${!names[@]}"; do
    printf '%6d s  %-18s %s\n' "${secs[$i]}" "${names[$i]}" "${results[$i]}"
  done | sort -rn
  printf '%6d s  total\n' "$(($(date +%s) - started))"
}

for suite in "$@"; do
  echo "=== $suite"
  t0=$(date +%s)
  "$make_cmd" --no-print-directory "$suite"
  status=$?
  dt=$(($(date +%s) - t0))
  names+=("$suite")
  secs+=("$dt")
  if [ "$status" -ne 0 ]; then
    results+=("FAILED")
    echo "=== $suite failed after ${dt} s"
    table
    exit "$status"
  fi
  results+=("ok")
  echo "=== $suite passed in ${dt} s"
done
table
