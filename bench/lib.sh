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
