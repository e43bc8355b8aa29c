#!/bin/bash
# sftp.sh: arca and rclone reading the same data from one private sshd on
# 127.0.0.1 (to local files, and to a private s3rver), OpenSSH's own sftp
# client as the ceiling for the big file, alternating, REPS repetitions, and
# a table of medians. Run on demand, never in CI; see bench/README.md.
#
#   bench/sftp.sh                 build arca (Release), run every row, 3 reps
#   REPS=5 bench/sftp.sh          more repetitions
#   ARCA_BIN=path bench/sftp.sh   use that arca binary, do not build
#   BENCH_ROWS="1 2"              only these rows (3 and 4 start s3rver)
#   BENCH_OUT=file.json           also write every run and the medians as JSON
#   BENCH_BIG_MIB, BENCH_SMALL_COUNT, BENCH_SMALL_SIZE
#                                 smaller data for a quick try (default 1024,
#                                 10000, 4096)
#   BENCH_CIPHERS=LIST            sshd's Ciphers line (default: OpenSSH's
#                                 list; each client then picks its own)
#   BENCH_TIMEOUT=SECONDS         limit of one run (default 3600)
#   BENCH_TMP=DIR                 where the temporary directory goes (/tmp)
#   BENCH_QUIET_MAX=SECONDS       before each run wait up to this long (default
#                                 120, 0 = never) for the rest of the machine
#                                 to use less than BENCH_QUIET_PCT (default 25)
#                                 percent of one CPU
#   BENCH_KEEP=1                  keep the temporary directory (logs, data)
#   BENCH_ARCA_FLAGS="..."        more arca flags (e.g. "--read-streams 1")
#
# Rows: (1) one big file SFTP -> local, also fetched by OpenSSH's sftp
# (`sftp -b`, one `get`) as the ceiling, (2) many small files in 100
# directories SFTP -> local, (3) the big file SFTP -> S3 (multipart), (4) the
# small files SFTP -> S3. The SFTP server is this script's own sshd (OpenSSH,
# internal-sftp, its own host key), logged in to as the unprivileged account
# 'arca-test' (scripts/install-deps.sh creates it) with an ed25519 key. Every
# run writes to a fresh directory or prefix and is checked afterwards
# (SHA-256 of every file against the generated manifest), so a fast but wrong
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
ciphers=${BENCH_CIPHERS:-}
run_timeout=${BENCH_TIMEOUT:-3600}
quiet_max=${BENCH_QUIET_MAX:-120}
quiet_pct=${BENCH_QUIET_PCT:-25}
bench_out=${BENCH_OUT:-}
keep=${BENCH_KEEP:-0}
arca=${ARCA_BIN:-}
sftp_user="arca-test"

# The flags are part of the benchmark: the same work for both tools. The S3
# rows add bench/run.sh's part settings.
arca_flags=(--transfers 4)
# BENCH_ARCA_FLAGS: more arca flags, e.g. "--read-streams 1" to compare
# arca's one-stream read of a large file with its default
read -r -a arca_extra <<< "${BENCH_ARCA_FLAGS:-}"
arca_flags+=("${arca_extra[@]}")
arca_s3_flags=(--s3-part-size 16M --s3-upload-concurrency 4)
rclone_flags=(--transfers 4 --checkers 8)
rclone_s3_flags=(--fast-list --s3-chunk-size 16M --s3-upload-concurrency 4 --s3-upload-cutoff 16M)

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
case "$ciphers" in *[!a-z0-9@.,+-]*) die "BENCH_CIPHERS: '$ciphers' is not a cipher list" ;; esac
for r in $rows; do
    case "$r" in 1 | 2 | 3 | 4) ;; *) die "BENCH_ROWS: no row '$r' (rows are 1 2 3 4)" ;; esac
done
want_row() {
    case " $rows " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
want_s3=0
if want_row 3 || want_row 4; then want_s3=1; fi
if [ -n "$arca" ]; then
    arca=$(cd "$(dirname "$arca")" && pwd)/$(basename "$arca")
    [ -x "$arca" ] || die "ARCA_BIN '$arca' is not an executable file"
fi
[ "$(id -u)" = 0 ] || die "run as root: the private sshd needs it"

# Nothing from the caller's environment may steer any tool (this machine
# sets AWS_CA_BUNDLE, which breaks rclone's S3 backend).
while read -r v; do
    unset "$v"
done < <(compgen -e | grep -E '^(AWS_|ARCA_|RCLONE_)' || true)

for c in rclone sftp ssh-keygen ssh-keyscan pgrep timeout getconf; do
    command -v "$c" > /dev/null || die "'$c' is missing (Debian: rclone, openssh-client, procps, coreutils)"
done
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing (Debian package 'openssh-server')"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"
[ -x "$py" ] || die "$py is missing"
id "$sftp_user" > /dev/null 2>&1 || die "the account '$sftp_user' is missing; run scripts/install-deps.sh"
if [ "$want_s3" = 1 ]; then
    for c in node curl; do
        command -v "$c" > /dev/null || die "'$c' is missing (Debian: nodejs, curl)"
    done
    [ -d "$root/tests/servers/node_modules/@20minutes/s3rver" ] ||
        die "s3rver is not installed in 'tests/servers'; run scripts/install-deps.sh"
fi

tmp=
sshpid=
s3pid=

# Our servers only: the PID must still be a child of this shell (right after
# the fork it may not run the server yet, so its command line proves nothing).
# shellcheck disable=SC2317  # called from the traps
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_child "$sshpid"
    stop_child "$s3pid"
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

tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/arca-bench-sftp.XXXXXX")
# arca-test must reach the served data and the authorized_keys file below
# (only those are readable by others; the private keys stay 0600)
chmod 0711 "$tmp"

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

# ---- sshd ----------------------------------------------------------------
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ssh_dir=$tmp/ssh
sftp_data=$tmp/sftp
mkdir -p "$ssh_dir" "$sftp_data" /run/sshd
chmod 0711 "$ssh_dir"
chmod 0755 "$sftp_data"
ssh-keygen -q -t ed25519 -N '' -C arca-bench-host -f "$ssh_dir/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C arca-bench -f "$ssh_dir/id_ed25519"
cp "$ssh_dir/id_ed25519.pub" "$ssh_dir/authorized_keys"
chmod 0644 "$ssh_dir/authorized_keys"
ssh_port=$(free_port)
echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$ssh_dir/host_ed25519.pub")" > "$ssh_dir/known_hosts"
# LogLevel DEBUG1 logs, per connection, the negotiated cipher, which the
# table reports (internal-sftp keeps logging only errors, whatever this says)
cat > "$ssh_dir/sshd_config" << SSHD
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $ssh_dir/host_ed25519
PidFile $ssh_dir/sshd.pid
UsePAM no
StrictModes no
AuthorizedKeysFile $ssh_dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $sftp_user
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
MaxStartups 64:30:128
MaxSessions 64
LogLevel DEBUG1
SSHD
[ -n "$ciphers" ] && echo "Ciphers $ciphers" >> "$ssh_dir/sshd_config"
/usr/sbin/sshd -t -f "$ssh_dir/sshd_config" > "$tmp/sshd-check.log" 2>&1 ||
    { cat "$tmp/sshd-check.log" >&2; die "sshd refuses its configuration"; }
# sshd made a child subreaper (prctl PR_SET_CHILD_SUBREAPER, kept across
# exec): the monitor of a connection exits without waiting for its session
# process, which would then be reaped by init and its CPU time (ciphers,
# internal-sftp) lost; this way sshd reaps it and counts it in its own
# children's CPU time, which sshd_ticks reads.
"$py" -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])' /usr/sbin/sshd -D -f "$ssh_dir/sshd_config" -E "$tmp/sshd.log" \
    < /dev/null > "$tmp/sshd.out" 2>&1 &
sshpid=$!
for i in $(seq 100); do
    ssh-keyscan -T1 -p "$ssh_port" 127.0.0.1 > /dev/null 2>&1 && break
    our_child_alive "$sshpid" || { cat "$tmp/sshd.out" >&2; tail -n 20 "$tmp/sshd.log" >&2; die "sshd exited during start"; }
    [ "$i" = 100 ] && { tail -n 20 "$tmp/sshd.log" >&2; die "sshd does not answer on port $ssh_port"; }
    sleep 0.1
done

cfg=$tmp/arca.conf
(umask 077 && cat > "$cfg") << CONF
[bsftp]
type = sftp
host = 127.0.0.1
port = $ssh_port
user = $sftp_user
key_file = $ssh_dir/id_ed25519
known_hosts = $ssh_dir/known_hosts
root = $sftp_data
CONF

export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_BSFTP_TYPE=sftp RCLONE_CONFIG_BSFTP_HOST=127.0.0.1
export RCLONE_CONFIG_BSFTP_PORT=$ssh_port RCLONE_CONFIG_BSFTP_USER=$sftp_user
export RCLONE_CONFIG_BSFTP_KEY_FILE=$ssh_dir/id_ed25519
export RCLONE_CONFIG_BSFTP_KNOWN_HOSTS_FILE=$ssh_dir/known_hosts
# internal-sftp runs no commands: tell rclone so, instead of letting it probe
# for a shell (and md5sum/sha1sum) on every connection
export RCLONE_CONFIG_BSFTP_SHELL_TYPE=none

# the same file, the same server check, for OpenSSH's client
openssh_cmd=(sftp -q -F /dev/null -P "$ssh_port" -i "$ssh_dir/id_ed25519"
    -o "UserKnownHostsFile=$ssh_dir/known_hosts" -o GlobalKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=yes -o BatchMode=yes)

# ---- s3rver (rows 3 and 4) -----------------------------------------------
# A private copy of the installed s3rver, patched like the tests' one and
# with bench/run.sh's one-line ETag fix (see bench/README.md).
s3data=$tmp/s3data
etag_fix=no
endpoint=
if [ "$want_s3" = 1 ]; then
    start_s3rver "$tmp" "$s3data" --silent
fi

# ---- data ----------------------------------------------------------------
say "generating data in '$sftp_data'"
mkdir -p "$tmp/dl" "$tmp/logs"
if want_row 1 || want_row 3; then
    mkdir -p "$sftp_data/big"
    "${lib[@]}" gen-big "$sftp_data/big/big.bin" "$big_mib" "$tmp/big.manifest"
fi
if want_row 2 || want_row 4; then
    "${lib[@]}" gen-small "$sftp_data/small" "$small_count" "$small_size" 100 "$tmp/small.manifest"
fi
chmod -R a+rX "$sftp_data"

# ---- one run -------------------------------------------------------------
clk=$(getconf CLK_TCK)
# CPU of a server: its own and that of the children it has reaped. sshd runs
# each connection in processes it forks (and reaps when the client leaves),
# so wait until they are gone before reading.
sshd_ticks() {
    local i
    our_child_alive "$sshpid" || { say "sshd (pid $sshpid) has stopped; its log: $tmp/sshd.log"; return 1; }
    for i in $(seq 100); do
        pgrep -P "$sshpid" > /dev/null || break
        [ "$i" = 100 ] && say "warning: sshd still has connections 10 s after the client left"
        sleep 0.1
    done
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$sshpid/stat"
}
s3rver_ticks() {
    [ -n "$s3pid" ] || { echo 0; return 0; }
    our_child_alive "$s3pid" || { say "s3rver (pid $s3pid) has stopped; its log: $tmp/s3rver.log"; return 1; }
    awk '{ print $14 + $15 }' "/proc/$s3pid/stat"
}

# Other work on the machine slows every tool at random: before each run, wait
# (at most quiet_max seconds) for a second in which everything but our idle
# servers used less than quiet_pct percent of one CPU.
waited_total=0

tool_cmd() { # ROW TOOL TAG: sets the arrays cmd and the output directory out
    local row=$1 tool=$2 tag=$3 what
    case "$row" in 1 | 3) what=big ;; *) what=small ;; esac
    case "$row" in
    1 | 2) out=$tmp/dl/$tag ;;
    *) out=$s3data/bench/$what/$tag ;;
    esac
    case "$row.$tool" in
    [12].arca) cmd=("$arca" copy "bsftp:$what" "$out" --config "$cfg" "${arca_flags[@]}") ;;
    [34].arca)
        cmd=("$arca" copy "bsftp:$what" "s3://bench/$what/$tag" --config "$cfg" "${arca_flags[@]}"
            "${arca_s3_flags[@]}")
        ;;
    [12].rclone) cmd=(rclone copy "bsftp:$sftp_data/$what" "$out" "${rclone_flags[@]}") ;;
    [34].rclone)
        cmd=(rclone copy "bsftp:$sftp_data/$what" "s3:bench/$what/$tag" "${rclone_flags[@]}"
            "${rclone_s3_flags[@]}")
        ;;
    1.openssh)
        mkdir -p "$out"
        printf 'get %s %s\n' "$sftp_data/big/big.bin" "$out/big.bin" > "$tmp/logs/$tag.batch"
        cmd=("${openssh_cmd[@]}" -b "$tmp/logs/$tag.batch" "$sftp_user@127.0.0.1")
        ;;
    *) die "no command for row $row and tool $tool" ;;
    esac
}

# Read the row's source data on the server's side, untimed, right before the
# run: this machine's kernel reclaims idle page cache proactively (DAMON,
# kdamond), so data generated minutes earlier may be back on disk, and the
# run that met it there would pay for the disk.
warm_source() { # ROW
    case "$1" in
    1 | 3) cat "$sftp_data/big/big.bin" > /dev/null ;;
    *) find "$sftp_data/small" -type f -exec cat {} + > /dev/null ;;
    esac
}

failures=0
run_one() { # ROW TOOL REP
    local row=$1 tool=$2 rep=$3 tag="row$1-$2-$3" why='' units unit_name manifest
    local log="$tmp/logs/$tag.log" tf="$tmp/logs/$tag.time"
    case "$row" in
    1 | 3) units=$big_mib unit_name=MiB/s manifest=$tmp/big.manifest ;;
    *) units=$small_count unit_name=files/s manifest=$tmp/small.manifest ;;
    esac
    tool_cmd "$row" "$tool" "$tag"
    sync
    wait_quiet
    warm_source "$row"
    local s0 s1 v0 v1 m0 m1 w0 w1 l0 rc wall=0 user=0 sys=0 rss=0 t0 flush
    l0=$(wc -l < "$tmp/sshd.log")
    s0=$(sshd_ticks)
    v0=$(s3rver_ticks)
    m0=$(machine_ticks)
    w0=$(iowait_ticks)
    rm -f "$tf"
    set +e
    timeout --foreground "$run_timeout" /usr/bin/time -f '%e %U %S %M' -o "$tf" "${cmd[@]}" > "$log" 2>&1
    rc=$?
    set -e
    # machine ticks first: waiting for sshd's connections to end is not the
    # run's (a second or so of an idle machine would count as nobody's)
    m1=$(machine_ticks)
    w1=$(iowait_ticks)
    v1=$(s3rver_ticks)
    s1=$(sshd_ticks)
    # What the run left in the page cache and the tool did not wait for (arca
    # fsyncs the files it writes, rclone and sftp do not): flushed outside the
    # timing but reported, so the difference stays visible.
    t0=$(date +%s.%N)
    sync
    flush=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if [ -s "$tf" ]; then
        read -r wall user sys rss < <(tail -n 1 "$tf")
    fi
    if [ "$rc" -ne 0 ]; then
        why="exit status $rc: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-200)"
    fi
    # the check decides, not the exit status alone
    if [ -z "$why" ]; then
        why=$("${lib[@]}" verify-tree "$out" "$manifest" "$([ "$row" -ge 3 ] && echo ._S3rver_object)") || true
        [ -n "$why" ] || [ "$rc" = 0 ] || why="exit status $rc"
    fi
    rm -rf "$out"
    # what sshd says of the run's connections: how many, and their cipher
    local conns cipher
    conns=$(tail -n "+$((l0 + 1))" "$tmp/sshd.log" | grep -c 'Accepted publickey for' || true)
    cipher=$(tail -n "+$((l0 + 1))" "$tmp/sshd.log" |
        sed -n 's/.*kex: server->client cipher: \([^ ]*\) MAC: \([^ ]*\).*/\1 \2/p' |
        sort | uniq -c | awk '{ printf "%s%s%s", (NR > 1 ? "," : ""), $2, ($3 == "<implicit>" ? "" : "+" $3) }')
    local ok=1 sshd_cpu s3_cpu other_cpu iowait
    [ -z "$why" ] || { ok=0; failures=$((failures + 1)); }
    sshd_cpu=$(awk -v a="$s0" -v b="$s1" -v c="$clk" 'BEGIN { printf "%.3f", (b - a) / c }')
    s3_cpu=$(awk -v a="$v0" -v b="$v1" -v c="$clk" 'BEGIN { printf "%.3f", (b - a) / c }')
    iowait=$(awk -v a="$w0" -v b="$w1" -v c="$clk" 'BEGIN { printf "%.2f", (b - a) / c }')
    other_cpu=$(awk -v a="$m0" -v b="$m1" -v c="$clk" -v u="$user" -v s="$sys" -v v="$sshd_cpu" -v x="$s3_cpu" \
        'BEGIN { y = (b - a) / c - u - s - v - x; if (y < 0) y = 0; printf "%.3f", y }')
    local extra=()
    [ "$row" -ge 3 ] && extra=(s3rver_cpu_s="$s3_cpu")
    "${lib[@]}" record "$tmp/runs.jsonl" row="$row" tool="$tool" rep="$rep" ok="$ok" \
        wall_s="$wall" user_s="$user" sys_s="$sys" rss_kib="$rss" sshd_cpu_s="$sshd_cpu" \
        other_cpu_s="$other_cpu" iowait_s="$iowait" sync_after_s="$flush" units="$units" \
        unit_name="$unit_name" connections="$conns" cipher="$cipher" why="$why" "${extra[@]}"
    if [ "$ok" = 1 ]; then
        say "row $row rep $rep $tool: ${wall}s wall, cpu ${user}+${sys}s, ${rss} KiB, sshd ${sshd_cpu}s ($conns conn, $cipher)$([ "$row" -ge 3 ] && echo ", s3rver ${s3_cpu}s"), other ${other_cpu}s, iowait ${iowait}s, sync after ${flush}s"
    else
        say "row $row rep $rep $tool: FAILED: $why (log: $log)"
        say "  command: ${cmd[*]}"
    fi
}

# ---- the runs ------------------------------------------------------------
say "arca: $arca ($("$arca" version 2> /dev/null | head -n1))"
say "rclone: $(rclone version 2> /dev/null | head -n1); $(ssh -V 2>&1)"
say "sshd at 127.0.0.1:$ssh_port (pid $sshpid, user $sftp_user)$([ -n "$endpoint" ] && echo "; s3rver at $endpoint (pid $s3pid)")"
[ "$etag_fix" = yes ] && say "note: s3rver copy fixed to accept XML-escaped part ETags (rclone multipart)"
for row in 1 2 3 4; do
    want_row "$row" || continue
    tools=(arca rclone)
    [ "$row" = 1 ] && tools+=(openssh)
    for rep in $(seq "$reps"); do
        # rotate which tool goes first, so none always gets the warmer cache
        n=${#tools[@]}
        for k in $(seq 0 $((n - 1))); do
            run_one "$row" "${tools[$(((rep - 1 + k) % n))]}" "$rep"
        done
    done
done
[ "$waited_total" -gt 0 ] && say "waited ${waited_total}s in all for a quiet machine"
if [ "$want_s3" = 1 ] && [ -n "$(ls -A "$s3data/bench/._S3rver_uploads" 2> /dev/null)" ]; then
    say "warning: unfinished multipart uploads left on the server: $(find "$s3data/bench/._S3rver_uploads" -mindepth 1 -maxdepth 1 | wc -l)"
fi

# ---- the table -----------------------------------------------------------
# the cipher each tool negotiated (the same in every run, or all are listed)
ciphers_used=$("$py" - "$tmp/runs.jsonl" << 'PY'
import json, sys
seen = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    for c in str(r.get("cipher", "")).split(","):
        if c and c not in seen.setdefault(r["tool"], []):
            seen[r["tool"]].append(c)
print("; ".join("%s %s" % (t, " ".join(c)) for t, c in seen.items()))
PY
)
big_t=$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import benchlib; print(benchlib.size_name(int(sys.argv[2]) << 20))' "$root/bench" "$big_mib")
small_t=$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import benchlib; print(benchlib.size_name(int(sys.argv[2])))' "$root/bench" "$small_size")
count_t=$small_count
[ $((small_count % 1000)) = 0 ] && count_t=$((small_count / 1000))k
notes="Medians of the successful runs. CPU s = user+sys of the client process (for
openssh: sftp and its ssh); sshd% = CPU time of the server's sshd processes
(internal-sftp, the ciphers) / wall time, 100% = one core; s3rver% = s3rver's,
near 100% it is the limit (one JS thread); other% = CPU used by everything else
on the machine during the run (noise, kernel writeback); sync s = time of a
'sync' right after the run, outside the timing: data the run left unwritten
(arca makes what it writes durable before it exits, rclone and sftp do not); rate = size or files /
median wall. openssh = OpenSSH's sftp client, one 'get' in batch mode: the
ceiling for one file over one connection.
Ciphers negotiated (server->client): $ciphers_used."
"$py" -c 'import json, sys; json.dump(dict(a.split("=", 1) for a in sys.argv[2:]), open(sys.argv[1], "w"), indent=1)' \
    "$tmp/meta.json" \
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    reps="$reps" \
    arca="$("$arca" version 2> /dev/null | head -n1)" \
    arca_git="$(git -C "$root" describe --always --dirty 2> /dev/null || echo unknown)" \
    rclone="$(rclone version 2> /dev/null | head -n1)" \
    openssh="$(ssh -V 2>&1)" \
    libssh2="$(dpkg-query -W -f '${Version}' libssh2-1 2> /dev/null || echo unknown)" \
    sshd_ciphers="${ciphers:-default}" \
    ciphers_used="$ciphers_used" \
    s3rver_etag_fix="$etag_fix" \
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
    cpus="$(nproc)" \
    kernel="$(uname -r)" \
    arca_flags="${arca_flags[*]}" arca_s3_flags="${arca_s3_flags[*]}" \
    rclone_flags="${rclone_flags[*]}" rclone_s3_flags="${rclone_s3_flags[*]}" \
    big_mib="$big_mib" small_count="$small_count" small_size="$small_size" \
    tools="arca,rclone,openssh" \
    server_cols="sshd_cpu_s:sshd%,s3rver_cpu_s:s3rver%" \
    title_1="$big_t file SFTP -> local" \
    title_2="$count_t x $small_t SFTP -> local" \
    title_3="$big_t file SFTP -> S3" \
    title_4="$count_t x $small_t SFTP -> S3" \
    notes="$notes"
echo
echo "arca vs rclone (and OpenSSH sftp) reading from a private sshd on 127.0.0.1 ($(nproc) CPUs), $reps repetitions, $(date -u +%Y-%m-%d)"
echo "arca:    $("$arca" version 2> /dev/null | head -n1) ${arca_flags[*]} (S3 rows: ${arca_s3_flags[*]})"
echo "rclone:  $(rclone version 2> /dev/null | head -n1) ${rclone_flags[*]} (S3 rows: ${rclone_s3_flags[*]})"
echo "openssh: $(ssh -V 2>&1), sftp -b (one get, default -B/-R); libssh2 $(dpkg-query -W -f '${Version}' libssh2-1 2> /dev/null || echo '?')"
echo
report_args=("$tmp/runs.jsonl" "$tmp/meta.json")
[ -n "$bench_out" ] && report_args+=("$bench_out")
set +e
"${lib[@]}" report "${report_args[@]}"
rc=$?
set -e
if [ "$failures" -gt 0 ]; then
    say "$failures run(s) FAILED: a tool exited non-zero or produced wrong data (see FAILED above)"
    rc=1
fi
exit "$rc"
