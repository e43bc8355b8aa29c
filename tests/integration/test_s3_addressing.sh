#!/bin/bash
# test_s3_addressing: how arca reaches a bucket, and server-side copies in
# parts.
#  - virtual-host addressing (bucket in the host name): the test s3rver
#    runs with --service-endpoint localhost, so http://s3.localhost:PORT
#    puts the bucket at <bucket>.s3.localhost (libcurl resolves *.localhost
#    to the loopback address itself); what is written that way reads back
#    identically path-style, and a named remote with path_style = false
#    does the same;
#  - a server-side copy larger than copy_cutoff goes as UploadPartCopy in
#    parts (CopyObject stops at 5 GiB on S3): on s3rver the copy is
#    byte-identical and keeps the source mtime; on the fault server the
#    request log shows the parts and no byte through arca.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_FAULT_ENDPOINT
it_need_cmd jq curl

use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}
B2=${ARCA_TEST_S3_BUCKET2:-arca-test2}
P=$(it_prefix)
it_s3_forget "$B" "$P"
it_s3_forget "$B2" "$P"
port=${ARCA_TEST_S3_ENDPOINT##*:}
VHOST=http://s3.localhost:$port

SRC=$IT_TMP/src
make_file "$SRC/one" 1000
make_file "$SRC/dir/two" 70000
make_file "$SRC/big" 12M
N=$(find "$SRC" -type f | wc -l)

# --- virtual-host addressing -------------------------------------------------------
arca_run copy "$SRC" "s3://$B/$P/vh" --endpoint "$VHOST" --virtual-host --json -vv
assert_rc 0 "copy with --virtual-host"
assert_summary files_transferred "$N"
# the requests went to the bucket's host name, with the key alone as path
assert_file_has "$IT_ERR" "PUT http://$B.s3.localhost:$port/$P/vh/one -> 200" "virtual-host request URL"
arca_run check "$SRC" "s3://$B/$P/vh" --json
assert_rc 0 "path-style check of what was written virtual-host style"
assert_summary files_checked "$N"

# the same through a named remote that asks for virtual hosts
CFG=$IT_TMP/config
cat > "$CFG" << EOF
[vh]
type = s3
endpoint = $VHOST
path_style = false
access_key_id = $ARCA_TEST_S3_ACCESS_KEY
secret_access_key = $ARCA_TEST_S3_SECRET_KEY
EOF
chmod 600 "$CFG"
unset AWS_ENDPOINT_URL
arca_run check "$SRC" "vh:$B/$P/vh" --config "$CFG" --json
assert_rc 0 "check through a named remote with path_style = false"
DL=$IT_TMP/dl-vh
arca_run copy "vh:$B/$P/vh" "$DL" --config "$CFG" --json
assert_rc 0 "download with virtual-host addressing"
assert_same_tree "$SRC" "$DL" "local -> S3 (virtual host) -> local"
use_s3rver

# --- server-side copy in parts (copy_cutoff) on s3rver --------------------------------
cat > "$CFG" << EOF
[s]
type = s3
endpoint = $ARCA_TEST_S3_ENDPOINT
copy_cutoff = 5M
access_key_id = $ARCA_TEST_S3_ACCESS_KEY
secret_access_key = $ARCA_TEST_S3_SECRET_KEY
EOF
arca_run copy "s:$B/$P/vh" "s:$B2/$P/parts" --config "$CFG" --json
assert_rc 0 "bucket to bucket copy with copy_cutoff = 5M"
server=$(jq -r 'select(.type == "file" and .action == "copied" and .server_side == true) | .path' "$IT_OUT" | wc -l)
assert_eq "$server" "$N" "server-side copies"
assert_summary bytes_transferred "$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
DL2=$IT_TMP/dl-parts
arca_run copy "s:$B2/$P/parts" "$DL2" --config "$CFG" --json
assert_rc 0 "download of the copies"
assert_same_tree "$SRC" "$DL2" "S3 -> S3 in parts -> local"
assert_eq "$(mtime_ns "$DL2/big")" "$(mtime_ns "$SRC/big")" "mtime of the object copied in parts"
arca_run copy "s:$B/$P/vh" "s:$B2/$P/parts" --config "$CFG" --json
assert_rc 0 "second bucket to bucket copy"
assert_summary files_transferred 0
assert_summary files_unchanged "$N"

# --- the requests, on the fault server ---------------------------------------------------
use_faults
fault_bucket FB parts
cat > "$CFG" << EOF
[f]
type = s3
endpoint = $ARCA_TEST_FAULT_ENDPOINT
copy_cutoff = 5M
access_key_id = FAULTS3
secret_access_key = faults3-secret
EOF
chmod 600 "$CFG"
mkdir -p "$IT_TMP/bigonly" && cp -p "$SRC/big" "$IT_TMP/bigonly/"
arca_run copy "$IT_TMP/bigonly" "f:$FB/src" --config "$CFG" --json
assert_rc 0 "upload to the fault server"
arca_run copy "f:$FB/src" "f:$FB/dst" --config "$CFG" --json
assert_rc 0 "copy in parts on the fault server"
log=$IT_TMP/log.json
fault_log "$FB" > "$log"
copies=$(jq '[.[] | select(.method == "PUT" and (.path | endswith("/dst/big")) and (.query | test("partNumber")))] | length' "$log")
assert_eq "$copies" 3 "UploadPartCopy requests for 12 MiB in 5 MiB parts"
plain=$(jq '[.[] | select(.method == "PUT" and (.path | endswith("/dst/big")) and (.query | test("partNumber") | not))] | length' "$log")
assert_eq "$plain" 0 "plain PUT or CopyObject requests for the copy in parts"
gets=$(jq '[.[] | select(.method == "GET" and (.path | endswith("/src/big")))] | length' "$log")
assert_eq "$gets" 0 "GET requests of the source (no byte goes through arca)"
note "virtual-host and copy in parts ok in $(it_elapsed) s"
