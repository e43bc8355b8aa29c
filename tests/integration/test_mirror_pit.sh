#!/bin/bash
# test_mirror_pit: `arca backup --mode mirror` point in time, on a local
# destination and on s3rver:
#
#  - five runs of a changing tree (adds, same-size edits, deletes, a file
#    that becomes a link), run 4 killed with SIGKILL halfway: every run with
#    a manifest restores to exactly the tree it saw (content, mtime, mode,
#    links), the killed run left a marker and no manifest, the next run
#    repairs current/ (no leftovers), current/ equals the latest source;
#  - a re-run without changes reads nothing (every file `unchanged`);
#  - the manifest's hashes are sha256sum's, entries in byte order;
#  - verify finds a damaged object (exit 14), restore refuses it (exit 14);
#  - an empty source and --max-delete are refused (exit 11) with nothing
#    deleted; prune keeps the kept runs restorable and drops old versions/;
#  - prune path by path: with kept runs spread out (--keep-daily), exactly
#    the objects of versions/ that kept runs read are left;
#  - a missing object fails verify (exit 14);
#  - SIGTERM during a 500 MiB mirror backup to S3 stops it within 5 s with
#    no manifest, no multipart upload, no lock; the earlier run restores.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY
it_need_cmd jq zstd sha256sum
use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}

# Every file and link with content hash, mtime (s) and mode; links' targets.
# A write killed by SIGKILL leaves its hidden temporary file (.NAME.arca-tmp-*),
# which listings skip; it is not part of the tree.
tree_meta() {
    (cd "$1" && find . \( -type f -o -type l \) ! -name '.*.arca-tmp-*' -print0 | LC_ALL=C sort -z |
        xargs -0 -r stat -c '%n %F %Y %a %s' &&
        find . -type f ! -name '.*.arca-tmp-*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum &&
        find . -type l -printf '%p -> %l\n' | LC_ALL=C sort)
}
assert_same_tree() {
    tree_meta "$1" > "$IT_TMP/.m.a"
    tree_meta "$2" > "$IT_TMP/.m.b"
    cmp -s "$IT_TMP/.m.a" "$IT_TMP/.m.b" || {
        diff "$IT_TMP/.m.a" "$IT_TMP/.m.b" | head -n 10 >&2
        fail "$3"
    }
}

SRC=$IT_TMP/src
mutate() { # mutate N: the source as of run N
    case $1 in
    1)
        mkdir -p "$SRC/d/e" "$SRC/Zürich"
        printf 'one\n' > "$SRC/a"
        printf 'same size 1\n' > "$SRC/d/e/same"
        make_file "$SRC/big" 3M
        printf 'x\n' > "$SRC/Zürich/ü ß.txt"
        : > "$SRC/empty"
        printf 'to be a link\n' > "$SRC/l"
        ;;
    2)
        printf 'two, longer\n' > "$SRC/a"
        printf 'same size 2\n' > "$SRC/d/e/same"
        touch -d '2020-01-02 03:04:05' "$SRC/d/e/same"
        rm "$SRC/Zürich/ü ß.txt"
        rm "$SRC/l" && ln -s a "$SRC/l"
        ;;
    3)
        printf 'three\n' > "$SRC/new3"
        chmod 600 "$SRC/a"
        ;;
    4) # killed halfway: many changes, slowed down
        for i in $(seq 1 30); do make_file "$SRC/bulk/f$i" 200K; done
        printf 'four\n' > "$SRC/a"
        printf 'created by run 4\n' > "$SRC/only4"
        ;;
    5)
        rm -r "$SRC/bulk" "$SRC/only4"
        printf 'five\n' > "$SRC/d/e/same"
        rm "$SRC/l" && printf 'a file again\n' > "$SRC/l"
        ;;
    esac
}

mirror_case() { # mirror_case DST NAME
    local D=$1 name=$2 n runs run obj
    rm -rf "$SRC" "$IT_TMP/st-$name" "$IT_TMP/all-err"
    mkdir -p "$SRC" "$IT_TMP/st-$name"
    for n in 1 2 3 4 5; do
        mutate $n
        if [ $n = 4 ]; then
            timeout -s KILL 1.5 "$ARCA_BIN" backup --mode mirror --bwlimit 1M --transfers 1 \
                "$SRC" "$D" > /dev/null 2>&1 || true
            continue
        fi
        cp -a "$SRC" "$IT_TMP/st-$name/$n"
        arca_run backup --mode mirror --json "$SRC" "$D"
        assert_rc 0 "$name: mirror run $n"
    done
    mapfile -t runs < <(arca runs --json "$D" | jq -r .run)
    assert_eq "${#runs[@]}" 4 "$name: runs with a manifest (run 4 was killed)"
    assert_eq "$(arca_log_has 'stopped before it finished')" 1 "$name: run 5 noticed the killed run"
    # point in time
    local states=(1 2 3 5) i=0
    for run in "${runs[@]}"; do
        rm -rf "$IT_TMP/r"
        arca_run restore "$D" "$IT_TMP/r" --run "$run"
        assert_rc 0 "$name: restore run ${states[$i]}"
        assert_same_tree "$IT_TMP/r" "$IT_TMP/st-$name/${states[$i]}" \
            "$name: restore of run ${states[$i]} differs from the source at that run"
        i=$((i + 1))
    done
    # a re-run without changes reads nothing
    arca_run backup --mode mirror --json "$SRC" "$D"
    assert_rc 0 "$name: re-run"
    assert_summary files_transferred 0
    assert_eq "$(jq -s '[.[] | select(.type == "file" and .action != "unchanged" and .path != "l")] | length' "$IT_OUT")" 0 \
        "$name: a re-run without changes reports only unchanged files"
    arca_run verify --read-data "$D"
    assert_rc 0 "$name: verify --read-data"
    # prune: the two newest stay restorable
    mapfile -t runs < <(arca runs --json "$D" | jq -r .run)
    arca_run prune "$D" --keep-last 2 --keep-min 1
    assert_rc 0 "$name: prune"
    mapfile -t runs < <(arca runs --json "$D" | jq -r .run)
    assert_eq "${#runs[@]}" 2 "$name: runs left after prune"
    rm -rf "$IT_TMP/r"
    arca_run restore "$D" "$IT_TMP/r" --run "${runs[0]}"
    assert_rc 0 "$name: restore a kept run after prune"
    assert_same_tree "$IT_TMP/r" "$IT_TMP/st-$name/5" "$name: a kept run after prune"
}

arca_log_has() { # how many log lines of this case's runs have $1
    grep -c "$1" "$IT_TMP/all-err" 2> /dev/null || echo 0
}

# the log of every arca_run, for arca_log_has
eval "orig_$(declare -f arca_run)"
arca_run() {
    orig_arca_run "$@"
    cat "$IT_ERR" >> "$IT_TMP/all-err"
}

# --- local destination --------------------------------------------------------
L=$IT_TMP/dst
mirror_case "$L" local
assert_same_tree "$L/current" "$SRC" "current/ is a plain copy of the latest source"
[ ! -e "$L/current/only4" ] || fail "the killed run's new file stayed in current/"
[ -z "$(find "$L/runs" -name '*.started')" ] || fail "prune left a marker of the killed run"
# the manifest, independently
M=$(find "$L/runs" -name '*.manifest.jsonl.zst' | LC_ALL=C sort | tail -n 1)
zstd -dc "$M" > "$IT_TMP/m.jsonl"
jq -e -s '.[0].mode == "mirror" and .[-1].type == "trailer"' "$IT_TMP/m.jsonl" > /dev/null ||
    fail "manifest header/trailer"
jq -r 'select(.type == "file") | .path' "$IT_TMP/m.jsonl" > "$IT_TMP/paths"
LC_ALL=C sort -c "$IT_TMP/paths" || fail "manifest entries are not in byte order"
jq -r 'select(.type == "file") | "\(.sha256)  \(.path)"' "$IT_TMP/m.jsonl" > "$IT_TMP/sums"
(cd "$SRC" && sha256sum -c --quiet "$IT_TMP/sums") || fail "manifest hashes are not sha256sum's"
# damage one object, same size
printf 'X' | dd of="$L/current/a" bs=1 count=1 conv=notrunc 2> /dev/null
arca_run verify --read-data "$L"
assert_rc 14 "verify finds a damaged object"
assert_err_has "current/a"
arca_run restore "$L" "$IT_TMP/r2"
assert_rc 14 "restore refuses a damaged object"
[ ! -e "$IT_TMP/r2/a" ] || fail "a file that failed its check was written"
printf 'five\n' > "$L/current/a.tmp" && cp "$SRC/a" "$L/current/a" && rm "$L/current/a.tmp"
touch -r "$SRC/a" "$L/current/a"
# safety: empty source, --max-delete
mkdir -p "$IT_TMP/empty"
arca_run backup --mode mirror "$IT_TMP/empty" "$L"
assert_rc 11 "an empty source is refused"
assert_err_has "--allow-empty-source"
assert_same_tree "$L/current" "$SRC" "a refused run changed current/"
rm "$SRC/a" "$SRC/new3" "$SRC/empty"
arca_run backup --mode mirror --max-delete 2 "$SRC" "$L"
assert_rc 11 "--max-delete 2 with 3 deletions"
[ -e "$L/current/a" ] && [ -e "$L/current/new3" ] || fail "--max-delete refused but deleted"
arca_run backup --mode mirror --max-delete 3 "$SRC" "$L"
assert_rc 0 "--max-delete 3 with 3 deletions"
[ ! -e "$L/current/a" ] || fail "a deleted file stayed in current/"

# --- prune, path by path ----------------------------------------------------------
# Seven runs, two a day (start times rewritten in the manifests); f changes
# every run, g in run 4. --keep-daily keeps runs 2, 4, 6, 7: of versions/
# only what they read stays (run 3's f, run 4's g, run 5's f, run 7's f).
PS=$IT_TMP/psrc
PD=$IT_TMP/pdst
mkdir -p "$PS"
printf 'g0\n' > "$PS/g"
for n in 1 2 3 4 5 6 7; do
    printf 'v%d\n' $n > "$PS/f"
    [ $n != 4 ] || printf 'g4\n' > "$PS/g"
    arca_run backup --mode mirror "$PS" "$PD"
    assert_rc 0 "prune case: run $n"
    cp -a "$PS" "$IT_TMP/pst$n"
done
mapfile -t runs < <(arca runs --json "$PD" | jq -r .run)
now=$(date -u +%s)
for i in 0 1 2 3 4 5 6; do
    t=$(date -u -d "@$((now - (4 - i / 2) * 86400 - 3600 + i * 60))" +%Y-%m-%dT%H:%M:%S.000Z)
    f=$PD/runs/${runs[$i]}.manifest.jsonl.zst
    zstd -dc "$f" | jq -c --arg t "$t" 'if .type == "header" then .started = $t else . end' |
        zstd -q > "$f.new" && mv "$f.new" "$f"
done
arca_run prune "$PD" --keep-daily 10 --keep-min 1
assert_rc 0 "prune --keep-daily"
(cd "$PD/versions" && find . -type f | LC_ALL=C sort) > "$IT_TMP/vleft"
printf './%s/f\n./%s/g\n./%s/f\n./%s/f\n' "${runs[2]}" "${runs[3]}" "${runs[4]}" "${runs[6]}" |
    LC_ALL=C sort > "$IT_TMP/vwant"
cmp -s "$IT_TMP/vleft" "$IT_TMP/vwant" || {
    diff "$IT_TMP/vwant" "$IT_TMP/vleft" >&2
    fail "prune left other versions than the kept runs read"
}
for i in 1 3 5 6; do
    rm -rf "$IT_TMP/r"
    arca_run restore "$PD" "$IT_TMP/r" --run "${runs[$i]}"
    assert_rc 0 "restore kept run $((i + 1)) after prune"
    assert_same_tree "$IT_TMP/r" "$IT_TMP/pst$((i + 1))" "kept run $((i + 1)) after prune"
done
arca_run backup --mode mirror --json "$PS" "$PD"
assert_rc 0 "a run after prune"
assert_summary files_transferred 0

# --- S3 -------------------------------------------------------------------------
P=$(it_prefix)
it_s3_forget "$B" "$P"
mirror_case "s3://$B/$P" s3
arca_run backup --mode mirror --json "s3://$B/$P/current" "s3://$B/$P-2"
assert_rc 0 "S3 to S3"
arca_run backup --mode mirror --json "s3://$B/$P/current" "s3://$B/$P-2"
assert_summary files_transferred 0
it_s3_forget "$B" "$P-2"

# a missing object fails the structural verify of the run that needs it
mapfile -t runs < <(arca runs --json "$L" | jq -r .run)
vdir=$(find "$L/versions" -mindepth 1 -maxdepth 1 | LC_ALL=C sort | tail -n 1)
victim=$(find "$vdir" -type f | head -n 1)
[ -n "$victim" ] || fail "no object under $vdir to remove"
rm "$victim"
arca_run verify "$L" --run "${runs[-2]}"
assert_rc 14 "verify finds a missing object"
assert_err_has "is missing"

# --- SIGTERM during a 500 MiB mirror backup to S3 -------------------------------
it_need_env ARCA_TEST_S3_DATA_DIR
CS=$IT_TMP/cancel-src
make_file "$CS/huge" 500M
it_sigterm_after 2 backup --mode mirror --bwlimit 20M "$CS" "s3://$B/$P"
assert_eq "$(arca runs --json "s3://$B/$P" | jq -r .run | wc -l)" 2 "the cancelled run has no manifest"
arca_run ls "s3://$B/$P"
assert_file_lacks "$IT_OUT" "locks/" "the lock was released"
assert_file_lacks "$IT_OUT" "current/huge" "no object of the cancelled upload"
assert_no_s3rver_uploads "$B" "$P"
rm -rf "$IT_TMP/r"
arca_run restore "s3://$B/$P" "$IT_TMP/r"
assert_rc 0 "the latest run restores after the cancelled one"
assert_same_tree "$IT_TMP/r" "$IT_TMP/st-s3/5" "the latest run after a cancelled one"
it_s3_forget "$B" "$P"

note "ok in $(it_elapsed) s"
