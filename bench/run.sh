#!/bin/bash
# run.sh: the same S3 work done by arca and by rclone against one private
# s3rver on 127.0.0.1, alternating, REPS repetitions, and a table of medians.
# Run on demand, never in CI; see bench/README.md.
#
#   bench/run.sh                  build arca (Release), run every row, 3 reps
#   REPS=5 bench/run.sh           more repetitions
#   ARCA_BIN=path bench/run.sh    use that arca binary, do not build
#   BENCH_ROWS="1 2"              only these rows (4 needs 3)
#   BENCH_OUT=file.json           also write every run and the medians as JSON
#   BENCH_REQLOG=1                let s3rver log requests and count them per run
#                                 (costs server CPU: figures are not comparable
#                                 with runs without it)
#   BENCH_BIG_MIB, BENCH_SMALL_COUNT, BENCH_SMALL_SIZE
#                                 smaller data for a quick try (default 1024,
#                                 10000, 4096)
#   BENCH_TIMEOUT=SECONDS         limit of one run (default 3600)
#   BENCH_TMP=DIR                 where the temporary directory goes (/tmp)
#   BENCH_QUIET_MAX=SECONDS       before each run wait up to this long (default
#                                 120, 0 = never) for the rest of the machine
#                                 to use less than BENCH_QUIET_PCT (default 25)
#                                 percent of one CPU
#   BENCH_KEEP=1                  keep the temporary directory (logs, data)
#
# Rows: (1) one big file local -> S3 (multipart), (2) the same S3 -> local,
# (3) many small files local -> S3, (4) (3) again with nothing changed: each
# tool against the prefix it filled itself. Every run writes to a fresh
# prefix or local directory and is checked afterwards (SHA-256 of every file
# against the source, read from s3rver's data directory or the download; for
# (4) that no object file on the server was rewritten), so a fast but wrong
# run counts as failed, not as fast.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=/usr/bin/python3
lib=("$py" "$root/bench/benchlib.py")

reps=${REPS:-3}
rows=${BENCH_ROWS:-1 2 3 4}
big_mib=${BENCH_BIG_MIB:-1024}
small_count=${BENCH_SMALL_COUNT:-10000}
small_size=${BENCH_SMALL_SIZE:-4096}
reqlog=${BENCH_REQLOG:-0}
run_timeout=${BENCH_TIMEOUT:-3600}
quiet_max=${BENCH_QUIET_MAX:-120}
quiet_pct=${BENCH_QUIET_PCT:-25}
bench_out=${BENCH_OUT:-}
keep=${BENCH_KEEP:-0}
arca=${ARCA_BIN:-}

# The flags are part of the benchmark: the same work for both tools.
arca_flags=(--transfers 4 --s3-part-size 16M --s3-upload-concurrency 4)
rclone_flags=(--fast-list --transfers 4 --checkers 8 --s3-chunk-size 16M
    --s3-upload-concurrency 4 --s3-upload-cutoff 16M)

if ! is_uint "$reps" || [ "$reps" -lt 1 ]; then
    die "REPS must be a positive integer, not '$reps'"
fi
[ "$reps" -ge 3 ] || say "warning: REPS=$reps; use at least 3 for figures worth reporting"
for v in "$big_mib" "$small_count" "$small_size" "$run_timeout"; do
    if ! is_uint "$v" || [ "$v" -lt 1 ]; then
        die "'$v' is not a positive integer (BENCH_* sizes and counts)"
    fi
done
if ! is_uint "$quiet_max" || ! is_uint "$quiet_pct"; then
    die "BENCH_QUIET_MAX and BENCH_QUIET_PCT must be integers"
fi
for r in $rows; do
    case "$r" in 1 | 2 | 3 | 4) ;; *) die "BENCH_ROWS: no row '$r' (rows are 1 2 3 4)" ;; esac
done
want_row() {
    case " $rows " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
if want_row 4 && ! want_row 3; then
    die "row 4 re-runs row 3: BENCH_ROWS must include 3 as well"
fi
if [ -n "$arca" ]; then
    arca=$(cd "$(dirname "$arca")" && pwd)/$(basename "$arca")
    [ -x "$arca" ] || die "ARCA_BIN '$arca' is not an executable file"
fi

# Nothing from the caller's environment may steer either tool (this machine
# sets AWS_CA_BUNDLE, which breaks rclone's S3 backend).
while read -r v; do
    unset "$v"
done < <(compgen -e | grep -E '^(AWS_|ARCA_|RCLONE_)' || true)

for c in node rclone curl timeout getconf; do
    command -v "$c" > /dev/null || die "'$c' is missing (Debian: nodejs, rclone, curl, coreutils)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"
[ -x "$py" ] || die "$py is missing"
[ -d "$root/tests/servers/node_modules/@20minutes/s3rver" ] ||
    die "s3rver is not installed in 'tests/servers'; run scripts/install-deps.sh"

tmp=
s3pid=
srv=

# Our s3rver only: the PID must still be a child of this shell (right after
# the fork it may not run node yet, so its command line proves nothing).
our_server_alive() {
    local ppid
    [ -n "$s3pid" ] || return 1
    ppid=$(awk '{ print $4 }' 2> /dev/null < "/proc/$s3pid/stat") || return 1
    [ "$ppid" = "$$" ]
}

# shellcheck disable=SC2317  # called from the traps
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if our_server_alive; then
        kill -TERM "$s3pid" 2> /dev/null || true
        for i in $(seq 50); do
            our_server_alive || break
            sleep 0.1
        done
        if our_server_alive; then
            kill -KILL "$s3pid" 2> /dev/null || true
        fi
        wait "$s3pid" 2> /dev/null || true
    fi
    if [ -n "$tmp" ] && [ -d "$tmp" ]; then
        if [ "$keep" = 1 ]; then
            say "kept '$tmp'"
        else
            rm -rf "$tmp"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/arca-bench.XXXXXX")

# ---- arca ----------------------------------------------------------------
if [ -z "$arca" ]; then
    build=$root/build-bench
    say "building arca (Release) in '$build'"
    if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$build" -j2 --target arca; } > "$tmp/build.log" 2>&1; then
        tail -n 30 "$tmp/build.log" >&2
        die "building arca failed (log above)"
    fi
    arca=$build/arca
fi

# ---- s3rver --------------------------------------------------------------
# A private copy of the installed s3rver, patched like the tests' one
# (tests/servers/patch-s3rver.js), so this run neither depends on nor
# disturbs the servers of the test suite.
data=$tmp/s3data
silent=(--silent)
[ "$reqlog" = 1 ] && silent=()
start_s3rver "$tmp" "$data" "${silent[@]}"
export RCLONE_CONFIG=/dev/null

# ---- data ----------------------------------------------------------------
say "generating data in '$tmp'"
mkdir -p "$tmp/src-big" "$tmp/src-small" "$tmp/dl" "$tmp/snap" "$tmp/logs"
if want_row 1 || want_row 2; then
    "${lib[@]}" gen-big "$tmp/src-big/big.bin" "$big_mib" "$tmp/big.manifest"
fi
if want_row 3; then
    "${lib[@]}" gen-small "$tmp/src-small" "$small_count" "$small_size" 100 "$tmp/small.manifest"
fi
if want_row 2; then
    # The download source, written by neither tool: one plain PUT by curl,
    # no metadata, ETag = MD5 of the content.
    curl -sSf --noproxy '*' --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$tmp/src-big/big.bin" \
        -o /dev/null "$endpoint/bench/seed/big.bin" || die "could not upload the download source"
    "${lib[@]}" verify-tree "$data/bench/seed" "$tmp/big.manifest" ._S3rver_object ||
        die "the download source on the server is not the generated file"
fi

# ---- one run -------------------------------------------------------------
clk=$(getconf CLK_TCK)
proc_ticks() {
    if ! our_server_alive; then
        echo "bench: s3rver (pid $1) has stopped; its log: $tmp/s3rver.log" >&2
        return 1
    fi
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
request_count() {
    if [ "$reqlog" = 1 ]; then
        grep -c ' [1-5][0-9][0-9] [0-9.]*m\?s ' "$tmp/s3rver.log" || true
    else
        echo 0
    fi
}

# Other work on the machine slows both tools at random: before each run, wait
# (at most quiet_max seconds) for a second in which everything but our idle
# s3rver used less than quiet_pct percent of one CPU.
waited_total=0

remote() { # TOOL PREFIX
    case "$1" in
    arca) echo "s3://bench/$2" ;;
    rclone) echo "s3:bench/$2" ;;
    esac
}

tool_cmd() { # TOOL SRC DST: sets the array cmd
    case "$1" in
    arca) cmd=("$arca" copy "$2" "$3" "${arca_flags[@]}") ;;
    rclone) cmd=(rclone copy "$2" "$3" "${rclone_flags[@]}") ;;
    esac
}

failures=0
run_one() { # ROW TOOL REP
    local row=$1 tool=$2 rep=$3 tag="$2-$3" src dst why='' units unit_name
    local log="$tmp/logs/row$1-$tag.log" tf="$tmp/logs/row$1-$tag.time"
    case "$row" in
    1)
        src=$tmp/src-big dst=$(remote "$tool" "up-big/$tag")
        units=$big_mib unit_name=MiB/s
        ;;
    2)
        src=$(remote "$tool" seed) dst=$tmp/dl/$tag
        units=$big_mib unit_name=MiB/s
        ;;
    3)
        src=$tmp/src-small dst=$(remote "$tool" "up-small/$tag")
        units=$small_count unit_name=files/s
        ;;
    4)
        src=$tmp/src-small dst=$(remote "$tool" "up-small/$tag")
        units=$small_count unit_name=files/s
        if [ ! -d "$data/bench/up-small/$tag" ]; then
            "${lib[@]}" record "$tmp/runs.jsonl" row=4 tool="$tool" rep="$rep" ok=0 \
                why="row 3 left no prefix to re-run against"
            failures=$((failures + 1))
            return 0
        fi
        "${lib[@]}" snapshot "$data/bench/up-small/$tag" "$tmp/snap/$tag.before"
        ;;
    esac
    tool_cmd "$tool" "$src" "$dst"
    sync
    wait_quiet
    local s0 s1 m0 m1 w0 w1 q0 q1 rc wall=0 user=0 sys=0 rss=0 t0 flush
    q0=$(request_count)
    s0=$(proc_ticks "$s3pid")
    m0=$(machine_ticks)
    w0=$(iowait_ticks)
    rm -f "$tf"
    set +e
    timeout --foreground "$run_timeout" /usr/bin/time -f '%e %U %S %M' -o "$tf" "${cmd[@]}" > "$log" 2>&1
    rc=$?
    set -e
    s1=$(proc_ticks "$s3pid")
    m1=$(machine_ticks)
    w1=$(iowait_ticks)
    q1=$(request_count)
    # What the run left in the page cache and neither tool waited for (arca
    # fsyncs the files it writes, rclone does not): flushed outside the timing
    # but reported, so the difference stays visible.
    t0=$(date +%s.%N)
    sync
    flush=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if [ -s "$tf" ]; then
        read -r wall user sys rss < <(tail -n 1 "$tf")
    fi
    if [ "$rc" -ne 0 ]; then
        why="exit status $rc: $(tail -n 1 "$log" | cut -c1-200)"
    fi
    # the check decides, not the exit status alone
    if [ -z "$why" ]; then
        case "$row" in
        1)
            why=$("${lib[@]}" verify-tree "$data/bench/up-big/$tag" "$tmp/big.manifest" ._S3rver_object) || true
            rm -rf "$data/bench/up-big/$tag"
            ;;
        2)
            why=$("${lib[@]}" verify-tree "$tmp/dl/$tag" "$tmp/big.manifest") || true
            rm -rf "$tmp/dl/$tag"
            ;;
        3)
            why=$("${lib[@]}" verify-tree "$data/bench/up-small/$tag" "$tmp/small.manifest" ._S3rver_object) || true
            ;;
        4)
            "${lib[@]}" snapshot "$data/bench/up-small/$tag" "$tmp/snap/$tag.after"
            why=$("${lib[@]}" same-snapshot "$tmp/snap/$tag.before" "$tmp/snap/$tag.after") || true
            if [ -z "$why" ]; then
                why=$("${lib[@]}" verify-tree "$data/bench/up-small/$tag" "$tmp/small.manifest" ._S3rver_object) || true
            fi
            ;;
        esac
    fi
    local ok=1 server_cpu other_cpu iowait
    [ -z "$why" ] || { ok=0; failures=$((failures + 1)); }
    server_cpu=$(awk -v a="$s0" -v b="$s1" -v c="$clk" 'BEGIN { printf "%.3f", (b - a) / c }')
    iowait=$(awk -v a="$w0" -v b="$w1" -v c="$clk" 'BEGIN { printf "%.2f", (b - a) / c }')
    other_cpu=$(awk -v a="$m0" -v b="$m1" -v c="$clk" -v u="$user" -v s="$sys" -v v="$server_cpu" \
        'BEGIN { x = (b - a) / c - u - s - v; if (x < 0) x = 0; printf "%.3f", x }')
    local extra=()
    [ "$reqlog" = 1 ] && extra=(requests=$((q1 - q0)))
    "${lib[@]}" record "$tmp/runs.jsonl" row="$row" tool="$tool" rep="$rep" ok="$ok" \
        wall_s="$wall" user_s="$user" sys_s="$sys" rss_kib="$rss" server_cpu_s="$server_cpu" \
        other_cpu_s="$other_cpu" iowait_s="$iowait" sync_after_s="$flush" units="$units" unit_name="$unit_name" why="$why" "${extra[@]}"
    if [ "$ok" = 1 ]; then
        say "row $row rep $rep $tool: ${wall}s wall, cpu ${user}+${sys}s, ${rss} KiB, s3rver ${server_cpu}s, other ${other_cpu}s, iowait ${iowait}s, sync after ${flush}s"
    else
        say "row $row rep $rep $tool: FAILED: $why (log: $log)"
    fi
}

# ---- the runs ------------------------------------------------------------
say "arca: $arca ($("$arca" version 2> /dev/null | head -n1))"
say "rclone: $(rclone version 2> /dev/null | head -n1); s3rver at $endpoint (pid $s3pid)"
[ "$etag_fix" = yes ] && say "note: s3rver copy fixed to accept XML-escaped part ETags (rclone multipart)"
for row in 1 2 3 4; do
    want_row "$row" || continue
    for rep in $(seq "$reps"); do
        # alternate which tool goes first, so neither always gets the warmer cache
        if [ $((rep % 2)) = 1 ]; then order="arca rclone"; else order="rclone arca"; fi
        for tool in $order; do
            run_one "$row" "$tool" "$rep"
        done
    done
done
[ "$waited_total" -gt 0 ] && say "waited ${waited_total}s in all for a quiet machine"
if [ -n "$(ls -A "$data/bench/._S3rver_uploads" 2> /dev/null)" ]; then
    say "warning: unfinished multipart uploads left on the server: $(find "$data/bench/._S3rver_uploads" -mindepth 1 -maxdepth 1 | wc -l)"
fi

# ---- the table -----------------------------------------------------------
"$py" -c 'import json, sys; json.dump(dict(a.split("=", 1) for a in sys.argv[2:]), open(sys.argv[1], "w"), indent=1)' \
    "$tmp/meta.json" \
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    reps="$reps" \
    arca="$("$arca" version 2> /dev/null | head -n1)" \
    arca_git="$(git -C "$root" describe --always --dirty 2> /dev/null || echo unknown)" \
    rclone="$(rclone version 2> /dev/null | head -n1)" \
    node="$(node --version)" \
    s3rver_etag_fix="$etag_fix" \
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
    cpus="$(nproc)" \
    kernel="$(uname -r)" \
    arca_flags="${arca_flags[*]}" \
    rclone_flags="${rclone_flags[*]}" \
    big_mib="$big_mib" small_count="$small_count" small_size="$small_size"
echo
echo "arca vs rclone against s3rver on 127.0.0.1 ($(nproc) CPUs), $reps repetitions, $(date -u +%Y-%m-%d)"
echo "arca:   $("$arca" version 2> /dev/null | head -n1) ${arca_flags[*]}"
echo "rclone: $(rclone version 2> /dev/null | head -n1) ${rclone_flags[*]}"
echo
report_args=("$tmp/runs.jsonl" "$tmp/meta.json")
[ -n "$bench_out" ] && report_args+=("$bench_out")
set +e
"${lib[@]}" report "${report_args[@]}"
rc=$?
set -e
exit "$rc"
