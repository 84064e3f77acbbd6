#!/usr/bin/env bash
# Installs what building and testing Wrenchline needs on Debian or Ubuntu: system libraries for
# the desktop app, PostgreSQL and the display/D-Bus tools the tests start, the packaging and
# signing tools, nginx and caddy for the deploy test, cargo-nextest, and the front-end's npm
# packages. Each step is skipped when already satisfied, so it is cheap to repeat.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  build-essential pkg-config file patchelf curl ca-certificates
  libwebkit2gtk-4.1-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev librsvg2-dev
  libayatana-appindicator3-dev libxdo-dev libdbus-1-dev libssl-dev libasound2-dev
  postgresql xvfb dbus dbus-x11 xauth
  # Packaging and the deploy test: signing, .deb/.rpm building, Debian's nginx and caddy for the
  # shipped configs, sqlite3 for the documented backup.
  dpkg-dev rpm debsigs debsig-verify minisign gnupg binutils openssl sqlite3 nginx caddy
  # The cluster (Redis for the bus and shared presence, HAProxy in front of the nodes) and the
  # mail tests' SMTP server.
  redis-server haproxy python3-aiosmtpd
  # Attachments: the server takes video thumbnails with ffmpeg when it is there, the API tests
  # make their clips and voice notes with it; scripts/with-s3.sh makes a venv for moto's S3 server.
  ffmpeg python3-venv
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # nginx and caddy are only run by the tests, on their own ports: their packages must not start
  # the system services (on port 80) while installing. policy-rc.d says so for the install only.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod 755 "$policy"
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy" ]; then "${sudo_cmd[@]}" rm -f "$policy"; fi
fi
# PostgreSQL's package starts a system cluster; the tests use their own throwaway cluster.

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is needed (found $(node --version))" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: the Rust toolchain is needed (https://rustup.rs)" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi
