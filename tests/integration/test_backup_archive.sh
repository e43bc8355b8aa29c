#!/bin/bash
# test_backup_archive: `arca backup --mode archive`, `runs`, `restore`
# against a local destination and s3rver, checked with independent tools:
#
#  - the archive is read back with GNU tar (zstd and gzip) and verified with
#    `sha256sum -c` of its SHA256SUMS, no arca involved; the manifest is
#    checked with jq (order, header, trailer);
#  - restore gives the source tree byte for byte, mtimes to the nanosecond
#    and modes, also with --include and --run (point in time);
#  - a one-byte change in a stored archive stops the restore (exit 14) and
#    names the archive;
#  - a file that shrinks while it is read is padded, recorded with an error,
#    the run is partial (exit 3) and the archive stays valid for tar;
#  - a live lock refuses the backup (exit 13); a stale one is taken over;
#  - SIGTERM during a 500 MiB backup to S3 leaves no manifest, no multipart upload
#    and no lock, and the earlier run restores;
#  - bad input: unknown mode or compression, a malformed run id, no runs.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR
it_need_cmd tar zstd gzip jq sha256sum
use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"

# --- the source tree ----------------------------------------------------------
SRC=$IT_TMP/src
mkdir -p "$SRC/sub/deeper" "$SRC/Zürich" "$SRC/long"
printf 'hello\n' > "$SRC/a.txt"
: > "$SRC/empty"
make_file "$SRC/sub/bin" 3M
make_file "$SRC/sub/deeper/odd" 1000001
seq 1 200000 > "$SRC/sub/text.txt"
printf 'unicode\n' > "$SRC/Zürich/Ärger ß 日本.txt"
long=$(printf 'x%.0s' $(seq 1 140))
mkdir -p "$SRC/long/$long/$long"
printf 'long\n' > "$SRC/long/$long/$long/$long.txt"
printf 'a-b\n' > "$SRC/a-b"
mkdir -p "$SRC/a"
printf 'a/b\n' > "$SRC/a/b"
printf 'a0\n' > "$SRC/a0"
ln -s a.txt "$SRC/link"
chmod 600 "$SRC/a.txt"
chmod 755 "$SRC/sub/bin"
i=0
while IFS= read -r -d '' f; do
    touch -h -d "@$((1500000000 + i * 86413)).$(printf '%09d' $((123456789 + i)))" "$f"
    i=$((i + 1))
done < <(find "$SRC" -mindepth 1 -print0)

# Every regular file with its SHA-256, mtime (ns) and mode, by path.
tree_meta() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z |
        xargs -0 -r stat -c '%n %.9Y %a' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
assert_same_meta() {
    tree_meta "$1" > "$IT_TMP/.meta.a"
    tree_meta "$2" > "$IT_TMP/.meta.b"
    cmp -s "$IT_TMP/.meta.a" "$IT_TMP/.meta.b" || {
        diff "$IT_TMP/.meta.a" "$IT_TMP/.meta.b" | head -n 10 >&2
        fail "$3: content, mtime or mode differ"
    }
}

# --- archive to a local destination, read by standard tools -------------------
D=$IT_TMP/dst
arca_run backup --json "$SRC" "$D"
assert_rc 0 "archive backup to a local folder"
assert_summary status succeeded
RUN1=$(find "$D/archives" -name '*.manifest.jsonl' -printf '%f\n' | sed 's/\.manifest\.jsonl$//')
[[ "$RUN1" =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$ ]] || fail "run id '$RUN1' has not the documented shape"
[ -f "$D/archives/$RUN1.tar.zst" ] || fail "no archives/$RUN1.tar.zst"
[ -z "$(find "$D" -name 'locks' -o -name '*.lock')" ] || fail "the lock was left behind"
zstd -t -q "$D/archives/$RUN1.tar.zst" || fail "zstd -t rejects the archive"
X=$IT_TMP/extract
mkdir -p "$X"
(cd "$X" && tar --zstd -xf "$D/archives/$RUN1.tar.zst") || fail "tar --zstd -xf failed"
(cd "$X" && sha256sum -c --quiet "$D/archives/$RUN1.SHA256SUMS") || fail "sha256sum -c failed"
assert_same_meta "$SRC" "$X" "tar extraction"
[ "$(readlink "$X/link")" = a.txt ] || fail "the symlink did not come back from tar"
# the manifest: JSON lines, header first, trailer last, paths in byte order
M=$D/archives/$RUN1.manifest.jsonl
jq -e -s '.[0].type == "header" and .[0].format_version == 1 and .[0].mode == "archive"
    and .[-1].type == "trailer" and .[-1].status == "succeeded"' "$M" > /dev/null || fail "manifest header/trailer"
jq -r 'select(.type == "file" or .type == "symlink") | .path' "$M" > "$IT_TMP/paths"
LC_ALL=C sort -c "$IT_TMP/paths" || fail "manifest paths are not in byte order"
assert_eq "$(grep -c . "$IT_TMP/paths")" "$(find "$SRC" -mindepth 1 ! -type d | wc -l)" "manifest entries"
assert_eq "$(jq -r 'select(.type == "trailer") | .archive_sha256' "$M")" \
    "$(sha256sum < "$D/archives/$RUN1.tar.zst" | cut -d' ' -f1)" "archive_sha256 in the trailer"

arca_run runs --json "$D"
assert_rc 0 "runs"
assert_eq "$(jq -r 'select(.type == "run") | .run' "$IT_OUT")" "$RUN1" "runs lists the run"

# --- gzip ----------------------------------------------------------------------
DG=$IT_TMP/dst-gz
arca_run backup --compression gzip "$SRC" "$DG"
assert_rc 0 "gzip archive"
G=$(find "$DG/archives" -name '*.tar.gz')
gzip -t "$G" || fail "gzip -t rejects the archive"
mkdir -p "$IT_TMP/xg" && (cd "$IT_TMP/xg" && tar -xzf "$G" && sha256sum -c --quiet "${G%.tar.gz}.SHA256SUMS") ||
    fail "tar -xzf + sha256sum -c of the gzip archive"
arca_run restore "$DG" "$IT_TMP/rg"
assert_rc 0 "restore of a gzip archive"
assert_same_meta "$SRC" "$IT_TMP/rg" "gzip restore"

# --- to S3, restore, point in time ----------------------------------------------
S=s3://$B/$P/backups
arca_run backup "$SRC" "$S"
assert_rc 0 "archive backup to S3"
S3RUN1=$(arca runs --json "$S" | jq -r 'select(.type == "run") | .run')
printf 'changed\n' > "$SRC/a.txt"
touch -d '@1600000000.5' "$SRC/a.txt"
rm "$SRC/sub/deeper/odd"
printf 'new\n' > "$SRC/new.txt"
arca_run backup "$SRC" "$S"
assert_rc 0 "second archive backup to S3"
arca_run restore --json "$S" "$IT_TMP/r2"
assert_rc 0 "restore the latest run"
assert_same_meta "$SRC" "$IT_TMP/r2" "latest run"
arca_run restore --run "$S3RUN1" "$S" "$IT_TMP/r1"
assert_rc 0 "restore run 1"
[ "$(cat "$IT_TMP/r1/a.txt")" = hello ] || fail "run 1 has the old a.txt"
[ -f "$IT_TMP/r1/sub/deeper/odd" ] || fail "run 1 has the file deleted later"
[ ! -e "$IT_TMP/r1/new.txt" ] || fail "run 1 has a file added later"
assert_same_meta "$X" "$IT_TMP/r1" "run 1 equals the first tree"
arca_run restore --include 'sub/' --include '*.txt' "$S" "$IT_TMP/ri"
assert_rc 0 "restore with --include"
(cd "$IT_TMP/ri" && find . -type f | LC_ALL=C sort) > "$IT_TMP/inc"
grep -qx './sub/bin' "$IT_TMP/inc" && grep -qx './new.txt' "$IT_TMP/inc" || fail "--include missed files"
! grep -qx './empty' "$IT_TMP/inc" || fail "--include restored a file it does not match"

# --- verify --------------------------------------------------------------------
arca_run verify "$D"
assert_rc 0 "verify"
arca_run verify --read-data --json "$D"
assert_rc 0 "verify --read-data"
assert_eq "$(file_events match | wc -l)" "$(grep -c . "$IT_TMP/paths")" "every file and link matches"
arca_run verify --read-data "$S"
assert_rc 0 "verify --read-data on S3"
# --against: the run and the live source
arca_run verify --json "$S" --against "$SRC"
assert_rc 0 "the latest run matches the source"
arca_run verify --json "$D" --against "$SRC"
assert_rc 1 "run 1 differs from the changed source"
assert_eq "$(file_events differ)" "a.txt" "differ"
assert_eq "$(file_events missing_on_source)" "sub/deeper/odd" "missing_on_source"
assert_eq "$(file_events missing_on_destination)" "new.txt" "missing_on_destination"
# same size, same mtime, other bytes: only --read-data sees it
cp -a "$SRC" "$IT_TMP/src-same"
m=$(stat -c %.9Y "$IT_TMP/src-same/sub/bin")
flip_byte "$IT_TMP/src-same/sub/bin" 100
touch -d "@$m" "$IT_TMP/src-same/sub/bin"
arca_run verify "$S" --against "$IT_TMP/src-same"
assert_rc 0 "size and mtime alike"
arca_run verify --json --read-data "$S" --against "$IT_TMP/src-same"
assert_rc 1 "--read-data finds the changed bytes"
assert_eq "$(file_events differ)" "sub/bin" "the changed file"

# --- a damaged archive ---------------------------------------------------------
C=$IT_TMP/dst-corrupt
cp -a "$D" "$C"
A=$C/archives/$RUN1.tar.zst
size=$(stat -c %s "$A")
flip_byte "$A" $((size / 2))
arca_run restore "$C" "$IT_TMP/rc"
assert_rc 14 "restore of a damaged archive"
assert_err_has "archives/$RUN1.tar.zst" "fails its SHA-256 check"
assert_one_line_error "archives/$RUN1.tar.zst"
arca_run verify "$C"
assert_rc 0 "verify without --read-data checks presence and size only"
arca_run verify --read-data "$C"
assert_rc 14 "verify --read-data finds a one-byte change"
assert_err_has "archives/$RUN1.tar.zst"
rm "$C/archives/$RUN1.tar.zst"
arca_run verify "$C"
assert_rc 14 "verify finds a missing archive"
assert_err_has "archive 'archives/$RUN1.tar.zst' of run $RUN1 is missing"

# --- a file that shrinks while it is read ---------------------------------------
SH=$IT_TMP/shrink
mkdir -p "$SH"
make_file "$SH/big" 40M
printf 'ok\n' > "$SH/z-after"
"$ARCA_BIN" backup --json --bwlimit 8M "$SH" "$IT_TMP/dst-shrink" > "$IT_TMP/shrink.out" 2> "$IT_TMP/shrink.err" &
spid=$!
it_track_pid "$spid"
sleep 1
truncate -s 10M "$SH/big"
src=0
wait "$spid" || src=$?
assert_eq "$src" 3 "a file that shrank makes the run partial"
T=$(find "$IT_TMP/dst-shrink/archives" -name '*.tar.zst')
tar --zstd -tf "$T" > /dev/null || fail "the archive with a padded member is not valid for tar"
MS=${T%.tar.zst}.manifest.jsonl
jq -e -s 'map(select(.path == "big"))[0].error.message | test("changed size")' "$MS" > /dev/null ||
    fail "the manifest does not record the size change"
! grep -q ' big$' "${T%.tar.zst}.SHA256SUMS" || fail "a padded file is listed in SHA256SUMS"
jq -e 'select(.type == "trailer") | .status == "partial"' "$MS" > /dev/null || fail "trailer status partial"

# --- locks -----------------------------------------------------------------------
L=$IT_TMP/dst-locked
mkdir -p "$L/locks"
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
printf '{"run":"20200101T000000Z-0000000b","operation":"prune","host":"elsewhere","pid":42,"started":"%s","renewed":"%s"}\n' \
    "$now" "$now" > "$L/locks/20200101T000000Z-0000000b.lock"
arca_run backup "$SRC" "$L"
assert_rc 13 "a live lock refuses the backup"
assert_err_has "is locked by run 20200101T000000Z-0000000b (prune on elsewhere, pid 42)"
assert_one_line_error "is locked by run"
[ -z "$(find "$L" -name '*.manifest.jsonl')" ] || fail "a refused backup wrote a manifest"
printf '{"run":"20200101T000000Z-0000000b","operation":"prune","host":"elsewhere","pid":42,"started":"2020-01-01T00:00:00.000Z","renewed":"2020-01-01T00:00:00.000Z"}\n' \
    > "$L/locks/20200101T000000Z-0000000b.lock"
arca_run backup "$SRC" "$L"
assert_rc 0 "a stale lock is taken over"
assert_err_has "taking over the stale lock of run 20200101T000000Z-0000000b"

# --- cancellation ----------------------------------------------------------------
CS=$IT_TMP/cancel-src
mkdir -p "$CS"
make_file "$CS/big" 500M
it_sigterm_after 2 backup --bwlimit 20M --compression gzip "$CS" "$S"
arca_run runs --json "$S"
assert_eq "$(jq -r 'select(.type == "run") | .run' "$IT_OUT" | wc -l)" 2 "the cancelled run has no manifest"
arca_run ls "$S"
assert_file_lacks "$IT_OUT" "locks/" "the lock was released"
assert_file_lacks "$IT_OUT" ".tar.gz" "no archive object of the cancelled run"
assert_no_s3rver_uploads "$B" "$P"
arca_run restore --run "$S3RUN1" "$S" "$IT_TMP/r1b"
assert_rc 0 "an earlier run restores after the cancelled one"
assert_same_meta "$X" "$IT_TMP/r1b" "run 1 after a cancelled run"

# --- bad input ------------------------------------------------------------------
arca_run backup --mode bogus "$SRC" "$IT_TMP/x1"
assert_rc 2 "unknown mode"
assert_one_line_error "--mode 'bogus' is not a backup mode"
arca_run backup --mode mirror --compression zstd "$SRC" "$IT_TMP/x-mirror"
assert_rc 2 "--compression with mirror mode"
assert_one_line_error "--compression applies to --mode archive only"
[ ! -e "$IT_TMP/x-mirror" ] || fail "a refused backup created its destination"
arca_run backup --compression xz "$SRC" "$IT_TMP/x2"
assert_rc 2 "unknown compression"
assert_err_has "unknown compression 'xz'"
arca_run restore --run 2026-11-22 "$D" "$IT_TMP/x3"
assert_rc 2 "malformed run id"
assert_err_has "is not a run id"
arca_run restore --run 20200101T000000Z-deadbeef "$D" "$IT_TMP/x4"
assert_rc 5 "unknown run"
mkdir -p "$IT_TMP/nothing"
arca_run restore "$IT_TMP/nothing" "$IT_TMP/x5"
assert_rc 5 "no runs"
assert_err_has "no backup runs at"
arca_run backup "$IT_TMP/does-not-exist" "$IT_TMP/x6"
assert_rc 5 "missing source"
[ ! -e "$IT_TMP/x6/archives" ] || fail "a failed backup left archive objects"

note "ok in $(it_elapsed) s"
