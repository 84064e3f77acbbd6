#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI document: builds and starts the
# server on a fresh SQLite database (or on the PostgreSQL database named by
# WRENCHLINE_TEST_POSTGRES_URL, as scripts/with-postgres.sh provides), signs a mechanic in, seeds a few real sessions
# (tests/schemathesis/seed.py), then lets schemathesis generate requests for every operation of
# /api/openapi.json. Fails on any 5xx, any response that contradicts the document (schema,
# status code, content type, headers), any schema-valid request the server refuses with a 4xx
# other than 401/403/404/409/429 (positive_data_acceptance), any schema-invalid request it accepts
# (negative_data_rejection) and any schemathesis error. tests/schemathesis/hooks.py gives
# generated VINs their check digit, the one rule a pattern cannot state.
#
#   scripts/schemathesis.sh [EXAMPLES]    test cases per operation and phase (default 250, ~1 min)
#
# Environment: CARGO_TARGET_DIR, SCHEMATHESIS_VENV (default ~/.cache/wrenchline/venv),
# SCHEMATHESIS_SEED (replays a run), SCHEMATHESIS_REPORT_DIR (JSON/NDJSON/JUnit/HAR reports).
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-250}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wrenchline/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/wrenchline/venv}
here=tests/schemathesis
server_bin=$CARGO_TARGET_DIR/debug/wrenchline-server

# --- tools ----------------------------------------------------------------------------------------
wanted=$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")
if [ ! -x "$venv/bin/schemathesis" ] || [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $wanted" ]; then
  echo "schemathesis: installing schemathesis $wanted into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

# The server embeds the web UI, so its build needs ui/dist.
if [ ! -f ui/dist/index.html ]; then
  echo "schemathesis: building the web UI"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build)
fi
echo "schemathesis: building wrenchline-server"
cargo build --locked --workspace --bins --quiet

# --- the server -----------------------------------------------------------------------------------
work=$(mktemp -d /tmp/wrenchline-schemathesis.XXXXXX)
reports=${SCHEMATHESIS_REPORT_DIR:-$work/report}
database_url="${WRENCHLINE_TEST_POSTGRES_URL:-sqlite://$work/wrenchline.db}"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

"$server_bin" serve --bind 127.0.0.1:0 --database-url "$database_url" \
  --limits-file "$here/limits.toml" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
addr=""
for _ in $(seq 1 300); do
  addr=$(sed -n 's|^listening on http://||p' "$work/server.out")
  [ -n "$addr" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 20 "$work/server.log" >&2
    echo "schemathesis: the server exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "schemathesis: the server did not print its address within 30 s" >&2
  exit 1
fi
base=http://$addr
echo "schemathesis: server on $base, database $database_url"

email=schemathesis@wrenchline.test
password=$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))')
printf '%s\n' "$password" | "$server_bin" mechanic add --email "$email" --name "Schemathesis Mechanic" \
  --password-stdin --database-url "$database_url" >/dev/null
seeded=$("$venv/bin/python" "$here/seed.py" "$base" "$email" "$password")
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
SCHEMATHESIS_HOOKS="$here/hooks.py" "$venv/bin/schemathesis" "${args[@]}" || rc=$?

# A handler that panics shows up as a 500 above; a server that died shows up here.
if ! kill -0 "$server_pid" 2>/dev/null; then
  tail -n 30 "$work/server.log" >&2
  echo "schemathesis: the server died during the run" >&2
  rc=1
fi
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
