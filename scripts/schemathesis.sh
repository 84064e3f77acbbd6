#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI document: builds the server, starts
# it through the shared test harness (tests/support/server.mjs: port 0, a fresh SQLite database or
# the PostgreSQL database named by WRENCHLINE_TEST_POSTGRES_URL, as scripts/with-postgres.sh
# provides, and a mechanic added with the CLI), which runs this script again beside it; that run
# signs the mechanic in, seeds a few real sessions (tests/schemathesis/seed.py), then lets
# schemathesis generate requests for every operation of
# /api/openapi.json. Fails on any 5xx, any response that contradicts the document (schema,
# status code, content type, headers), any schema-valid request the server refuses with a 4xx
# other than 401/403/404/409/429 (positive_data_acceptance), any schema-invalid request it accepts
# (negative_data_rejection) and any schemathesis error. tests/schemathesis/hooks.py gives
# generated VINs their check digit, the one rule a pattern cannot state.
#
#   scripts/schemathesis.sh [EXAMPLES]    test cases per operation and phase (default 250, ~2 min)
#   scripts/schemathesis.sh --sqlite-and-postgres [EXAMPLES]
#                                         the same on SQLite and, at the same time, on a throwaway
#                                         PostgreSQL cluster (scripts/with-postgres.sh): one build,
#                                         two independent runs side by side (each schemathesis is
#                                         one Python process on one core), their output printed one
#                                         after the other; fails when either fails. What CI runs.
#
# Environment: CARGO_TARGET_DIR (where the server is built and found), SCHEMATHESIS_VENV (default ~/.cache/wrenchline/venv),
# SCHEMATHESIS_SEED (replays a run), SCHEMATHESIS_REPORT_DIR (JSON/NDJSON/JUnit/HAR reports).
set -euo pipefail
cd "$(dirname "$0")/.."

both=0
if [ "${1:-}" = --sqlite-and-postgres ]; then
  both=1
  shift
fi
examples=${1:-250}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/wrenchline/venv}
here=tests/schemathesis

if [ -z "${WL_BASE:-}" ]; then
# --- tools ----------------------------------------------------------------------------------------
wanted=$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")
if [ ! -x "$venv/bin/schemathesis" ] || [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $wanted" ]; then
  echo "schemathesis: installing schemathesis $wanted into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

# The server embeds the web UI, so its build needs ui/dist.
scripts/ui-build.sh
echo "schemathesis: building wrenchline-server"
cargo build --locked --workspace --bins --examples --quiet

if [ "$both" = 1 ]; then
  logs=$(mktemp -d /tmp/wrenchline-schemathesis-both.XXXXXX)
  reports=${SCHEMATHESIS_REPORT_DIR:-}
  env -u WRENCHLINE_TEST_POSTGRES_URL SCHEMATHESIS_REPORT_DIR=${reports:+$reports/sqlite} \
    "$0" "$examples" >"$logs/sqlite.log" 2>&1 &
  sqlite_pid=$!
  SCHEMATHESIS_REPORT_DIR=${reports:+$reports/postgres} scripts/with-postgres.sh "$0" "$examples" \
    >"$logs/postgres.log" 2>&1 &
  postgres_pid=$!
  sqlite_rc=0
  postgres_rc=0
  wait "$sqlite_pid" || sqlite_rc=$?
  wait "$postgres_pid" || postgres_rc=$?
  for engine in sqlite postgres; do
    echo "=== schemathesis on $engine"
    cat "$logs/$engine.log"
  done
  rm -rf "$logs"
  echo "schemathesis: SQLite exit $sqlite_rc, PostgreSQL exit $postgres_rc"
  [ "$sqlite_rc" = 0 ] && [ "$postgres_rc" = 0 ]
  exit
fi

# --- the server (the harness runs this script again with WL_BASE set) -----------------------------
export SCHEMATHESIS_WORK
SCHEMATHESIS_WORK=$(mktemp -d /tmp/wrenchline-schemathesis.XXXXXX)
exec node tests/support/server.mjs --postgres --mechanic schemathesis@wrenchline.test \
  --log-file "$SCHEMATHESIS_WORK/server.log" --arg --limits-file --arg "$here/limits.toml" \
  -- "$0" "$examples"
fi

work=$SCHEMATHESIS_WORK
reports=${SCHEMATHESIS_REPORT_DIR:-$work/report}
base=$WL_BASE
seeded=$("$venv/bin/python" "$here/seed.py" "$base" "$WL_MECHANIC_EMAIL" "$WL_MECHANIC_PASSWORD")
eval "$seeded"
export WL_SESSION_ID WL_END_ID WL_OFFERED_ID WL_CUSTOMER_ID WL_CUSTOMER_COOKIE

# --- the run --------------------------------------------------------------------------------------
# One worker: with several, Hypothesis parses lambdas' source from threads, which trips a CPython
# 3.11 bug ("SystemError: AST constructor recursion depth mismatch", fixed in later releases).
args=(
  --config-file "$here/schemathesis.toml"
  run "$base/api/openapi.json"
  -H "Authorization: Bearer $WL_TOKEN"
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance,positive_data_acceptance,negative_data_rejection
  --max-examples "$examples"
  --workers 1
  --request-timeout 10
  --no-color
  --report json,ndjson,junit,har
  --report-dir "$reports"
)
[ -z "${SCHEMATHESIS_SEED:-}" ] || args+=(--seed "$SCHEMATHESIS_SEED")
rc=0
# A handler that panics shows up as a 500; a server that died is reported by the harness.
SCHEMATHESIS_HOOKS="$here/hooks.py" "$venv/bin/schemathesis" "${args[@]}" || rc=$?
report=$(ls -t "$reports"/json-*.json 2>/dev/null | head -n 1)
events=$(ls -t "$reports"/ndjson-*.ndjson 2>/dev/null | head -n 1)
if [ -n "$report" ]; then
  "$venv/bin/python" - "$report" "$events" <<'EOF'
import collections, json, sys
r = json.load(open(sys.argv[1]))
t = r["test_cases"]
# Requests sent per operation, by phase and by whether the data was meant to be valid.
sent = collections.defaultdict(collections.Counter)
if sys.argv[2]:
    for line in open(sys.argv[2]):
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        for case in finished["recorder"].get("cases", {}).values():
            value = case["value"]
            meta = value.get("meta") or {}
            counts = sent[f"{value['method']} {value['path']}"]
            counts[finished["phase"]] += 1
            counts[meta.get("generation", {}).get("mode", "?")] += 1
# Requests with a method the path does not have (405 probes) are counted apart.
probes = sum(c["coverage"] for c in sent.values() if not (c["positive"] or c["fuzzing"]))
operations = sorted((o for o, c in sent.items() if c["positive"] or c["fuzzing"]), key=lambda o: o.split(" ", 1)[::-1])
if operations:
    columns = ["coverage", "fuzzing", "stateful", "positive", "negative"]
    print(f"{'operation':<40}" + "".join(f"{c:>10}" for c in columns))
    for operation in operations:
        print(f"{operation:<40}" + "".join(f"{sent[operation][c]:>10}" for c in columns))
    print(f"and {probes} requests with methods the paths do not have")
print(
    f"schemathesis: {t['generated']} test cases generated for {r['operations']['tested']} operations "
    f"(seed {r['seed']}); {t['with_failures']} with failures ({t['unique_failures']} unique), "
    f"{t['errored']} errored, {len(r['errors'])} errors"
)
EOF
fi
echo "schemathesis: reports in $reports, server log $work/server.log"
if [ "$rc" -ne 0 ]; then
  echo "schemathesis: FAILED (exit $rc)" >&2
  exit "$rc"
fi
echo "schemathesis: no failures"
