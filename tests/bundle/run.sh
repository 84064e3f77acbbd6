#!/usr/bin/env bash
# End-to-end test of the release bundle: throwaway keys, scripts/bundle.sh, then every signature
# verified, a tampered copy of each artifact rejected by each check, and the packaged binary run.
#
#   tests/bundle/run.sh [--skip-ui] [--reuse DIR] [--prebuilt BUNDLE_DIR] [--server-bin PATH]
#
# --prebuilt BUNDLE_DIR passes already built desktop packages to bundle.sh, --server-bin PATH an
# already built release wrenchline-server (no cargo build with both): the signing and
# verification half alone, for quick iterations. CI runs it without options.
# --reuse DIR skips the build and checks an existing output folder made by this script (its
# keys are kept in DIR/../keys); useful while editing the checks. Nothing here touches the real
# GPG keyring, /etc/debsig or the system rpmdb: everything lives in one temp dir, removed on exit.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
skip_ui=()
bundle_args=()
reuse=""
prebuilt_desk=0
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-ui) skip_ui=(--skip-ui); shift ;;
    --reuse) reuse=$2; shift 2 ;;
    --prebuilt) bundle_args+=(--prebuilt "$2"); prebuilt_desk=1; shift 2 ;;
    --server-bin) bundle_args+=(--server-bin "$2"); shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS  $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
# check NAME CMD...: the command must succeed.   reject NAME CMD...: it must fail.
check() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/      /' "$work/last.log" | tail -n 15; fi; }
reject() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then bad "$name (accepted a tampered file)"; sed 's/^/      /' "$work/last.log" | tail -n 5; else ok "$name"; fi; }
summary() { echo; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

# --- tools ---------------------------------------------------------------------------------
need=()
for pair in debsigs:debsigs debsig-verify:debsig-verify rpm:rpm rpmsign:rpm rpmbuild:rpm gpg:gnupg \
            minisign:minisign dpkg-deb:dpkg-dev objdump:binutils; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; } \
    || { echo "cannot install ${need[*]}"; exit 1; }
fi

# --- throwaway keys ------------------------------------------------------------------------
if [ -n "$reuse" ]; then
  out=$(cd "$reuse" && pwd)
  work=$(dirname "$out")
  keys="$work/keys"
  export GNUPGHOME="$keys/gnupg"
  WRENCHLINE_GPG_KEY_ID=$(cat "$keys/keyid")
  keep=1
else
  work=$(mktemp -d -t wrenchline-bundle.XXXXXX)
  keys="$work/keys"
  out="$work/dist"
  keep=${KEEP:-0}
  mkdir -p "$keys/gnupg"
  chmod 700 "$keys/gnupg"
  export GNUPGHOME="$keys/gnupg"
  gpg --batch --quiet --passphrase '' --quick-gen-key \
    "Wrenchline Test Release <release-test@wrenchline.invalid>" ed25519 sign 1d 2>/dev/null
  WRENCHLINE_GPG_KEY_ID=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "pub" { print $5; exit }')
  echo "$WRENCHLINE_GPG_KEY_ID" > "$keys/keyid"
  "$root/packaging/node_modules/.bin/tauri" signer generate --ci -p "throwaway-pass" \
      -w "$keys/updater.key" >/dev/null 2>&1 \
    || { (cd "$root/packaging" && npm ci --no-audit --no-fund --loglevel=error) >/dev/null \
         && "$root/packaging/node_modules/.bin/tauri" signer generate --ci -p "throwaway-pass" \
              -w "$keys/updater.key" >/dev/null; } \
    || { echo "cannot generate the updater key"; exit 1; }
fi
cleanup() {
  if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
export WRENCHLINE_GPG_KEY_ID
echo "throwaway GPG key $WRENCHLINE_GPG_KEY_ID, updater key $keys/updater.key, work dir $work"

# --- bundle --------------------------------------------------------------------------------
if [ -z "$reuse" ]; then
  started=$SECONDS
  if TAURI_SIGNING_PRIVATE_KEY=$(cat "$keys/updater.key") \
     TAURI_SIGNING_PRIVATE_KEY_PASSWORD="throwaway-pass" \
     WRENCHLINE_UPDATER_PUBKEY=$(cat "$keys/updater.key.pub") \
     WRENCHLINE_RELEASE_NOTES="bundle test" \
     "$root/scripts/bundle.sh" --out "$out" "${skip_ui[@]}" "${bundle_args[@]}" 2>&1 | tee "$work/bundle.log" | grep -E '^==>|^tauri build:|^  +[0-9]+  |error|Error'; \
     [ "${PIPESTATUS[0]}" -eq 0 ]; then
    ok "scripts/bundle.sh built and signed in $((SECONDS - started))s"
  else
    bad "scripts/bundle.sh failed after $((SECONDS - started))s (log: $work/bundle.log)"
    tail -n 40 "$work/bundle.log"
    keep=1
    summary; exit 1
  fi
fi

deb=$(ls "$out"/Wrenchline_*.deb 2>/dev/null | head -n1)
rpm_file=$(ls "$out"/Wrenchline-*.rpm 2>/dev/null | head -n1)
server_deb=$(ls "$out"/wrenchline-server_*.deb 2>/dev/null | head -n1)
server_rpm=$(ls "$out"/wrenchline-server-*.rpm 2>/dev/null | head -n1)
[ -f "$deb" ] && ok "a .deb was produced: $(basename "$deb")" || bad "no .deb in $out"
[ -f "$rpm_file" ] && ok "an .rpm was produced: $(basename "$rpm_file")" || bad "no .rpm in $out"
[ -f "$server_deb" ] && ok "a server .deb was produced: $(basename "$server_deb")" || bad "no wrenchline-server .deb in $out"
[ -f "$server_rpm" ] && ok "a server .rpm was produced: $(basename "$server_rpm")" || bad "no wrenchline-server .rpm in $out"
for f in "$deb.asc" "$deb.sig" "$rpm_file.sig" "$server_deb.asc" "$out/SHA256SUMS" "$out/SHA256SUMS.asc" \
         "$out/release.json" "$out/wrenchline-updater.pub" "$out/install-policy.sh" "$out/wrenchline.pol.in"; do
  [ -s "$f" ] && ok "present: $(basename "$f")" || bad "missing: $(basename "$f")"
done
[ -f "$deb" ] && [ -f "$rpm_file" ] && [ -f "$server_deb" ] && [ -f "$server_rpm" ] || { summary; exit 1; }

tampered="$work/tampered"
mkdir -p "$tampered"
# Flip one byte well inside the payload (past the ar/rpm headers) of a copy.
tamper() {
  local src=$1 dst="$tampered/$(basename "$1")"
  cp "$src" "$dst"
  python3 - "$dst" <<'PY'
import os, sys
path = sys.argv[1]
size = os.path.getsize(path)
with open(path, "r+b") as f:
    f.seek(size * 2 // 3)
    b = f.read(1)
    f.seek(size * 2 // 3)
    f.write(bytes([b[0] ^ 0xFF]))
PY
  echo "$dst"
}
bad_deb=$(tamper "$deb")
bad_rpm=$(tamper "$rpm_file")
bad_server_deb=$(tamper "$server_deb")
bad_server_rpm=$(tamper "$server_rpm")
cp "$deb.asc" "$deb.sig" "$rpm_file.sig" "$server_deb.asc" "$tampered/"

# --- debsig-verify, with policy and keyring under a temp root --------------------------------
gpg --batch --armor --export "$WRENCHLINE_GPG_KEY_ID" > "$keys/public.asc"
debsig_root="$work/debsig-root"
"$root/packaging/debsig/install-policy.sh" "$keys/public.asc" "$debsig_root" >/dev/null
debsig=(debsig-verify --policies-dir "$debsig_root/etc/debsig/policies" --keyrings-dir "$debsig_root/usr/share/debsig/keyrings")
check "debsig-verify accepts the .deb (origin signature, policy $WRENCHLINE_GPG_KEY_ID)" "${debsig[@]}" "$deb"
reject "debsig-verify rejects the tampered .deb" "${debsig[@]}" "$bad_deb"
check "debsig-verify accepts the server .deb" "${debsig[@]}" "$server_deb"
reject "debsig-verify rejects the tampered server .deb" "${debsig[@]}" "$bad_server_deb"
# As IT does it (docs/deploy.md): the policy installer and key from the release folder itself.
release_root="$work/debsig-release-root"
check "the release folder's install-policy.sh installs the policy for its release key" \
  "$out/install-policy.sh" "$out/wrenchline-release-key.asc" "$release_root"
check "debsig-verify with that policy accepts the server .deb" debsig-verify \
  --policies-dir "$release_root/etc/debsig/policies" --keyrings-dir "$release_root/usr/share/debsig/keyrings" "$server_deb"

# --- detached GPG signatures (verified against a keyring holding only the public key) ---------
verify_home="$work/verify-gnupg"
mkdir -p "$verify_home"; chmod 700 "$verify_home"
GNUPGHOME="$verify_home" gpg --batch --quiet --import "$keys/public.asc" 2>/dev/null
gv() { GNUPGHOME="$verify_home" gpg --batch --verify "$@"; }
check "gpg --verify .deb.asc" gv "$deb.asc" "$deb"
reject "gpg --verify .deb.asc rejects the tampered .deb" gv "$tampered/$(basename "$deb").asc" "$bad_deb"
check "gpg --verify server .deb.asc" gv "$server_deb.asc" "$server_deb"
reject "gpg --verify rejects the tampered server .deb" gv "$tampered/$(basename "$server_deb").asc" "$bad_server_deb"
check "gpg --verify SHA256SUMS.asc" gv "$out/SHA256SUMS.asc" "$out/SHA256SUMS"
check "sha256sum -c SHA256SUMS" bash -c "cd '$out' && sha256sum --quiet -c SHA256SUMS"
cp "$out/SHA256SUMS" "$out/SHA256SUMS.asc" "$tampered/"
reject "sha256sum -c SHA256SUMS rejects the tampered packages" bash -c "cd '$tampered' && sha256sum --quiet -c SHA256SUMS --ignore-missing"
# Prepending always changes the file (replacing the first character with a 0 did not when it was one).
sed -i '1s/^/0/' "$tampered/SHA256SUMS"
reject "gpg --verify rejects an edited SHA256SUMS" gv "$tampered/SHA256SUMS.asc" "$tampered/SHA256SUMS"

# --- rpm -K against a temp rpmdb -------------------------------------------------------------
rpmdb="$work/rpmdb"
mkdir -p "$rpmdb"
rpm --dbpath "$rpmdb" --initdb 2>/dev/null
check "rpm --import of the public key into a temp rpmdb" rpm --dbpath "$rpmdb" --import "$keys/public.asc"
rpm_k() { local o; o=$(rpm --dbpath "$rpmdb" -Kv "$1" 2>&1); echo "$o"; \
  ! grep -qiE 'NOT OK|BAD|NOKEY|not signed|missing' <<<"$o" && grep -qiE 'Header V4 EdDSA/SHA(256|512) Signature.*OK|signature.*OK' <<<"$o"; }
check "rpm -K: .rpm signature and digests OK" rpm_k "$rpm_file"
reject "rpm -K rejects the tampered .rpm" rpm_k "$bad_rpm"
check "rpm -K: server .rpm signature and digests OK" rpm_k "$server_rpm"
reject "rpm -K rejects the tampered server .rpm" rpm_k "$bad_server_rpm"
check "rpm -K reports the signature key as $WRENCHLINE_GPG_KEY_ID" bash -c \
  "rpm --dbpath '$rpmdb' -Kv '$rpm_file' | grep -qi '${WRENCHLINE_GPG_KEY_ID: -8}'"

# --- Tauri updater signatures: base64 of a minisign signature -------------------------------
base64 -d "$keys/updater.key.pub" > "$work/updater.pub"
mv_() { local sig=$1 file=$2; base64 -d "$sig" > "$work/decoded.minisig" && minisign -Vq -p "$work/updater.pub" -m "$file" -x "$work/decoded.minisig"; }
check "minisign -V: updater .deb.sig" mv_ "$deb.sig" "$deb"
check "minisign -V: updater .rpm.sig" mv_ "$rpm_file.sig" "$rpm_file"
reject "minisign -V rejects the tampered .deb" mv_ "$deb.sig" "$bad_deb"
reject "minisign -V rejects the tampered .rpm" mv_ "$rpm_file.sig" "$bad_rpm"
check "wrenchline-updater.pub in the release folder is the key the updates are signed for" \
  bash -c "[ \"\$(cat '$out/wrenchline-updater.pub')\" = \"\$(cat '$keys/updater.key.pub')\" ]"
check "release.json names only files the release folder holds" python3 - "$out/release.json" "$out" <<'PY'
import json, os, sys
release = json.load(open(sys.argv[1]))
for platform, entry in release["platforms"].items():
    assert os.path.isfile(os.path.join(sys.argv[2], entry["file"])), (platform, entry["file"])
PY
check "release.json carries the .deb.sig for linux-x86_64" python3 - "$out/release.json" "$deb.sig" <<'PY'
import json, sys, os
release = json.load(open(sys.argv[1]))
sig = open(sys.argv[2]).read().strip()
entry = release["platforms"]["linux-x86_64"]
assert entry["signature"] == sig and entry["file"] == os.path.basename(sys.argv[2][:-4]), entry
PY

# --- package contents and the binary ---------------------------------------------------------
unpacked="$work/unpacked"
check "dpkg-deb -x unpacks the .deb" dpkg-deb -x "$deb" "$unpacked"
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$out/release.json")
check "wrenchline-desk --version prints 'wrenchline-desk $version'" bash -c \
  "out=\$(env -u DISPLAY -u WAYLAND_DISPLAY '$unpacked/usr/bin/wrenchline-desk' --version); echo \"\$out\"; [ \"\$out\" = 'wrenchline-desk $version' ]"
# The app verifies updates against the public key built into it: the packaged binary must hold
# the one the release was signed for, not the overlay's placeholder. (Packages passed with
# --prebuilt were built for another key, so there only the placeholder is looked for.)
if [ "$prebuilt_desk" = 0 ]; then
  check "the packaged binary trusts this release's updater key" \
    grep -qaF "$(cat "$keys/updater.key.pub")" "$unpacked/usr/bin/wrenchline-desk"
fi
reject "the packaged binary holds no placeholder updater key" \
  grep -qaF REPLACE_WITH_RELEASE_UPDATER_PUBKEY "$unpacked/usr/bin/wrenchline-desk"
check "the .deb carries a .desktop entry and an icon" bash -c \
  "ls '$unpacked'/usr/share/applications/*.desktop && ls '$unpacked'/usr/share/icons/hicolor/*/apps/*.png"
check "the .rpm lists /usr/bin/wrenchline-desk" bash -c "rpm -qlp '$rpm_file' 2>/dev/null | grep -qx /usr/bin/wrenchline-desk"
server_unpacked="$work/server-unpacked"
check "the server .deb unpacks; its binary, unit and guide are there" bash -c "dpkg-deb -x '$server_deb' '$server_unpacked' &&
  [ -x '$server_unpacked/usr/bin/wrenchline-server' ] && [ -f '$server_unpacked/usr/lib/systemd/system/wrenchline-server.service' ] &&
  [ -f '$server_unpacked/usr/share/doc/wrenchline-server/deploy.md' ]"
check "the packaged server prints 'wrenchline-server $version'" bash -c \
  "[ \"\$('$server_unpacked/usr/bin/wrenchline-server' --version)\" = 'wrenchline-server $version' ]"
check "the server .rpm lists /usr/bin/wrenchline-server" bash -c "rpm -qlp '$server_rpm' 2>/dev/null | grep -qx /usr/bin/wrenchline-server"

# --- sizes ---------------------------------------------------------------------------------
echo
echo "artifact sizes:"
(cd "$out" && for f in *; do printf '  %10d  %s\n' "$(stat -c %s "$f")" "$f"; done)
printf '  %10d  %s\n' "$(stat -c %s "$unpacked/usr/bin/wrenchline-desk")" "(unpacked /usr/bin/wrenchline-desk)"
grep -E '^tauri build:' "$work/bundle.log" 2>/dev/null | sed 's/^/  /'

summary
