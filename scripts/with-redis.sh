#!/usr/bin/env bash
# Runs a command beside a throwaway Redis server (temporary directory, loopback only, no
# persistence) and stops it afterwards. The command sees WRENCHLINE_TEST_REDIS_URL, and
# WRENCHLINE_TEST_REDIS_PORT and WRENCHLINE_TEST_REDIS_DIR so that a test can stop the server and
# start it again on the same port (`redis-server "$WRENCHLINE_TEST_REDIS_DIR/redis.conf"`).
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
  echo "Redis is not installed (apt-get install redis-server)" >&2
  exit 1
fi
port=${WRENCHLINE_REDIS_PORT:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
dir=$(mktemp -d /tmp/wrenchline-redis.XXXXXX)
cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
dir $dir
save ""
appendonly no
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
CONF
stop() {
  if [ -s "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  for _ in $(seq 50); do [ -e "$dir/redis.pid" ] || break; sleep 0.1; done
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
redis-server "$dir/redis.conf"
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
export WRENCHLINE_TEST_REDIS_URL="redis://127.0.0.1:$port"
export WRENCHLINE_TEST_REDIS_PORT="$port"
export WRENCHLINE_TEST_REDIS_DIR="$dir"
"$@"
