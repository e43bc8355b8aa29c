#!/usr/bin/env bash
# test_policy_restic.sh - arca's retention policy (src/backup/policy.h) against
# restic 0.14 as the oracle.
#
# Makes ~60 restic snapshots at chosen times (seeded pseudo-random times over
# ~3 years, plus the traps: ties in one second, several runs in one hour and
# one day, ISO week 53 running into January, year and month ends, a leap day,
# runs exactly at the cutoffs of the --keep-within durations used below, and
# one in the future),
# then for each policy compares `restic forget --dry-run --json` with
# arca-policy-check --keep-min 0 over the same times: the kept times and, per
# kept run, the reasons (restic's "daily snapshot" is arca's "daily"). Ties
# are compared as multisets: restic loads snapshots in parallel, so which
# snapshot of a tie it keeps varies, how many and why does not.
#
# Needs no servers; restic is a required test dependency.

# lib.sh drops ARCA_* variables it does not know, so take ours first.
POLICY_CHECK=${ARCA_POLICY_CHECK_BIN:-}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -n "$POLICY_CHECK" ] || fail "ARCA_POLICY_CHECK_BIN is not set; run the test through ctest, or" \
    "export ARCA_POLICY_CHECK_BIN=/path/to/build/arca-policy-check"
[ -x "$POLICY_CHECK" ] || fail "ARCA_POLICY_CHECK_BIN '$POLICY_CHECK' is not executable; build it first"
it_need_cmd restic jq
[ -x "$PY" ] || command -v "$PY" > /dev/null || fail "python3 is not installed"

export TZ=UTC
export RESTIC_PASSWORD=arca-policy-test
export RESTIC_REPOSITORY=$IT_TMP/repo
export RESTIC_CACHE_DIR=$IT_TMP/restic-cache
unset RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND RESTIC_REPOSITORY_FILE

restic version | grep -q '^restic 0\.14\.' ||
    note "restic is $(restic version | head -n 1), the test was written against 0.14"

# --- the snapshot times ---------------------------------------------------------

"$PY" - > "$IT_TMP/times" << 'EOF'
import datetime as dt
import random

rng = random.Random(20240229)
fixed = [
    # the newest, a tie with it, and one more in its day
    "2023-03-31 12:00:00", "2023-03-31 12:00:00", "2023-03-31 11:30:00",
    # exactly at the cutoffs from the newest: 1m (31 March - 1 month = "31 February"
    # = 3 March), 1m5h, 30d, 1y, 1y2m3d4h; and just after two of them
    "2023-03-03 12:00:00", "2023-03-03 12:00:01", "2023-03-03 07:00:00",
    "2023-03-01 12:00:00", "2022-03-31 12:00:00",
    "2022-01-28 08:00:00", "2022-01-28 08:00:01",
    # ISO week 53 of 2020 runs Mon 28 Dec 2020 .. Sun 3 Jan 2021; week 1 of 2021 starts Mon 4 Jan
    "2020-12-31 10:00:00", "2021-01-01 00:00:00", "2021-01-03 23:59:59", "2021-01-04 00:00:00",
    # Mon 30 Dec 2019 is in ISO week 1 of 2020, Sun 29 Dec 2019 in week 52 of 2019
    "2019-12-29 10:00:00", "2019-12-30 10:00:00",
    # year and month ends, a leap day
    "2021-12-31 23:59:59", "2022-01-01 00:00:00",
    "2022-02-28 23:59:59", "2022-03-01 00:00:00",
    "2021-04-30 23:00:00", "2021-05-01 01:00:00",
    "2020-02-29 12:00:00", "2020-03-01 00:30:00",
    # one hour holding three, the same day holding a fourth
    "2022-06-15 10:05:00", "2022-06-15 10:40:00", "2022-06-15 10:59:59", "2022-06-15 18:00:00",
    # a tie in the middle
    "2021-08-08 08:08:08", "2021-08-08 08:08:08",
    # a clock running ahead: restic counts --keep-within* back from the newest
    # snapshot not in the future (2023-03-31 12:00), arca too (policy.now_s)
    "2099-06-15 10:00:00",
]
lo = dt.datetime(2020, 4, 1)
hi = dt.datetime(2023, 3, 30)
span = int((hi - lo).total_seconds())
times = list(fixed)
for _ in range(20):
    times.append((lo + dt.timedelta(seconds=rng.randrange(span))).strftime("%Y-%m-%d %H:%M:%S"))
for _ in range(5):  # two in one day
    day = lo + dt.timedelta(days=rng.randrange(span // 86400))
    for _ in range(2):
        times.append((day + dt.timedelta(seconds=rng.randrange(86400))).strftime("%Y-%m-%d %H:%M:%S"))
for t in times:
    print(t)
EOF
nsnap=$(wc -l < "$IT_TMP/times")

# --- the restic repository ------------------------------------------------------

t0=$(date +%s.%N)
mkdir -p "$IT_TMP/data"
echo "arca policy test" > "$IT_TMP/data/file"
restic init -q > "$IT_TMP/init.log" 2>&1 || fail "restic init failed: $(tail -n 3 "$IT_TMP/init.log")"

# Each backup spends ~0.5 s deriving the key (scrypt), so two run at a time
# (restic's backup lock is shared).
export IT_TMP
# shellcheck disable=SC2016 # $1 and $IT_TMP are the inner shell's
xargs -P 2 -I{} -d '\n' sh -c \
    'restic backup -q --host arca-policy --time "$1" "$IT_TMP/data" > /dev/null 2>> "$IT_TMP/backup.log" || { echo "backup at $1 failed" >> "$IT_TMP/backup.log"; exit 255; }' \
    sh {} < "$IT_TMP/times" || fail "restic backup failed: $(tail -n 5 "$IT_TMP/backup.log")"

restic snapshots --json --no-lock > "$IT_TMP/snapshots.json" 2> "$IT_TMP/snapshots.log" ||
    fail "restic snapshots failed: $(tail -n 3 "$IT_TMP/snapshots.log")"
# "<id> <unix time>" per snapshot, from restic's own record of the times
jq -r '.[] | "\(.short_id) \(.time | fromdate)"' "$IT_TMP/snapshots.json" > "$IT_TMP/runs"
assert_eq "$(wc -l < "$IT_TMP/runs")" "$nsnap" "snapshots in the restic repository"
# restic took the times as given (UTC): compare with the list
diff <(cut -d' ' -f2 "$IT_TMP/runs" | sort -n) \
    <(while read -r t; do date -u -d "$t" +%s; done < "$IT_TMP/times" | sort -n) > /dev/null ||
    fail "restic recorded other snapshot times than given"
note "$nsnap restic snapshots made in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

# arca's input: every snapshot as an eligible run, plus runs that did not
# complete, at times that would change the answer if they were counted
# (newer than everything, in the middle of a tie, on a bucket edge).
{
    sed 's/$/ 1/' "$IT_TMP/runs"
    echo "incomplete-newest $(date -u -d '2023-04-01 00:00:00' +%s) 0"
    echo "incomplete-tie $(date -u -d '2021-08-08 08:08:08' +%s) 0"
    echo "incomplete-week53 $(date -u -d '2021-01-02 12:00:00' +%s) 0"
} > "$IT_TMP/arca-runs"

# --- the policies ---------------------------------------------------------------

policies=(
    "--keep-last 1"
    "--keep-last 7"
    "--keep-last 100"
    "--keep-hourly 10"
    "--keep-daily 7"
    "--keep-daily 40"
    "--keep-weekly 8"
    "--keep-weekly 60"
    "--keep-monthly 12"
    "--keep-monthly 50"
    "--keep-yearly 2"
    "--keep-yearly 10"
    "--keep-within 30d"
    "--keep-within 1m"
    "--keep-within 1m5h"
    "--keep-within 1y"
    "--keep-within 1y2m3d4h"
    "--keep-within 72h"
    "--keep-within-hourly 2m"
    "--keep-within-daily 1y"
    "--keep-within-weekly 2y"
    "--keep-within-monthly 1y6m"
    "--keep-within-yearly 3y"
    "--keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 5"
    "--keep-hourly 24 --keep-daily 14 --keep-within 10d"
    "--keep-within 1m --keep-within-daily 1y --keep-weekly 10"
    "--keep-last 2 --keep-hourly 3 --keep-within-weekly 1y --keep-yearly 1"
    "--keep-daily 3 --keep-within-monthly 2y --keep-within-yearly 10y"
)

# restic, two at a time (a dry run with --no-lock takes no lock)
t0=$(date +%s.%N)
for i in "${!policies[@]}"; do
    # shellcheck disable=SC2086 # the flags are meant to split
    restic forget --dry-run --no-lock --json ${policies[$i]} > "$IT_TMP/restic.$i.json" 2> "$IT_TMP/restic.$i.err" &
    if [ $((i % 2)) -eq 1 ]; then
        wait
    fi
done
wait
note "${#policies[@]} restic forget --dry-run in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

compared=0
for i in "${!policies[@]}"; do
    pol=${policies[$i]}
    [ -s "$IT_TMP/restic.$i.json" ] || fail "restic forget $pol gave no output: $(tail -n 3 "$IT_TMP/restic.$i.err")"
    [ "$(jq 'length' "$IT_TMP/restic.$i.json")" -eq 1 ] || fail "restic forget $pol: want one snapshot group"
    nkeep=$(jq '.[0].keep // [] | length' "$IT_TMP/restic.$i.json")
    nremove=$(jq '.[0].remove // [] | length' "$IT_TMP/restic.$i.json")
    assert_eq "$((nkeep + nremove))" "$nsnap" "restic forget $pol: kept + removed"
    # "<time> <reasons>" per kept snapshot, reasons in arca's words
    jq -r '.[0].reasons // [] | .[] |
        "\(.snapshot.time | fromdate) \(.matches | map(sub(" snapshot$"; "")) | join(", "))"' \
        "$IT_TMP/restic.$i.json" | sort > "$IT_TMP/want.$i"
    assert_eq "$(wc -l < "$IT_TMP/want.$i")" "$nkeep" "restic forget $pol: a reason per kept snapshot"

    # shellcheck disable=SC2086
    "$POLICY_CHECK" $pol --keep-min 0 < "$IT_TMP/arca-runs" > "$IT_TMP/arca.$i" 2> "$IT_TMP/arca.$i.err" ||
        fail "arca-policy-check $pol failed: $(cat "$IT_TMP/arca.$i.err")"
    assert_eq "$(wc -l < "$IT_TMP/arca.$i")" "$(wc -l < "$IT_TMP/arca-runs")" "arca-policy-check $pol: lines"
    for id in incomplete-newest incomplete-tie incomplete-week53; do
        assert_eq "$(grep "^$id " "$IT_TMP/arca.$i")" "$id forget not complete" "arca-policy-check $pol: $id"
    done
    # join arca's decisions with the times
    awk 'NR == FNR { t[$1] = $2; next }
         $2 == "keep" && ($1 in t) { r = $0; sub(/^[^ ]+ keep ?/, "", r); print t[$1] " " r }' \
        "$IT_TMP/runs" "$IT_TMP/arca.$i" | sort > "$IT_TMP/got.$i"
    if ! cmp -s "$IT_TMP/want.$i" "$IT_TMP/got.$i"; then
        echo "  policy '$pol': kept by restic (<) and by arca (>), as '<unix time> <reasons>':" >&2
        { diff "$IT_TMP/want.$i" "$IT_TMP/got.$i" || true; } | grep '^[<>]' | head -n 20 |
            while read -r side t reasons; do
                echo "  $side $t ($(date -u -d "@$t" '+%Y-%m-%d %H:%M:%S')) $reasons"
            done >&2
        fail "arca keeps other runs than restic for '$pol'"
    fi
    note "$(printf '%-80s keeps %2d of %d, as restic' "$pol" "$nkeep" "$nsnap")"
    compared=$((compared + 1))
done
assert_eq "$compared" "${#policies[@]}" "policies compared"

# arca's own additions, on the same runs: the floor and the empty policy.
# Within 1h of 2023-03-31 12:00: the newest, its tie, 11:30 and the 2099 run;
# --keep-min 6 adds the next two newest, 2023-03-03 12:00:01 and 12:00:00.
"$POLICY_CHECK" --keep-within 1h --keep-min 6 < "$IT_TMP/arca-runs" > "$IT_TMP/floor" ||
    fail "arca-policy-check --keep-min 6 failed"
assert_eq "$(grep -c ' keep' "$IT_TMP/floor")" 6 "runs kept with --keep-within 1h --keep-min 6"
assert_eq "$(grep -c ' keep within 1h$' "$IT_TMP/floor")" 4 "runs kept by --keep-within 1h"
awk 'NR == FNR { t[$1] = $2; next } $2 == "keep" && $3 == "keep-min" { print t[$1] }' \
    "$IT_TMP/runs" "$IT_TMP/floor" | sort -n > "$IT_TMP/floor.times"
assert_eq "$(tr '\n' ' ' < "$IT_TMP/floor.times")" \
    "$(date -u -d '2023-03-03 12:00:00' +%s) $(date -u -d '2023-03-03 12:00:01' +%s) " \
    "runs kept by the floor (--keep-min 6)"
RC=0
"$POLICY_CHECK" --keep-min 5 < "$IT_TMP/arca-runs" > /dev/null 2> "$IT_TMP/empty.err" || RC=$?
assert_eq "$RC" 2 "exit status of an empty policy"
assert_file_has "$IT_TMP/empty.err" "a prune policy must keep something" "empty policy message"
