# lib.sh - shell helpers both bench/run.sh and bench/sftp.sh source.
# shellcheck shell=bash

die() {
    echo "bench: $*" >&2
    exit 1
}
say() {
    echo "bench: $*" >&2
}

is_uint() {
    case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

# user nice system irq softirq steal of all CPUs (idle and iowait left out)
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# time all CPUs spent idle waiting for I/O
iowait_ticks() {
    awk '$1 == "cpu" { print $6 }' /proc/stat
}

# wait_quiet: wait (at most $quiet_max seconds) for a second in which the
# machine used less than $quiet_pct percent of one CPU; adds the wait to
# $waited_total. The caller sets quiet_max, quiet_pct, clk (ticks per
# second) and waited_total=0.
# shellcheck disable=SC2154
wait_quiet() {
    local start=$SECONDS m0 m1 busy
    [ "$quiet_max" -gt 0 ] || return 0
    while :; do
        m0=$(machine_ticks)
        sleep 1
        m1=$(machine_ticks)
        busy=$(((m1 - m0) * 100 / clk))
        [ "$busy" -lt "$quiet_pct" ] && break
        if [ $((SECONDS - start)) -ge "$quiet_max" ]; then
            say "machine still busy (${busy}% of a CPU) after ${quiet_max}s; running anyway"
            break
        fi
    done
    waited_total=$((waited_total + SECONDS - start))
}

# our_child_alive PID: PID is still a child of this shell (right after the
# fork it may not run its program yet, so its command line proves nothing).
our_child_alive() { # PID
    local ppid
    [ -n "$1" ] || return 1
    ppid=$(awk '{ print $4 }' 2> /dev/null < "/proc/$1/stat") || return 1
    [ "$ppid" = "$$" ]
}

# shellcheck disable=SC2317  # called from the traps and cleanup
stop_child() { # PID
    local i
    our_child_alive "$1" || return 0
    kill -TERM "$1" 2> /dev/null || true
    for i in $(seq 50); do
        our_child_alive "$1" || break
        sleep 0.1
    done
    if our_child_alive "$1"; then
        kill -KILL "$1" 2> /dev/null || true
    fi
    wait "$1" 2> /dev/null || true
}

# start_s3rver TMP DATA [S3RVER FLAGS...]: a private copy of the installed
# s3rver in TMP/s3rver, patched like the tests' one (tests/servers/
# patch-s3rver.js) plus a one-line fix of its part ETag check that rclone's
# multipart uploads need (see bench/README.md), serving bucket 'bench' from
# DATA on 127.0.0.1. Sets s3pid, endpoint and etag_fix (yes|no), exports
# AWS_* and RCLONE_CONFIG_S3_* for it. Needs root (s3rver's copy of the
# test servers) and the caller's `root`.
# shellcheck disable=SC2154
start_s3rver() {
    local tmpd=$1 datad=$2 srv obj_js port i
    shift 2
    srv=$tmpd/s3rver
    mkdir -p "$srv" "$datad"
    cp -a "$root/tests/servers/node_modules" "$srv/"
    node "$root/tests/servers/patch-s3rver.js" "$srv/node_modules" > "$tmpd/patch.log" 2>&1 ||
        { cat "$tmpd/patch.log" >&2; die "patching the copy of s3rver failed"; }
    obj_js=$srv/node_modules/@20minutes/s3rver/lib/controllers/object.js
    etag_fix=no
    if grep -qF "etag: part.ETag.replace(/\"/g, '')," "$obj_js"; then
        sed -i "s|etag: part.ETag.replace(/\"/g, ''),|etag: String(part.ETag).replace(/\&#34;\|\&quot;\|\"/g, ''), // arca-bench|" "$obj_js"
        grep -qF '// arca-bench' "$obj_js" || die "could not fix the ETag check in the copy of s3rver"
        etag_fix=yes
    fi
    printf "'use strict';\nrequire('@20minutes/s3rver/lib/cli').parseAsync(process.argv);\n" > "$srv/launcher.js"
    local node_flags=()
    if node --openssl-legacy-provider -e 0 > /dev/null 2>&1; then
        node_flags=(--openssl-legacy-provider)
    fi
    node "${node_flags[@]}" "$srv/launcher.js" -d "$datad" -a 127.0.0.1 -p 0 "$@" \
        --configure-bucket bench < /dev/null > "$tmpd/s3rver.log" 2>&1 &
    s3pid=$!
    port=
    for i in $(seq 300); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmpd/s3rver.log" | head -n1)
        [ -n "$port" ] && break
        our_child_alive "$s3pid" || { cat "$tmpd/s3rver.log" >&2; die "s3rver exited during start"; }
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$tmpd/s3rver.log" >&2; die "s3rver did not announce its port"; }
    endpoint=http://127.0.0.1:$port
    for i in $(seq 100); do
        curl -sf -o /dev/null --max-time 2 --noproxy '*' "$endpoint/" && break
        [ "$i" = 100 ] && die "s3rver does not answer at $endpoint"
        sleep 0.1
    done
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_ENDPOINT_URL=$endpoint
    export AWS_REGION=us-east-1
    export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other
    export RCLONE_CONFIG_S3_ENDPOINT=$endpoint RCLONE_CONFIG_S3_ACCESS_KEY_ID=S3RVER
    export RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_S3_REGION=us-east-1
}
