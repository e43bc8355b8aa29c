#!/bin/bash
# test_faults: arca against faults3, the scripted S3 fault server
# (tests/servers/faults3.py; its header comment documents the control API).
# Every scenario has a bucket of its own (faults3 accepts any bucket), so
# tests may run in parallel against one faults3.
#
#  - 503 SlowDown twice, then success: the copy succeeds, 3 PUTs logged;
#  - 500 InternalError, 400 RequestTimeout, a connection reset without an
#    answer: retried, the copy succeeds;
#  - 403 AccessDenied on an upload: not retried (exactly 1 PUT), that file
#    fails (exit 3); on the listing: exactly 1 request, exit 7;
#  - a connection cut mid-body on a GET: the download resumes with
#    'Range: bytes=N-' and the file is byte-identical;
#  - a body corrupted in flight on a GET: never a silent success with
#    wrong bytes (either detected and retried, or the file fails);
#  - 200 with an <Error> body to CompleteMultipartUpload: a failure, retried;
#    when it persists the command fails, no object exists and the upload
#    is aborted;
#  - --s3-part-size 5M: 5 MiB - 1 goes as one PUT, 5 MiB + 1 as a multipart
#    upload of 2 parts;
#  - every PUT and UploadPart carries Content-MD5 or x-amz-checksum-sha256
#    (faults3 counts them);
#  - an unsorted listing: the command stops with "is not sorted at" and a
#    sync deletes nothing (either direction);
#  - S3 -> S3 on one endpoint with keys holding @ : , $ = # + ? ; (which
#    s3rver cannot copy): server-side, byte-identical.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_FAULT_ENDPOINT
use_faults
curl -sf --noproxy '*' --max-time 5 -o /dev/null "$ARCA_TEST_FAULT_ENDPOINT/__control/health" ||
    fail "faults3 does not answer at $ARCA_TEST_FAULT_ENDPOINT"
P=p
BUCKETS=()

# new_bucket VAR TAG: a fresh bucket, remembered for the checksum count
new_bucket() {
    fault_bucket "$1" "$2"
    BUCKETS+=("${!1}")
}

# requests BUCKET METHOD PATH [QUERY-REGEX]: requests of the log matching
requests() {
    fault_log "$1" | jq --arg m "$2" --arg p "$3" --arg q "${4:-}" \
        '[.[] | select(.method == $m and .path == $p and (.query | test($q)))] | length'
}

# statuses BUCKET METHOD PATH: the answer statuses, in order
statuses() {
    fault_log "$1" | jq -r --arg m "$2" --arg p "$3" '[.[] | select(.method == $m and .path == $p) | .status] | map(tostring) | join(" ")'
}

SRC=$IT_TMP/src
mkdir -p "$SRC"
echo "small file" > "$SRC/a.txt"
make_file "$SRC/b.bin" 700K

# --- retried errors -----------------------------------------------------------------------
new_bucket B slowdown
fault_rule "{\"method\": \"PUT\", \"match\": \"/$B/$P/a.txt\", \"times\": 2, \"status\": 503, \"code\": \"SlowDown\"}"
arca_run copy "$SRC" "s3://$B/$P" --json
assert_rc 0 "copy with 2 x 503 SlowDown"
assert_summary files_transferred 2
assert_eq "$(statuses "$B" PUT "/$B/$P/a.txt")" "503 503 200" "answers to the PUTs of a.txt (SlowDown twice)"
assert_eq "$(fault_ctl GET "faults" | jq --arg b "/$B/" '[.[] | select(.match | contains($b))] | length')" 0 \
    "fault rules left unused"

new_bucket B internal
fault_rule "[{\"method\": \"PUT\", \"match\": \"/$B/$P/a.txt\", \"status\": 500, \"code\": \"InternalError\"},
             {\"method\": \"PUT\", \"match\": \"/$B/$P/b.bin\", \"status\": 400, \"code\": \"RequestTimeout\"}]"
arca_run copy "$SRC" "s3://$B/$P" --json
assert_rc 0 "copy with 500 InternalError and 400 RequestTimeout"
assert_eq "$(statuses "$B" PUT "/$B/$P/a.txt")" "500 200" "answers to the PUTs of a.txt (InternalError)"
assert_eq "$(statuses "$B" PUT "/$B/$P/b.bin")" "400 200" "answers to the PUTs of b.bin (RequestTimeout)"
assert_eq "$(fault_ctl GET "objects?bucket=$B" | jq -r '[.[] | .key] | join(" ")')" "$P/a.txt $P/b.bin" "objects stored"

new_bucket B reset
fault_rule "{\"method\": \"PUT\", \"match\": \"/$B/$P/b.bin\", \"action\": \"reset\"}"
arca_run copy "$SRC" "s3://$B/$P" --json
assert_rc 0 "copy with a connection reset on a PUT"
assert_eq "$(statuses "$B" PUT "/$B/$P/b.bin")" "0 200" "answers to the PUTs of b.bin (reset, then none)"

# --- not retried: 403 -------------------------------------------------------------------------
new_bucket B denied
fault_rule "{\"method\": \"PUT\", \"match\": \"/$B/$P/a.txt\", \"status\": 403, \"code\": \"AccessDenied\", \"times\": -1}"
arca_run copy "$SRC" "s3://$B/$P" --json
assert_rc 3 "copy with 403 AccessDenied on one file"
assert_summary files_failed 1
assert_summary files_transferred 1
assert_eq "$(requests "$B" PUT "/$B/$P/a.txt")" 1 "PUT requests of a.txt after 403 AccessDenied"
assert_eq "$(jq -r 'select(.type == "file" and .action == "failed") | .error.class' "$IT_OUT")" "permission" \
    "error class of the file refused with 403"
# the per-file message travels in the `failed` event, not as a second line on stderr
msg=$(jq -r 'select(.type == "file" and .action == "failed") | .error.message' "$IT_OUT")
case "$msg" in
*AccessDenied*"a.txt"* | *"a.txt"*AccessDenied*) ;;
*) fail "the failed event of a.txt does not name it and AccessDenied: '$msg'" ;;
esac

new_bucket B denied-list
fault_rule "{\"method\": \"GET\", \"match\": \"/$B?\", \"status\": 403, \"code\": \"AccessDenied\", \"times\": -1}"
arca_run copy "$SRC" "s3://$B/$P" --json
assert_rc 7 "copy when listing answers 403 AccessDenied"
assert_eq "$(fault_log "$B" | jq length)" 1 "requests after a 403 on the listing"
assert_err_has "access denied" "'$B'"
assert_eq "$(fault_ctl GET "stats?bucket=$B" | jq .objects)" 0 "objects written when the listing was refused"

# --- downloads: a cut mid-body resumes with Range ---------------------------------------------------
new_bucket B resume
make_file "$IT_TMP/dl-src/big.bin" 3M
arca_run copy "$IT_TMP/dl-src" "s3://$B/$P" --json
assert_rc 0 "upload for the resume test"
fault_rule "{\"method\": \"GET\", \"match\": \"/$B/$P/big.bin\", \"action\": \"reset_mid_body\"}"
arca_run copy "s3://$B/$P" "$IT_TMP/dl" --json
assert_rc 0 "download cut mid-body"
assert_same_tree "$IT_TMP/dl-src" "$IT_TMP/dl" "download resumed after a cut"
gets=$(fault_log "$B" | jq -c --arg p "/$B/$P/big.bin" '[.[] | select(.method == "GET" and .path == $p) | {status, fault, range: .headers.range}]')
assert_eq "$(jq length <<< "$gets")" 2 "GETs of big.bin"
assert_eq "$(jq -r '.[0].fault' <<< "$gets")" reset_mid_body "fault on the first GET"
assert_eq "$(jq -r '.[1].status' <<< "$gets")" 206 "status of the resuming GET"
range=$(jq -r '.[1].range' <<< "$gets")
[[ "$range" =~ ^bytes=([0-9]+)-$ ]] || fail "the resuming GET asked for '$range', want 'bytes=N-'"
assert_ge "${BASH_REMATCH[1]}" 1 "first byte of the resumed range"
assert_le "${BASH_REMATCH[1]}" $((3 * 1024 * 1024 / 2)) "first byte of the resumed range (half was sent)"
note "the download resumed with Range: $range"

# a body corrupted in flight must not be written as if it were right
fault_rule "{\"method\": \"GET\", \"match\": \"/$B/$P/big.bin\", \"action\": \"corrupt_body\"}"
rm -rf "$IT_TMP/dl"
arca_run copy "s3://$B/$P" "$IT_TMP/dl" --json
corrupt_ok() {
    if [ "$RC" -eq 0 ]; then
        cmp -s "$IT_TMP/dl-src/big.bin" "$IT_TMP/dl/big.bin" ||
            fail "a GET answer with one flipped byte was written to '$IT_TMP/dl/big.bin' and the copy reported success (the body was not checked against the ETag MD5 / checksum)"
    else
        [ ! -f "$IT_TMP/dl/big.bin" ] || cmp -s "$IT_TMP/dl-src/big.bin" "$IT_TMP/dl/big.bin" ||
            fail "a corrupted download was left at '$IT_TMP/dl/big.bin'"
    fi
}
it_defer corrupt_ok

# --- CompleteMultipartUpload answering 200 with an <Error> ------------------------------------------
make_file "$IT_TMP/mp/mp.bin" 12M
new_bucket B complete-once
fault_rule "{\"method\": \"POST\", \"match\": \"/$B/$P/mp.bin?uploadId\", \"action\": \"error_200\", \"code\": \"InternalError\"}"
arca_run copy "$IT_TMP/mp" "s3://$B/$P" --s3-part-size 5M --json
assert_rc 0 "copy with one 200-with-<Error> answer to CompleteMultipartUpload"
assert_eq "$(requests "$B" POST "/$B/$P/mp.bin" '^uploadId=')" 2 "CompleteMultipartUpload requests (one error, one retry)"
assert_eq "$(fault_ctl GET "objects?bucket=$B" | jq -r '.[0].key + " " + (.[0].size | tostring)')" "$P/mp.bin 12582912" "object after the retried completion"
arca_run copy "s3://$B/$P" "$IT_TMP/mp-back" --json
assert_rc 0 "download of the completed multipart object"
assert_same_tree "$IT_TMP/mp" "$IT_TMP/mp-back" "multipart upload completed on retry"

new_bucket B complete-always
fault_rule "{\"method\": \"POST\", \"match\": \"/$B/$P/mp.bin?uploadId\", \"action\": \"error_200\", \"code\": \"InternalError\", \"times\": -1}"
arca_run copy "$IT_TMP/mp" "s3://$B/$P" --s3-part-size 5M --retry-timeout 3 --json
assert_ne "$RC" 0 "exit status when CompleteMultipartUpload always answers 200 with an <Error>"
assert_summary files_transferred 0
assert_err_has "InternalError" "mp.bin"
n=$(requests "$B" POST "/$B/$P/mp.bin" '^uploadId=')
assert_ge "$n" 2 "CompleteMultipartUpload attempts"
stats=$(fault_ctl GET "stats?bucket=$B")
assert_eq "$(jq .objects <<< "$stats")" 0 "objects after a completion that never succeeded"
assert_eq "$(jq .multipart_in_progress <<< "$stats")" 0 "multipart uploads left after a completion that never succeeded"
assert_eq "$(requests "$B" DELETE "/$B/$P/mp.bin" '^uploadId=')" 1 "AbortMultipartUpload requests"
note "a persistent <Error> in a 200 answer: $n attempts, then exit $RC"

# --- single PUT vs multipart at the part size -------------------------------------------------------------
new_bucket B threshold
make_file "$IT_TMP/th/minus" $((5 * 1024 * 1024 - 1))
make_file "$IT_TMP/th/plus" $((5 * 1024 * 1024 + 1))
make_file "$IT_TMP/th/exact" $((5 * 1024 * 1024))
arca_run copy "$IT_TMP/th" "s3://$B/$P" --s3-part-size 5M --json
assert_rc 0 "copy around the part size"
assert_eq "$(requests "$B" PUT "/$B/$P/minus" '^$')" 1 "plain PUTs of a 5 MiB - 1 file"
assert_eq "$(requests "$B" POST "/$B/$P/minus" 'uploads')" 0 "multipart uploads of a 5 MiB - 1 file"
assert_eq "$(requests "$B" POST "/$B/$P/plus" '^uploads')" 1 "multipart uploads started for a 5 MiB + 1 file"
assert_eq "$(requests "$B" PUT "/$B/$P/plus" 'partNumber=')" 2 "parts of a 5 MiB + 1 file"
assert_eq "$(requests "$B" PUT "/$B/$P/plus" '^$')" 0 "plain PUTs of a 5 MiB + 1 file"
assert_eq "$(requests "$B" POST "/$B/$P/plus" '^uploadId=')" 1 "completions for a 5 MiB + 1 file"
sizes=$(fault_log "$B" | jq -r --arg p "/$B/$P/plus" '[.[] | select(.method == "PUT" and .path == $p) | .bytes_in] | sort | map(tostring) | join(" ")')
assert_eq "$sizes" "1 5242880" "part sizes of a 5 MiB + 1 file"
etag=$(fault_ctl GET "objects?bucket=$B" | jq -r --arg k "$P/plus" '.[] | select(.key == $k) | .etag')
[[ "$etag" == *-2\" ]] || fail "the ETag of the 5 MiB + 1 object is $etag, not a 2-part multipart ETag"
arca_run copy "s3://$B/$P" "$IT_TMP/th-back" --json
assert_rc 0 "download around the part size"
assert_same_tree "$IT_TMP/th" "$IT_TMP/th-back" "files around the part size"

# --- unsorted listings: stop, delete nothing ------------------------------------------------------------
new_bucket B unsorted
fault_ctl POST synthetic "{\"bucket\": \"$B\", \"pages\": 3, \"per_page\": 1000, \"key_prefix\": \"k/\", \"unsorted\": true}" > /dev/null
arca_run ls "s3://$B"
assert_rc 11 "ls of an unsorted listing"
assert_err_has "is not sorted at" "'s3://$B'"
lines=$(wc -l < "$IT_OUT")
assert_le "$lines" 1500 "entries printed before the unsorted key"
note "ls stopped after $lines entries: $(it_messages | grep -o 'is not sorted at[^;"]*' | head -n 1)"

new_bucket B unsorted-dst
fault_ctl POST synthetic "{\"bucket\": \"$B\", \"pages\": 3, \"per_page\": 4, \"key_prefix\": \"k/\", \"unsorted\": true}" > /dev/null
mkdir -p "$IT_TMP/one"
echo only > "$IT_TMP/one/zz-only"
arca_run sync "$IT_TMP/one" "s3://$B" --json
assert_rc 11 "sync to a destination with an unsorted listing"
assert_err_has "is not sorted at"
assert_summary files_deleted 0
dels=$(fault_log "$B" | jq '[.[] | select(.method == "DELETE" or (.method == "POST" and (.query | test("delete"))))] | length')
assert_eq "$dels" 0 "delete requests of a sync whose destination listing is unsorted"

new_bucket B unsorted-src
fault_ctl POST synthetic "{\"bucket\": \"$B\", \"pages\": 3, \"per_page\": 4, \"key_prefix\": \"k/\", \"unsorted\": true}" > /dev/null
mkdir -p "$IT_TMP/local-dst"
echo keep > "$IT_TMP/local-dst/zz-extraneous"
arca_run sync "s3://$B" "$IT_TMP/local-dst" --json
assert_rc 11 "sync from a source with an unsorted listing"
assert_err_has "is not sorted at"
assert_summary files_deleted 0
[ -f "$IT_TMP/local-dst/zz-extraneous" ] || fail "a sync from an unsorted listing deleted a local file"

# --- S3 -> S3 with reserved characters in keys: server-side --------------------------------------------
new_bucket B s2s-src
new_bucket B2 s2s-dst
R=$IT_TMP/reserved
mkdir -p "$R/sub dir"
for n in 'plus+plus' 'eq=1' 'comma,x' 'at@' 'dollar$' 'colon:x' 'semi;x' 'hash#1' 'q?mark' 'a+b=c;d' \
    'sub dir/é+%20ü' 'pct%2F%41' "quote'!*()" 'amp&x'; do
    printf 'reserved %s\n' "$n" > "$R/$n"
done
N=$(find "$R" -type f | wc -l)
arca_run copy "$R" "s3://$B/r" --json
assert_rc 0 "upload of keys with reserved characters"
assert_summary files_transferred "$N"
arca_run copy "s3://$B/r" "s3://$B2/r" --json
assert_rc 0 "S3 -> S3 copy of keys with reserved characters"
assert_summary files_transferred "$N"
server=$(jq -r 'select(.type == "file" and .action == "copied" and .server_side == true) | .path' "$IT_OUT" | wc -l)
assert_eq "$server" "$N" "file events with \"server_side\": true"
assert_eq "$(requests "$B2" GET "/$B2/r/at@")" 0 "GETs to the destination bucket (a server-side copy reads nothing)"
(cd "$R" && find . -type f | sed 's|^\./|r/|' | LC_ALL=C sort) > "$IT_TMP/want-keys"
fault_ctl GET "objects?bucket=$B2" | jq -r '.[].key' > "$IT_TMP/got-keys"
cmp -s "$IT_TMP/want-keys" "$IT_TMP/got-keys" || {
    diff "$IT_TMP/want-keys" "$IT_TMP/got-keys" >&2
    fail "keys in the destination bucket after a server-side copy"
}
arca_run copy "s3://$B2/r" "$IT_TMP/reserved-back" --json
assert_rc 0 "download of the server-side copies"
assert_same_tree "$R" "$IT_TMP/reserved-back" "keys with reserved characters, copied on the server"

# --- a source that changes while its parts are sent --------------------------------------------
# A local file is not held in memory: its parts are checksummed as they
# are read, and their bodies read again when sent. If the file changes in
# between, the server sees other bytes than were checksummed: the file
# fails, nothing is stored, and no parts are left behind.
new_bucket B changing
CH=$IT_TMP/changing
make_file "$CH/f.bin" 15M
fault_rule "{\"method\": \"PUT\", \"match\": \"/$B/$P/f.bin?\", \"action\": \"delay\", \"seconds\": 2, \"times\": 3}"
arca_run_bg() { "$ARCA_BIN" "$@" > "$IT_TMP/bg.out" 2> "$IT_TMP/bg.err"; }
arca_run_bg copy "$CH" "s3://$B/$P" --s3-part-size 5M --json &
bg=$!
sleep 1
# same size, other bytes, while the three parts wait in the server
head -c 15M /dev/urandom | dd of="$CH/f.bin" conv=notrunc status=none
RC=0
wait "$bg" || RC=$?
IT_OUT=$IT_TMP/bg.out IT_ERR=$IT_TMP/bg.err
assert_rc 3 "copy of a file that changed while its parts were sent"
msg=$(jq -r 'select(.type == "file" and .action == "failed") | .error.message' "$IT_OUT")
case "$msg" in
*"other bytes than were checksummed"*) ;;
*) fail "the failed event does not say the data changed: '$msg'" ;;
esac
assert_eq "$(fault_ctl GET "objects?bucket=$B" | jq length)" 0 "objects stored from a changing file"
assert_eq "$(fault_ctl GET uploads | jq --arg b "$B" '[.[] | select(.bucket == $b)] | length')" 0 \
    "multipart uploads left of a changing file"

# --- SSE-KMS objects: their ETag is not an MD5 ---------------------------------------------
# A GET that says x-amz-server-side-encryption: aws:kms is not checked
# against its ETag; the same answer without that header is, and fails.
new_bucket B kms
KMS=$IT_TMP/kms
make_file "$KMS/k.bin" 300K
arca_run copy "$KMS" "s3://$B/$P" --json
assert_rc 0 "upload for the SSE-KMS case"
fake='"0123456789abcdef0123456789abcdef"'
fault_rule "{\"method\": \"GET\", \"match\": \"/$B/$P/k.bin\", \"action\": \"headers\", \"times\": 1, \"headers\": {\"ETag\": $(jq -Rn --arg v "$fake" '$v'), \"x-amz-checksum-sha256\": \"\", \"x-amz-server-side-encryption\": \"aws:kms\"}}"
arca_run copy "s3://$B/$P" "$IT_TMP/kms-back" --json
assert_rc 0 "download of an object that looks SSE-KMS encrypted"
cmp -s "$KMS/k.bin" "$IT_TMP/kms-back/k.bin" || fail "SSE-KMS download differs"
fault_rule "{\"method\": \"GET\", \"match\": \"/$B/$P/k.bin\", \"action\": \"headers\", \"times\": 1, \"headers\": {\"ETag\": $(jq -Rn --arg v "$fake" '$v'), \"x-amz-checksum-sha256\": \"\"}}"
arca_run copy "s3://$B/$P" "$IT_TMP/kms-back2" --json
assert_rc 3 "download whose plain ETag does not match the bytes"
[ ! -e "$IT_TMP/kms-back2/k.bin" ] || fail "a download that failed verification was written"

# --- every upload carried a checksum ----------------------------------------------------------------------
total=0
for b in "${BUCKETS[@]}"; do
    u=$(fault_ctl GET "stats?bucket=$b" | jq -c .uploads)
    neither=$(jq .neither <<< "$u")
    [ "$neither" -eq 0 ] || fail "bucket '$b': $neither PUT/UploadPart requests without Content-MD5 or x-amz-checksum-sha256 ($u)"
    total=$((total + $(jq .total <<< "$u")))
done
assert_ge "$total" 20 "uploads counted by faults3"
note "$total PUT/UploadPart requests, every one with Content-MD5 or x-amz-checksum-sha256"
