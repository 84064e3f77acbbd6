#!/usr/bin/env bash
# Packs a release wrenchline-server binary (the web UI embedded: build ui/dist before it) into a
# .deb (dpkg-deb) and an .rpm (rpmbuild), unsigned; scripts/bundle.sh signs them beside the
# desktop packages, tests/deploy/run.sh installs the .deb into a throwaway root.
#
#   packaging/server/build-packages.sh --bin target/release/wrenchline-server --out DIR
#
# Both packages hold the same tree:
#   /usr/bin/wrenchline-server
#   /usr/lib/systemd/system/wrenchline-server.service   (deploy/wrenchline-server.service)
#   /usr/lib/sysusers.d/wrenchline-server.conf          (the system user `wrenchline`)
#   /etc/wrenchline/wrenchline-server.env               (conffile, from deploy/; 0640 root:wrenchline)
#   /usr/share/doc/wrenchline-server/                   deploy.md, README.md, copyright,
#                                                       examples/ (nginx, Caddy, the env file)
# and print their paths, one a line. Needs dpkg-deb, rpmbuild (Debian's rpm) and objdump.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/packaging/server"
bin=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build-packages.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
die() { echo "build-packages.sh: $*" >&2; exit 1; }
[ -x "$bin" ] || die "--bin: no executable wrenchline-server at '$bin'"
[ -n "$out" ] || die "--out DIR is required"
for tool in dpkg-deb rpmbuild objdump gzip; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y dpkg-dev rpm binutils)"
done

# The version is the binary's own, so a package never claims another.
version=$("$bin" --version | awk '{ print $2 }')
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read the version of $bin"
# The newest glibc symbol version the binary needs is the oldest glibc it runs on.
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
"$bin" --help >/dev/null || die "$bin does not run"

work=$(mktemp -d -t wrenchline-server-pkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage="$work/stage"
doc="$stage/usr/share/doc/wrenchline-server"
install -D -m 0755 "$bin" "$stage/usr/bin/wrenchline-server"
install -D -m 0644 "$root/deploy/wrenchline-server.service" "$stage/usr/lib/systemd/system/wrenchline-server.service"
install -D -m 0644 "$here/wrenchline-server.sysusers" "$stage/usr/lib/sysusers.d/wrenchline-server.conf"
install -D -m 0640 "$root/deploy/wrenchline-server.env" "$stage/etc/wrenchline/wrenchline-server.env"
chmod 0750 "$stage/etc/wrenchline"
install -D -m 0644 "$root/docs/deploy.md" "$doc/deploy.md"
install -D -m 0644 "$root/README.md" "$doc/README.md"
install -D -m 0644 "$root/deploy/nginx-wrenchline.conf" "$doc/examples/nginx-wrenchline.conf"
install -D -m 0644 "$root/deploy/Caddyfile" "$doc/examples/Caddyfile"
install -D -m 0644 "$root/deploy/wrenchline-server.env" "$doc/examples/wrenchline-server.env"
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wrenchline-server

Files: *
Copyright: Wrenchline
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
COPYRIGHT
description="Wrenchline server: REST API, realtime hub, customer web link, desktop updates"

# --- .deb ----------------------------------------------------------------------------------
debroot="$work/deb"
cp -a "$stage" "$debroot"
mkdir -p "$debroot/DEBIAN"
install -m 0755 "$here/deb/postinst" "$here/deb/prerm" "$here/deb/postrm" "$debroot/DEBIAN/"
echo /etc/wrenchline/wrenchline-server.env > "$debroot/DEBIAN/conffiles"
cat > "$debroot/DEBIAN/control" <<CONTROL
Package: wrenchline-server
Version: $version
Architecture: amd64
Maintainer: Wrenchline <release@wrenchline.example.com>
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$debroot" | cut -f1)
Depends: libc6 (>= $glibc), libgcc-s1, systemd (>= 247)
Suggests: postgresql, nginx | caddy, sqlite3
Description: $description
 wrenchline-server connects drivers with remote mechanics: the REST API, the realtime hub the
 desktop app and the customer web page use, the customer web link (embedded) and desktop
 updates. Runs as the systemd service wrenchline-server, as the system user wrenchline, on
 SQLite (/var/lib/wrenchline) or PostgreSQL; /usr/share/doc/wrenchline-server/deploy.md is the
 operator's guide.
CONTROL
deb="$out/wrenchline-server_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$debroot" "$deb" >/dev/null

# --- .rpm ----------------------------------------------------------------------------------
top="$work/rpmbuild"
mkdir -p "$top"
rpmbuild -bb --quiet \
  --define "_topdir $top" --define "_rpmdir $work/rpms" --define "_build_id_links none" \
  --define "wl_version $version" --define "wl_glibc $glibc" --define "wl_stage $stage" \
  "$here/wrenchline-server.spec" >"$work/rpmbuild.log" 2>&1 \
  || { cat "$work/rpmbuild.log" >&2; die "rpmbuild failed"; }
rpm_file="$out/wrenchline-server-${version}-1.x86_64.rpm"
mv "$(find "$work/rpms" -name '*.rpm' | head -n1)" "$rpm_file"

echo "$deb"
echo "$rpm_file"
