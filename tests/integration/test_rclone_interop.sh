#!/bin/bash
# test_rclone_interop: rclone (Debian's 1.60) and arca read each other's
# objects on s3rver.
#
#  arca writes, rclone reads: `rclone check` (sizes and MD5) agrees, and
#  finds a one-byte change (so it does compare contents); rclone's download
#  is byte-identical; the mtime arca stored (x-amz-meta-mtime) is what
#  `rclone lsl` shows and what rclone sets on download.
#  rclone writes, arca reads: arca's download is byte-identical with the
#  mtimes rclone stored; `arca check` against the originals exits 0; a
#  copy of the originals over rclone's objects transfers nothing.
# Both directions include multipart objects and unicode / special keys.
# They run against s3rver and again against faults3, whose multipart
# ETags are real S3 ones ('md5-of-md5s-N', not the content MD5 s3rver
# gives), so the unchanged/check decisions cannot lean on the ETag there.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR
it_need_cmd rclone
use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"

# an rclone remote 'its3' from the environment only (no AWS_CA_BUNDLE: lib.sh unset it)
export RCLONE_CONFIG_ITS3_TYPE=s3
export RCLONE_CONFIG_ITS3_PROVIDER=Other
export RCLONE_CONFIG_ITS3_ENDPOINT=$ARCA_TEST_S3_ENDPOINT
export RCLONE_CONFIG_ITS3_ACCESS_KEY_ID=$ARCA_TEST_S3_ACCESS_KEY
export RCLONE_CONFIG_ITS3_SECRET_ACCESS_KEY=$ARCA_TEST_S3_SECRET_KEY
export RCLONE_CONFIG_ITS3_REGION=${ARCA_TEST_S3_REGION:-us-east-1}
export TZ=UTC
RCLONE_FLAGS=(--fast-list --retries 1 --low-level-retries 2 --contimeout 5s --timeout 30s)

# rc ARGS...: run rclone, output in $IT_OUT/$IT_ERR, status in $RC
rc() {
    IT_LAST_CMD="rclone $*"
    RC=0
    timeout -k 5 300 rclone "$@" "${RCLONE_FLAGS[@]}" > "$IT_OUT" 2> "$IT_ERR" || RC=$?
    note "$(printf '%9s exit %-3s' '' "$RC") rclone $(printf '%s ' "$@" | cut -c1-150)"
}

# make_tree DIR TAG: files of several sizes, unicode and special names,
# mtimes with nanoseconds
make_tree() {
    local d=$1 i=0 f
    mkdir -p "$d/sub/deeper" "$d/ünï cødé" "$d/photos"
    make_file "$d/multipart.bin" $((12 * 1024 * 1024 + 333))
    make_file "$d/sub/medium.bin" 700K
    : > "$d/sub/empty"
    for f in 'plain.txt' 'sp ace.txt' 'ünï cødé/日本語 ファイル.txt' 'photos.zip' 'photos/x' 'a-b' 'a0' \
        'sub/deeper/tilde~ (1), eq=+.txt' 'emoji 😀.txt' "quote'bang!"; do
        printf '%s %s\n' "$2" "$f" > "$d/$f"
    done
    while IFS= read -r -d '' f; do
        touch -d "@$((1200000000 + i * 7919)).$(printf '%09d' $((987654321 - i * 1111)))" "$f"
        i=$((i + 1))
    done < <(find "$d" -type f -print0 | LC_ALL=C sort -z)
}

# same_mtimes A B WHAT: every file of A has the same mtime (ns) in B
same_mtimes() {
    local f rel bad=0
    while IFS= read -r -d '' f; do
        rel=${f#"$1"/}
        if [ "$(mtime_ns "$f")" != "$(mtime_ns "$2/$rel")" ]; then
            note "$3: mtime of '$rel': $(mtime_ns "$f") vs $(mtime_ns "$2/$rel")"
            bad=$((bad + 1))
        fi
    done < <(find "$1" -type f -print0)
    assert_eq "$bad" 0 "$3: files whose mtime differs"
}

# lsl_mtimes DIR > FILE: 'size YYYY-MM-DD HH:MM:SS.nnnnnnnnn path' as rclone lsl prints
lsl_mtimes() {
    (cd "$1" && find . -type f -print0 | while IFS= read -r -d '' f; do
        f=${f#./}
        printf '%s %s %s\n' "$(stat -c %s "$f")" "$(date -u -d "@$(stat -c %.9Y "$f")" '+%Y-%m-%d %H:%M:%S.%N')" "$f"
    done) | LC_ALL=C sort -k4
}

# --- arca writes, rclone reads ---------------------------------------------------------------
A=$IT_TMP/by-arca
make_tree "$A" arca
N=$(find "$A" -type f | wc -l)
arca_run copy "$A" "s3://$B/$P/arca" --s3-part-size 5M --json
assert_rc 0 "arca upload"
assert_summary files_transferred "$N"

rc check "$A" "its3:$B/$P/arca"
assert_rc 0 "rclone check of what arca wrote"
assert_file_has "$IT_ERR" "0 differences found" "rclone check"
assert_file_has "$IT_ERR" "$N matching files" "rclone check"

# negative control: rclone does compare contents (a one-byte change, same size)
cp -a "$A" "$IT_TMP/changed"
flip_byte "$IT_TMP/changed/multipart.bin" 6000000
touch -d "@$(mtime_ns "$A/multipart.bin")" "$IT_TMP/changed/multipart.bin"
rc check "$IT_TMP/changed" "its3:$B/$P/arca"
assert_ne "$RC" 0 "rclone check after a one-byte change of the multipart file"
assert_file_has "$IT_ERR" "1 differences found" "rclone check after a one-byte change"
rm -rf "$IT_TMP/changed"

rc copy "its3:$B/$P/arca" "$IT_TMP/rclone-down"
assert_rc 0 "rclone download of what arca wrote"
assert_same_tree "$A" "$IT_TMP/rclone-down" "arca -> S3 -> rclone"
same_mtimes "$A" "$IT_TMP/rclone-down" "mtimes rclone set from arca's x-amz-meta-mtime"

rc lsl "its3:$B/$P/arca"
assert_rc 0 "rclone lsl"
awk '{ printf "%s %s %s", $1, $2, $3; for (i = 4; i <= NF; i++) printf " %s", $i; print "" }' "$IT_OUT" |
    LC_ALL=C sort -k4 > "$IT_TMP/lsl-got"
lsl_mtimes "$A" > "$IT_TMP/lsl-want"
if ! cmp -s "$IT_TMP/lsl-want" "$IT_TMP/lsl-got"; then
    diff "$IT_TMP/lsl-want" "$IT_TMP/lsl-got" | head -n 10 >&2
    fail "rclone lsl does not show the sizes and mtimes arca stored"
fi

# --- rclone writes, arca reads -----------------------------------------------------------------
R=$IT_TMP/by-rclone
make_tree "$R" rclone
rc copy "$R" "its3:$B/$P/rclone" --s3-upload-cutoff 5M --s3-chunk-size 5M
assert_rc 0 "rclone upload"
# rclone made a multipart upload of the big file (its md5 metadata marks those)
grep -qi 'x-amz-meta-md5chksum' "$ARCA_TEST_S3_DATA_DIR/$B/$P/rclone/multipart.bin._S3rver_metadata.json" ||
    fail "rclone's multipart.bin was not a multipart upload"
grep -qi 'x-amz-meta-mtime' "$ARCA_TEST_S3_DATA_DIR/$B/$P/rclone/plain.txt._S3rver_metadata.json" ||
    fail "rclone stored no x-amz-meta-mtime"

arca_reads_rclone() { # REMOTE TAG
    arca_run copy "$1" "$IT_TMP/arca-down-$2" --json
    assert_rc 0 "$2: arca download of what rclone wrote"
    assert_summary files_transferred "$N"
    assert_same_tree "$R" "$IT_TMP/arca-down-$2" "$2: rclone -> S3 -> arca"
    same_mtimes "$R" "$IT_TMP/arca-down-$2" "$2: mtimes arca set from rclone's x-amz-meta-mtime"

    arca_run check "$R" "$1" --json
    assert_rc 0 "$2: arca check of the originals against rclone's objects"
    assert_summary differences 0
    assert_summary files_checked "$N"

    arca_run copy "$R" "$1" --s3-part-size 5M --json
    assert_rc 0 "$2: arca copy of the originals over rclone's objects"
    assert_summary files_transferred 0
    assert_summary files_unchanged "$N"

    # and arca's check sees a one-byte change in rclone's multipart object
    flip_byte "$IT_TMP/arca-down-$2/multipart.bin" 7000000
    touch -d "@$(mtime_ns "$R/multipart.bin")" "$IT_TMP/arca-down-$2/multipart.bin"
    arca_run check "$1" "$IT_TMP/arca-down-$2" --json
    assert_rc 1 "$2: arca check after a one-byte change of rclone's multipart object"
    assert_eq "$(file_events differ | tr '\n' ' ')" "multipart.bin " "$2: paths arca check found different"
}
arca_reads_rclone "s3://$B/$P/rclone" s3rver

# --- the same against faults3: real multipart ETags ----------------------------------------------
it_need_env ARCA_TEST_FAULT_ENDPOINT
use_faults
fault_bucket FB rclone
export RCLONE_CONFIG_ITF_TYPE=s3
export RCLONE_CONFIG_ITF_PROVIDER=Other
export RCLONE_CONFIG_ITF_ENDPOINT=$ARCA_TEST_FAULT_ENDPOINT
export RCLONE_CONFIG_ITF_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_ITF_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_ITF_REGION=us-east-1

rc copy "$R" "itf:$FB/rclone" --s3-upload-cutoff 5M --s3-chunk-size 5M
assert_rc 0 "rclone upload to faults3"
etag=$(fault_ctl GET "objects?bucket=$FB" | jq -r '.[] | select(.key == "rclone/multipart.bin") | .etag')
[[ "$etag" == *-3\" ]] || fail "rclone's multipart.bin on faults3 has ETag $etag, not a 3-part multipart ETag"
arca_reads_rclone "s3://$FB/rclone" faults3

arca_run copy "$A" "s3://$FB/arca" --s3-part-size 5M --json
assert_rc 0 "arca upload to faults3"
etag=$(fault_ctl GET "objects?bucket=$FB" | jq -r '.[] | select(.key == "arca/multipart.bin") | .etag')
[[ "$etag" == *-3\" ]] || fail "arca's multipart.bin on faults3 has ETag $etag, not a 3-part multipart ETag"
rc copy "itf:$FB/arca" "$IT_TMP/rclone-down-faults3"
assert_rc 0 "rclone download of what arca wrote to faults3"
assert_same_tree "$A" "$IT_TMP/rclone-down-faults3" "arca -> faults3 -> rclone"
same_mtimes "$A" "$IT_TMP/rclone-down-faults3" "faults3: mtimes rclone set from arca's x-amz-meta-mtime"
rc check "$A" "itf:$FB/arca" --size-only
assert_rc 0 "rclone check --size-only against faults3"
assert_file_has "$IT_ERR" "$N matching files" "rclone check against faults3"
