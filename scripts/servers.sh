#!/bin/bash
# servers.sh: start and stop the servers arca's integration tests talk to.
#
#   scripts/servers.sh start    start them (stopping an earlier set first)
#   scripts/servers.sh stop     stop exactly the processes 'start' recorded
#   scripts/servers.sh env      print 'export NAME=value' lines for the tests
#   scripts/servers.sh status   show what runs
#
# All listen on 127.0.0.1 on free ports the kernel picks:
#   s3rver (patched, tests/servers/patch-s3rver.js), plain HTTP, buckets
#     'arca-test' and 'arca-test2'
#   s3rver over TLS with a self-signed certificate for IP 127.0.0.1, same
#     buckets, its own data directory
#   faults3 (tests/servers/faults3.py), the scripted fault server
# State (PIDs, logs, data, certificate, servers.env) lives in
# $ARCA_TEST_STATE, default /tmp/arca-test-servers. Run
# scripts/install-deps.sh first.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
servers_dir="$root/tests/servers"
state=${ARCA_TEST_STATE:-/tmp/arca-test-servers}
python=/usr/bin/python3
[ -x "$python" ] || python=python3

die() {
    echo "servers.sh: $*" >&2
    exit 1
}

# The command line of a PID we recorded, or nothing if it is gone.
cmdline_of() {
    tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null || true
}

# Our processes only: a recorded PID counts when its command line still names
# the script we started (PIDs get reused).
alive_pids() {
    local name pid cmd
    [ -f "$state/pids" ] || return 0
    while read -r name pid; do
        [ -n "${pid:-}" ] || continue
        cmd=$(cmdline_of "$pid")
        case "$cmd" in
        *s3rver-launcher.js*|*faults3.py*) echo "$pid" ;;
        esac
    done < "$state/pids"
}

do_stop() {
    local pids _
    pids=$(alive_pids)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        for _ in $(seq 50); do
            pids=$(alive_pids)
            [ -z "$pids" ] && break
            sleep 0.1
        done
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.2
        fi
    fi
    if [ -d "$state" ]; then
        rm -rf "$state/s3" "$state/s3tls" "$state/tls"
        rm -f "$state/pids" "$state/servers.env" "$state"/*.log "$state"/*.port
        rmdir "$state" 2>/dev/null || true
    fi
}

# wait_port NAME LOGFILE PID: the port a server announced on stdout
wait_port() {
    local name=$1 log=$2 pid=$3 _ port
    for _ in $(seq 300); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n1)
        if [ -n "$port" ]; then
            echo "$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers.sh: $name exited during start; its log ($log):" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "servers.sh: $name did not announce a port within 30 s; its log ($log):" >&2
    tail -n 30 "$log" >&2
    return 1
}

# wait_ready NAME URL [curl options]
wait_ready() {
    local name=$1 url=$2 _
    shift 2
    for _ in $(seq 100); do
        if curl -sf -o /dev/null --max-time 2 --noproxy '*' "$@" "$url"; then
            return 0
        fi
        sleep 0.1
    done
    die "$name does not answer at $url"
}

start_s3rver() {
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    (cd "$servers_dir" && exec node "${node_flags[@]}" s3rver-launcher.js -d "$dir" -a 127.0.0.1 -p 0 --silent \
        --configure-bucket arca-test --configure-bucket arca-test2 --service-endpoint localhost "$@" \
        < /dev/null > "$state/$name.log" 2>&1) &
    echo "$name $!" >> "$state/pids"
}

do_start() {
    command -v node > /dev/null || die "node is missing; run scripts/install-deps.sh"
    command -v openssl > /dev/null || die "openssl is missing; run scripts/install-deps.sh"
    [ -d "$servers_dir/node_modules/@20minutes/s3rver" ] ||
        die "s3rver is not installed in '$servers_dir'; run scripts/install-deps.sh"
    node "$servers_dir/patch-s3rver.js" > /dev/null || die "patching s3rver failed; run scripts/install-deps.sh"

    do_stop
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    : > "$state/pids"

    # s3rver's continuation tokens no longer need DES once patched, but keep the
    # flag that Node 17+ on OpenSSL 3 needs for it, where the flag is known.
    node_flags=()
    if node --openssl-legacy-provider -e 0 > /dev/null 2>&1; then
        node_flags=(--openssl-legacy-provider)
    fi

    mkdir -p "$state/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$state/tls/key.pem" -out "$state/tls/cert.pem" > "$state/openssl.log" 2>&1 ||
        { cat "$state/openssl.log" >&2; die "could not make the test certificate"; }

    start_s3rver s3 "$state/s3"
    start_s3rver s3tls "$state/s3tls" --key "$state/tls/key.pem" --cert "$state/tls/cert.pem"
    (exec "$python" "$servers_dir/faults3.py" --port 0 < /dev/null > "$state/faults.log" 2>&1) &
    echo "faults $!" >> "$state/pids"

    local s3_port tls_port fault_port
    pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$state/pids"; }
    s3_port=$(wait_port s3rver "$state/s3.log" "$(pid_of s3)") || { do_stop; exit 1; }
    tls_port=$(wait_port "s3rver (TLS)" "$state/s3tls.log" "$(pid_of s3tls)") || { do_stop; exit 1; }
    fault_port=$(wait_port faults3 "$state/faults.log" "$(pid_of faults)") || { do_stop; exit 1; }
    wait_ready s3rver "http://127.0.0.1:$s3_port/"
    wait_ready "s3rver (TLS)" "https://127.0.0.1:$tls_port/" --cacert "$state/tls/cert.pem"
    wait_ready faults3 "http://127.0.0.1:$fault_port/__control/health"

    cat > "$state/servers.env.tmp" << EOF
ARCA_TEST_STATE=$state
ARCA_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
ARCA_TEST_S3_ACCESS_KEY=S3RVER
ARCA_TEST_S3_SECRET_KEY=S3RVER
ARCA_TEST_S3_REGION=us-east-1
ARCA_TEST_S3_BUCKET=arca-test
ARCA_TEST_S3_BUCKET2=arca-test2
ARCA_TEST_S3_DATA_DIR=$state/s3
ARCA_TEST_S3TLS_ENDPOINT=https://127.0.0.1:$tls_port
ARCA_TEST_S3TLS_CA=$state/tls/cert.pem
ARCA_TEST_S3TLS_DATA_DIR=$state/s3tls
ARCA_TEST_FAULT_ENDPOINT=http://127.0.0.1:$fault_port
EOF
    mv "$state/servers.env.tmp" "$state/servers.env"
    echo "servers.sh: s3rver :$s3_port, s3rver TLS :$tls_port, faults3 :$fault_port (env: $state/servers.env)"
}

do_env() {
    [ -f "$state/servers.env" ] || die "no servers running for '$state'; run 'scripts/servers.sh start'"
    sed 's/^/export /' "$state/servers.env"
}

do_status() {
    local name pid
    [ -f "$state/pids" ] || { echo "servers.sh: nothing started in '$state'"; return 0; }
    while read -r name pid; do
        if [ -n "$(cmdline_of "$pid")" ]; then
            echo "$name $pid running"
        else
            echo "$name $pid gone"
        fi
    done < "$state/pids"
}

case "${1:-}" in
start) do_start ;;
stop) do_stop ;;
env) do_env ;;
status) do_status ;;
*)
    echo "usage: scripts/servers.sh start|stop|env|status" >&2
    exit 2
    ;;
esac
