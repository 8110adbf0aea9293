#!/usr/bin/env bash
# Interleaved A/B of the record list query between builds or settings, on one data set.
#
# scripts/bench-api.sh compares Gleaner with Datasette; this compares Gleaner with itself,
# where host noise (±25% minute to minute on a shared machine) hides a change of a few
# percent between two full runs. It seeds 1,000,000 records once (with the first binary),
# then for each round starts a fresh server per variant on that data, warms it with a 2 s
# run and measures one DURATION run of the list page query (100 rows at a random cursor,
# every cursor of the tenant), printing req/s, p50, p99 and the server's CPU per request
# (utime+stime from /proc/<pid>/stat over the run).
#
# Usage: scripts/bench-api-ab.sh VARIANT...      VARIANT = BINARY[:NAME=VALUE,...]
#   e.g. scripts/bench-api-ab.sh /tmp/old-gleaner target/release/gleaner \
#          target/release/gleaner:GLEANER_STORE__READER_MMAP_BYTES=1073741824
# Env:   ROUNDS (4), DURATION (10s), CONNS (100), N (1000000), KEEP=1 (keep the work dir)
# Needs: wrk (Debian), python3, curl.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-100}
N=${N:-1000000}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
for v in "$@"; do [ -x "${v%%:*}" ] || { echo "not an executable: ${v%%:*}" >&2; exit 2; }; done

WORK=$(mktemp -d /tmp/gleaner-bench-ab.XXXXXX)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
export GLEANER_AUTH__SECRET=bench-server-secret-0123456789abcdef
export GLEANER_STORE__TENANT_SYNCHRONOUS=normal
# Every round restarts the server on this port: one from outside the ephemeral range.
PORT=$(python3 "$(dirname "$0")/free-port.py")
FIRST=${1%%:*}

echo "==> seeding $N records with $FIRST"
"$FIRST" bench-seed --tenant bench --records "$N" --data-dir "$WORK/data"
TOKEN=$("$FIRST" key create --tenant bench --role reader --name bench --data-dir "$WORK/data" 2>/dev/null)

start() { # variant -> sets SERVER
  local bin=${1%%:*} envs=() kv
  if [[ $1 == *:* ]]; then IFS=, read -ra envs <<< "${1#*:}"; fi
  for kv in "${envs[@]}"; do [[ $kv == *=* ]] || { echo "not NAME=VALUE: $kv" >&2; exit 2; }; done
  env "${envs[@]}" GLEANER_LIMITS__KEY_REQUESTS_PER_SECOND=0 GLEANER_LIMITS__TENANT_REQUESTS_PER_SECOND=0 \
    GLEANER_HTTP__MAX_CONNECTIONS=4096 \
    "$bin" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --log-level warn &
  SERVER=$!
  for _ in $(seq 1 200); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }

start "$1"
python3 - "$PORT" "$TOKEN" "$WORK/list.lua" <<'PY'
import json, sys, urllib.request
port, token, out = sys.argv[1:4]
cursors, cur = [], None
while True:
    url = f"http://127.0.0.1:{port}/v1/tenants/bench/records?limit=1000&fields=n"
    if cur: url += "&cursor=" + cur
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    cur = json.load(urllib.request.urlopen(req))["next"]
    if not cur: break
    cursors.append(cur)
with open(out, "w") as f:
    f.write("local c = {" + ",".join('"%s"' % c for c in cursors) + "}\n")
    f.write('request = function() return wrk.format("GET", "/v1/tenants/bench/records?limit=100&cursor=" .. c[math.random(#c)]) end\n')
    f.write('done = function(s, lat, r) io.write(string.format("RESULT %d %.1f %.2f %.2f %d\\n", s.requests, '
            's.requests / (s.duration / 1e6), lat:percentile(50) / 1000, lat:percentile(99) / 1000, '
            's.errors.connect + s.errors.read + s.errors.write + s.errors.timeout + s.errors.status)) end\n')
print(f"{len(cursors)} cursors")
PY
stop

cpu() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
TICK=$(getconf CLK_TCK)
echo "==> $ROUNDS rounds, list c=$CONNS, $DURATION per run (req/s, p50 ms, p99 ms, server CPU µs/request, errors)"
for r in $(seq 1 "$ROUNDS"); do
  for v in "$@"; do
    start "$v"
    hdr=(-H "Authorization: Bearer $TOKEN")
    wrk -t2 -c"$CONNS" -d2s "${hdr[@]}" -s "$WORK/list.lua" "http://127.0.0.1:$PORT" >/dev/null
    a=$(cpu)
    read -r _ reqs rps p50 p99 errs < <(wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 10s "${hdr[@]}" \
      -s "$WORK/list.lua" "http://127.0.0.1:$PORT" | grep '^RESULT')
    b=$(cpu)
    stop
    printf 'round %d  %-60s %9s %7s %7s %5d %d\n' "$r" "$v" "$rps" "$p50" "$p99" \
      $(( (b - a) * 1000000 / TICK / reqs )) "$errs"
  done
done
