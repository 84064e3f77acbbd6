#!/usr/bin/env bash
# A Wrenchline cluster on this machine, for trying it out (`make cluster`): a throwaway PostgreSQL
# (scripts/with-postgres.sh) and Redis (scripts/with-redis.sh), three `wrenchline-server serve`
# nodes on them, and HAProxy in front with deploy/haproxy.cfg (its TLS listener swapped for plain
# HTTP on loopback, its nodes for these three). Prints the customer link (through HAProxy) and the
# demo mechanic as `make run` does; Ctrl-C stops everything and removes the data.
#
#   scripts/cluster.sh [--port PORT] [--nodes N]
#
# PORT is HAProxy's port on 127.0.0.1 (default 8080, or a free one when 8080 is taken); the nodes
# listen on free loopback ports. The server binary is $WRENCHLINE_SERVER_BIN, else the debug build
# in $CARGO_TARGET_DIR. Try a failure: `kill -9` a node's pid (printed), or stop Redis, and watch
# the chat carry on.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
port=""
nodes=3
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    *) echo "cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "${WRENCHLINE_TEST_POSTGRES_URL:-}" ] || [ -z "${WRENCHLINE_TEST_REDIS_URL:-}" ]; then
  args=(--nodes "$nodes")
  [ -n "$port" ] && args+=(--port "$port")
  exec "$root/scripts/with-postgres.sh" "$root/scripts/with-redis.sh" "$0" "${args[@]}"
fi

export CARGO_TARGET_DIR=$("$root/scripts/target-dir.sh")
bin=${WRENCHLINE_SERVER_BIN:-$CARGO_TARGET_DIR/debug/wrenchline-server}
[ -x "$bin" ] || { echo "cluster.sh: no server at $bin (cargo build -p wrenchline-server)" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "cluster.sh: HAProxy is not installed (scripts/setup.sh)" >&2; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_free() { /usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $1))" 2>/dev/null; }
if [ -z "$port" ]; then
  if port_free 8080; then port=8080; else port=$(free_port); fi
fi

work=$(mktemp -d /tmp/wrenchline-cluster.XXXXXX)
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The nodes: node-1 seeds the demo mechanic (a new password at each start, so only one node does),
# all of them trust HAProxy's X-Forwarded-For for their per-address limits.
for i in $(seq "$nodes"); do
  demo=()
  [ "$i" = 1 ] && demo=(--demo)
  WRENCHLINE_TRUSTED_PROXIES=127.0.0.1 WRENCHLINE_LOG=${WRENCHLINE_LOG:-info,sqlx=warn} \
    "$bin" serve --bind 127.0.0.1:0 --database-url "$WRENCHLINE_TEST_POSTGRES_URL" \
    --redis-url "$WRENCHLINE_TEST_REDIS_URL" --node-id "node-$i" \
    --public-url "http://127.0.0.1:$port" --ready-file "$work/node-$i.json" "${demo[@]}" \
    >"$work/node-$i.log" 2>&1 &
  pids+=($!)
done
addresses=()
for i in $(seq "$nodes"); do
  for _ in $(seq 600); do
    [ -s "$work/node-$i.json" ] && break
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { echo "node-$i exited:" >&2; tail -n 20 "$work/node-$i.log" >&2; exit 1; }
    sleep 0.1
  done
  url=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$work/node-$i.json")
  addresses+=("${url#http://}")
done

# HAProxy: the shipped config with loopback addresses; every other line as shipped.
sed_args=(
  -e "s#^    bind :443 ssl .*#    bind 127.0.0.1:$port#"
  -e '/^    bind :80$/d'
  -e '/redirect scheme https/d'
  -e 's#^    log /dev/log local0#    log stderr format short local0 notice#'
  -e 's#^    maxconn .*#    maxconn 4096#'
  -e '/^    server node[0-9]/d'
)
/usr/bin/sed "${sed_args[@]}" "$root/deploy/haproxy.cfg" >"$work/haproxy.cfg.base"
servers=""
for i in $(seq "$nodes"); do servers+="    server node$i ${addresses[$((i - 1))]}\n"; done
# The server lines go back where the shipped ones were: after each backend's default-server.
/usr/bin/awk -v servers="$servers" '{ print } /^    default-server / { printf "%s", servers }' \
  "$work/haproxy.cfg.base" >"$work/haproxy.cfg"
haproxy -c -q -f "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
  sleep 0.1
done

demo=$(sed -n 's/^demo mechanic: //p' "$work/node-1.log" | head -n1)
echo
echo "Wrenchline cluster: $nodes nodes on PostgreSQL and Redis, HAProxy in front"
for i in $(seq "$nodes"); do
  echo "  node-$i  http://${addresses[$((i - 1))]}  pid ${pids[$((i - 1))]}  log $work/node-$i.log"
done
echo "  PostgreSQL $WRENCHLINE_TEST_POSTGRES_URL"
echo "  Redis      $WRENCHLINE_TEST_REDIS_URL"
echo "  HAProxy    $base  pid ${pids[$nodes]}  log $work/haproxy.log"
echo
echo "listening on $base"
echo "customer link: $base/intake"
echo "demo mechanic: $demo"
echo "(the desktop app signs in at $base; Ctrl-C stops everything)"
wait "${pids[$nodes]}"
