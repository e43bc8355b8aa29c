#!/bin/bash
# test_s3_roundtrip: local -> S3 -> local through s3rver is byte-identical.
#
#  - sizes around the multipart threshold (--s3-part-size 5M: 5 MiB - 1 goes
#    as one PUT, 5 MiB + 1 as a multipart upload; test_faults checks which
#    requests were made), 0 B, 1 B and 100 MiB;
#  - keys with unicode, spaces and the special characters S3 clients get
#    wrong (+ % ~ = ( ) , ! ' * @ $ : ; [ ] { } # ^ ` ? < > | \ "), the
#    byte-order pairs a-b / a/b / a0 and photos.zip / photos/x (a walk of
#    directories lists them in the wrong order);
#  - 10,000 small files;
#  - a second copy in either direction transfers nothing;
#  - the source mtime (nanoseconds) comes back on download;
#  - S3 -> S3 between two buckets of one endpoint is a server-side copy,
#    keys with reserved characters (@ : , $ = # + ? ;) included (s3rver
#    decodes x-amz-copy-source like S3 once patched: patch-s3rver.js).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR
use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}
B2=${ARCA_TEST_S3_BUCKET2:-arca-test2}
P=$(it_prefix)
it_s3_forget "$B" "$P"
it_s3_forget "$B2" "$P"

# --- the source tree ------------------------------------------------------------
SRC=$IT_TMP/src
mkdir -p "$SRC/sizes" "$SRC/keys/a" "$SRC/keys/photos" "$SRC/keys/dir with space" "$SRC/keys/Zürich" "$SRC/reserved"
: > "$SRC/sizes/empty"
make_file "$SRC/sizes/one" 1
make_file "$SRC/sizes/five-mib-minus-1" $((5 * 1024 * 1024 - 1))
make_file "$SRC/sizes/five-mib-plus-1" $((5 * 1024 * 1024 + 1))
make_file "$SRC/sizes/hundred-mib" 100M
names=(
    'keys/a-b' 'keys/a0' 'keys/a/b' 'keys/photos.zip' 'keys/photos/x'
    'keys/sp ace' 'keys/dir with space/f i l e' 'keys/pct%41%2F%' 'keys/tilde~' 'keys/paren(1)'
    "keys/quote'q" 'keys/bang!' 'keys/star*' 'keys/brack[1]' 'keys/brace{1}' 'keys/caret^'
    'keys/back`tick' 'keys/lt<gt>' 'keys/pipe|x' 'keys/bs\x' 'keys/"dq"' 'keys/dot.' 'keys/..dots'
    'keys/tab	x' 'keys/é ü 日本語.txt' 'keys/emoji 😀' 'keys/ﬁ-ligature' 'keys/Zürich/Ärger ß'
    'reserved/plus+plus' 'reserved/eq=1' 'reserved/comma,x' 'reserved/at@' 'reserved/dollar$'
    'reserved/colon:x' 'reserved/semi;x' 'reserved/hash#1' 'reserved/q?mark' 'reserved/a+b=c;d'
)
i=0
for n in "${names[@]}"; do
    printf 'key %s\n' "$n" > "$SRC/$n"
    head -c $((i * 37)) /dev/urandom >> "$SRC/$n"
    i=$((i + 1))
done
# distinct mtimes with nanoseconds, long ago
i=0
while IFS= read -r -d '' f; do
    touch -d "@$((1000000000 + i * 86413)).$(printf '%09d' $((123456789 + i)))" "$f"
    i=$((i + 1))
done < <(find "$SRC" -type f -print0)
N=$(find "$SRC" -type f | wc -l)
BYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
note "source: $N files, $BYTES bytes"

# --- upload ----------------------------------------------------------------------
arca_run copy "$SRC" "s3://$B/$P" --s3-part-size 5M --json
assert_rc 0 "upload"
assert_summary status succeeded
assert_summary files_transferred "$N"
assert_summary bytes_transferred "$BYTES"
assert_summary files_failed 0
assert_eq "$(file_events copied | wc -l)" "$N" "file events 'copied' of the upload"

# the keys are exactly the relative paths, listed in UTF-8 byte order
(cd "$SRC" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) > "$IT_TMP/want-keys"
s3_keys "s3://$B/$P" > "$IT_TMP/got-keys"
if ! cmp -s "$IT_TMP/want-keys" "$IT_TMP/got-keys"; then
    diff "$IT_TMP/want-keys" "$IT_TMP/got-keys" | head -n 20 >&2
    fail "the keys listed at s3://$B/$P are not the source paths in byte order"
fi
order=$(grep -E '^keys/(a-b|a/b|a0|photos\.zip|photos/x)$' "$IT_TMP/got-keys" | tr '\n' ' ')
assert_eq "$order" "keys/a-b keys/a/b keys/a0 keys/photos.zip keys/photos/x " "listing order of the byte-order pairs"

# --- download ----------------------------------------------------------------------
DL=$IT_TMP/down
arca_run copy "s3://$B/$P" "$DL" --json
assert_rc 0 "download"
assert_summary files_transferred "$N"
assert_summary bytes_transferred "$BYTES"
assert_same_tree "$SRC" "$DL" "local -> S3 -> local"
for f in empty one five-mib-minus-1 five-mib-plus-1 hundred-mib; do
    assert_eq "$(stat -c %s "$DL/sizes/$f")" "$(stat -c %s "$SRC/sizes/$f")" "size of sizes/$f"
done
# mtimes, to the nanosecond
bad=0
while IFS= read -r -d '' f; do
    rel=${f#"$SRC"/}
    if [ "$(mtime_ns "$f")" != "$(mtime_ns "$DL/$rel")" ]; then
        note "mtime of '$rel': source $(mtime_ns "$f"), downloaded $(mtime_ns "$DL/$rel")"
        bad=$((bad + 1))
    fi
done < <(find "$SRC" -type f -print0)
assert_eq "$bad" 0 "downloaded files whose mtime differs from the source's"

# --- second runs move nothing ---------------------------------------------------------
arca_run copy "$SRC" "s3://$B/$P" --s3-part-size 5M --json
assert_rc 0 "second upload"
assert_summary bytes_transferred 0
assert_summary files_transferred 0
assert_summary files_unchanged "$N"
arca_run copy "s3://$B/$P" "$DL" --json
assert_rc 0 "second download"
assert_summary bytes_transferred 0
assert_summary files_unchanged "$N"

# --- S3 -> S3, same endpoint: server-side ------------------------------------------------
S2S=$IT_TMP/s2s-src
mkdir -p "$S2S"
cp -a "$SRC/sizes" "$SRC/keys" "$SRC/reserved" "$S2S/"
N2=$(find "$S2S" -type f | wc -l)
for d in sizes keys reserved; do
    arca_run copy "s3://$B/$P/$d" "s3://$B2/$P/$d" --json
    assert_rc 0 "S3 -> S3 copy of $d/"
    copied=$(file_events copied | wc -l)
    server=$(jq -r 'select(.type == "file" and .action == "copied" and .server_side == true) | .path' "$IT_OUT" | wc -l)
    want=$(find "$S2S/$d" -type f | wc -l)
    assert_eq "$copied" "$want" "files of $d/ copied bucket to bucket"
    assert_eq "$server" "$want" "file events of $d/ with \"server_side\": true"
    assert_summary files_transferred "$want"
done
DL2=$IT_TMP/down2
arca_run copy "s3://$B2/$P" "$DL2" --json
assert_rc 0 "download of the server-side copies"
assert_summary files_transferred "$N2"
assert_same_tree "$S2S" "$DL2" "local -> S3 -> S3 (server-side) -> local"
for f in sizes/hundred-mib "keys/é ü 日本語.txt" keys/a/b sizes/empty; do
    assert_eq "$(mtime_ns "$DL2/$f")" "$(mtime_ns "$SRC/$f")" "mtime of '$f' after a server-side copy"
done
arca_run copy "s3://$B/$P/keys" "s3://$B2/$P/keys" --json
assert_rc 0 "second S3 -> S3 copy"
assert_summary files_transferred 0
assert_summary files_unchanged "$(find "$S2S/keys" -type f | wc -l)"
rm -rf "$DL" "$DL2" "$S2S"

# --- 10,000 small files ------------------------------------------------------------------
MANY=$IT_TMP/many
"$PY" - "$MANY" << 'EOF'
import os, sys
root = sys.argv[1]
for d in range(100):
    dd = os.path.join(root, 'd%02d' % d)
    os.makedirs(dd)
    for f in range(100):
        with open(os.path.join(dd, 'f%03d.txt' % f), 'wb') as fh:
            fh.write(b'%d/%d ' % (d, f) + os.urandom((d * 100 + f) % 300))
EOF
assert_eq "$(find "$MANY" -type f | wc -l)" 10000 "small files made"
t0=$(date +%s.%N)
arca_run copy "$MANY" "s3://$B/$P-many" --transfers 8 --json
it_s3_forget "$B" "$P-many"
assert_rc 0 "upload of 10,000 files"
assert_summary files_transferred 10000
note "10,000 files up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
assert_eq "$(s3_keys "s3://$B/$P-many" | wc -l)" 10000 "keys listed after the upload"
arca_run copy "s3://$B/$P-many" "$IT_TMP/many-down" --transfers 8 --json
assert_rc 0 "download of 10,000 files"
assert_summary files_transferred 10000
assert_same_tree "$MANY" "$IT_TMP/many-down" "10,000 files through S3"
arca_run copy "$MANY" "s3://$B/$P-many" --transfers 8 --json
assert_rc 0 "second upload of 10,000 files"
assert_summary bytes_transferred 0
assert_summary files_unchanged 10000
