#!/usr/bin/env bash
# Installs the debsig-verify policy and keyring for a Wrenchline release key, so that
# `debsig-verify Wrenchline_*.deb` (and dpkg, when debsig-verify is enabled) checks the origin
# signature. Usage: install-policy.sh PUBLIC_KEY.asc [ROOT]   (ROOT defaults to /, for tests a
# temp dir whose etc/debsig/policies and usr/share/debsig/keyrings are then passed to
# debsig-verify with --policies-dir / --keyrings-dir).
set -euo pipefail
key_file=${1:?usage: install-policy.sh PUBLIC_KEY.asc [ROOT]}
root=${2:-/}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export GNUPGHOME=$tmp
gpg --batch --quiet --import "$key_file"
keyid=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "pub" { print $5; exit }')
policy_dir="$root/etc/debsig/policies/$keyid"
keyring_dir="$root/usr/share/debsig/keyrings/$keyid"
mkdir -p "$policy_dir" "$keyring_dir"
gpg --batch --export "$keyid" > "$keyring_dir/wrenchline.gpg"
sed "s/@KEYID@/$keyid/g" "$here/wrenchline.pol.in" > "$policy_dir/wrenchline.pol"
echo "$keyid"
