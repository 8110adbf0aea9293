#!/usr/bin/env bash
# Crash-loop bench: the crash-loop integration test (tests/it/crash_loop.rs) at full length.
# `gleaner serve` with replication takes acknowledged record writes and is SIGKILLed at
# seeded random moments (while writing, and one kill in five during start-up); after every
# kill every database passes integrity_check, every acknowledged write is in the local
# database and the replica restores to an intact past state of it; after the last kill and
# a clean stop, `gleaner restore` and `litestream restore -txid <the replica's TXID>` must
# both give exactly the local content. The summary line also counts the full L0 files the
# replicas hold (one per database is the first capture; more were caused by restarts) and
# gives replica bytes / data bytes (every level, before L0 retention has run: the L0 files
# stay `l0_retention_secs` after level 1 covers them). The suite runs the same test with 8
# kills.
#
#   scripts/bench-crash.sh [--kills N] [--seed N] [--replica file|s3] [--release]
#
#   --kills N            kills (default 100)
#   --seed N             replay a run (the seed is printed at the start of every run)
#   --replica file|s3    a directory (default), or a SeaweedFS S3 gateway on loopback
#   --release            test the release build (default: the debug build the suite uses)
#
# Installs its peers first (pinned: litestream 0.5.17; SeaweedFS for --replica s3). Prints
# the test's per-kill lines, its summary and the wall time. Exit 0 only if the test passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILLS=100
SEED=""
REPLICA=file
PROFILE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kills) KILLS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --replica) REPLICA="$2"; shift 2 ;;
        --release) PROFILE=(--release); shift ;;
        *) echo "usage: $0 [--kills N] [--seed N] [--replica file|s3] [--release]" >&2; exit 2 ;;
    esac
done
case "$REPLICA" in file|s3) ;; *) echo "--replica must be file or s3" >&2; exit 2 ;; esac
cd "$ROOT"

bash scripts/install-litestream.sh >/dev/null
if [ "$REPLICA" = s3 ]; then bash scripts/install-s3.sh >/dev/null; fi

# The test takes its parameters from the environment; nothing else of the caller's leaks in
# (it starts gleaner with a clean GLEANER_*/AWS_* environment).
export GLEANER_CRASH_KILLS="$KILLS" GLEANER_CRASH_REPLICA="$REPLICA"
if [ -n "$SEED" ]; then export GLEANER_CRASH_SEED="$SEED"; fi

# Build first, so the wall time below is the crash loop's own.
cargo test --locked "${PROFILE[@]}" --test it --no-run
started="$(date +%s.%N)"
cargo test --locked "${PROFILE[@]}" --test it -- --nocapture --test-threads 1 crash_loop::
ended="$(date +%s.%N)"
profile="${PROFILE[*]:-debug}"
echo "bench-crash: passed: $KILLS kills, $REPLICA replica, ${profile#--} build, wall time $(python3 -c "print(f'{$ended - $started:.1f}')") s"
