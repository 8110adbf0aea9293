#!/usr/bin/env bash
# API throughput and latency: Gleaner versus Datasette on the same 1,000,000 records.
#
# Seeds a tenant with N records through the store in bulk (`gleaner bench-seed`), writes a
# plain SQLite copy of the same rows for Datasette, then runs wrk against both, side by side,
# for two queries: a record list page (100 rows, keyset cursor at a random depth) and one
# record by id (random ids). Each (system, query, connections) is run RUNS times; medians
# and min-max are printed, with ratios. Gleaner is called with a reader API key (so every
# request authenticates, authorizes and rate-limit-checks), Datasette without auth.
#
# Usage: scripts/bench-api.sh            (N=1000000, RUNS=3, DURATION=10s, CONNS="100 1000")
# Env:   N, RUNS, DURATION, CONNS, THREADS, KEEP=1 (keep the work dir)
# Needs: wrk (Debian), python3; installs datasette==0.65.5 into .tools/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-"100 1000"}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
[ -x .tools/venv/bin/pip ] || python3 -m venv .tools/venv
.tools/venv/bin/pip install --quiet --disable-pip-version-check datasette==0.65.5
cargo build --release --locked --quiet
BIN=$CARGO_TARGET_DIR/release/gleaner

# 1000 connections need file descriptors on both sides.
ulimit -n 65536 2>/dev/null || true
echo "ulimit -n: $(ulimit -n); cores: $(nproc); wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); datasette: $(.tools/venv/bin/datasette --version)"
echo "gleaner: $($BIN --version); N=$N RUNS=$RUNS DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS"

WORK=$(mktemp -d /tmp/gleaner-bench-api.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
export GLEANER_AUTH__SECRET=bench-server-secret-0123456789abcdef
export GLEANER_STORE__TENANT_SYNCHRONOUS=normal

echo; echo "==> seeding $N records"
/usr/bin/time -f "seed: %e s wall, %U+%S s CPU, %M KiB max RSS" \
  "$BIN" bench-seed --tenant bench --records "$N" --plain-copy "$WORK/bench.db" --data-dir "$WORK/data"

free_port() { python3 scripts/free-port.py; }
wait_http() {
  for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; exit 1
}

GPORT=$(free_port)
TOKEN=$("$BIN" key create --tenant bench --role reader --name bench --data-dir "$WORK/data" 2>/dev/null)
GLEANER_LIMITS__KEY_REQUESTS_PER_SECOND=0 GLEANER_LIMITS__TENANT_REQUESTS_PER_SECOND=0 \
GLEANER_HTTP__MAX_CONNECTIONS=4096 \
  "$BIN" serve --listen "127.0.0.1:$GPORT" --data-dir "$WORK/data" --log-level warn &
PIDS+=($!)
wait_http "http://127.0.0.1:$GPORT/readyz"

DPORT=$(free_port)
# Datasette's fair settings (docs/benchmarking.md): immutable file, generous time limit,
# no counts, facets or suggestions on list pages, keyset pagination through _next.
.tools/venv/bin/datasette serve -i "$WORK/bench.db" -h 127.0.0.1 -p "$DPORT" \
  --setting sql_time_limit_ms 20000 --setting default_page_size 100 \
  --setting max_returned_rows 1000 --setting num_sql_threads 3 >/dev/null 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$DPORT/bench/records.json?_size=1"

# Cursors at random depths: walk Gleaner's pages once; Datasette's _next is the last id.
echo; echo "==> collecting list cursors"
python3 - "$GPORT" "$TOKEN" "$WORK" <<'PY'
import json, random, sys, urllib.request
port, token, work = sys.argv[1], sys.argv[2], sys.argv[3]
random.seed(42)
cursors, ids, cur, page = [], [], None, 0
while True:
    url = f"http://127.0.0.1:{port}/v1/tenants/bench/records?limit=1000&fields=n"
    if cur: url += "&cursor=" + cur
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    body = json.load(urllib.request.urlopen(req))
    page += 1
    cur = body["next"]
    if not cur: break
    if random.random() < 0.3:
        cursors.append(cur); ids.append(body["records"][-1]["id"])
with open(f"{work}/gleaner-list.lua", "w") as f:
    f.write("local c = {" + ",".join('"%s"' % c for c in cursors) + "}\n")
    f.write('request = function() return wrk.format("GET", "/v1/tenants/bench/records?limit=100&cursor=" .. c[math.random(#c)]) end\n')
with open(f"{work}/datasette-list.lua", "w") as f:
    f.write("local c = {" + ",".join(str(i) for i in ids) + "}\n")
    f.write('request = function() return wrk.format("GET", "/bench/records.json?_size=100&_shape=objects&_nocount=1&_nofacet=1&_nosuggest=1&_next=" .. c[math.random(#c)]) end\n')
print(f"{len(cursors)} cursors over {page} pages")
PY
cat > "$WORK/gleaner-get.lua" <<LUA
request = function() return wrk.format("GET", "/v1/tenants/bench/records/" .. math.random($N) .. "?versions=0") end
LUA
cat > "$WORK/datasette-get.lua" <<LUA
request = function() return wrk.format("GET", "/bench/records/" .. math.random($N) .. ".json?_shape=objects") end
LUA
# Per-run summary line: req/s p50 p99 errors(non-2xx + socket).
cat > "$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format("RESULT %.1f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errs))
end
LUA
for f in gleaner-list gleaner-get datasette-list datasette-get; do cat "$WORK/report.lua" >> "$WORK/$f.lua"; done

declare -A RES
run() { # system query conns
  local sys=$1 q=$2 c=$3 port hdr=()
  if [ "$sys" = gleaner ]; then port=$GPORT; hdr=(-H "Authorization: Bearer $TOKEN"); else port=$DPORT; fi
  wrk -t"$THREADS" -c"$c" -d"$DURATION" --timeout 10s "${hdr[@]}" -s "$WORK/$sys-$q.lua" \
    "http://127.0.0.1:$port" 2>&1 | awk '/^RESULT/ {print $2, $3, $4, $5}'
}

echo; echo "==> runs (req/s, p50 ms, p99 ms, errors)"
for c in $CONNS; do
  for q in list get; do
    for r in $(seq 1 "$RUNS"); do
      for sys in gleaner datasette; do
        out=$(run "$sys" "$q" "$c")
        echo "$sys $q c=$c run=$r: $out"
        RES[$sys,$q,$c]+="$out;"
      done
    done
  done
done

echo; echo "==> export: every record as NDJSON, streamed (server memory before and after)"
GPID=${PIDS[0]}
hwm() { awk '/VmHWM/ {print $2}' "/proc/$GPID/status"; }
before=$(hwm)
/usr/bin/time -f "export: %e s wall" curl -fsS -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$GPORT/v1/tenants/bench/export?format=ndjson" -o "$WORK/export.ndjson"
echo "export: $(wc -l < "$WORK/export.ndjson") lines, $(du -m "$WORK/export.ndjson" | cut -f1) MiB; server peak RSS before ${before} KiB, after $(hwm) KiB"
rm -f "$WORK/export.ndjson"

echo; echo "==> summary (median [min-max] of $RUNS runs)"
for c in $CONNS; do
  for q in list get; do
    python3 - "$q" "$c" "${RES[gleaner,$q,$c]}" "${RES[datasette,$q,$c]}" <<'PY'
import statistics, sys
q, c, g, d = sys.argv[1:5]
def parse(s):
    rows = [list(map(float, r.split())) for r in s.strip(";").split(";") if r.strip()]
    return list(zip(*rows)) if rows else [[0],[0],[0],[0]]
def fmt(xs, p=0):
    return f"{statistics.median(xs):.{p}f} [{min(xs):.{p}f}-{max(xs):.{p}f}]"
G, D = parse(g), parse(d)
ratio = statistics.median(G[0]) / max(statistics.median(D[0]), 1e-9)
print(f"{q:4} c={c:>4}  gleaner: {fmt(G[0])} req/s, p50 {fmt(G[1],2)} ms, p99 {fmt(G[2],2)} ms, errors {int(sum(G[3]))}")
print(f"{'':4} {'':6}  datasette: {fmt(D[0])} req/s, p50 {fmt(D[1],2)} ms, p99 {fmt(D[2],2)} ms, errors {int(sum(D[3]))}")
print(f"{'':4} {'':6}  throughput ratio gleaner/datasette: {ratio:.1f}x")
PY
  done
done
