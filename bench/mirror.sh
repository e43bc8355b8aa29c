#!/bin/bash
# mirror.sh: arca's mirror mode against `rclone sync --fast-list` on the same
# data, alternating, REPS repetitions, medians. Run on demand, never in CI;
# see bench/README.md.
#
#   bench/mirror.sh                build arca (Release), every row, 3 reps
#   REPS=5 bench/mirror.sh         more repetitions
#   ARCA_BIN=path                  use that arca binary, do not build
#   BENCH_FILES_S3=N               objects of the S3 rows (default 10000, 4 KiB)
#   BENCH_FILES_LOCAL=N            files of the local rows (default 100000, 1 KiB)
#   BENCH_CHANGED=N                files changed for row 5 (default 1000)
#   BENCH_QUIET_MAX=SECONDS        wait up to this long before each run for
#                                  the machine to be quiet (default 120)
#   BENCH_KEEP=1                   keep the temporary directory
#
# Rows, each tool into its own destination, fresh for every repetition:
#  1. S3 -> S3 first run: `arca backup --mode mirror s3://bench/src
#     s3://bench/arca-N` / `rclone sync --fast-list s3:bench/src
#     s3:bench/rc-N` (rclone copies on the server, arca reads and hashes
#     every object: its manifest needs each SHA-256);
#  2. the same again with nothing changed (the issue's headline row);
#  3. local -> local first run;
#  4. the same again with nothing changed (headline);
#  5. BENCH_CHANGED files rewritten, then both again: arca keeps each old
#     version in versions/<run>/ (a hard link), rclone sync just overwrites.
# Every first run's destination is checked (arca: `verify --read-data`;
# rclone: `rclone check`), so a fast wrong run counts as failed. CPU is user
# + system; RSS is the peak of the process.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${REPS:-3}
n_s3=${BENCH_FILES_S3:-10000}
n_local=${BENCH_FILES_LOCAL:-100000}
n_changed=${BENCH_CHANGED:-1000}
quiet_max=${BENCH_QUIET_MAX:-120}
quiet_pct=${BENCH_QUIET_PCT:-25}
keep=${BENCH_KEEP:-0}
arca=${ARCA_BIN:-}
for v in "$reps" "$n_s3" "$n_local" "$n_changed"; do
    is_uint "$v" && [ "$v" -ge 1 ] || die "REPS and BENCH_FILES_* / BENCH_CHANGED must be positive integers"
done
[ "$n_changed" -le "$n_local" ] || die "BENCH_CHANGED must not exceed BENCH_FILES_LOCAL"
is_uint "$quiet_max" || die "BENCH_QUIET_MAX must be an integer"
[ "$(id -u)" = 0 ] || die "run as root (the private s3rver is a copy of the test servers')"
for c in node rclone curl python3 bc; do
    command -v "$c" > /dev/null || die "'$c' is missing (scripts/install-deps.sh installs it)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(AWS_|ARCA_|RCLONE_)' || true)
export RCLONE_CONFIG=/dev/null

tmp=
s3pid=
# shellcheck disable=SC2317  # called from the traps
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_child "$s3pid"
    if [ -n "$tmp" ] && [ -d "$tmp" ]; then
        if [ "$keep" = 1 ]; then say "kept '$tmp'"; else rm -rf "$tmp"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/arca-bench-mirror.XXXXXX")
clk=$(getconf CLK_TCK)
waited_total=0

if [ -z "$arca" ]; then
    build=$root/build-bench
    say "building arca (Release) in '$build'"
    { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release && cmake --build "$build" -j2 --target arca; } \
        > "$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; die "building arca failed"; }
    arca=$build/arca
fi
start_s3rver "$tmp" "$tmp/s3data" --silent

# make_tree DIR N SIZE: N files of SIZE random bytes, 100 per directory
make_tree() {
    python3 - "$1" "$2" "$3" << 'PYEOF'
import os, sys
top, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(top, "d%05d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d" % (i % 100)), "wb") as f:
        f.write(os.urandom(size))
PYEOF
}
say "generating $n_s3 objects of 4 KiB on s3rver and $n_local local files of 1 KiB"
make_tree "$tmp/s3src" "$n_s3" 4096
rclone copy --transfers 8 "$tmp/s3src" s3:bench/src > "$tmp/seed.log" 2>&1 ||
    { tail -n 5 "$tmp/seed.log" >&2; die "seeding s3rver failed"; }
rm -rf "$tmp/s3src"
make_tree "$tmp/src" "$n_local" 1024

# run_one ROW TOOL CMD...: time CMD, append "row tool wall cpu rss ok"
run_one() {
    local row=$1 tool=$2 ok=1 wall user sys rss
    shift 2
    wait_quiet
    /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "$@" > "$tmp/out" 2> "$tmp/err" || ok=0
    [ "$ok" = 1 ] || { tail -n 5 "$tmp/err" >&2; say "row $row $tool failed"; }
    read -r wall user sys rss < <(tail -n 1 "$tmp/time")
    echo "$row $tool $wall $(echo "$user + $sys" | bc) $rss $ok" >> "$tmp/results"
    say "row $row $tool: ${wall}s wall, cpu ${user}+${sys}s, ${rss} KiB"
}
# mark_failed: the last result did not leave a correct destination
mark_failed() {
    say "$1"
    sed -i '$ s/ 1$/ 0/' "$tmp/results"
}
check_arca() { # DST
    "$arca" verify -q --read-data "$1" > /dev/null 2>&1 || mark_failed "arca: '$1' fails verify"
}
check_rclone() { # SRC DST
    rclone check --one-way --fast-list "$1" "$2" > /dev/null 2>&1 || mark_failed "rclone: '$2' differs from '$1'"
}
mirror() { # ROW SRC DST
    run_one "$1" arca "$arca" backup -q --mode mirror "$2" "$3"
}
rsync_() { # ROW SRC DST
    run_one "$1" rclone rclone sync --fast-list "$2" "$3"
}

: > "$tmp/results"
for rep in $(seq "$reps"); do
    order=(arca rclone)
    [ $((rep % 2)) = 0 ] && order=(rclone arca)
    for tool in "${order[@]}"; do
        if [ "$tool" = arca ]; then
            mirror 1 s3://bench/src "s3://bench/arca-$rep"
            check_arca "s3://bench/arca-$rep"
            mirror 2 s3://bench/src "s3://bench/arca-$rep"
        else
            rsync_ 1 s3:bench/src "s3:bench/rc-$rep"
            check_rclone s3:bench/src "s3:bench/rc-$rep"
            rsync_ 2 s3:bench/src "s3:bench/rc-$rep"
        fi
    done
    for tool in "${order[@]}"; do
        if [ "$tool" = arca ]; then
            mirror 3 "$tmp/src" "$tmp/arca-$rep"
            check_arca "$tmp/arca-$rep"
            mirror 4 "$tmp/src" "$tmp/arca-$rep"
        else
            rsync_ 3 "$tmp/src" "$tmp/rc-$rep"
            check_rclone "$tmp/src" "$tmp/rc-$rep"
            rsync_ 4 "$tmp/src" "$tmp/rc-$rep"
        fi
    done
    # row 5: the same files rewritten for both tools (new content, new mtime)
    python3 - "$tmp/src" "$n_changed" "$rep" << 'PYEOF'
import os, sys
top, n, rep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    p = os.path.join(top, "d%05d" % (i // 100), "f%03d" % (i % 100))
    with open(p, "wb") as f:
        f.write(os.urandom(1024))
PYEOF
    for tool in "${order[@]}"; do
        if [ "$tool" = arca ]; then
            mirror 5 "$tmp/src" "$tmp/arca-$rep"
        else
            rsync_ 5 "$tmp/src" "$tmp/rc-$rep"
        fi
    done
    rm -rf "$tmp/arca-$rep" "$tmp/rc-$rep"
done

echo "arca mirror mode vs rclone sync --fast-list (s3rver on 127.0.0.1, $(nproc) CPUs), $reps repetitions, $(date -u +%F)"
echo "data: $n_s3 objects of 4 KiB on s3rver, $n_local local files of 1 KiB ($n_changed changed for row 5); waited ${waited_total}s for a quiet machine"
python3 - "$tmp/results" "$n_s3" "$n_local" "$n_changed" << 'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    row, tool, wall, cpu, rss, ok = line.split()
    if ok == "1":
        rows.setdefault((row, tool), []).append((float(wall), float(cpu), int(rss) / 1024))
n_s3, n_local, n_changed = sys.argv[2:5]
names = {"1": "S3->S3 %s objects, first" % n_s3, "2": "S3->S3, no change",
         "3": "local %s files, first" % n_local, "4": "local, no change",
         "5": "local, %s changed" % n_changed}
print("%-30s %-12s %3s %8s %8s %9s" % ("row", "tool", "ok", "wall s", "CPU s", "RSS MiB"))
for row in ("1", "2", "3", "4", "5"):
    med = {}
    for tool in ("arca", "rclone"):
        v = rows.get((row, tool), [])
        if not v:
            print("%-30s %-12s %3s" % (names[row] if tool == "arca" else "", tool, "0"))
            continue
        med[tool] = [statistics.median(x[i] for x in v) for i in range(3)]
        print("%-30s %-12s %3d %8.2f %8.2f %9.1f" % (names[row] if tool == "arca" else "", tool, len(v), *med[tool]))
    if len(med) == 2:
        a, r = med["arca"], med["rclone"]
        print("%-30s %-12s %3s %7.2fx %7.2fx %8.2fx" % ("", "arca/rclone", "", a[0] / r[0], a[1] / r[1] if r[1] else 0, a[2] / r[2]))
PYEOF
