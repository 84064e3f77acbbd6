#!/usr/bin/env bash
# Runs inside run.sh's display and private session bus: unlocks a fresh gnome-keyring (Secret
# Service), starts dunst (the notification daemon) and a dbus-monitor that records every
# `Notify` call, makes a throwaway updater signing key (the app, a debug build, trusts
# WRENCHLINE_UPDATER_PUBKEY), starts tauri-driver, runs the tests, and stops all of it again by
# process id.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export NOTIFY_LOG="$ARTIFACTS_DIR/notify-calls.log"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null   # children first: tauri-driver's WebKitWebDriver
    kill -TERM "$pid" 2>/dev/null
  done
  wait 2>/dev/null
}
trap stop_all EXIT

mkdir -p "$HOME/.local/share/keyrings"
# Creates and unlocks the login keyring with password "pw"; exports GNOME_KEYRING_CONTROL.
eval "$(printf 'pw' | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
pids+=("$(pgrep -n -u "$(id -u)" -x gnome-keyring-d || true)")

# dunst as its example configuration has it (markup = full: it advertises body-markup, so the
# app must escape what customers wrote), with its context menu ("dunstctl context", a right
# click) asking pick-action.sh instead of dmenu, so a test can choose a notification's action.
printf '[global]\n    markup = full\n    dmenu = %s\n' "$here/pick-action.sh" > "$HOME/dunstrc"
dunst -config "$HOME/dunstrc" >"$ARTIFACTS_DIR/dunst.log" 2>&1 & pids+=($!)
dbus-monitor --session "interface='org.freedesktop.Notifications',member='Notify'" >"$NOTIFY_LOG" 2>&1 & pids+=($!)
# The default audio output (ALSA) writes what is played to a file, at real-time pace, so a test
# can tell whether the app played its own notification sound (dunst plays none).
export WRENCHLINE_TEST_SOUND_OUT="$HOME/sound-out.raw"
printf 'pcm.!default {\n  type file\n  slave.pcm "null"\n  file "%s"\n  format "raw"\n}\n' \
  "$WRENCHLINE_TEST_SOUND_OUT" > "$HOME/.asoundrc"
# Updater key pair for this run only: minisign's, as Tauri's updater uses (public key base64'd).
mkdir -p "$HOME/updater"
minisign -G -W -p "$HOME/updater/key.pub" -s "$HOME/updater/key.sec" >/dev/null
export UPDATER_SECRET_KEY="$HOME/updater/key.sec"
WRENCHLINE_UPDATER_PUBKEY="$(base64 -w0 "$HOME/updater/key.pub")"
export WRENCHLINE_UPDATER_PUBKEY

tauri-driver --port 4444 --native-port 4445 >"$ARTIFACTS_DIR/tauri-driver.log" 2>&1 & pids+=($!)

for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/4444) 2>/dev/null && break
  sleep 0.2
done

rm -f "$ARTIFACTS_DIR/server.log" "$ARTIFACTS_DIR"/Wrenchline*.log
cd "$here"
# DESKTOP_TESTS picks files (e.g. test/attachments.test.mjs); all of them by default.
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec ${DESKTOP_TESTS:-test/*.test.mjs}
status=$?
# The app's own log, for a failing run, whose output ends with both logs' last lines.
cp "$HOME"/.local/share/dev.wrenchline.desk/logs/*.log "$ARTIFACTS_DIR/" 2>/dev/null
if [ "$status" != 0 ]; then
  for log in "$ARTIFACTS_DIR"/Wrenchline*.log "$ARTIFACTS_DIR/server.log"; do
    [ -f "$log" ] && { echo "--- the last lines of $log"; tail -n 80 "$log"; }
  done
fi
exit $status
