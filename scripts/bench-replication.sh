#!/usr/bin/env bash
# Replication benchmark: the same write workload on one SQLite database, replicated once by
# `gleaner replicate` and once by `litestream replicate` (0.5.17), both to a file:// replica
# with a 1 s sync interval (both tools' default). Prints, for each:
#   - lag: for every commit, the time from COMMIT until the first L0 file whose header
#     timestamp (capture time) is later than the commit appeared in the replica
#     (median and p99; the replica directory is polled every 5 ms),
#   - CPU seconds of the replicating process (user + system, from /proc),
#   - objects written to the replica (every LTX file seen, all levels),
# then the time to restore each replica with each tool (best of 3).
#
# Usage: scripts/bench-replication.sh [SECONDS] [TXN_PER_SEC] [PRELOAD_MB]
# Defaults: 30 s, 200 transactions/s, 64 MB preloaded before replication starts.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-30}"
RATE="${2:-200}"
PRELOAD_MB="${3:-64}"

LS="$(bash scripts/install-litestream.sh | tail -1)"
cargo build --release --quiet
TARGET="${CARGO_TARGET_DIR:-target}"
GL="$(cd "$TARGET/release" && pwd)/gleaner"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/bench.py" <<'PY'
import json, os, random, signal, sqlite3, subprocess, sys, threading, time

tool, gl, ls, work, secs, rate, preload_mb = sys.argv[1:8]
secs, rate, preload_mb = float(secs), float(rate), int(preload_mb)
db = os.path.join(work, tool + ".db")
replica = os.path.join(work, tool + "-replica")
random.seed(42)

c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
c.execute("BEGIN")
for _ in range(preload_mb * 1024):
    c.execute("INSERT INTO t (v) VALUES (randomblob(1000))")
c.execute("COMMIT")

if tool == "gleaner":
    cmd = [gl, "replicate", "--db", db, "--replica", "file://" + replica]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEANER_")}
else:
    cfg = os.path.join(work, "litestream.yml")
    with open(cfg, "w") as f:
        f.write(f"dbs:\n  - path: {db}\n    replica:\n      type: file\n      path: {replica}\n")
    cmd = [ls, "replicate", "-config", cfg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

seen = {}          # path -> first time seen
l0 = []            # (appeared, header timestamp in s)
stop = threading.Event()
def watch():
    while not stop.is_set():
        now = time.time()
        for root, _, files in os.walk(os.path.join(replica, "ltx")):
            for n in files:
                if not n.endswith(".ltx"):
                    continue
                p = os.path.join(root, n)
                if p in seen:
                    continue
                seen[p] = now
                if os.path.basename(root) == "0":
                    try:
                        with open(p, "rb") as f:
                            h = f.read(40)
                        l0.append((now, int.from_bytes(h[32:40], "big") / 1000.0))
                    except OSError:
                        pass
        time.sleep(0.005)
t = threading.Thread(target=watch, daemon=True)
t.start()

# Wait for the first (full) L0, then run the timed workload.
deadline = time.time() + 120
while not l0 and time.time() < deadline:
    time.sleep(0.01)
commits = []
start = time.time()
n = 0
while time.time() - start < secs:
    due = start + n / rate
    d = due - time.time()
    if d > 0:
        time.sleep(d)
    k = random.randint(1, 4)
    c.execute("BEGIN")
    for _ in range(k):
        c.execute("INSERT INTO t (v) VALUES (randomblob(?))", (random.choice([200, 1000, 4000]),))
    c.execute("COMMIT")
    commits.append(time.time())
    n += 1
time.sleep(3.0)

def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tick
cpu_s = cpu(proc.pid)
proc.send_signal(signal.SIGINT)
proc.wait(timeout=60)
time.sleep(0.2)
stop.set()
t.join()

l0.sort(key=lambda x: x[1])
lags = []
j = 0
for ct in commits:
    while j < len(l0) and l0[j][1] <= ct:
        j += 1
    later = [a for a, ts in l0[j:j + 50] if ts > ct]
    if later:
        lags.append(min(later) - ct)
lags.sort()
def pct(p):
    return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")
print(json.dumps({
    "tool": tool, "commits": len(commits), "lag_median_s": pct(0.5), "lag_p99_s": pct(0.99),
    "cpu_s": cpu_s, "objects": len(seen), "replica": replica,
}))
PY

run_one() {
  python3 "$WORK/bench.py" "$1" "$GL" "$LS" "$WORK" "$SECS" "$RATE" "$PRELOAD_MB"
}

echo "workload: ${SECS}s at ${RATE} txn/s (1-4 inserts of 200/1000/4000 bytes), ${PRELOAD_MB} MB preloaded"
G="$(run_one gleaner)"
L="$(run_one litestream)"

python3 - "$G" "$L" <<'PY'
import json, sys
print(f"{'replicator':<12}{'commits':>8}{'lag p50 s':>11}{'lag p99 s':>11}{'CPU s':>8}{'objects':>9}")
for s in sys.argv[1:]:
    r = json.loads(s)
    print(f"{r['tool']:<12}{r['commits']:>8}{r['lag_median_s']:>11.3f}{r['lag_p99_s']:>11.3f}{r['cpu_s']:>8.2f}{r['objects']:>9}")
PY

best_of_3() {
  local best=""
  for _ in 1 2 3; do
    rm -f "$WORK/out.db" "$WORK/out.db.tmp"
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    local d
    d=$(python3 -c "print(f'{$t1-$t0:.3f}')")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $d < $best else 1)"; then best=$d; fi
  done
  echo "$best"
}

echo
printf '%-22s%16s%20s\n' "restore of replica" "gleaner restore" "litestream restore"
for tool in gleaner litestream; do
  R="file://$WORK/$tool-replica"
  g=$(best_of_3 "$GL" restore --quiet -o "$WORK/out.db" "$R")
  l=$(best_of_3 env -u AWS_CA_BUNDLE "$LS" restore -o "$WORK/out.db" "$R")
  printf '%-22s%15ss%19ss\n' "$tool" "$g" "$l"
done
