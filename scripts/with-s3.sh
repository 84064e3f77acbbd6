#!/usr/bin/env bash
# Runs a command beside a throwaway S3-API server: moto's server mode from PyPI, in a venv under
# ~/.cache/wrenchline/moto (made with Debian's python3-venv and filled once), on a free loopback
# port, with an empty bucket. The command sees WRENCHLINE_TEST_S3_URL (an --media-url for that
# bucket: s3://BUCKET?endpoint=…&allow_http=true) and the AWS_* variables object_store reads
# (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). The server is stopped afterwards.
#
#   scripts/with-s3.sh CMD [ARGS…]
set -euo pipefail

moto_version=5.2.6
venv=${WRENCHLINE_S3_VENV:-$HOME/.cache/wrenchline/moto}
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/pip" show moto 2>/dev/null | grep -qx "Version: $moto_version"; then
  echo "with-s3: installing moto[server]==$moto_version into $venv" >&2
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/wrenchline-s3.XXXXXX.log)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
stop() {
  kill "$moto" 2>/dev/null || true
  wait "$moto" 2>/dev/null || true
  rm -f "$log"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$endpoint/" 2>/dev/null && break
  kill -0 "$moto" 2>/dev/null || { cat "$log" >&2; echo "with-s3: moto_server did not start" >&2; exit 1; }
  sleep 0.1
done
bucket=wrenchline-test
curl -fsS -o /dev/null -X PUT "$endpoint/$bucket" \
  || { cat "$log" >&2; echo "with-s3: cannot create the bucket" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=wrenchline-test AWS_SECRET_ACCESS_KEY=wrenchline-test AWS_REGION=us-east-1
export WRENCHLINE_TEST_S3_URL="s3://$bucket?endpoint=$endpoint&allow_http=true"
"$@"
