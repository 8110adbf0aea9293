#!/usr/bin/env bash
# Builds the gleaner OCI image from packaging/oci/Dockerfile.local without pulling anything:
# a statically linked binary built on this host, placed FROM scratch with a CA bundle, an
# /etc/passwd naming a non-root user, and the data directory.
#
#   scripts/build-image.sh [IMAGE]   # default: gleaner:local, also tagged gleaner:<version>
#
# The static binary is the release build relinked: `-C target-feature=+crt-static` goes to
# the final rustc invocation only (`cargo rustc`), so every dependency compiled by
# `cargo build --release` is reused and only the binary crate is compiled and linked again
# (about 3 minutes here, against 7.5 for a second release build with RUSTFLAGS). That is
# sound for this dependency graph: the libc crates' static-or-dynamic link attributes are
# `cfg(target_feature = "crt-static")` evaluated at the final link, as for the prebuilt std,
# and no dependency compiles different Rust or C code for it on this target (only msvc and
# windows-only paths do). `file` and `ldd` below check the result. Cargo caches both
# variants; target/release/gleaner is the static one until the next `cargo build --release`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/packaging/common.sh"

IMAGE="${1:-gleaner:local}"
version="$(gleaner_version)"
tags=(-t "$IMAGE")
[ $# -eq 0 ] && tags+=(-t "gleaner:$version")
TRIPLE=x86_64-unknown-linux-gnu
UID_GID=65532

cd "$ROOT"
command -v docker >/dev/null || die "docker not found"
[ "$(rustc -vV | sed -n 's/^host: //p')" = "$TRIPLE" ] || die "this script builds on $TRIPLE only"

log "static build (the release build relinked with +crt-static)"
cargo rustc --release --locked --bin gleaner -- -C target-feature=+crt-static
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ctx="$work/context" # what docker build gets: the rootfs tar and the Dockerfile only
mkdir "$ctx"
# Copied at once: the next `cargo build --release` (cargo-deb runs one) puts the dynamic
# binary back at this path, from cache when it was built before.
bin="$work/gleaner-static"
cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/gleaner" "$bin"

# A scratch image has no loader and no libc: the binary must not need either.
file_out="$(file -b "$bin")"
ldd_out="$(ldd "$bin" 2>&1 || true)"
case "$file_out" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "$bin is not static: file says: $file_out" ;;
esac
case "$ldd_out" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) die "$bin is not static: ldd says: $ldd_out" ;;
esac
log "static binary OK: file: ${file_out%%,*}, $(echo "$file_out" | grep -o 'static[-a-z ]*linked'); ldd: $(echo "$ldd_out" | xargs)"

umask 022 # the image's directories get their modes from here
root="$ctx/rootfs"
install -d -m 0755 "$root/usr/bin" "$root/etc/ssl/certs" "$root/var/lib"
install -d -m 1777 "$root/tmp"
install -d -m 0750 -o "$UID_GID" -g "$UID_GID" "$root/var/lib/gleaner"
# Debug info stays in the build tree; the image gets a stripped copy.
strip -o "$root/usr/bin/gleaner" "$bin"
chmod 0755 "$root/usr/bin/gleaner"
[ -s /etc/ssl/certs/ca-certificates.crt ] || die "/etc/ssl/certs/ca-certificates.crt missing (apt-get install ca-certificates)"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\ngleaner:x:%s:%s:gleaner:/var/lib/gleaner:/sbin/nologin\n' \
    "$UID_GID" "$UID_GID" > "$root/etc/passwd"
printf 'root:x:0:\ngleaner:x:%s:\n' "$UID_GID" > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
# One tar, unpacked by ADD with its owners and modes as they are here: the classic builder's
# COPY can neither set a mode nor own just the data directory without its parents.
tar --numeric-owner --sort=name -C "$root" -cf "$ctx/rootfs.tar" .
rm -rf "$root"
cp packaging/oci/Dockerfile.local "$ctx/Dockerfile"

log "docker build ${tags[*]}"
# No buildx here: the classic builder needs nothing but the engine.
DOCKER_BUILDKIT=0 docker build --quiet \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$(git_revision)" \
    --build-arg CREATED="$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)" \
    --build-arg SOURCE="$(cargo_field repository)" \
    "${tags[@]}" "$ctx" >/dev/null
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
log "image $IMAGE: $(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1000000}')"
printf '%s\n' "$IMAGE"
