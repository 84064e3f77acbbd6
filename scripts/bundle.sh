#!/usr/bin/env bash
# Builds the release desktop app and wrenchline-server into signed Linux packages: one command,
# one output folder.
#
#   scripts/bundle.sh [--out DIR] [--skip-ui] [--prebuilt BUNDLE_DIR] [--server-bin PATH]
#
# --prebuilt signs desktop packages already built (BUNDLE_DIR/deb/*.deb and BUNDLE_DIR/rpm/*.rpm,
# the layout of target/release/bundle) instead of building: re-signing a release, or testing.
# --server-bin packs that release wrenchline-server binary instead of building it.
#
# Produces in DIR (default dist/):
#   Wrenchline_<v>_amd64.deb        desktop app; debsigs origin signature inside (debsig-verify)
#   Wrenchline_<v>_amd64.deb.asc    detached armored GPG signature (gpg --verify)
#   Wrenchline-<v>-1.x86_64.rpm     rpmsign header+payload signature (rpm -K)
#   *.deb.sig, *.rpm.sig            Tauri updater signatures (base64 of a minisign signature whose
#                                   signed trusted comment binds the version: `version:<v>`)
#   wrenchline-server_<v>_amd64.deb, .deb.asc, wrenchline-server-<v>-1.x86_64.rpm
#                                   the server (packaging/server/), signed the same way
#   release.json                    the release descriptor wrenchline-server serves updates from
#                                   (Linux entries: the Windows and macOS builds add their own)
#   wrenchline-updater.pub          the updater public key built into this release's app
#   install-policy.sh, wrenchline.pol.in
#                                   debsig-verify policy installer for the release key
#   SHA256SUMS, SHA256SUMS.asc      checksums of everything above and their detached signature
#   wrenchline-release-key.asc      the GPG public key that signed all of it
#
# Keys come from the environment only; nothing secret is written outside GNUPGHOME:
#   WRENCHLINE_GPG_KEY_ID               GPG key (id or fingerprint) that signs packages and sums
#   GNUPGHOME                           keyring holding that secret key (default ~/.gnupg)
#   WRENCHLINE_GPG_PASSPHRASE_FILE      optional: passphrase file for a protected GPG key
#   TAURI_SIGNING_PRIVATE_KEY           Tauri updater secret key (content or path)
#   TAURI_SIGNING_PRIVATE_KEY_PASSWORD  its password (may be empty)
#   WRENCHLINE_UPDATER_PUBKEY           updater public key baked into the app; required while
#                                       tauri.release.conf.json still holds the placeholder
#   WRENCHLINE_RELEASE_NOTES            optional: notes for release.json
#
# Order matters: debsigs and rpmsign rewrite the package files, so the updater signatures, the
# .asc and SHA256SUMS are made afterwards, over the final bytes. Tauri's own .sig files from the
# build are therefore replaced with `tauri signer sign` over the signed packages.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist"
skip_ui=0
prebuilt=""
server_bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --skip-ui) skip_ui=1; shift ;;
    --prebuilt) prebuilt=$(cd "$2" && pwd); shift 2 ;;
    --server-bin) server_bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR=$("$root/scripts/target-dir.sh")
export GNUPGHOME=${GNUPGHOME:-$HOME/.gnupg}
started=$SECONDS
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - started)) "$*"; }
die() { echo "bundle.sh: $*" >&2; exit 1; }

# --- preconditions -------------------------------------------------------------------------
for tool in gpg debsigs rpmsign rpm rpmbuild dpkg-deb objdump sha256sum npm cargo python3; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y debsigs rpm gnupg dpkg-dev binutils)"
done
: "${WRENCHLINE_GPG_KEY_ID:?set WRENCHLINE_GPG_KEY_ID to the GPG key that signs packages}"
: "${TAURI_SIGNING_PRIVATE_KEY:?set TAURI_SIGNING_PRIVATE_KEY (updater key, see docs/deploy.md)}"
export TAURI_SIGNING_PRIVATE_KEY_PASSWORD=${TAURI_SIGNING_PRIVATE_KEY_PASSWORD:-}
gpg --batch --list-secret-keys "$WRENCHLINE_GPG_KEY_ID" >/dev/null 2>&1 \
  || die "no secret key $WRENCHLINE_GPG_KEY_ID in GNUPGHOME=$GNUPGHOME"

gpg_extra=()
if [ -n "${WRENCHLINE_GPG_PASSPHRASE_FILE:-}" ]; then
  gpg_extra=(--pinentry-mode loopback --passphrase-file "$WRENCHLINE_GPG_PASSPHRASE_FILE")
fi
gpg_sign() { gpg --batch --yes "${gpg_extra[@]}" --local-user "$WRENCHLINE_GPG_KEY_ID" "$@"; }

overlay="$root/tauri.release.conf.json"
configs=(--config "$overlay")
if [ -n "${WRENCHLINE_UPDATER_PUBKEY:-}" ]; then
  configs+=(--config "{\"plugins\":{\"updater\":{\"pubkey\":\"$WRENCHLINE_UPDATER_PUBKEY\"}}}")
  updater_pubkey=$WRENCHLINE_UPDATER_PUBKEY
elif grep -q REPLACE_WITH_RELEASE_UPDATER_PUBKEY "$overlay"; then
  die "set WRENCHLINE_UPDATER_PUBKEY (or commit the release pubkey into tauri.release.conf.json)"
else
  updater_pubkey=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["plugins"]["updater"]["pubkey"])' "$overlay")
fi

version=$(cd "$root" && cargo metadata --no-deps --format-version 1 --offline 2>/dev/null \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "wrenchline-desk"))')
[ -n "$version" ] || die "cannot read the wrenchline-desk version"

# --- build ---------------------------------------------------------------------------------
build_secs=0
if [ -n "$prebuilt" ]; then
  bundle_dir=$prebuilt
  step "using prebuilt packages from $bundle_dir"
else
  if [ "$skip_ui" = 0 ]; then
    step "front-end: scripts/ui-build.sh (ui/dist, when ui/ changed)"
    "$root/scripts/ui-build.sh"
  fi
  [ -f "$root/ui/dist/desktop.html" ] || die "ui/dist is missing; run without --skip-ui"

  step "tauri CLI: npm ci (packaging/) when its packages are not current"
  "$root/scripts/npm-deps.sh" "$root/packaging"

  bundle_dir="$CARGO_TARGET_DIR/release/bundle"
  rm -rf "$bundle_dir/deb" "$bundle_dir/rpm"
  step "tauri build --bundles deb,rpm (release, version $version)"
  build_started=$SECONDS
  (cd "$root" && "$root/packaging/node_modules/.bin/tauri" build --ci --bundles deb,rpm "${configs[@]}")
  build_secs=$((SECONDS - build_started))
fi

# The server: the same cargo command as scripts/bench.sh, so one build serves both.
server_secs=0
if [ -z "$server_bin" ]; then
  [ -f "$root/ui/dist/index.html" ] || die "ui/dist is missing (the server embeds it); run without --skip-ui"
  step "cargo build --release -p wrenchline-server -p wrenchline-bench (web UI embedded; the build scripts/bench.sh reuses)"
  server_started=$SECONDS
  (cd "$root" && cargo build --release --locked -p wrenchline-server -p wrenchline-bench)
  server_secs=$((SECONDS - server_started))
  server_bin="$CARGO_TARGET_DIR/release/wrenchline-server"
fi
step "server packages (packaging/server/build-packages.sh)"
server_pkgs=$(mktemp -d -t wrenchline-server-dist.XXXXXX)
trap 'rm -rf "$server_pkgs"' EXIT
"$root/packaging/server/build-packages.sh" --bin "$server_bin" --out "$server_pkgs" >/dev/null

deb=$(find "$bundle_dir/deb" -maxdepth 1 -name "*_${version}_*.deb" | head -n1)
rpm_file=$(find "$bundle_dir/rpm" -maxdepth 1 -name "*-${version}-*.rpm" | head -n1)
[ -f "$deb" ] || die "tauri produced no .deb in $bundle_dir/deb"
[ -f "$rpm_file" ] || die "tauri produced no .rpm in $bundle_dir/rpm"
tauri_sigs=$(find "$bundle_dir/deb" "$bundle_dir/rpm" -maxdepth 1 -name '*.sig' | wc -l)

# --- collect and sign ----------------------------------------------------------------------
step "collecting into $out"
mkdir -p "$out"
find "$out" -maxdepth 1 -type f \( -name '*.deb*' -o -name '*.rpm*' -o -name 'SHA256SUMS*' \
  -o -name release.json -o -name 'wrenchline-release-key.asc' -o -name 'wrenchline-updater.pub' \
  -o -name install-policy.sh -o -name wrenchline.pol.in \) -delete
cp "$deb" "$rpm_file" "$server_pkgs"/*.deb "$server_pkgs"/*.rpm "$out/"
deb="$out/$(basename "$deb")"
rpm_file="$out/$(basename "$rpm_file")"
server_deb=$(ls "$out"/wrenchline-server_*.deb)
server_rpm=$(ls "$out"/wrenchline-server-*.rpm)

rpm_defs=(--define "_gpg_path $GNUPGHOME" --define "_gpg_name $WRENCHLINE_GPG_KEY_ID" --define "__gpg $(command -v gpg)")
if [ -n "${WRENCHLINE_GPG_PASSPHRASE_FILE:-}" ]; then
  rpm_defs+=(--define "_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file $WRENCHLINE_GPG_PASSPHRASE_FILE")
fi
for pkg in "$deb" "$server_deb"; do
  step "debsigs --sign=origin $(basename "$pkg")"
  debsigs --sign=origin --default-key="$WRENCHLINE_GPG_KEY_ID" "$pkg"
done
for pkg in "$rpm_file" "$server_rpm"; do
  step "rpmsign --addsign $(basename "$pkg")"
  rpmsign --addsign "${rpm_defs[@]}" "$pkg" >/dev/null
done

step "updater signatures (tauri signer sign) over the signed packages"
for pkg in "$deb" "$rpm_file"; do
  rm -f "$pkg.sig"
  # --app-version puts `version:$version` into the signed trusted comment: the app's updater
  # (requireSignedVersion) refuses a package whose signed version is not the one announced.
  "$root/packaging/node_modules/.bin/tauri" signer sign --app-version "$version" "$pkg" >/dev/null
  [ -s "$pkg.sig" ] || die "tauri signer sign wrote no $pkg.sig"
done

step "detached GPG signatures for the .deb files"
for pkg in "$deb" "$server_deb"; do
  gpg_sign --armor --detach-sign --output "$pkg.asc" "$pkg"
done

step "release.json"
WRENCHLINE_VERSION=$version DEB=$deb RPM=$rpm_file python3 - "$out/release.json" <<'PY'
import datetime, json, os, sys
def entry(path):
    with open(path + ".sig") as f:
        return {"file": os.path.basename(path), "signature": f.read().strip()}
deb, rpm = entry(os.environ["DEB"]), entry(os.environ["RPM"])
release = {
    "version": os.environ["WRENCHLINE_VERSION"],
    "notes": os.environ.get("WRENCHLINE_RELEASE_NOTES", ""),
    "pub_date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    # `linux-x86_64` is what the updater asks for when it does not know its bundle type;
    # the installer-suffixed keys are preferred by tauri-plugin-updater >= 2.1.
    "platforms": {"linux-x86_64": deb, "linux-x86_64-deb": deb, "linux-x86_64-rpm": rpm},
}
with open(sys.argv[1], "w") as f:
    json.dump(release, f, indent=2)
    f.write("\n")
PY

gpg --batch --armor --export "$WRENCHLINE_GPG_KEY_ID" > "$out/wrenchline-release-key.asc"
# What IT needs beside the packages to check them: the updater public key this release's app
# trusts (docs/deploy.md, section 2) and the debsig-verify policy installer.
printf '%s\n' "$updater_pubkey" > "$out/wrenchline-updater.pub"
install -m 0755 "$root/packaging/debsig/install-policy.sh" "$out/install-policy.sh"
install -m 0644 "$root/packaging/debsig/wrenchline.pol.in" "$out/wrenchline.pol.in"

step "SHA256SUMS and its signature"
(cd "$out" && sha256sum -- "$(basename "$deb")" "$(basename "$deb").asc" "$(basename "$deb").sig" \
  "$(basename "$rpm_file")" "$(basename "$rpm_file").sig" \
  "$(basename "$server_deb")" "$(basename "$server_deb").asc" "$(basename "$server_rpm")" \
  release.json wrenchline-release-key.asc wrenchline-updater.pub install-policy.sh wrenchline.pol.in > SHA256SUMS)
gpg_sign --armor --detach-sign --output "$out/SHA256SUMS.asc" "$out/SHA256SUMS"

total=$((SECONDS - started))
step "done"
echo "tauri build: ${build_secs}s; server build: ${server_secs}s; whole bundle command: ${total}s; Tauri updater .sig files from the build: $tauri_sigs (replaced)"
(cd "$out" && ls -l --time-style=+ -- *.deb *.rpm *.asc *.sig SHA256SUMS release.json wrenchline-updater.pub | awk '{ printf "  %10d  %s\n", $5, $NF }')
