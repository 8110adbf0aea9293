#!/usr/bin/env bash
# Harvest throughput, Gleaner vs Scrapy, side by side in one run (docs/benchmarking.md).
#
# The sample site is exported as static files (`gleaner sample-site export`, >= 20,000
# pages: listings of 50 plus one detail page per entry) and served by nginx on loopback.
# Both harvesters crawl listing -> next -> detail pages, extract the same fields and store
# them in SQLite with batched commits; politeness is off for both (robots ignored, no
# delays, no adaptive throttling), 64 requests in flight. Each side runs $RUNS times from
# an empty database; /usr/bin/time -v gives wall time, CPU seconds and peak RSS; medians
# (min-max) are printed with the ratios.
#
#   scripts/bench-harvest.sh                 # ENTITIES=20000 RUNS=3
#   ENTITIES=5000 RUNS=1 scripts/bench-harvest.sh
#   SCRAPY_ITEMS="10 25 100" scripts/bench-harvest.sh   # CONCURRENT_ITEMS values tried (best reported)
set -euo pipefail
cd "$(dirname "$0")/.."
ENTITIES=${ENTITIES:-20000}
RUNS=${RUNS:-3}
PORT=${PORT:-18089}
SCRAPY_VERSION=2.19.0
WORK=$(mktemp -d /tmp/gleaner-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers read the site as an unprivileged user
TARGET=${CARGO_TARGET_DIR:-target}

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools (nginx, GNU time, scrapy==$SCRAPY_VERSION in .tools/venv)"
if ! command -v nginx >/dev/null || [ ! -x /usr/bin/time ]; then
  apt-get update -q >/dev/null
  apt-get install -y -q nginx-light time >/dev/null
fi
[ -x .tools/venv/bin/pip ] || python3 -m venv .tools/venv
.tools/venv/bin/pip install --quiet --disable-pip-version-check "scrapy==$SCRAPY_VERSION"

step "cargo build --release"
cargo build --release --locked --bin gleaner >&2
# A copy: a shared target directory may get another build of the binary meanwhile.
cp "$TARGET/release/gleaner" "$WORK/gleaner"
BIN=$WORK/gleaner

step "export $ENTITIES entries as static pages"
"$BIN" sample-site export --entities "$ENTITIES" --out "$WORK/site" --base "http://127.0.0.1:$PORT" >&2

cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { text/html html; application/xml xml; }
  server {
    listen 127.0.0.1:$PORT;
    root $WORK/site;
    charset off;
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK"
trap 'nginx -c "$WORK/nginx.conf" -p "$WORK" -s stop 2>/dev/null || true; rm -rf "$WORK"' EXIT
START="http://127.0.0.1:$PORT/registry/list/1.html"

cat >"$WORK/source.toml" <<TOML
id = "registry"
kind = "html"
start_urls = ["$START"]
[politeness]
obey_robots = false
min_delay = "0s"
[scope]
max_depth = 0
max_pages = 1000000
[next]
selector = "a.next"
[extract]
record = "tr.result"
key = { field = "code" }
[extract.fields.code]
selector = "td.code"
[extract.fields.title]
selector = "td.title"
[extract.fields.status]
selector = "td.status"
[extract.fields.released]
selector = "td.released"
[extract.detail]
link = "td.code a"
[extract.detail.fields.sector]
selector = "#sector"
[extract.detail.fields.fee]
selector = "#fee"
[extract.detail.fields.description]
selector = "#description"
TOML

# time_field FILE NAME -> value from /usr/bin/time -v
tv() { grep -F "$2" "$1" | head -1 | awk -F': ' '{print $2}'; }
secs() { # h:mm:ss or m:ss.ss -> seconds
  awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }' <<<"$1"
}
RESULTS=$WORK/results.tsv
: >"$RESULTS"
record() { # name run file pages rows
  local wall cpu rss
  wall=$(secs "$(tv "$3" 'Elapsed (wall clock)')")
  cpu=$(awk -v u="$(tv "$3" 'User time')" -v s="$(tv "$3" 'System time')" 'BEGIN{print u+s}')
  rss=$(tv "$3" 'Maximum resident set size')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$wall" "$cpu" "$rss" "$4" >>"$RESULTS"
  printf '%-28s run %s: %6s pages in %6.2fs wall, %6.2f CPU s, peak RSS %6.1f MB, %s rows\n' \
    "$1" "$2" "$4" "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$5" >&2
}

PAGES=$(( ENTITIES + (ENTITIES + 49) / 50 ))
for i in $(seq 1 "$RUNS"); do
  step "gleaner run $i"
  rm -rf "$WORK/g"
  GLEANER_HARVEST__PER_HOST_CONCURRENCY=64 GLEANER_HARVEST__FETCH_CONCURRENCY=64 \
    /usr/bin/time -v -o "$WORK/time-g" "$BIN" harvest --tenant bench --source-file "$WORK/source.toml" \
    --allow-private-targets --data-dir "$WORK/g" --json --quiet >"$WORK/g.json" \
    || { echo "gleaner run failed:" >&2; cat "$WORK/g.json" >&2; exit 1; }
  pages=$(python3 -c "import json,sys; print(json.load(open('$WORK/g.json'))['counts']['pages'])")
  rows=$(python3 -c "import json; c=json.load(open('$WORK/g.json'))['counts']; print(c['records_new'])")
  [ "$rows" = "$ENTITIES" ] || { echo "gleaner stored $rows records, expected $ENTITIES" >&2; exit 1; }
  record gleaner "$i" "$WORK/time-g" "$pages" "$rows"
  for items in ${SCRAPY_ITEMS:-10 25 100}; do
    step "scrapy CONCURRENT_ITEMS=$items run $i"
    rm -f "$WORK/s.db"*
    BENCH_START_URL=$START BENCH_SQLITE=$WORK/s.db PYTHONPATH=scripts/bench \
      /usr/bin/time -v -o "$WORK/time-s" .tools/venv/bin/scrapy runspider scripts/bench/scrapy_registry.py \
      -s ROBOTSTXT_OBEY=False -s CONCURRENT_REQUESTS=64 -s CONCURRENT_REQUESTS_PER_DOMAIN=64 \
      -s AUTOTHROTTLE_ENABLED=False -s DOWNLOAD_DELAY=0 -s LOG_LEVEL=INFO -s TELNETCONSOLE_ENABLED=False \
      -s CONCURRENT_ITEMS="$items" -s 'ITEM_PIPELINES={"scrapy_registry.SqlitePipeline": 100}' \
      2>"$WORK/scrapy.log"
    rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/s.db').execute('select count(*) from records').fetchone()[0])")
    [ "$rows" = "$ENTITIES" ] || { echo "scrapy stored $rows records, expected $ENTITIES" >&2; tail -20 "$WORK/scrapy.log" >&2; exit 1; }
    record "scrapy-items$items" "$i" "$WORK/time-s" "$PAGES" "$rows"
  done
done

step "medians of $RUNS runs (min-max)"
python3 - "$RESULTS" "$ENTITIES" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for name, run, wall, cpu, rss, pages in rows:
    by.setdefault(name, []).append((float(wall), float(cpu), int(rss) / 1024, int(pages)))
def stat(xs):
    return statistics.median(xs), min(xs), max(xs)
summary = {}
for name, v in by.items():
    rate = stat([p / w for w, _, _, p in v])
    cpu = stat([c for _, c, _, _ in v])
    rss = stat([r for _, _, r, _ in v])
    summary[name] = (rate, cpu, rss)
    print(f"{name:20} {rate[0]:9.0f} pages/s ({rate[1]:.0f}-{rate[2]:.0f})  "
          f"CPU {cpu[0]:6.2f} s ({cpu[1]:.2f}-{cpu[2]:.2f})  peak RSS {rss[0]:6.1f} MB ({rss[1]:.1f}-{rss[2]:.1f})")
scrapy = max((k for k in summary if k.startswith("scrapy")), key=lambda k: summary[k][0][0])
g, s = summary["gleaner"], summary[scrapy]
print(f"\nbest Scrapy setting: {scrapy}")
print(f"gleaner / scrapy: {g[0][0] / s[0][0]:.1f}x pages/s, {s[1][0] / g[1][0]:.1f}x less CPU, "
      f"{s[2][0] / g[2][0]:.1f}x less peak RSS; gleaner peak RSS {g[2][0]:.1f} MB")
PY
echo "versions: $("$BIN" --version), scrapy $SCRAPY_VERSION, $(nginx -v 2>&1)" >&2
