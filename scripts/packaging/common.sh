# Shared helpers for scripts/build-deb.sh, scripts/build-image.sh, scripts/test-packaging.sh.
# Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Field of [package] in Cargo.toml (version, repository, license).
cargo_field() {
    sed -n '/^\[package\]/,/^\[/{s/^'"$1"' *= *"\(.*\)"/\1/p}' "$ROOT/Cargo.toml" | head -n1
}

gleaner_version() { cargo_field version; }

git_revision() {
    local rev
    rev="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    if [ "$rev" != unknown ] && ! git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then
        rev="$rev-dirty"
    fi
    printf '%s\n' "$rev"
}

# apt-get install only what is missing.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
