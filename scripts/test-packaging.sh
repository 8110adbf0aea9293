#!/usr/bin/env bash
# Tests Gleaner's packaging for real on this machine (Debian 12, root, Docker engine).
#
#   scripts/test-packaging.sh [deb|oci|helm|obs|all]...     (default: all)
#
#   deb   build the .deb, lintian, install it, check files/owners/modes/user, verify the
#         systemd unit and score its sandboxing, run the installed binary as the gleaner
#         user with the unit's command lines, remove, purge
#   oci   hadolint, build the scratch image from a static binary, run it with a volume and
#         a restart policy, health, kill -9 and restart, data survives, graceful stop,
#         docker-compose config and the compose service for real
#   helm  lint and render the chart (Helm v4 SDK from PyPI) with replication off and on,
#         kubernetes-validate, and `gleaner config check` on each rendered config + env
#   obs   promtool check/test rules, the Grafana dashboard, `promtool check metrics` on a
#         live /metrics scrape
#
# Installs what it needs (apt-get; pip into .tools/venv, pinned), prints PASS/FAIL per
# check, exits non-zero on any failure, and removes the package, containers, volumes,
# images and processes it created. Env: CARGO_TARGET_DIR, PKGTEST_BINARY (a gleaner binary
# already built, used instead of a release build by helm and obs), VERBOSE=1 (full logs). Not
# named GLEANER_*: the binary would take those for configuration keys.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/packaging/common.sh"
cd "$ROOT"

# gleaner reads every GLEANER_* variable as configuration (and rejects unknown keys): the
# binaries under test see only what each check sets.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^GLEANER_' || true)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$ROOT/.tools/venv"
RUN_ID="gleaner-pkgtest-$$"
IMAGE="$RUN_ID:test"
CONTAINER="$RUN_ID"
VOLUME="$RUN_ID-data"
TOKEN="pkgtest-admin-token-$$-0123456789"
WORK="$(mktemp -d /tmp/gleaner-pkgtest.XXXXXX)"
chmod 0755 "$WORK" # the gleaner user reaches the notify socket in here
: > "$WORK/pids"
PASSED=0
FAILED=0
FAILED_NAMES=()
T_START=$SECONDS

# ---------------------------------------------------------------------------- plumbing

cleanup() {
    local pid
    while read -r pid; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
    done < "$WORK/pids"
    if [ -f "$WORK/compose-up" ]; then
        DEV_IMAGE="$IMAGE" docker-compose -p "$RUN_ID" -f packaging/oci/docker-compose.yml \
            down -v --remove-orphans >/dev/null 2>&1
    fi
    if command -v docker >/dev/null; then
        docker rm -f -v "$CONTAINER" "$RUN_ID-cp" >/dev/null 2>&1
        docker volume rm "$VOLUME" >/dev/null 2>&1
        docker image rm "$IMAGE" >/dev/null 2>&1
    fi
    if [ -f "$WORK/deb-installed" ]; then
        dpkg -P gleaner >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs one check in a subshell with errexit; prints PASS/FAIL, the time, and its notes.
run_check() {
    local name="$1" rc t0=$SECONDS
    shift
    : > "$WORK/notes"
    ( set -euo pipefail; "$@" ) > "$WORK/check.log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        printf 'PASS  %-44s %4ss\n' "$name" "$((SECONDS - t0))"
        [ -n "${VERBOSE:-}" ] && sed 's/^/      | /' "$WORK/check.log"
    else
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
        printf 'FAIL  %-44s %4ss (exit %s)\n' "$name" "$((SECONDS - t0))" "$rc"
        tail -n 40 "$WORK/check.log" | sed 's/^/      | /'
    fi
    sed 's/^/      /' "$WORK/notes"
    return 0
}

note() { printf '%s\n' "$*" >> "$WORK/notes"; }
fail() { printf 'check failed: %s\n' "$*" >&2; exit 1; }
track_pid() { printf '%s\n' "$1" >> "$WORK/pids"; }

# Polls `$@` until it succeeds or TIMEOUT seconds pass.
wait_for() {
    local timeout="$1" what="$2" deadline=$((SECONDS + $1))
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && fail "timed out after ${timeout}s waiting for $what"
        sleep 0.5
    done
}

free_port() { python3 "$ROOT/scripts/free-port.py"; }
port_busy() { python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

expect_stat() { # PATH OWNER:GROUP MODE
    local got
    got="$(stat -c '%U:%G %a' "$1")" || fail "$1 missing"
    [ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
    echo "ok $1 $got"
}

setup_venv() {
    local stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum scripts/packaging/requirements.txt | cut -d' ' -f1)"
    if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/packaging/requirements.txt
        echo "$want" > "$stamp"
    fi
}

# promtool comes with Debian's prometheus package. Its maintainer scripts must not start a
# Prometheus server on a machine without systemd: deny service starts while installing.
install_promtool() {
    command -v promtool >/dev/null && return 0
    local rcd=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$rcd" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$rcd" && chmod 0755 "$rcd" && added=1
    fi
    apt_install prometheus
    [ -n "$added" ] && rm -f "$rcd"
    command -v promtool >/dev/null
}

# The dynamically linked release binary, built from this tree and copied so that other
# builds sharing the target dir cannot swap it underneath the tests. PKGTEST_BINARY names an
# already built binary to use instead (e.g. a debug build for the helm and obs suites).
release_binary() {
    if [ ! -x "$WORK/gleaner" ] && [ -n "${PKGTEST_BINARY:-}" ]; then
        [ -x "$PKGTEST_BINARY" ] || fail "PKGTEST_BINARY=$PKGTEST_BINARY is not an executable"
        cp "$PKGTEST_BINARY" "$WORK/gleaner"
    fi
    if [ ! -x "$WORK/gleaner" ]; then
        cargo build --release --locked --quiet --bin gleaner
        cp "$CARGO_TARGET_DIR/release/gleaner" "$WORK/gleaner"
    fi
    echo "$WORK/gleaner"
}

# ---------------------------------------------------------------------------- deb

deb_build() {
    apt_install dpkg-dev binutils
    local t0=$SECONDS deb
    deb="$(scripts/build-deb.sh | tail -n1)"
    [ -f "$deb" ] || fail "no .deb"
    echo "$deb" > "$WORK/deb.path"
    note "$(basename "$deb"): $(du -k "$deb" | cut -f1) KiB, built in $((SECONDS - t0))s (incl. cargo build)"
}

deb_lintian() {
    apt_install lintian
    local deb out rc=0
    deb="$(cat "$WORK/deb.path")"
    lintian --fail-on error,warning --display-info "$deb" > "$WORK/lintian.out" 2>&1 || rc=$?
    out="$(grep -v '^running with root privileges' "$WORK/lintian.out" || true)"
    echo "$out"
    [ "$rc" -eq 0 ] || fail "lintian exited $rc"
    if grep -q '^[EW]: ' <<< "$out"; then fail "lintian reported errors or warnings"; fi
    # Shown separately: with --show-overrides, lintian counts overridden warnings for --fail-on.
    lintian --show-overrides --display-info "$deb" 2>/dev/null | grep '^O: ' | tee "$WORK/lintian.overrides" || true
    note "lintian $(lintian --version | awk '{print $2}'): 0 errors, 0 warnings, $(grep -c '^I: ' <<< "$out") info, $(grep -c '^O: ' "$WORK/lintian.overrides") overridden (packaging/deb/lintian-overrides)"
}

deb_install() {
    local deb
    deb="$(cat "$WORK/deb.path")"
    if dpkg-query -W -f='${Status}' gleaner 2>/dev/null | grep -q 'install ok installed\|config-files'; then
        note "purged a gleaner package left installed before this run"
        dpkg -P gleaner
    fi
    touch "$WORK/deb-installed"
    dpkg -i "$deb"
    dpkg-query -W -f='${Status}\n' gleaner | grep -qx 'install ok installed'
}

deb_files() {
    expect_stat /usr/bin/gleaner root:root 755
    expect_stat /etc/gleaner/gleaner.toml root:root 644
    expect_stat /etc/gleaner/gleaner.env root:gleaner 640
    expect_stat /usr/lib/systemd/system/gleaner.service root:root 644
    expect_stat /var/lib/gleaner gleaner:gleaner 750
    [ -f /usr/share/man/man1/gleaner.1.gz ] || fail "man page missing"
    [ -f /usr/share/doc/gleaner/copyright ] || fail "copyright missing"
    dpkg-query -W -f='${Conffiles}\n' gleaner | grep -q '^ /etc/gleaner/gleaner.toml ' \
        || fail "/etc/gleaner/gleaner.toml is not a conffile"
    dpkg --verify gleaner || fail "dpkg --verify: installed files differ from the package's md5sums"

    local v
    v="$(/usr/bin/gleaner --version)"
    [ "$v" = "gleaner $(gleaner_version)" ] || fail "gleaner --version says '$v'"
    local eff
    eff="$(GLEANER_CONFIG=/etc/gleaner/gleaner.toml /usr/bin/gleaner config check --print)"
    grep -qx 'listen = "127.0.0.1:8080"' <<< "$eff" || fail "installed config does not listen on 127.0.0.1:8080"
    grep -qx 'data_dir = "/var/lib/gleaner"' <<< "$eff" || fail "installed config's data_dir is not /var/lib/gleaner"

    local pw uid gid group home shell
    pw="$(getent passwd gleaner)" || fail "no gleaner user"
    IFS=: read -r _ _ uid gid _ home shell <<< "$pw"
    group="$(getent group "$gid" | cut -d: -f1)"
    [ "$uid" -lt 1000 ] || fail "gleaner uid $uid is not a system uid"
    [ "$group" = gleaner ] || fail "gleaner's primary group is $group"
    [ "$home" = /var/lib/gleaner ] || fail "gleaner's home is $home"
    [ "$shell" = /usr/sbin/nologin ] || fail "gleaner's shell is $shell"
    note "user gleaner uid=$uid gid=$gid($group) home=$home shell=$shell; files, owners, modes, conffile, md5sums OK"
}

deb_unit_verify() {
    local err="$WORK/verify.err"
    systemd-analyze verify /usr/lib/systemd/system/gleaner.service 2> "$err"
    cat "$err"
    [ ! -s "$err" ] || fail "systemd-analyze verify wrote to stderr"
    note "systemd-analyze verify: clean (systemd $(systemd-analyze --version | awk 'NR==1{print $2}'))"
}

deb_unit_security() {
    local unit=/usr/lib/systemd/system/gleaner.service out score rating d
    for d in Type=notify 'ExecStartPre=/usr/bin/gleaner config check' 'ExecStart=/usr/bin/gleaner serve' \
        Restart=on-failure KillSignal=SIGTERM TimeoutStopSec=60s User=gleaner StateDirectory=gleaner \
        StateDirectoryMode=0750 EnvironmentFile=-/etc/gleaner/gleaner.env UMask=0027 \
        NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
        ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
        ProtectControlGroups=yes ProtectClock=yes ProtectHostname=yes \
        'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' RestrictNamespaces=yes \
        RestrictRealtime=yes RestrictSUIDSGID=yes LockPersonality=yes MemoryDenyWriteExecute=yes \
        CapabilityBoundingSet= SystemCallFilter=@system-service SystemCallArchitectures=native; do
        grep -qxF "$d" "$unit" || fail "unit lacks $d"
    done
    out="$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)"
    echo "$out"
    score="$(sed -n 's/.*Overall exposure level for gleaner.service: \([0-9.]*\) \([A-Z]*\).*/\1/p' <<< "$out")"
    rating="$(sed -n 's/.*Overall exposure level for gleaner.service: \([0-9.]*\) \([A-Z]*\).*/\2/p' <<< "$out")"
    [ -n "$score" ] || fail "no exposure score in the output"
    awk -v s="$score" 'BEGIN { exit !(s <= 4.9) }' || fail "exposure $score > 4.9"
    note "systemd-analyze security --offline=true: exposure $score $rating (target <= 4.9)"
}

deb_run_as_gleaner() {
    local unit=/usr/lib/systemd/system/gleaner.service env_args=() line pre start listen port
    while IFS= read -r line; do env_args+=("${line#Environment=}"); done < <(grep '^Environment=' "$unit")
    while IFS= read -r line; do env_args+=("$line"); done < <(grep -E '^[A-Z_][A-Z0-9_]*=' /etc/gleaner/gleaner.env || true)
    pre="$(sed -n 's/^ExecStartPre=//p' "$unit")"
    start="$(sed -n 's/^ExecStart=//p' "$unit")"
    listen=127.0.0.1:8080
    if port_busy 8080; then
        port="$(free_port)"
        listen="127.0.0.1:$port"
        env_args+=("GLEANER_HTTP__LISTEN=$listen")
        note "port 8080 is taken on this machine: overrode http.listen with $listen"
    fi
    # As the unit does: the gleaner user and group, a clean environment, the data directory
    # as working directory, UMask=0027, and a notify socket standing in for systemd's.
    local as_gleaner=(setpriv --reuid=gleaner --regid=gleaner --init-groups env -i PATH=/usr/bin:/bin "${env_args[@]}")
    (cd /var/lib/gleaner && "${as_gleaner[@]}" $pre)

    local sock="$WORK/notify.sock"
    python3 scripts/packaging/notify_listen.py "$sock" 60 > "$WORK/notify.out" &
    track_pid $!
    wait_for 10 "the notify socket" grep -q listening "$WORK/notify.out"
    (cd /var/lib/gleaner && umask 0027 && exec "${as_gleaner[@]}" NOTIFY_SOCKET="$sock" $start) > "$WORK/serve.log" 2>&1 &
    local spid=$!
    track_pid "$spid"
    wait_for 30 "READY=1 from gleaner" grep -qx READY=1 "$WORK/notify.out"
    local body
    body="$(curl -sf --max-time 5 "http://$listen/readyz")" || fail "/readyz did not answer 200"
    grep -q '"ready"' <<< "$body" || fail "/readyz said $body"
    [ "$(http_code "http://$listen/healthz")" = 200 ] || fail "/healthz not 200"
    [ "$(stat -c %U "/proc/$spid")" = gleaner ] || fail "process does not run as gleaner"
    # 0600 whatever the unit's UMask=0027 allows: the store creates databases owner-only.
    expect_stat /var/lib/gleaner/control.db gleaner:gleaner 600
    kill -TERM "$spid"
    local rc=0
    wait "$spid" || rc=$?
    cat "$WORK/serve.log"
    [ "$rc" -eq 0 ] || fail "gleaner exited $rc after SIGTERM"
    wait_for 10 "STOPPING=1" grep -qx STOPPING=1 "$WORK/notify.out"
    grep -q 'stopped' "$WORK/serve.log" || fail "no 'stopped' log line"
    note "ran '$pre' and '$start' as gleaner: READY=1, /readyz 200, control.db gleaner 0600, SIGTERM -> STOPPING=1, exit 0"
}

deb_remove() {
    dpkg -r gleaner
    dpkg-query -W -f='${Status}\n' gleaner | grep -qx 'deinstall ok config-files' || fail "unexpected status after remove"
    [ ! -e /usr/bin/gleaner ] || fail "/usr/bin/gleaner still there after remove"
    [ -f /etc/gleaner/gleaner.toml ] || fail "config removed by dpkg -r"
    [ -f /etc/gleaner/gleaner.env ] || fail "env file removed by dpkg -r"
    [ -f /var/lib/gleaner/control.db ] || fail "data removed by dpkg -r"
    note "dpkg -r: binary and unit gone; /etc/gleaner/{gleaner.toml,gleaner.env} and /var/lib/gleaner/control.db kept"
}

deb_purge() {
    dpkg -P gleaner
    rm -f "$WORK/deb-installed"
    ! dpkg-query -W gleaner >/dev/null 2>&1 || fail "package still known to dpkg after purge"
    [ ! -e /etc/gleaner ] || fail "/etc/gleaner remains after purge"
    [ ! -e /var/lib/gleaner ] || fail "/var/lib/gleaner remains after purge"
    [ ! -e /etc/systemd/system/multi-user.target.wants/gleaner.service ] || fail "enablement symlink remains"
    [ ! -e /etc/systemd/system/gleaner.service ] || fail "mask symlink remains"
    getent passwd gleaner >/dev/null || fail "gleaner user removed (the package keeps it by design)"
    note "dpkg -P: /etc/gleaner, /var/lib/gleaner and unit symlinks gone; user gleaner kept (Debian practice: no uid reuse)"
}

suite_deb() {
    run_check "deb: build (cargo-deb)" deb_build
    run_check "deb: lintian" deb_lintian
    run_check "deb: dpkg -i" deb_install
    run_check "deb: files, owners, modes, user" deb_files
    run_check "deb: systemd-analyze verify" deb_unit_verify
    run_check "deb: unit hardening + security score" deb_unit_security
    run_check "deb: runs as gleaner, /readyz, SIGTERM" deb_run_as_gleaner
    run_check "deb: dpkg -r keeps data and config" deb_remove
    run_check "deb: dpkg -P removes them" deb_purge
}

# ---------------------------------------------------------------------------- oci

oci_hadolint() {
    setup_venv
    "$VENV/bin/hadolint" packaging/oci/Dockerfile packaging/oci/Dockerfile.local
    note "$("$VENV/bin/hadolint" --version): Dockerfile and Dockerfile.local clean"
}

oci_build() {
    apt_install file binutils ca-certificates
    local t0=$SECONDS
    scripts/build-image.sh "$IMAGE"
    note "image built in $((SECONDS - t0))s (static cargo build + docker build)"
}

oci_static() {
    docker create --name "$RUN_ID-cp" "$IMAGE" >/dev/null
    docker cp "$RUN_ID-cp:/usr/bin/gleaner" "$WORK/gleaner-static"
    docker rm -v "$RUN_ID-cp" >/dev/null
    local f l
    f="$(file -b "$WORK/gleaner-static")"
    l="$(ldd "$WORK/gleaner-static" 2>&1 || true)"
    echo "file: $f"
    echo "ldd: $l"
    grep -Eq 'statically linked|static-pie linked' <<< "$f" || fail "binary in the image is not static"
    grep -Eq 'not a dynamic executable|statically linked' <<< "$l" || fail "ldd finds dynamic dependencies"
    note "binary in image: $(grep -Eo 'static(-pie)? linked' <<< "$f"), ldd: $(xargs <<< "$l"), $(du -k "$WORK/gleaner-static" | cut -f1) KiB"
}

oci_metadata() {
    docker image inspect "$IMAGE" > "$WORK/image.json"
    python3 - "$WORK/image.json" <<'PY'
import json, sys
img = json.load(open(sys.argv[1]))[0]
c = img["Config"]
bad = []
labels = c.get("Labels") or {}
for k in ("title", "version", "revision", "source", "licenses", "created"):
    v = labels.get("org.opencontainers.image." + k, "")
    if not v or v == "unknown":
        bad.append(f"label org.opencontainers.image.{k} missing")
user = c.get("User", "")
if not user or user.split(":")[0] in ("", "0", "root"):
    bad.append(f"runs as root (User={user!r})")
if (c.get("Healthcheck") or {}).get("Test") != ["CMD", "/usr/bin/gleaner", "healthcheck"]:
    bad.append("no `gleaner healthcheck` HEALTHCHECK")
if c.get("StopSignal") != "SIGTERM":
    bad.append("StopSignal is not SIGTERM")
if "8080/tcp" not in (c.get("ExposedPorts") or {}):
    bad.append("8080/tcp not exposed")
if "/var/lib/gleaner" not in (c.get("Volumes") or {}):
    bad.append("no VOLUME /var/lib/gleaner")
env = dict(e.split("=", 1) for e in c.get("Env", []))
if env.get("GLEANER_HTTP__LISTEN") != "0.0.0.0:8080":
    bad.append("GLEANER_HTTP__LISTEN is not 0.0.0.0:8080")
if env.get("GLEANER_STORE__DATA_DIR") != "/var/lib/gleaner":
    bad.append("GLEANER_STORE__DATA_DIR is not /var/lib/gleaner")
for b in bad:
    print("FAIL", b)
print("user", user, "labels", {k.split(".")[-1]: v for k, v in labels.items()})
sys.exit(1 if bad else 0)
PY
    local size
    size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
    note "image size $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }') (target < 40 MB); user $(docker image inspect -f '{{.Config.User}}' "$IMAGE"); labels, healthcheck, env, volume, STOPSIGNAL OK"
    [ "$size" -lt 40000000 ] || fail "image is $size bytes, over 40 MB"
}

container_port() { docker port "$CONTAINER" 8080/tcp | head -n1 | sed 's/.*://'; }
container_healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER")" = healthy ]; }

oci_run() {
    docker volume create "$VOLUME" >/dev/null
    local t0=$SECONDS
    docker run -d --name "$CONTAINER" --restart on-failure:5 -p 127.0.0.1::8080 \
        -e GLEANER_HTTP__ADMIN_TOKEN="$TOKEN" -v "$VOLUME:/var/lib/gleaner" "$IMAGE" >/dev/null
    wait_for 60 "health 'healthy'" container_healthy
    local took=$((SECONDS - t0)) port pid mnt
    port="$(container_port)"
    [ "$(http_code "http://127.0.0.1:$port/healthz")" = 200 ] || fail "/healthz not 200"
    [ "$(http_code "http://127.0.0.1:$port/readyz")" = 200 ] || fail "/readyz not 200"
    [ "$(http_code -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"id":"survivor"}' "http://127.0.0.1:$port/v1/tenants")" = 201 ] || fail "creating tenant survivor failed"
    pid="$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")"
    [ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = 65532 ] || fail "gleaner in the container does not run as uid 65532"
    # A name, not an address: the static binary resolves through /etc/hosts in scratch.
    docker exec "$CONTAINER" /usr/bin/gleaner healthcheck --addr localhost:8080 || fail "healthcheck via localhost failed"
    mnt="$(docker volume inspect -f '{{.Mountpoint}}' "$VOLUME")"
    # Docker's umask is 022 and scratch has no shell to change it; the volume's root is 0750,
    # so the files inside stay private to uid 65532 all the same.
    [ "$(stat -c '%u %a' "$mnt")" = "65532 750" ] || fail "volume root: $(stat -c '%u %a' "$mnt")"
    [ "$(stat -c '%u' "$mnt/control.db")" = 65532 ] || fail "control.db on the volume is owned by $(stat -c '%u' "$mnt/control.db")"
    note "healthy after ${took}s; /healthz, /readyz 200 on 127.0.0.1:$port; uid 65532; tenant created; volume $VOLUME (0750, uid 65532) holds control.db"
}

oci_restart() {
    local pid0 rc0 t0=$SECONDS port
    pid0="$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")"
    rc0="$(docker inspect -f '{{.RestartCount}}' "$CONTAINER")"
    kill -9 "$pid0"
    restarted() { [ "$(docker inspect -f '{{.RestartCount}}' "$CONTAINER")" -gt "$rc0" ]; }
    wait_for 30 "a restart" restarted
    wait_for 60 "health 'healthy' after the restart" container_healthy
    [ "$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")" != "$pid0" ] || fail "same PID after restart"
    port="$(container_port)"
    [ "$(http_code -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/v1/tenants/survivor")" = 200 ] \
        || fail "tenant created before the kill is gone"
    note "kill -9 of PID $pid0: RestartCount $rc0 -> $(docker inspect -f '{{.RestartCount}}' "$CONTAINER"), healthy again after $((SECONDS - t0))s, tenant 'survivor' still served"
}

oci_stop() {
    local t0=$SECONDS code
    docker stop -t 30 "$CONTAINER" >/dev/null
    code="$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")"
    docker logs "$CONTAINER" 2>&1 | tail -n 5
    [ "$code" = 0 ] || fail "exit code $code after docker stop (SIGTERM)"
    docker logs "$CONTAINER" 2>&1 | grep -q '"message":"stopped"' || fail "no 'stopped' log line"
    docker rm -v "$CONTAINER" >/dev/null
    note "docker stop (SIGTERM): exit 0 after $((SECONDS - t0))s, drained cleanly"
}

oci_compose_config() {
    apt_install docker-compose
    setup_venv
    local f=packaging/oci/docker-compose.yml
    docker-compose -f "$f" config -q
    DEV_IMAGE="$IMAGE" docker-compose -f "$f" config > "$WORK/compose.yml"
    # Every GLEANER_* variable the compose file sets must be accepted by the binary, together
    # with the image's own environment.
    local env_args=() e
    while IFS= read -r e; do env_args+=("$e"); done < <(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | grep '^GLEANER_')
    while IFS= read -r e; do env_args+=("$e"); done < <("$VENV/bin/python" - "$WORK/compose.yml" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for k, v in (c["services"]["gleaner"].get("environment") or {}).items():
    if k.startswith("GLEANER_"):
        print(f"{k}={v}")
PY
)
    env -i "${env_args[@]}" GLEANER_STORE__DATA_DIR="$WORK/compose-data" "$WORK/gleaner-static" config check
    note "docker-compose $(docker-compose version --short) config: valid; the gleaner service's environment passes 'gleaner config check'"
}

oci_compose_up() {
    local f=packaging/oci/docker-compose.yml port cid
    port="$(free_port)"
    touch "$WORK/compose-up"
    # No MinIO here (no image can be pulled), so the service runs without replication.
    DEV_IMAGE="$IMAGE" DEV_PORT="$port" DEV_REPLICATE=false docker-compose -p "$RUN_ID" -f "$f" up -d --no-build --no-deps gleaner
    cid="$(DEV_IMAGE="$IMAGE" docker-compose -p "$RUN_ID" -f "$f" ps -q gleaner)"
    compose_healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$cid")" = healthy ]; }
    wait_for 60 "the compose service to be healthy" compose_healthy
    [ "$(http_code "http://127.0.0.1:$port/readyz")" = 200 ] || fail "/readyz not 200"
    [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$cid")" = true ] || fail "root filesystem is not read-only"
    [ "$(docker inspect -f '{{.HostConfig.CapDrop}}' "$cid")" = "[ALL]" ] || fail "capabilities not dropped"
    DEV_IMAGE="$IMAGE" docker-compose -p "$RUN_ID" -f "$f" down -v
    rm -f "$WORK/compose-up"
    note "compose service gleaner (read-only rootfs, no capabilities) healthy, /readyz 200; MinIO not started (no image can be pulled here), so DEV_REPLICATE=false"
}

suite_oci() {
    command -v docker >/dev/null || { run_check "oci: docker available" false; return; }
    run_check "oci: hadolint" oci_hadolint
    run_check "oci: build image (static binary, scratch)" oci_build
    run_check "oci: binary in image is static" oci_static
    run_check "oci: labels, user, healthcheck, size" oci_metadata
    run_check "oci: run with volume, healthy, API" oci_run
    run_check "oci: kill -9, restart policy, data kept" oci_restart
    run_check "oci: docker stop is graceful" oci_stop
    run_check "oci: docker-compose config" oci_compose_config
    run_check "oci: docker-compose up (gleaner service)" oci_compose_up
}

# ---------------------------------------------------------------------------- helm

helm_render() {
    setup_venv
    "$VENV/bin/python" scripts/packaging/helm_check.py packaging/helm/gleaner "$WORK/helm"
    note "$(head -n1 "$WORK/check.log"); lint --strict clean; 4 value sets (replication off and on) rendered and checked; schema and guards reject bad values"
}

helm_validate() {
    local k files=("$WORK"/helm/*/*.yaml) out
    for k in 1.27.0 1.37.0; do
        out="$("$VENV/bin/kubernetes-validate" --strict -k "$k" "${files[@]}" 2>&1)" || { echo "$out"; fail "kubernetes-validate $k failed"; }
        echo "$out"
        if grep -q '^ERROR' <<< "$out"; then fail "kubernetes-validate $k reported errors"; fi
        note "kubernetes-validate --strict -k $k: $(grep -c ' passed ' <<< "$out") resources passed, $(grep -c "Couldn't find schema" <<< "$out") without schema (ServiceMonitor CRD, checked by helm_check.py)"
    done
}

helm_config() {
    local bin v
    bin="$(release_binary)"
    local name env_args out
    for v in "$WORK"/helm/*.gleaner.toml; do
        name="$(basename "$v" .gleaner.toml)"
        # The container's GLEANER_* environment as helm_check.py wrote it (listen, admin
        # token, per-pod replica URL, S3 credentials), over the rendered file.
        mapfile -t env_args < "$WORK/helm/$name.env"
        out="$(env -i "${env_args[@]}" GLEANER_CONFIG="$v" GLEANER_STORE__DATA_DIR="$WORK/helm-data" \
            "$bin" config check --print)" || fail "variant $name: gleaner config check failed"
        if grep -q '^\[replicate\]' "$v"; then
            grep -qx 'enabled = true' <<< "$out" || fail "variant $name: replication not enabled in the effective config"
            grep -q '^url = "\(s3\|file\)://.*/rel-gleaner-0"$' <<< "$out" || fail "variant $name: no per-pod replicate.url in the effective config"
            note "variant $name: replication enabled, $(grep '^url = ' <<< "$out")"
        else
            ! grep -qx 'enabled = true' <<< "$(sed -n '/^\[replicate\]/,/^\[/p' <<< "$out")" || fail "variant $name: replication on"
        fi
    done
    note "rendered gleaner.toml + container environment of every value set pass 'gleaner config check'"
}

suite_helm() {
    run_check "helm: lint + render + checks" helm_render
    run_check "helm: kubernetes-validate" helm_validate
    run_check "helm: rendered config accepted" helm_config
}

# ---------------------------------------------------------------------------- obs

obs_rules() {
    install_promtool
    (cd packaging/prometheus && promtool check rules alerts.yml && promtool test rules alerts.test.yml)
    note "promtool $(promtool --version 2>&1 | awk 'NR==1 {print $3}'): check rules $(grep -c -- '- alert:' packaging/prometheus/alerts.yml) alerts OK; test rules OK"
}

obs_dashboard() {
    install_promtool
    python3 -m json.tool packaging/grafana/gleaner.json > /dev/null
    python3 scripts/packaging/obs_check.py dashboard packaging/grafana/gleaner.json "$WORK/dashboard-queries.yml"
    promtool check rules "$WORK/dashboard-queries.yml"
    note "$(grep '^dashboard' "$WORK/check.log"): valid JSON, every query parses (promtool)"
}

obs_metrics() {
    install_promtool
    local bin port pid i code
    bin="$(release_binary)"
    port="$(free_port)"
    env -i GLEANER_HTTP__LISTEN="127.0.0.1:$port" GLEANER_STORE__DATA_DIR="$WORK/obs-data" \
        GLEANER_HTTP__ADMIN_TOKEN="$TOKEN" GLEANER_STORE__CHECKPOINT_WAL_BYTES=65536 \
        "$bin" serve > "$WORK/obs.log" 2>&1 &
    pid=$!
    track_pid "$pid"
    wait_for 30 "/readyz" curl -sf "http://127.0.0.1:$port/readyz"
    # Writes, so that the store's counters and histograms have samples.
    for i in $(seq 1 20); do
        code="$(http_code -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
            -d "{\"id\":\"obs-$i\"}" "http://127.0.0.1:$port/v1/tenants")"
        [ "$code" = 201 ] || fail "creating tenant obs-$i answered $code"
    done
    http_code "http://127.0.0.1:$port/no-such-route" > /dev/null
    curl -sf "http://127.0.0.1:$port/metrics" > "$WORK/metrics.txt"
    kill -TERM "$pid"
    local lint
    lint="$(promtool check metrics < "$WORK/metrics.txt" 2>&1)" || { echo "$lint"; fail "promtool check metrics failed"; }
    [ -z "$lint" ] || { echo "$lint"; fail "promtool check metrics reported problems"; }
    python3 scripts/packaging/obs_check.py names src/telemetry/metrics.rs "$WORK/metrics.txt" \
        packaging/prometheus/alerts.yml packaging/grafana/gleaner.json
    note "promtool check metrics: live scrape clean ($(grep -c '^gleaner_' "$WORK/metrics.txt") samples, $(grep -c '^# TYPE gleaner_' "$WORK/metrics.txt") metrics)"
    note "metric names in alerts and dashboard: catalogued in src/telemetry/metrics.rs or announced pending"
    if grep -q '  WARN' "$WORK/check.log"; then note "$(grep '  WARN' "$WORK/check.log" | sed 's/^ *//')"; fi
}

suite_obs() {
    run_check "obs: promtool check/test rules" obs_rules
    run_check "obs: grafana dashboard" obs_dashboard
    run_check "obs: promtool check metrics (live)" obs_metrics
}

# ---------------------------------------------------------------------------- main

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(all)
for s in "${suites[@]}"; do
    case "$s" in
        deb | oci | helm | obs) ;;
        all) ;;
        *) die "unknown suite '$s' (deb|oci|helm|obs|all)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root: the deb suite installs a package, the oci suite reads Docker volumes"

for s in "${suites[@]}"; do
    case "$s" in
        # deb first: its cargo build is the release binary that helm and obs reuse.
        all) suite_deb; suite_obs; suite_helm; suite_oci ;;
        *) "suite_$s" ;;
    esac
done

echo
echo "packaging checks took $((SECONDS - T_START))s"
if [ "$FAILED" -gt 0 ]; then
    printf 'failed: %s\n' "${FAILED_NAMES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
