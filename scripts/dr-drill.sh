#!/usr/bin/env bash
# Disaster-recovery drill: a node with replication to a file:// replica takes writes and is
# killed with SIGKILL; its databases are restored with `gleaner restore` into a fresh data
# directory; record counts must equal what the API acknowledged; a server started on the
# restored directory must serve them. Prints the measured restore time.
#
#   scripts/dr-drill.sh [--tenants N] [--records N] [--bin PATH] [--keep]
#
#   --tenants N   tenants to create (default 4)
#   --records N   records pushed into each tenant, 1000 per request (default 25000)
#   --bin PATH    the gleaner binary (default: $CARGO_TARGET_DIR/release/gleaner if it
#                 exists, else .../debug/gleaner; CARGO_TARGET_DIR defaults to ./target)
#   --keep        keep the work directory (data, replica, restored copy, logs)
#
# Needs: curl, python3, sqlite3. Runs everything on 127.0.0.1 with a clean environment (no
# GLEANER_* variable of the caller reaches the binary). Exit 0 only if every count matches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TENANTS=4
RECORDS=25000
BIN=""
KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tenants) TENANTS="$2"; shift 2 ;;
        --records) RECORDS="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--tenants N] [--records N] [--bin PATH] [--keep]" >&2; exit 2 ;;
    esac
done
if [ -z "$BIN" ]; then
    target="${CARGO_TARGET_DIR:-$ROOT/target}"
    BIN="$target/release/gleaner"
    [ -x "$BIN" ] || BIN="$target/debug/gleaner"
fi
[ -x "$BIN" ] || { echo "no gleaner binary at $BIN (cargo build --bin gleaner, or --bin PATH)" >&2; exit 2; }
for tool in curl python3 sqlite3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

WORK="$(mktemp -d /tmp/gleaner-dr-drill.XXXXXX)"
DATA="$WORK/data"
REPLICA="$WORK/replica"
FRESH="$WORK/restored"
TOKEN="dr-drill-admin-token-$$-0123456789"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$KEEP" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dr-drill: FAIL: %s\n' "$*" >&2; exit 1; }
free_port() { python3 "$ROOT/scripts/free-port.py"; }
now() { date +%s.%N; }
# Polls "$@" until it succeeds, for at most $1 seconds.
wait_for() {
    local deadline=$((SECONDS + $1)) what="$2"
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
        sleep 0.2
    done
}
# Starts `gleaner serve` on DATA_DIR with extra env; sets PORT and SERVER_PID.
start_server() {
    local dir="$1" logf="$2"
    shift 2
    PORT="$(free_port)"
    env -i PATH="$PATH" GLEANER_STORE__DATA_DIR="$dir" GLEANER_HTTP__LISTEN="127.0.0.1:$PORT" \
        GLEANER_HTTP__ADMIN_TOKEN="$TOKEN" GLEANER_LOG__FORMAT=json "$@" \
        "$BIN" serve > "$logf" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for 120 "/readyz on port $PORT" curl -sf "http://127.0.0.1:$PORT/readyz"
}
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
metric() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
count_db() { sqlite3 "file:$1?mode=ro" 'SELECT count(*) FROM records'; }

log "binary: $BIN ($("$BIN" --version))"
log "work directory: $WORK"

# --------------------------------------------------------------------------- load
start_server "$DATA" "$WORK/serve.log" \
    GLEANER_REPLICATE__ENABLED=true GLEANER_REPLICATE__URL="file://$REPLICA"
log "server with replication to file://$REPLICA on 127.0.0.1:$PORT"
t0="$(now)"
python3 - "$PORT" "$TOKEN" "$TENANTS" "$RECORDS" <<'PY'
import json, sys, urllib.request
port, token, tenants, records = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
def call(method, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.status
for t in range(tenants):
    tid = f"drill-{t}"
    assert call("POST", "/v1/tenants", {"id": tid}) == 201
    for start in range(0, records, 1000):
        batch = [{"source": "drill", "key": f"rec-{i:08d}",
                  "fields": {"n": i, "tenant": tid, "title": f"Record {i} of {tid}",
                             "body": ("lorem ipsum dolor sit amet " * 8) + str(i)}}
                 for i in range(start, min(start + 1000, records))]
        assert call("POST", f"/v1/tenants/{tid}/records", {"records": batch}) == 200
PY
load_s="$(python3 -c "print(f'{$(now) - $t0:.1f}')")"
declare -A ACKED
for t in $(seq 0 $((TENANTS - 1))); do
    ACKED[drill-$t]="$(api "http://127.0.0.1:$PORT/v1/tenants/drill-$t/usage" | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])')"
done
log "loaded $TENANTS tenants x $RECORDS records in ${load_s}s (acknowledged by the API)"

# Everything acknowledged is shipped once the lag is 0 and uploads have stopped for a
# few sync intervals (1 s each); the drill measures restore, not the last second's loss.
shipped() {
    local lag up1 up2
    lag="$(metric gleaner_replication_lag_seconds)"
    up1="$(metric gleaner_replication_uploaded_objects_total)"
    sleep 3
    up2="$(metric gleaner_replication_uploaded_objects_total)"
    [ "${lag:-1}" = 0 ] && [ "$up1" = "$up2" ] && [ "$(metric gleaner_replication_lag_seconds)" = 0 ]
}
wait_for 120 "replication to catch up" shipped

# --------------------------------------------------------------------------- disaster
{ kill -9 "$SERVER_PID" && wait "$SERVER_PID"; } 2>/dev/null || true
log "SIGKILLed the server; replica: $(du -sh "$REPLICA" | cut -f1), $(find "$REPLICA" -name '*.ltx' | wc -l) LTX files; original data: $(du -sh "$DATA" | cut -f1)"

# --------------------------------------------------------------------------- restore
mkdir -p "$FRESH/tenants"
RESTORE_CMD='gleaner restore -o NEW/control.db file://REPLICA/control, then for each tenant T: gleaner restore -o NEW/tenants/T.db file://REPLICA/tenants/T (one after the other)'
t0="$(now)"
env -i PATH="$PATH" "$BIN" restore --quiet -o "$FRESH/control.db" "file://$REPLICA/control" 2>> "$WORK/restore.log"
for d in "$REPLICA"/tenants/*/; do
    t="$(basename "$d")"
    env -i PATH="$PATH" "$BIN" restore --quiet -o "$FRESH/tenants/$t.db" "file://$REPLICA/tenants/$t" 2>> "$WORK/restore.log"
done
t1="$(now)"
RESTORE_S="$(python3 -c "print(f'{$t1 - $t0:.2f}')")"
restored_bytes="$(du -cb "$FRESH"/control.db "$FRESH"/tenants/*.db | tail -n1 | cut -f1)"
sed 's/^/    /' "$WORK/restore.log" >&2
log "restored $((TENANTS + 1)) databases ($restored_bytes bytes) in ${RESTORE_S}s"

# The restore must not need the --if-* guards, but they must behave: both exit 0 untouched.
env -i PATH="$PATH" "$BIN" restore --if-db-not-exists -o "$FRESH/control.db" "file://$REPLICA/control" 2>/dev/null \
    || die "--if-db-not-exists on an existing database did not exit 0"
env -i PATH="$PATH" "$BIN" restore --if-replica-exists -o "$WORK/none.db" "file://$WORK/empty-replica" 2>/dev/null \
    || die "--if-replica-exists on an empty replica did not exit 0"
[ ! -e "$WORK/none.db" ] || die "--if-replica-exists wrote a database"

# --------------------------------------------------------------------------- check
fail=0
for t in $(seq 0 $((TENANTS - 1))); do
    id="drill-$t"
    got="$(count_db "$FRESH/tenants/$id.db")"
    orig="$(count_db "$DATA/tenants/$id.db")"
    printf '    %-8s acknowledged %7s  original %7s  restored %7s\n' "$id" "${ACKED[$id]}" "$orig" "$got" >&2
    [ "$got" = "${ACKED[$id]}" ] || fail=1
done
[ "$fail" = 0 ] || die "restored record counts differ from what the API acknowledged"
[ "$(sqlite3 "$FRESH/tenants/drill-0.db" 'PRAGMA integrity_check')" = ok ] || die "integrity_check of a restored tenant failed"

# The server secret is not in the replica: carry it over, as a real recovery must.
cp -p "$DATA/server.secret" "$FRESH/server.secret"
start_server "$FRESH" "$WORK/serve-restored.log"
for t in $(seq 0 $((TENANTS - 1))); do
    got="$(api "http://127.0.0.1:$PORT/v1/tenants/drill-$t/usage" | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"])')"
    [ "$got" = "${ACKED[drill-$t]}" ] || die "drill-$t: the restored server reports $got records, acknowledged ${ACKED[drill-$t]}"
done
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
log "a server on the restored directory reports the same counts"

echo "DR drill passed: $TENANTS tenants x $RECORDS records; restore of $((TENANTS + 1)) databases ($restored_bytes bytes) with $("$BIN" --version) took ${RESTORE_S}s"
echo "restore command: $RESTORE_CMD"
