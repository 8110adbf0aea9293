#!/usr/bin/env bash
# Builds the gleaner .deb with cargo-deb (metadata: [package.metadata.deb] in Cargo.toml).
# Prints the path of the .deb on stdout. Honours CARGO_TARGET_DIR.
#
#   scripts/build-deb.sh            # build target/release/gleaner and package it
#   scripts/build-deb.sh --no-build # package the existing release binary
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/packaging/common.sh"

CARGO_DEB_VERSION=3.8.0

cd "$ROOT"
command -v cargo >/dev/null || die "cargo not found"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian/Ubuntu host required)"

if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
    log "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --locked --quiet "cargo-deb@$CARGO_DEB_VERSION"
fi

# The Debian changelog's newest entry must be this version, or the package lies about itself.
version="$(gleaner_version)"
changelog_version="$(sed -n '1s/^gleaner (\([^)]*\)).*/\1/p' packaging/deb/changelog)"
[ "$changelog_version" = "$version-1" ] \
    || die "packaging/deb/changelog's newest entry is $changelog_version, Cargo.toml says $version: add an entry for $version-1"

# The packaged config is the shipped default with only store.data_dir changed.
diff <(grep -v '^#' config/gleaner.toml | sed 's|^data_dir = .*|data_dir = X|') \
     <(grep -v '^#' packaging/deb/gleaner.toml | sed 's|^data_dir = .*|data_dir = X|') >/dev/null \
    || die "packaging/deb/gleaner.toml differs from config/gleaner.toml beyond store.data_dir"
grep -q '^data_dir = "/var/lib/gleaner"$' packaging/deb/gleaner.toml \
    || die "packaging/deb/gleaner.toml must set data_dir = \"/var/lib/gleaner\""

out_dir="${CARGO_TARGET_DIR:-$ROOT/target}/debian"
mkdir -p "$out_dir"
log "cargo deb $* (target dir ${CARGO_TARGET_DIR:-target})"
# --dbgsym: the binary is stripped; its debug info goes to gleaner-dbgsym_*.ddeb.
cargo deb --locked --dbgsym --compress-debug-symbols=zlib --output "$out_dir" "$@" >/dev/null
deb="$out_dir/gleaner_${version}-1_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || die "cargo deb did not produce $deb"

# cargo-deb writes no DEBIAN/md5sums; add it so `dpkg --verify` and debsums can check the
# installed files. Repacking keeps every path, mode and the root:root ownership.
repack="$(mktemp -d)"
trap 'rm -rf "$repack"' EXIT
dpkg-deb -R "$deb" "$repack/pkg"
(cd "$repack/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$repack/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$repack/pkg" "$deb" >/dev/null
log "built $deb ($(du -h "$deb" | cut -f1))"
printf '%s\n' "$deb"
