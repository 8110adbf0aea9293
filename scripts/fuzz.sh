#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a set time, then prints one
# line per target: seconds run, executions, executions per second, corpus size, edges covered
# and findings.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     (all targets when none are named)
#
# Needs cargo-fuzz (scripts/test.sh installs the pinned version). cargo-fuzz passes
# nightly-only flags (-Zsanitizer, -Cpasses=sancov); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. The instrumented build stays in fuzz/target. Inputs libFuzzer
# finds go to fuzz/target/corpus/<target> (the committed seeds in fuzz/corpus/<target>
# are read, never written); a crashing input is saved in fuzz/artifacts/<target>/.
# Exits non-zero when any target found a crash, a timeout or an out-of-memory input.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
case $secs in '' | *[!0-9]*) echo "SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;; esac
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
# 16 codegen units: the instrumented build of the crate and its dependencies takes a
# fraction of the time at cargo-fuzz's default of 1, for somewhat slower executions.
build=(--codegen-units 16)
# A slow input (30 s for one run) is a finding, as is one needing more than 2 GiB.
fuzz_args=(-timeout=30 -rss_limit_mb=2048 -print_final_stats=1)

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target '$t' (see fuzz/fuzz_targets/)" >&2; exit 2; }
done

# One target named: build just it; else all (they share every dependency).
one=()
[ ${#targets[@]} -eq 1 ] && one=("${targets[0]}")
(cd fuzz && cargo fuzz build "${build[@]}" "${one[@]}") >&2 ||
  { echo "fuzz build failed" >&2; exit 1; }

summary=()
failed=0
for t in "${targets[@]}"; do
  work=fuzz/target/corpus/$t
  artifacts=fuzz/artifacts/$t
  log=fuzz/target/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  echo "==> fuzzing $t for ${secs}s (log: $log)" >&2
  status=0
  began=$(date +%s)
  (cd fuzz && cargo fuzz run "${build[@]}" "$t" "../$work" "corpus/$t" -- \
    "${fuzz_args[@]}" -max_total_time="$secs" -artifact_prefix="../$artifacts/") >"$log" 2>&1 ||
    status=$?
  ran=$(( $(date +%s) - began ))
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  corpus=$(find "$work" "fuzz/corpus/$t" -type f | wc -l)
  # Edges covered at the end, from libFuzzer's last status line.
  cov=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p' || true)
  if [ "$status" -eq 0 ]; then
    found=none
  else
    failed=1
    found="FAILED (exit $status): $(grep -m1 -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|ALARM)' "$log" || echo 'see log'); inputs: $(ls "$artifacts" | tr '\n' ' ')"
  fi
  summary+=("$(printf '%-16s %6s s %12s execs %8s exec/s %6s corpus %7s edges  %s' \
    "$t" "$ran" "${execs:-?}" "${rate:-?}" "$corpus" "${cov:-?}" "$found")")
done

printf '\n%s\n' "fuzz summary (target, seconds, executions, executions/s, corpus files, edges covered, findings):"
printf '%s\n' "${summary[@]}"
exit "$failed"
