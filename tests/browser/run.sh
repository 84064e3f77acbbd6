#!/usr/bin/env bash
# The browser suite in one command, for CI and people: builds the web shell, the server and the
# scriptable mechanic, installs what the suite needs, and runs every test in test/ with Node's
# test runner. Exits non-zero when anything fails.
#
#   tests/browser/run.sh                    # the mechanic is crates/client's example when present
#   WRENCHLINE_MECHANIC=node tests/browser/run.sh   # the Node stand-in (mechanic-standin.mjs)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ ! -x "$chromium" ]; then
  echo "run.sh: installing Debian's chromium (the Playwright browser download does not work here)"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq chromium
fi

echo "run.sh: building the web shell"
"$root/scripts/ui-build.sh"

# The whole workspace's binaries and examples, as the other suites build them (the same features,
# so no second compile): wrenchline-server (it embeds ui/dist) and the mechanic example.
echo "run.sh: building wrenchline-server and the mechanic example"
(cd "$root" && cargo build --workspace --bins --examples --locked)

cd "$here"
"$root/scripts/npm-deps.sh" "$here"

rm -rf "$root/tests/artifacts/browser"
echo "run.sh: running the browser suite (mechanic: ${WRENCHLINE_MECHANIC:-default})"
node --test --test-concurrency=3 --test-timeout=300000 --test-reporter=spec test/
