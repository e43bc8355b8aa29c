#!/bin/bash
# test_sync_check: sync deletes what the source lacks, within its safety
# checks; check finds differences that size and mtime hide.
#
#  - sync local -> S3 deletes extraneous objects (and S3 -> local deletes
#    extraneous files);
#  - --max-delete N below the count: exit 11, nothing deleted (N equal to
#    the count: allowed);
#  - an empty source directory: exit 11 and nothing deleted, unless
#    --allow-empty-source;
#  - --dry-run changes nothing and predicts the real run;
#  - check: a one-byte change with size and mtime kept is 'differ' (exit 1);
#    files missing on either side are listed; identical trees exit 0.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR
use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"
DST=s3://$B/$P

# listing KEY SIZE lines of the destination, for before/after compares
snapshot() {
    arca_run ls --json "$DST"
    [ "$RC" -eq 0 ] || fail "listing '$DST' failed (exit $RC)"
    jq -r 'select(.type == "entry") | "\(.path) \(.size) \(.md5 // "")"' "$IT_OUT" > "$1"
}

SRC=$IT_TMP/src
mkdir -p "$SRC/c"
echo alpha > "$SRC/a"
echo bravo > "$SRC/b"
echo delta > "$SRC/c/d"
make_file "$SRC/c/big" 300K

# --- first sync, then extraneous objects are deleted ---------------------------------
arca_run sync "$SRC" "$DST" --json
assert_rc 0 "first sync"
assert_summary files_transferred 4
assert_summary files_deleted 0

EXTRA=$IT_TMP/extra
mkdir -p "$EXTRA/c/e" "$EXTRA/z"
echo x1 > "$EXTRA/extra1"
echo x2 > "$EXTRA/c/e/extra2"
echo x3 > "$EXTRA/z/extra3"
arca_run copy "$EXTRA" "$DST" --json
assert_rc 0 "adding extraneous objects"
assert_eq "$(s3_keys "$DST" | wc -l)" 7 "objects before the sync"

# --max-delete below the count: refused, nothing deleted
snapshot "$IT_TMP/before"
arca_run sync "$SRC" "$DST" --max-delete 2 --json
assert_rc 11 "sync with --max-delete 2 and 3 deletions"
assert_err_has "max-delete"
assert_summary files_deleted 0
snapshot "$IT_TMP/after"
cmp -s "$IT_TMP/before" "$IT_TMP/after" || fail "a refused sync (--max-delete) changed the destination"

# --dry-run: reports the deletions, changes nothing
echo 'bravo, changed' > "$SRC/b"
arca_run sync "$SRC" "$DST" --dry-run --json
assert_rc 0 "sync --dry-run"
assert_summary dry_run true
assert_summary files_deleted 3
assert_summary files_transferred 1
assert_eq "$(file_events deleted | tr '\n' ' ')" "c/e/extra2 extra1 z/extra3 " "paths a dry run would delete"
n=$(jq -r 'select(.type == "file" and (.action == "deleted" or .action == "updated") and .dry_run != true) | .path' "$IT_OUT" | wc -l)
assert_eq "$n" 0 "file events of a dry run without \"dry_run\": true"
snapshot "$IT_TMP/after"
cmp -s "$IT_TMP/before" "$IT_TMP/after" || fail "sync --dry-run changed the destination"
# a dry run also predicts the --max-delete refusal
arca_run sync "$SRC" "$DST" --dry-run --max-delete 2 --json
assert_rc 11 "sync --dry-run --max-delete 2"

# the real sync: --max-delete equal to the count is allowed
arca_run sync "$SRC" "$DST" --max-delete 3 --json
assert_rc 0 "sync with --max-delete 3 and 3 deletions"
assert_summary files_deleted 3
assert_summary files_transferred 1
assert_eq "$(file_events deleted | tr '\n' ' ')" "c/e/extra2 extra1 z/extra3 " "deleted paths"
assert_eq "$(s3_keys "$DST" | tr '\n' ' ')" "a b c/big c/d " "keys after the sync"
arca_run copy "$DST" "$IT_TMP/back" --json
assert_rc 0 "download after the sync"
assert_same_tree "$SRC" "$IT_TMP/back" "destination after sync"

# --- S3 -> local sync deletes extraneous local files --------------------------------
echo stray > "$IT_TMP/back/stray"
mkdir -p "$IT_TMP/back/deep/er"
echo stray > "$IT_TMP/back/deep/er/stray2"
arca_run sync "$DST" "$IT_TMP/back" --json
assert_rc 0 "sync S3 -> local"
assert_summary files_deleted 2
if [ -e "$IT_TMP/back/stray" ] || [ -e "$IT_TMP/back/deep/er/stray2" ]; then
    fail "sync S3 -> local left extraneous files"
fi
assert_same_tree "$SRC" "$IT_TMP/back" "local destination after sync"

# --- empty source -----------------------------------------------------------------------
mkdir -p "$IT_TMP/empty"
snapshot "$IT_TMP/before"
arca_run sync "$IT_TMP/empty" "$DST" --json
assert_rc 11 "sync from an empty directory"
assert_err_has "--allow-empty-source"
assert_summary files_deleted 0
snapshot "$IT_TMP/after"
cmp -s "$IT_TMP/before" "$IT_TMP/after" || fail "a refused sync (empty source) changed the destination"
arca_run sync "$IT_TMP/empty" "$DST" --allow-empty-source --dry-run --json
assert_rc 0 "sync --allow-empty-source --dry-run"
assert_summary files_deleted 4
snapshot "$IT_TMP/after"
cmp -s "$IT_TMP/before" "$IT_TMP/after" || fail "sync --dry-run from an empty source changed the destination"
arca_run sync "$IT_TMP/empty" "$DST" --allow-empty-source --json
assert_rc 0 "sync --allow-empty-source"
assert_summary files_deleted 4
assert_eq "$(s3_keys "$DST" | wc -l)" 0 "objects left after syncing an empty source"

# --- check ---------------------------------------------------------------------------------
arca_run copy "$SRC" "$DST" --json
assert_rc 0 "upload for check"
L=$IT_TMP/local
arca_run copy "$DST" "$L" --json
assert_rc 0 "download for check"
arca_run check "$DST" "$L" --json
assert_rc 0 "check of identical trees"
assert_summary differences 0
assert_summary files_checked 4
assert_eq "$(file_events match | tr '\n' ' ')" "a b c/big c/d " "paths check found identical"

# one byte changed in the middle, same size, same mtime
f=$L/c/big
size=$(stat -c %s "$f")
mt=$(mtime_ns "$f")
sum_before=$(sha256sum < "$f")
old=$(dd if="$f" bs=1 skip=150000 count=1 2> /dev/null | od -An -tu1 | tr -d ' ')
printf '%b' "\\0$(printf '%03o' $(((old + 1) % 256)))" | dd of="$f" bs=1 seek=150000 count=1 conv=notrunc 2> /dev/null
touch -d "@$mt" "$f"
assert_eq "$(stat -c %s "$f")" "$size" "size after the one-byte change"
assert_eq "$(mtime_ns "$f")" "$mt" "mtime after the one-byte change"
assert_ne "$(sha256sum < "$f")" "$sum_before" "content after the one-byte change"
# copy (size + mtime + listed md5) is allowed to skip it only if it hashes;
# check must find it
arca_run check "$DST" "$L" --json
assert_rc 1 "check after a one-byte change"
assert_eq "$(file_events differ | tr '\n' ' ')" "c/big " "paths check found different"
assert_summary differences 1
assert_summary status differences
arca_run check "$DST" "$L"
assert_rc 1 "check (text output) after a one-byte change"
assert_file_has "$IT_OUT" "differ: c/big" "check's report"
# both directions: local as the source
arca_run check "$L" "$DST" --json
assert_rc 1 "check local -> S3 after a one-byte change"
assert_eq "$(file_events differ | tr '\n' ' ')" "c/big " "paths check (local first) found different"

# missing on either side
rm "$L/a"
mkdir -p "$L/only/here"
echo new > "$L/only/here/n"
arca_run check "$DST" "$L" --json
assert_rc 1 "check with files missing both ways"
assert_eq "$(file_events missing_on_destination | tr '\n' ' ')" "a " "missing on the destination"
assert_eq "$(file_events missing_on_source | tr '\n' ' ')" "only/here/n " "missing on the source"
assert_eq "$(file_events differ | tr '\n' ' ')" "c/big " "differ, with missing files around"
assert_summary differences 3
arca_run check "$DST" "$L"
assert_rc 1 "check (text output) with files missing both ways"
assert_file_has "$IT_OUT" "missing_on_destination: a" "check's report"
assert_file_has "$IT_OUT" "missing_on_source: only/here/n" "check's report"
# check changed nothing
assert_eq "$(s3_keys "$DST" | tr '\n' ' ')" "a b c/big c/d " "keys after check"
[ ! -e "$L/a" ] || fail "check created a file"

# --- a single file as source (copy and check; sync wants a directory) ------------------
ONE=$IT_TMP/single
mkdir -p "$ONE"
echo "only me" > "$ONE/report.txt"
echo "not me" > "$ONE/report.txt.bak"
arca_run copy "$ONE/report.txt" "s3://$B/$P/single" --json
assert_rc 0 "copy of a single file"
assert_summary files_transferred 1
assert_eq "$(s3_keys "s3://$B/$P/single" | tr '\n' ' ')" "report.txt " "keys after a single-file copy"
arca_run check "$ONE/report.txt" "s3://$B/$P/single" --json
assert_rc 0 "check of a single file"
assert_summary files_checked 1
echo "changed!" > "$ONE/report.txt"
arca_run check "$ONE/report.txt" "s3://$B/$P/single" --json
assert_rc 1 "check of a changed single file"
arca_run sync "$ONE/report.txt" "s3://$B/$P/single"
assert_rc 2 "sync from a single file"
assert_err_has "use copy for one file"

# --- a single S3 object as source --------------------------------------------------------
OBJ=$IT_TMP/objsrc
mkdir -p "$OBJ/docs"
echo "the report" > "$OBJ/docs/report.pdf"
echo "not this one" > "$OBJ/docs/report.pdf.bak"
arca_run copy "$OBJ" "s3://$B/$P/obj" --json
assert_rc 0 "upload of the object tree"
arca_run copy "s3://$B/$P/obj/docs/report.pdf" "$IT_TMP/one-obj" --json
assert_rc 0 "copy of a single S3 object"
assert_summary files_transferred 1
assert_eq "$(cd "$IT_TMP/one-obj" && find . -type f | sort | tr '\n' ' ')" "./report.pdf " "files from a single-object copy"
cmp -s "$OBJ/docs/report.pdf" "$IT_TMP/one-obj/report.pdf" || fail "the single object's bytes differ"
arca_run check "s3://$B/$P/obj/docs/report.pdf" "$IT_TMP/one-obj" --json
assert_rc 0 "check of a single S3 object"
arca_run sync "s3://$B/$P/obj/docs/report.pdf" "$IT_TMP/one-obj"
assert_rc 2 "sync from a single S3 object"
assert_err_has "use copy for one object"
# an object that also has keys below it is a prefix, as rclone sees it
mkdir -p "$IT_TMP/below/docs/report.pdf"
echo "inside" > "$IT_TMP/below/docs/report.pdf/inner.txt"
arca_run copy "$IT_TMP/below" "s3://$B/$P/obj" --json
assert_rc 0 "upload of keys below the object's name"
arca_run copy "s3://$B/$P/obj/docs/report.pdf" "$IT_TMP/as-prefix" --json
assert_rc 0 "copy of a name that is both an object and a prefix"
assert_eq "$(cd "$IT_TMP/as-prefix" && find . -type f | sort | tr '\n' ' ')" "./inner.txt " "copied as a prefix"
