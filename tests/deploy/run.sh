#!/usr/bin/env bash
# The server package and the proxy configs as an operator uses them, on Debian 12's own tools:
#  1. packaging/server/build-packages.sh packs the release binary; dpkg-deb and rpm list what the
#     packages hold.
#  2. The .deb is installed into a throwaway root (dpkg --root, maintainer scripts run chrootless
#     with DPKG_ROOT): the system user, the environment file's owner and mode, an upgrade that
#     keeps an edited environment file, removal and purge; `systemd-analyze verify` checks the
#     installed unit against that root.
#  3. `nginx -t` (Debian's nginx) and `caddy validate` (Debian's caddy) accept the shipped configs,
#     run as an unprivileged user in temp dirs; the newer directives they offer commented out are
#     refused by these versions, which is why they are commented. `haproxy -c` (Debian's haproxy)
#     accepts the cluster's deploy/haproxy.cfg.
#  4. The packaged binary serves on SQLite as the unit starts it (--env-file), a mechanic is added
#     with the guide's command, nginx with the shipped config and a self-signed certificate runs in
#     front of it on loopback ports, and tests/deploy/through-proxy.test.mjs runs the realtime flow
#     through it (realtime-js over the upgraded WebSocket); the access log holds no query string.
#     Then the same through Caddy with the shipped Caddyfile (its internal CA instead of ACME).
#  5. The guide's SQLite backup (sqlite3 .backup while the server runs) restores, and its
#     PostgreSQL steps (createuser -P, createdb -O, as the postgres user, on a cluster with
#     Debian's default authentication) switch the server over.
#
#   tests/deploy/run.sh [--bin PATH]
#
# PATH defaults to $CARGO_TARGET_DIR/release/wrenchline-server, built when missing or stale (with
# the benchmark's command: CI compiles it once). Nothing outside one temp dir is touched; the
# servers, nginx and PostgreSQL it starts listen on free loopback ports and stop with it.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=$("$root/scripts/target-dir.sh")
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

started=$SECONDS
passed=0
failed=0
work=$(mktemp -d -t wrenchline-deploy.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "PASS  $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
check() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/      /' "$work/last.log" | tail -n 20; fi; }
reject() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then bad "$name (accepted)"; sed 's/^/      /' "$work/last.log" | tail -n 5; else ok "$name"; fi; }
summary() { echo; echo "deploy test: $((SECONDS - started))s"; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- tools (scripts/setup.sh installs them; here only what is still missing) -----------------
need=()
for pair in dpkg-deb:dpkg-dev rpmbuild:rpm objdump:binutils systemd-analyze:systemd \
            systemd-sysusers:systemd nginx:nginx caddy:caddy openssl:openssl sqlite3:sqlite3 \
            setpriv:util-linux haproxy:haproxy; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  "$root/scripts/setup.sh" >/dev/null || { echo "cannot install ${need[*]}"; exit 1; }
fi
# Config tests and the proxy run as an unprivileged user, as a careful operator would test.
unpriv=()
if [ "$(id -u)" = 0 ]; then unpriv=(setpriv --reuid=nobody --regid=nogroup --clear-groups --); fi

# --- 1. the packages -----------------------------------------------------------------------
if [ -z "$bin" ]; then
  bin="$CARGO_TARGET_DIR/release/wrenchline-server"
  # Missing, or older than the sources it is built from: build it with scripts/bench.sh's own
  # command, so that the benchmark and this test share one build.
  if [ ! -x "$bin" ] || [ -n "$(find "$root/crates/server" "$root/crates/protocol" "$root/ui/dist" \
        -newer "$bin" -type f -print -quit 2>/dev/null)" ]; then
    "$root/scripts/ui-build.sh"
    echo "building the release server (cargo build --release -p wrenchline-server -p wrenchline-bench)"
    (cd "$root" && cargo build --release --locked -p wrenchline-server -p wrenchline-bench) \
      || { bad "release build"; summary; exit 1; }
  fi
fi
version=$("$bin" --version | awk '{ print $2 }')
pkg="$work/pkg"
if "$root/packaging/server/build-packages.sh" --bin "$bin" --out "$pkg" >"$work/build.log" 2>&1; then
  ok "packaging/server/build-packages.sh built the .deb and .rpm of $version"
else
  bad "packaging/server/build-packages.sh"; cat "$work/build.log"; summary; exit 1
fi
deb="$pkg/wrenchline-server_${version}_amd64.deb"
rpm_file="$pkg/wrenchline-server-${version}-1.x86_64.rpm"

expected=(./usr/bin/wrenchline-server ./usr/lib/systemd/system/wrenchline-server.service
  ./usr/lib/sysusers.d/wrenchline-server.conf ./etc/wrenchline/wrenchline-server.env
  ./usr/share/doc/wrenchline-server/deploy.md ./usr/share/doc/wrenchline-server/README.md
  ./usr/share/doc/wrenchline-server/copyright
  ./usr/share/doc/wrenchline-server/examples/nginx-wrenchline.conf
  ./usr/share/doc/wrenchline-server/examples/Caddyfile
  ./usr/share/doc/wrenchline-server/examples/wrenchline-server.env)
dpkg-deb -c "$deb" | awk '{ print $NF }' > "$work/deb.list"
rpm -qlp "$rpm_file" 2>/dev/null > "$work/rpm.list"
missing_deb=(); missing_rpm=()
for f in "${expected[@]}"; do
  grep -qx -- "$f" "$work/deb.list" || missing_deb+=("$f")
  grep -qx -- "${f#.}" "$work/rpm.list" || missing_rpm+=("${f#.}")
done
[ ${#missing_deb[@]} -eq 0 ] && ok "the .deb holds the binary, unit, sysusers file, env file, guide and examples" \
  || bad "the .deb lacks ${missing_deb[*]}"
[ ${#missing_rpm[@]} -eq 0 ] && ok "the .rpm holds the same files" || bad "the .rpm lacks ${missing_rpm[*]}"
check "dpkg-deb: package wrenchline-server $version, depends on libc6 and systemd, env file is a conffile" bash -c "
  [ \"\$(dpkg-deb -f '$deb' Package Version | tr '\n' ' ')\" = 'Package: wrenchline-server Version: $version ' ] &&
  dpkg-deb -f '$deb' Depends | grep -q 'libc6 (>= 2\.' && dpkg-deb -f '$deb' Depends | grep -q systemd &&
  dpkg-deb -I '$deb' conffiles | grep -qx /etc/wrenchline/wrenchline-server.env"
check "rpm: version $version, creates the user in %pre, the env file is %config(noreplace)" bash -c "
  [ \"\$(rpm -qp --qf '%{NAME} %{VERSION}' '$rpm_file' 2>/dev/null)\" = 'wrenchline-server $version' ] &&
  rpm -qp --scripts '$rpm_file' 2>/dev/null | grep -q 'useradd -r -g wrenchline' &&
  rpm -qpc '$rpm_file' 2>/dev/null | grep -qx /etc/wrenchline/wrenchline-server.env"
check "the packaged binary embeds the web UI" bash -c "dpkg-deb --fsys-tarfile '$deb' | tar -xO ./usr/bin/wrenchline-server | grep -qa 'desktop.html'"

# --- 2. a throwaway root -------------------------------------------------------------------
R="$work/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc" "$R/var/log"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
# The root's dependencies (libc6, systemd) are the host's; only this package goes in.
dpkg_r() { dpkg --root="$R" --force-script-chrootless --force-depends --log="$R/var/log/dpkg.log" "$@"; }
check "dpkg --root -i: unpacked, postinst configured it" dpkg_r -i "$deb"
check "dpkg lists wrenchline-server $version as installed in the root" bash -c \
  "dpkg-query --root='$R' -W -f='\${Status} \${Version}' wrenchline-server | grep -qx 'install ok installed $version'"
check "postinst made the system user wrenchline (home /var/lib/wrenchline, no login)" \
  grep -qE '^wrenchline:x:[0-9]+:[0-9]+:Wrenchline server:/var/lib/wrenchline:/usr/sbin/nologin$' "$R/etc/passwd"
gid=$(awk -F: '$1 == "wrenchline" { print $3 }' "$R/etc/group")
check "the environment file is 0640 root:wrenchline, its folder 0750" bash -c "
  [ \"\$(stat -c '%a %u %g' '$R/etc/wrenchline/wrenchline-server.env')\" = '640 0 $gid' ] &&
  [ \"\$(stat -c '%a %u %g' '$R/etc/wrenchline')\" = '750 0 $gid' ]"
echo "# edited by the operator" >> "$R/etc/wrenchline/wrenchline-server.env"
check "an upgrade (same package again) keeps the edited environment file and the user" bash -c "
  dpkg --root='$R' --force-script-chrootless --force-depends --force-confold --log=/dev/null -i '$deb' &&
  grep -q 'edited by the operator' '$R/etc/wrenchline/wrenchline-server.env' &&
  [ \"\$(grep -c '^wrenchline:' '$R/etc/passwd')\" = 1 ]"
# systemd-analyze needs the units the service's unit depends on: the host's, copied in.
mkdir -p "$R/usr/lib/systemd/system"
cp -an /lib/systemd/system/. "$R/usr/lib/systemd/system/" 2>/dev/null
analyze() { local out; out=$(systemd-analyze verify --root="$R" --man=no "$@" 2>&1); local rc=$?; echo "$out"; [ $rc = 0 ] && [ -z "$out" ]; }
check "systemd-analyze verify: the installed unit has no error or warning" analyze /usr/lib/systemd/system/wrenchline-server.service
sed 's/^ExecStart=.*/ExecStart=\/usr\/bin\/wrenchline-server-missing serve/; s/^User=/Usr=/' \
  "$R/usr/lib/systemd/system/wrenchline-server.service" > "$R/usr/lib/systemd/system/broken-wrenchline.service"
reject "systemd-analyze verify refuses a unit with a typo and a missing binary" analyze /usr/lib/systemd/system/broken-wrenchline.service
rm -f "$R/usr/lib/systemd/system/broken-wrenchline.service"
installed_bin="$R/usr/bin/wrenchline-server"
installed_env="$R/etc/wrenchline/wrenchline-server.env"
cp "$installed_bin" "$work/wrenchline-server"
cp "$installed_env" "$work/installed.env"

# --- 3. the configs, as Debian 12's nginx and caddy read them --------------------------------
cert="$work/cert"
mkdir -p "$cert" "$work/nginx/log" "$work/nginx/acme/.well-known/acme-challenge" "$work/caddy"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$cert/privkey.pem" -out "$cert/fullchain.pem" 2>/dev/null
chmod -R a+rX "$work/cert" "$work/nginx" "$work/caddy"
chmod -R a+w "$work/nginx" "$work/caddy"
server_port=$(free_port)
http_port=$(free_port)
https_port=$(free_port)
# The shipped file with only its paths and ports replaced: certificates, logs and the ACME root
# in the temp dir, listening on free loopback ports, the upstream where the server runs.
sed -e "s#/etc/letsencrypt/live/wrenchline.example.com/#$cert/#" \
    -e "s#/var/log/nginx/#$work/nginx/log/#" \
    -e "s#root /var/www/html;#root $work/nginx/acme;#" \
    -e "s#server 127.0.0.1:8080;#server 127.0.0.1:$server_port;#" \
    -e "s#listen 80;#listen 127.0.0.1:$http_port;#" \
    -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https_port ssl http2;#" \
    -e "/^ *listen \[::\]/d" \
    "$root/deploy/nginx-wrenchline.conf" > "$work/nginx/wrenchline.conf"
changed=$(diff <(grep -v '^ *#' "$root/deploy/nginx-wrenchline.conf") <(grep -v '^ *#' "$work/nginx/wrenchline.conf") | grep -c '^>')
check "the nginx config under test differs from the shipped one in paths and ports only (8 lines)" test "$changed" = 8
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes 1;
error_log stderr;
pid $work/nginx/nginx.pid;
events { worker_connections 256; }
http {
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $work/nginx/wrenchline.conf;
}
EOF
chmod a+r "$work/nginx/"*.conf
nginx_v=$(nginx -v 2>&1 | sed 's#.*nginx/##')
check "nginx -t ($nginx_v) accepts deploy/nginx-wrenchline.conf" "${unpriv[@]}" nginx -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf"
if [ "$(printf '%s\n' "$nginx_v" 1.25.1 | sort -V | head -n1)" != 1.25.1 ]; then
  sed 's/# http2 on;/http2 on;/' "$work/nginx/wrenchline.conf" > "$work/nginx/newer.conf"
  sed "s#$work/nginx/wrenchline.conf#$work/nginx/newer.conf#" "$work/nginx/nginx.conf" > "$work/nginx/newer-main.conf"
  chmod a+r "$work/nginx/"*.conf
  reject "nginx $nginx_v refuses the commented 'http2 on;' (it needs 1.25.1)" "${unpriv[@]}" nginx -t -q -p "$work/nginx" -c "$work/nginx/newer-main.conf"
fi
caddy_env=(env HOME="$work/caddy" XDG_DATA_HOME="$work/caddy/data" XDG_CONFIG_HOME="$work/caddy/config")
cp "$root/deploy/Caddyfile" "$work/caddy/Caddyfile"
sed 's/# stream_close_delay 5m/stream_close_delay 5m/' "$root/deploy/Caddyfile" > "$work/caddy/Caddyfile.newer"
chmod a+r "$work/caddy/"Caddyfile*
caddy_v=$(caddy version | awk '{ print $1 }')
check "caddy validate ($caddy_v) accepts deploy/Caddyfile" "${unpriv[@]}" "${caddy_env[@]}" caddy validate --adapter caddyfile --config "$work/caddy/Caddyfile"
if [ "$(printf '%s\n' "${caddy_v#v}" 2.7.0 | sort -V | head -n1)" != 2.7.0 ]; then
  reject "caddy $caddy_v refuses the commented stream_close_delay (it needs 2.7)" "${unpriv[@]}" "${caddy_env[@]}" caddy validate --adapter caddyfile --config "$work/caddy/Caddyfile.newer"
fi
check "the Caddyfile answers /metrics with 404" grep -q '^	respond /metrics 404$' "$root/deploy/Caddyfile"
# HAProxy for a cluster: the shipped config with the test certificate (HAProxy reads the key and
# the chain from one file); the node addresses stay the example ones (`haproxy -c` resolves none).
mkdir -p "$work/haproxy"
cat "$cert/fullchain.pem" "$cert/privkey.pem" > "$work/haproxy/wrenchline.pem"
sed "s#/etc/haproxy/certs/wrenchline.pem#$work/haproxy/wrenchline.pem#" "$root/deploy/haproxy.cfg" > "$work/haproxy/haproxy.cfg"
chmod -R a+rX "$work/haproxy"
haproxy_v=$(haproxy -v 2>&1 | awk 'NR == 1 { print $3 }')
check "haproxy -c ($haproxy_v) accepts deploy/haproxy.cfg" "${unpriv[@]}" haproxy -c -q -f "$work/haproxy/haproxy.cfg"
check "deploy/haproxy.cfg checks /readyz and does not cut sockets of a node marked down" \
  bash -c "grep -q '^    option httpchk GET /readyz$' '$root/deploy/haproxy.cfg' && ! grep -q '^[^#]*shutdown-sessions' '$root/deploy/haproxy.cfg'"
check "deploy/haproxy.cfg answers /metrics with 404" grep -q 'deny_status 404 if { path /metrics }' "$root/deploy/haproxy.cfg"

# --- 4. the packaged server behind nginx ----------------------------------------------------
# The unit's environment file, pointed at a temp database and port (the service's would be
# /var/lib/wrenchline/wrenchline.db on 127.0.0.1:8080).
env_file="$work/wrenchline-server.env"
db="$work/state/wrenchline.db"
mkdir -p "$work/state"
sed -e "s#^WRENCHLINE_DATABASE_URL=.*#WRENCHLINE_DATABASE_URL=sqlite://$db#" \
    -e "s#^WRENCHLINE_BIND=.*#WRENCHLINE_BIND=127.0.0.1:$server_port#" \
    "$work/installed.env" > "$env_file"
"$work/wrenchline-server" serve --env-file "$env_file" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
pids+=($server_pid)
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" && break; sleep 0.1; done
check "the packaged server starts on SQLite with the unit's environment file" grep -qx "listening on http://127.0.0.1:$server_port" "$work/server.out"
check "it logs the database it uses and the retention period" bash -c \
  "grep -q 'database: sqlite://$db' '$work/server.log' && grep -q 'retention_days=365' '$work/server.log'"
# The guide's command, with this environment file.
email=mechanic@garage.example
password=$(openssl rand -hex 12)
check "mechanic add --env-file (the guide's command) adds to the service's database" bash -c "
  printf '%s\n' '$password' | '$work/wrenchline-server' mechanic add --env-file '$env_file' \
    --email $email --name 'First Mechanic' --password-stdin 2>'$work/add.err' &&
  grep -qx 'database: sqlite://$db' '$work/add.err'"

"${unpriv[@]}" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr.log" &
pids+=($!)
base="https://127.0.0.1:$https_port"
for _ in $(seq 50); do curl -sk -o /dev/null "$base/healthz" && break; sleep 0.1; done
check "nginx serves /healthz over TLS from the server" curl -sf --cacert "$cert/fullchain.pem" "$base/healthz"
echo acme-token-content > "$work/nginx/acme/.well-known/acme-challenge/token1"
chmod a+r "$work/nginx/acme/.well-known/acme-challenge/token1"
check "port 80 answers ACME challenges from the webroot" bash -c \
  "[ \"\$(curl -sf http://127.0.0.1:$http_port/.well-known/acme-challenge/token1)\" = acme-token-content ]"
check "port 80 redirects everything else to https" bash -c \
  "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1:$http_port/intake | grep -q '^301 https://127.0.0.1/intake'"

"$root/scripts/npm-deps.sh" "$root/tests/realtime" >/dev/null
through_proxy() {
  env WL_PROXY_BASE="$1" WL_PROXY_NAME="$2" NODE_EXTRA_CA_CERTS="$3" WL_DATABASE_URL="sqlite://$db" \
      WRENCHLINE_SERVER_BIN="$work/wrenchline-server" \
      node --test --test-timeout=60000 "$root/tests/deploy/through-proxy.test.mjs"
}
check "the realtime flow through nginx (node --test tests/deploy/through-proxy.test.mjs)" \
  through_proxy "$base" nginx "$cert/fullchain.pem"
check "nginx logged the WebSocket upgrade (101) without its query string" bash -c \
  "grep -q 'GET /realtime/v1/websocket HTTP/1.1\" 101' '$work/nginx/log/wrenchline.access.log' &&
   ! grep -q 'apikey' '$work/nginx/log/wrenchline.access.log'"
check "the server logged one plain line per request, with the client nginx named" bash -c \
  "grep 'finished processing request' '$work/server.log' | grep -q 'method=POST path=/api/auth/login client=127.0.0.1}.*status=200' &&
   ! grep -qP '\\x1b' '$work/server.log' && ! grep -q 'apikey=' '$work/server.log'"

# The same through Caddy: the shipped Caddyfile's site block, with global options that keep it on
# free loopback ports with its internal CA (no ACME here), as an unprivileged user.
caddy_https=$(free_port)
caddy_http=$(free_port)
{
  printf '{\n\tadmin off\n\thttp_port %s\n\thttps_port %s\n\tskip_install_trust\n}\n' "$caddy_http" "$caddy_https"
  sed -e "s#^wrenchline.example.com {#https://127.0.0.1:$caddy_https {#" \
      -e "s#reverse_proxy 127.0.0.1:8080#reverse_proxy 127.0.0.1:$server_port#" "$root/deploy/Caddyfile"
} > "$work/caddy/Caddyfile.run"
chmod a+r "$work/caddy/Caddyfile.run"
"${unpriv[@]}" "${caddy_env[@]}" caddy run --adapter caddyfile --config "$work/caddy/Caddyfile.run" >"$work/caddy/run.log" 2>&1 &
pids+=($!)
caddy_ca="$work/caddy/data/caddy/pki/authorities/local/root.crt"
for _ in $(seq 100); do [ -f "$caddy_ca" ] && curl -s -o /dev/null --cacert "$caddy_ca" "https://127.0.0.1:$caddy_https/healthz" && break; sleep 0.1; done
check "the realtime flow through Caddy $caddy_v (the same test)" \
  through_proxy "https://127.0.0.1:$caddy_https" Caddy "$caddy_ca"

# --- 5. backup and restore, PostgreSQL -------------------------------------------------------
check "sqlite3 .backup (the guide's online backup) while the server runs" \
  sqlite3 "$db" ".backup '$work/backup.db'"
check "the backup holds the mechanic (mechanic list on the restored file)" bash -c \
  "'$work/wrenchline-server' mechanic list --database-url 'sqlite://$work/backup.db' | grep -q '^$email	First Mechanic	active'"
# The guide's restore: stop, install the copy as the service's file (owner: here this user, in the
# guide wrenchline), remove the old -wal and -shm, start; the server then serves the copy.
kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null
check "restore: install -m 0600 the backup over the database, rm -wal/-shm, start again" bash -c "
  install -m 0600 -o '$(id -u)' -g '$(id -g)' '$work/backup.db' '$db' && rm -f '$db-wal' '$db-shm' &&
  { '$work/wrenchline-server' serve --env-file '$env_file' >'$work/restored.out' 2>'$work/restored.log' & echo \$! > '$work/restored.pid'; } &&
  for _ in \$(seq 100); do grep -q '^listening on' '$work/restored.out' && break; sleep 0.1; done &&
  [ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
      -d '{\"email\":\"$email\",\"password\":\"$password\"}' http://127.0.0.1:$server_port/api/auth/login)\" = 200 ]"
[ -f "$work/restored.pid" ] && pids+=("$(cat "$work/restored.pid")")

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -n "$pgbin" ] && [ "$(id -u)" = 0 ]; then
  pg="$work/pg"
  mkdir -p "$pg"; chown postgres "$pg"
  pg_port=$(free_port)
  as_pg() { runuser -u postgres -- env PGHOST="$pg" PGPORT="$pg_port" "$@"; }
  # Debian's default authentication: peer for the postgres user's socket, passwords over TCP.
  as_pg "$pgbin/initdb" -D "$pg/data" --auth-local=peer --auth-host=scram-sha-256 -U postgres >"$work/initdb.log" 2>&1
  as_pg "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w \
    -o "-p $pg_port -k $pg -c listen_addresses=localhost -c fsync=off" start >/dev/null
  pg_password=$(openssl rand -hex 16)
  # The guide: sudo -u postgres createuser -P wrenchline; sudo -u postgres createdb -O wrenchline wrenchline
  check "createuser -P wrenchline (as postgres; the password typed twice)" bash -c \
    "printf '%s\n%s\n' '$pg_password' '$pg_password' | runuser -u postgres -- env PGHOST='$pg' PGPORT='$pg_port' createuser -P wrenchline"
  check "createdb -O wrenchline wrenchline (as postgres)" as_pg createdb -O wrenchline wrenchline
  pg_url="postgres://wrenchline:$pg_password@localhost:$pg_port/wrenchline"
  sed "s#^WRENCHLINE_DATABASE_URL=.*#WRENCHLINE_DATABASE_URL=$pg_url#" "$env_file" > "$work/pg.env"
  reject "mechanic add refuses the empty PostgreSQL database before the server's first start" bash -c \
    "printf 'pg mechanic password\n' | '$work/wrenchline-server' mechanic add --env-file '$work/pg.env' --email pg@garage.example --name PG --password-stdin"
  pg_server_port=$(free_port)
  "$work/wrenchline-server" serve --env-file "$work/pg.env" --bind "127.0.0.1:$pg_server_port" >"$work/pg-server.out" 2>"$work/pg-server.log" &
  pg_server=$!
  pids+=($pg_server)
  for _ in $(seq 100); do grep -q '^listening on' "$work/pg-server.out" && break; sleep 0.1; done
  check "the server starts on PostgreSQL as the guide sets it up (owner of its database, PG $("$pgbin/postgres" --version | awk '{ print $3 }'))" \
    grep -q "^listening on" "$work/pg-server.out"
  check "mechanic add --env-file reaches PostgreSQL, and says so without the password" bash -c "
    printf 'pg mechanic password\n' | '$work/wrenchline-server' mechanic add --env-file '$work/pg.env' --email pg@garage.example --name PG --password-stdin 2>'$work/pg-add.err' &&
    grep -qx 'database: postgres://wrenchline@localhost:$pg_port/wrenchline' '$work/pg-add.err'"
  # The guide: sudo -u postgres pg_dump -Fc wrenchline > FILE; restoring into a new database
  # owned by wrenchline: createdb -O, then pg_restore --no-owner --role=wrenchline.
  check "pg_dump -Fc (as postgres) while the server runs" bash -c "
    runuser -u postgres -- env PGHOST='$pg' PGPORT='$pg_port' pg_dump -Fc wrenchline > '$work/wrenchline.dump' &&
    pg_restore -l '$work/wrenchline.dump' | grep -q 'TABLE DATA public users'"
  check "pg_restore into a new database: the restored copy holds the mechanic" bash -c "
    runuser -u postgres -- env PGHOST='$pg' PGPORT='$pg_port' createdb -O wrenchline wrenchline_restored &&
    runuser -u postgres -- env PGHOST='$pg' PGPORT='$pg_port' pg_restore --no-owner --role=wrenchline -d wrenchline_restored < '$work/wrenchline.dump' &&
    '$work/wrenchline-server' mechanic list --database-url 'postgres://wrenchline:$pg_password@localhost:$pg_port/wrenchline_restored' | grep -q '^pg@garage.example	PG	active'"
  kill "$pg_server" 2>/dev/null
  as_pg "$pgbin/pg_ctl" -D "$pg/data" -m fast stop >/dev/null 2>&1
else
  echo "SKIP  PostgreSQL steps (need PostgreSQL and root to act as the postgres user)"
fi

# --- removal -------------------------------------------------------------------------------
check "dpkg --root -r removes the binary and keeps the environment file" bash -c "
  dpkg --root='$R' --force-script-chrootless --force-depends --log=/dev/null -r wrenchline-server >/dev/null &&
  [ ! -e '$R/usr/bin/wrenchline-server' ] && [ -f '$R/etc/wrenchline/wrenchline-server.env' ]"
check "dpkg --root -P purges the environment file" bash -c "
  dpkg --root='$R' --force-script-chrootless --force-depends --log=/dev/null -P wrenchline-server >/dev/null &&
  [ ! -e '$R/etc/wrenchline/wrenchline-server.env' ]"

summary
