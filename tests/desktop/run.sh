#!/usr/bin/env bash
# End-to-end test of the real desktop app: installs what it needs if missing, builds the UI, the
# app (debug) and the server, then runs test/ (node --test) under Xvfb, a private D-Bus session,
# an unlocked gnome-keyring (Secret Service), dunst (notifications) and tauri-driver. HOME points
# at a temporary folder for the run, so the app's settings, logs, window state and keyring stay
# out of the real one. Screenshots and logs go to tests/artifacts/. Exits non-zero on failure.
#
#   tests/desktop/run.sh            # everything
#   SKIP_BUILD=1 tests/desktop/run.sh   # reuse the built binaries and ui/dist
#   DESKTOP_TESTS=test/attachments.test.mjs tests/desktop/run.sh   # one file
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR=$("$root/scripts/target-dir.sh")
export ARTIFACTS_DIR="${ARTIFACTS_DIR:-$root/tests/artifacts}"
mkdir -p "$ARTIFACTS_DIR"

# --- what the run needs ------------------------------------------------------------------------
need_apt=()
for pair in Xvfb:xvfb dbus-run-session:dbus-x11 dbus-monitor:dbus-x11 dunst:dunst \
            gnome-keyring-daemon:gnome-keyring secret-tool:libsecret-tools \
            WebKitWebDriver:webkit2gtk-driver xwininfo:x11-apps import:imagemagick xvfb-run:xvfb minisign:minisign; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
pkg-config --exists dbus-1 2>/dev/null || need_apt+=(libdbus-1-dev)
/usr/bin/python3 -c 'import Xlib' 2>/dev/null || need_apt+=(python3-xlib)
pkg-config --exists webkit2gtk-4.1 2>/dev/null || need_apt+=(libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev)
if ((${#need_apt[@]})); then
  echo "installing: ${need_apt[*]}"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  cargo install tauri-driver --locked
fi
export PATH="$HOME/.cargo/bin:$PATH"

# --- build -------------------------------------------------------------------------------------
if [ -z "${SKIP_BUILD:-}" ]; then
  "$root/scripts/ui-build.sh"
  (cd "$root" && cargo build --workspace --bins --examples --locked)
fi
"$root/scripts/npm-deps.sh" "$here"

# --- run in a throwaway home, display and session bus -----------------------------------------
run_home="$(mktemp -d /tmp/wl-desktop-home.XXXXXX)"
cleanup() { rm -rf "$run_home" 2>/dev/null || { sleep 2; rm -rf "$run_home"; }; }
trap cleanup EXIT
# The IT-managed settings file: its value differs from the default, so the test sees it win
# (notifications without sound) and shown locked.
printf 'notification_sound = false\n' > "$run_home/desk.toml"
# The session's runtime dir (the tray icon's image files land there).
mkdir -m 700 "$run_home/runtime"

env -i \
  PATH="$PATH" LANG=C.UTF-8 HOME="$run_home" USER="${USER:-root}" XDG_RUNTIME_DIR="$run_home/runtime" \
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR" ARTIFACTS_DIR="$ARTIFACTS_DIR" \
  WRENCHLINE_MANAGED_SETTINGS="$run_home/desk.toml" \
  WRENCHLINE_ACCESS_TOKEN_TTL="${WRENCHLINE_ACCESS_TOKEN_TTL:-40}" \
  ${WRENCHLINE_DESK_BIN:+WRENCHLINE_DESK_BIN="$WRENCHLINE_DESK_BIN"} \
  ${DESKTOP_TESTS:+DESKTOP_TESTS="$DESKTOP_TESTS"} \
  ${WRENCHLINE_SERVER_BIN:+WRENCHLINE_SERVER_BIN="$WRENCHLINE_SERVER_BIN"} \
  ${DESKTOP_TESTS:+DESKTOP_TESTS="$DESKTOP_TESTS"} \
  xvfb-run --auto-servernum --server-args="-screen 0 1366x850x24" \
  dbus-run-session -- "$here/session.sh"
