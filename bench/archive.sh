#!/bin/bash
# archive.sh: arca's archive mode against the standard pipeline on the same
# data and the same private s3rver, alternating, REPS repetitions, medians.
# Run on demand, never in CI; see bench/README.md.
#
#   bench/archive.sh               build arca (Release), both rows, 3 reps
#   REPS=5 bench/archive.sh        more repetitions
#   ARCA_BIN=path                  use that arca binary, do not build
#   BENCH_TOTAL_MIB=N              size of the mixed tree (default 1024)
#   BENCH_QUIET_MAX=SECONDS        wait up to this long before each run for
#                                  the machine to be quiet (default 120)
#   BENCH_KEEP=1                   keep the temporary directory
#
# Rows: (1) backup: `arca backup --mode archive --compression zstd SRC
# s3://bench/...` against `tar -cf - -C SRC . | zstd -T0 -3 | rclone rcat
# s3:bench/.../x.tar.zst`; (2) restore of that archive: `arca restore`
# against `rclone cat ... | zstd -d | tar -xf -`. The tree is about half
# text-like (compressible) and half random bytes: files of 1 KiB to 4 MiB
# and one in 25 of 16 to 64 MiB (about 1,000 files per GiB). Every restore is checked against the source (SHA-256 of every
# file), so a fast wrong run counts as failed. CPU is user + system of the
# whole command (the pipeline's three processes together); RSS is the peak
# of its largest process; sync s is a `sync` timed right after each run,
# outside its timing: what the run left unwritten (arca restore makes what
# it wrote durable before it exits; tar -x does not).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${REPS:-3}
total_mib=${BENCH_TOTAL_MIB:-1024}
quiet_max=${BENCH_QUIET_MAX:-120}
quiet_pct=${BENCH_QUIET_PCT:-25}
keep=${BENCH_KEEP:-0}
arca=${ARCA_BIN:-}
for v in "$reps" "$total_mib"; do
    is_uint "$v" && [ "$v" -ge 1 ] || die "REPS and BENCH_TOTAL_MIB must be positive integers"
done
is_uint "$quiet_max" || die "BENCH_QUIET_MAX must be an integer"
[ "$(id -u)" = 0 ] || die "run as root (the private s3rver is a copy of the test servers')"
for c in node rclone zstd tar curl python3; do
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
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/arca-bench-archive.XXXXXX")
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

say "generating ${total_mib} MiB of mixed files"
python3 - "$tmp/src" "$total_mib" << 'PYEOF'
import os, random, sys
top, total = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(20261122)
words = [("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))) for _ in range(5000)]
made, n = 0, 0
while made < total:
    # mostly 1 KiB .. 4 MiB, one file in 25 of 16 .. 64 MiB
    big = rnd.random() < 0.04
    size = min(int(2 ** (rnd.uniform(24, 26) if big else rnd.uniform(10, 22))), total - made)
    d = os.path.join(top, "d%02d" % (n % 40))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % n), "wb") as f:
        if n % 2:
            f.write(os.urandom(size))
        else:
            out, left = [], size
            while left > 0:
                line = (" ".join(rnd.choice(words) for _ in range(12)) + "\n").encode()
                out.append(line[:left])
                left -= len(line)
            f.write(b"".join(out))
    made += size
    n += 1
print(n, "files", made, "bytes")
PYEOF
(cd "$tmp/src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > "$tmp/src.sums"

# run NAME ROW TOOL CMD...: time CMD, append "row tool wall cpu rss ok" to results
run_one() {
    local row=$1 tool=$2 ok=1
    shift 2
    wait_quiet
    /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "$@" > "$tmp/out" 2> "$tmp/err" || ok=0
    [ "$ok" = 1 ] || { tail -n 5 "$tmp/err" >&2; say "row $row $tool failed"; }
    read -r wall user sys rss < <(tail -n 1 "$tmp/time")
    # what the run left unwritten: a sync right after, outside its timing
    local s0 s1
    s0=$(date +%s.%N)
    sync
    s1=$(date +%s.%N)
    local flush
    flush=$(echo "$s1 - $s0" | bc)
    echo "$row $tool $wall $(echo "$user + $sys" | bc) $rss $ok $flush" >> "$tmp/results"
    say "row $row $tool: ${wall}s wall, cpu ${user}+${sys}s, ${rss} KiB, sync after ${flush}s"
}
check_tree() { # DIR TOOL
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | cmp -s - "$tmp/src.sums" ||
        { say "$2: the restored tree differs from the source"; sed -i '$ s/ 1$/ 0/' "$tmp/results"; }
}

: > "$tmp/results"
for rep in $(seq "$reps"); do
    order=(arca pipeline)
    [ $((rep % 2)) = 0 ] && order=(pipeline arca)
    for tool in "${order[@]}"; do
        if [ "$tool" = arca ]; then
            run_one 1 arca "$arca" backup -q --compression zstd --s3-part-size 16M \
                --s3-upload-concurrency 4 "$tmp/src" "s3://bench/arca-$rep"
        else
            run_one 1 pipeline bash -c "tar -cf - -C '$tmp/src' . | zstd -q -T0 -3 |
                rclone rcat --s3-chunk-size 16M --s3-upload-concurrency 4 s3:bench/pipe-$rep/x.tar.zst"
        fi
    done
    for tool in "${order[@]}"; do
        out=$tmp/restore-$tool-$rep
        mkdir -p "$out"
        if [ "$tool" = arca ]; then
            run_one 2 arca "$arca" restore -q "s3://bench/arca-$rep" "$out"
        else
            run_one 2 pipeline bash -c "rclone cat s3:bench/pipe-$rep/x.tar.zst | zstd -q -d | tar -xf - -C '$out'"
        fi
        check_tree "$out" "$tool"
        rm -rf "$out"
    done
done

echo "arca archive mode vs tar | zstd -T0 -3 | rclone (s3rver on 127.0.0.1, $(nproc) CPUs), $reps repetitions, $(date -u +%F)"
echo "data: $(wc -l < "$tmp/src.sums") files, $total_mib MiB, half text-like, half random; waited ${waited_total}s for a quiet machine"
python3 - "$tmp/results" << 'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    row, tool, wall, cpu, rss, ok, flush = line.split()
    if ok == "1":
        rows.setdefault((row, tool), []).append((float(wall), float(cpu), int(rss) / 1024, float(flush)))
names = {"1": "backup 1 GiB mixed -> S3", "2": "restore of that archive"}
print("%-26s %-9s %4s %8s %8s %9s %7s" % ("row", "tool", "ok", "wall s", "CPU s", "RSS MiB", "sync s"))
for row in ("1", "2"):
    med = {}
    for tool in ("arca", "pipeline"):
        v = rows.get((row, tool), [])
        if not v:
            print("%-26s %-9s %4s" % (names[row], tool, "0"))
            continue
        med[tool] = [statistics.median(x[i] for x in v) for i in range(4)]
        print("%-26s %-9s %4d %8.2f %8.2f %9.1f %7.2f" % (names[row] if tool == "arca" else "", tool, len(v), *med[tool]))
    if len(med) == 2:
        a, p = med["arca"], med["pipeline"]
        print("%-26s %-9s %4s %7.2fx %7.2fx %8.2fx" % ("", "arca/pipe", "", a[0] / p[0], a[1] / p[1], a[2] / p[2]))
PYEOF
