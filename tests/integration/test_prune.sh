#!/bin/bash
# test_prune: `arca prune` end to end on archive runs, restic 0.14 as the
# oracle for the choice.
#
# One real archive run is made, then copied under 14 run ids at chosen
# times over two years (archive, SHA256SUMS and manifest, with the run id
# and start time rewritten, so every run is a complete, verifiable run).
# restic gets snapshots at the same times. For several policies, the runs
# `arca prune --dry-run --json --keep-min 0` keeps must be the snapshots
# `restic forget --dry-run --json` keeps. Then a real prune: the forgotten
# runs' objects are gone, the kept ones restore byte for byte and pass
# `verify --read-data`; a run that never wrote a manifest is cleaned up; a
# live lock refuses the prune; an empty policy is refused.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_cmd restic jq python3

SRC=$IT_TMP/src
mkdir -p "$SRC/d"
printf 'one\n' > "$SRC/a"
make_file "$SRC/d/b" 300K
D=$IT_TMP/dst
arca_run backup "$SRC" "$D"
assert_rc 0 "the first run"
BASE=$(find "$D/archives" -name '*.manifest.jsonl' -printf '%f\n' | sed 's/\.manifest\.jsonl$//')

# times (UTC) of the runs, oldest first; the newest is "now" minus a minute
now=$(date -u +%s)
offsets_days=(700 400 380 200 95 64 40 33 20 9 6 2 1 0)
: > "$IT_TMP/times"
i=0
for d in "${offsets_days[@]}"; do
    t=$((now - d * 86400 - 60 - i * 3671))
    date -u -d "@$t" '+%Y-%m-%d %H:%M:%S' >> "$IT_TMP/times"
    i=$((i + 1))
done
# clone the run under an id and start time for each
python3 - "$D/archives" "$BASE" "$IT_TMP/times" << 'PYEOF'
import json, os, shutil, sys, datetime
d, base, times = sys.argv[1], sys.argv[2], sys.argv[3]
for n, line in enumerate(open(times)):
    t = datetime.datetime.strptime(line.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    run = t.strftime("%Y%m%dT%H%M%SZ-") + "%08x" % (0xa0000000 + n)
    for ext in (".tar.zst", ".SHA256SUMS"):
        shutil.copy(os.path.join(d, base + ext), os.path.join(d, run + ext))
    out = []
    for l in open(os.path.join(d, base + ".manifest.jsonl")):
        o = json.loads(l)
        if o["type"] == "header":
            o["run"] = run
            o["started"] = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            o["archive"] = "archives/" + run + ".tar.zst"
        out.append(json.dumps(o))
    open(os.path.join(d, run + ".manifest.jsonl"), "w").write("\n".join(out) + "\n")
for ext in (".tar.zst", ".SHA256SUMS", ".manifest.jsonl"):
    os.remove(os.path.join(d, base + ext))
PYEOF
arca_run runs --json "$D"
assert_rc 0 "runs"
assert_eq "$(jq -r 'select(.type == "run") | .run' "$IT_OUT" | wc -l)" "${#offsets_days[@]}" "crafted runs"

# restic snapshots at the same times
export RESTIC_PASSWORD=arca-prune-test RESTIC_REPOSITORY=$IT_TMP/repo RESTIC_CACHE_DIR=$IT_TMP/restic-cache
unset RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND RESTIC_REPOSITORY_FILE
restic init -q > /dev/null 2>&1 || fail "restic init failed"
export IT_TMP
# shellcheck disable=SC2016 # $1 and $IT_TMP are the inner shell's
xargs -P 2 -I{} -d '\n' sh -c 'restic backup -q --host arca-prune --time "$1" "$IT_TMP/src" > /dev/null 2>&1' sh {} \
    < "$IT_TMP/times" || fail "restic backup failed"

policies=(
    "--keep-last 3"
    "--keep-daily 5"
    "--keep-weekly 3 --keep-monthly 4"
    "--keep-within 30d"
    "--keep-daily 2 --keep-monthly 6 --keep-yearly 2"
    "--keep-within 10d --keep-monthly 3"
)
for pol in "${policies[@]}"; do
    # shellcheck disable=SC2086
    restic forget --dry-run --no-lock --json $pol > "$IT_TMP/restic.json" 2> /dev/null || fail "restic forget $pol"
    jq -r '.[0].keep // [] | .[] | .time | fromdate' "$IT_TMP/restic.json" | sort -n > "$IT_TMP/want"
    # shellcheck disable=SC2086
    arca_run prune --dry-run --json --keep-min 0 $pol "$D"
    assert_rc 0 "prune --dry-run $pol"
    jq -r 'select(.type == "run" and .action == "keep") | .started | sub("\\.000Z$"; "Z") | fromdate' "$IT_OUT" |
        sort -n > "$IT_TMP/got"
    cmp -s "$IT_TMP/want" "$IT_TMP/got" || {
        diff "$IT_TMP/want" "$IT_TMP/got" >&2 || true
        fail "arca prune keeps other runs than restic forget for '$pol'"
    }
    note "$(printf '%-50s keeps %2d of %d, as restic' "$pol" "$(wc -l < "$IT_TMP/got")" "${#offsets_days[@]}")"
done
arca_run runs --json "$D"
assert_eq "$(jq -r 'select(.type == "run") | .run' "$IT_OUT" | wc -l)" "${#offsets_days[@]}" "a dry run deletes nothing"

# a run that never wrote a manifest (killed): its objects are cleaned up
ORPHAN=20200101T000000Z-0000000f
cp "$(find "$D/archives" -name '*.tar.zst' | head -n 1)" "$D/archives/$ORPHAN.tar.zst"

# a live lock refuses the prune
mkdir -p "$D/locks"
nowts=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
printf '{"run":"20200101T000000Z-00000001","operation":"backup","host":"h","pid":1,"started":"%s","renewed":"%s"}\n' \
    "$nowts" "$nowts" > "$D/locks/20200101T000000Z-00000001.lock"
arca_run prune --keep-last 2 "$D"
assert_rc 13 "a live lock refuses the prune"
rm "$D/locks/20200101T000000Z-00000001.lock"

# the real prune
arca_run prune --json --keep-daily 2 --keep-monthly 6 --keep-min 3 "$D"
assert_rc 0 "prune"
jq -r 'select(.type == "run" and .action == "keep") | .run' "$IT_OUT" | sort > "$IT_TMP/kept"
jq -r 'select(.type == "run" and .action == "forget") | .run' "$IT_OUT" | sort > "$IT_TMP/forgotten"
[ -s "$IT_TMP/forgotten" ] || fail "the prune forgot nothing"
assert_ge "$(wc -l < "$IT_TMP/kept")" 3 "--keep-min 3"
while read -r run; do
    [ -z "$(find "$D/archives" -name "$run.*")" ] || fail "objects of forgotten run $run are left"
done < "$IT_TMP/forgotten"
[ ! -e "$D/archives/$ORPHAN.tar.zst" ] || fail "the objects of a run without a manifest were kept"
[ -z "$(find "$D" -name '*.lock')" ] || fail "the prune left its lock"
arca_run runs --json "$D"
diff <(jq -r 'select(.type == "run") | .run' "$IT_OUT" | sort) "$IT_TMP/kept" > /dev/null ||
    fail "runs lists other runs than the prune kept"
while read -r run; do
    arca_run restore --run "$run" "$D" "$IT_TMP/r-$run"
    assert_rc 0 "restore kept run $run"
    assert_same_tree "$SRC" "$IT_TMP/r-$run" "kept run $run"
    arca_run verify --read-data --run "$run" "$D"
    assert_rc 0 "verify kept run $run"
done < "$IT_TMP/kept"

arca_run prune "$D"
assert_rc 2 "an empty policy"
assert_err_has "a prune policy must keep something"
arca_run prune --keep-within 3w "$D"
assert_rc 2 "a duration with an unknown unit"

note "ok in $(it_elapsed) s"
