#!/bin/bash
# test_multipart_abort: an upload interrupted mid-multipart leaves no object
# under its final name, and (SIGINT, SIGTERM) no parts behind.
#
# A 120 MiB file goes up with --s3-part-size 5M --bwlimit 20M (about 6 s);
# once s3rver holds parts of its multipart upload (a directory under
# <bucket>/._S3rver_uploads/ whose 'key' file names the key) arca gets a
# signal:
#   SIGINT, SIGTERM  arca must abort the multipart upload: exit 130, no
#                    object, no upload directory left for the key;
#   SIGKILL          nothing can run in a killed process: we assert only
#                    that no object exists under the final key. Its parts
#                    stay on the server until a janitor or a lifecycle rule
#                    (AbortIncompleteMultipartUpload) removes them; that is
#                    expected, and the test only reports how many remain.
# The same SIGINT case runs against faults3, whose control API shows the
# uploads in progress and the AbortMultipartUpload request.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR \
    ARCA_TEST_FAULT_ENDPOINT
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"
UPLOADS=$ARCA_TEST_S3_DATA_DIR/$B/._S3rver_uploads

SRC=$IT_TMP/src
make_file "$SRC/big.bin" 120M

# s3rver_parts KEY: part files in s3rver's upload directories for KEY
s3rver_parts() {
    local up n=0
    for up in "$UPLOADS"/*/; do
        [ -f "$up/key" ] || continue
        [ "$(cat "$up/key")" == "$1" ] || continue
        n=$((n + $(find "$up" -maxdepth 1 -name '[0-9]*' ! -name '*.md5' | wc -l)))
    done
    echo "$n"
}

# wait_for WHAT SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local what=$1 limit=$2 i
    shift 2
    for ((i = 0; i < limit * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what did not happen within $limit s"
}

# start_upload DST [ARGS]: start arca in the background; sets PID.
start_upload() {
    local dst=$1
    shift
    IT_LAST_CMD="arca copy $SRC $dst $*"
    rm -f "$IT_TMP/bg.pid" "$IT_TMP/bg.rc"
    # a subshell reaps arca and keeps its exit status (and keeps bash's
    # "Killed" job notice out of the log)
    (
        "$ARCA_BIN" copy "$SRC" "$dst" --s3-part-size 5M --bwlimit 20M "$@" > "$IT_TMP/bg.out" 2> "$IT_TMP/bg.err" &
        echo $! > "$IT_TMP/bg.pid"
        rc=0
        wait $! || rc=$?
        echo "$rc" > "$IT_TMP/bg.rc"
    ) 2> /dev/null &
    WRAPPER=$!
    it_track_pid "$WRAPPER"
    local i
    for ((i = 0; i < 50; i++)); do
        [ -s "$IT_TMP/bg.pid" ] && break
        sleep 0.1
    done
    PID=$(cat "$IT_TMP/bg.pid")
    it_track_pid "$PID"
}

# wait_exit SECONDS: wait for $PID, set RC.
wait_exit() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        kill -0 "$PID" 2> /dev/null || break
        sleep 0.1
    done
    kill -0 "$PID" 2> /dev/null && fail "arca still runs $1 s after the signal"
    wait "$WRAPPER" || true
    [ -s "$IT_TMP/bg.rc" ] || fail "no exit status recorded for arca"
    RC=$(cat "$IT_TMP/bg.rc")
}

has_parts() {
    [ "$(s3rver_parts "$1")" -ge 2 ]
}

object_absent() { # KEY
    [ ! -e "$ARCA_TEST_S3_DATA_DIR/$B/$1._S3rver_object" ] ||
        fail "an object exists under the final key '$1' after an interrupted upload"
    local n
    n=$(s3_keys "s3://$B/$(dirname "$1")" | grep -cxF "$(basename "$1")" || true)
    assert_eq "$n" 0 "objects listed under '$1' after an interrupted upload"
}

use_s3rver
for sig in INT TERM; do
    key=$P/$sig/big.bin
    start_upload "s3://$B/$P/$sig"
    wait_for "parts of the multipart upload of '$key' on s3rver" 20 has_parts "$key"
    note "SIG$sig with $(s3rver_parts "$key") parts on s3rver"
    kill -"$sig" "$PID"
    wait_exit 30
    assert_rc 130 "arca after SIG$sig"
    object_absent "$key"
    assert_eq "$(s3rver_uploads "$B" "$key")" 0 "multipart uploads s3rver keeps for '$key' after SIG$sig"
    assert_eq "$(s3rver_parts "$key")" 0 "parts s3rver keeps for '$key' after SIG$sig"
done

# an interrupted run does not get in the way of the next one
arca_run copy "$SRC" "s3://$B/$P/INT" --s3-part-size 5M --json
assert_rc 0 "copy after an interrupted one"
assert_summary files_transferred 1
arca_run copy "s3://$B/$P/INT" "$IT_TMP/back" --json
assert_rc 0 "download after an interrupted upload"
assert_same_tree "$SRC" "$IT_TMP/back" "upload after an interrupted one"
rm -rf "$IT_TMP/back"

# SIGKILL: no object under the final name; parts may remain (see above)
key=$P/KILL/big.bin
start_upload "s3://$B/$P/KILL"
wait_for "parts of the multipart upload of '$key' on s3rver" 20 has_parts "$key"
kill -KILL "$PID"
wait_exit 10
assert_rc 137 "arca after SIGKILL"
sleep 0.5 # parts in flight land on the server now; an object must not
object_absent "$key"
note "after SIGKILL: $(s3rver_uploads "$B" "$key") multipart upload(s) with $(s3rver_parts "$key") part(s) remain" \
    "for '$key' until a janitor or lifecycle rule removes them (expected)"

# --- the same SIGINT against faults3: the upload is aborted on the server ------------
use_faults
fault_bucket FB abort
make_file "$IT_TMP/small/mid.bin" 40M
SRC=$IT_TMP/small
fault_in_progress() {
    [ "$(fault_ctl GET "stats?bucket=$FB" | jq -r .multipart_in_progress)" -ge 1 ] &&
        [ "$(fault_ctl GET uploads | jq --arg b "$FB" '[.[] | select(.bucket == $b) | .parts | length] | add // 0')" -ge 2 ]
}
start_upload "s3://$FB/$P"
wait_for "a multipart upload with parts on faults3" 20 fault_in_progress
note "SIGINT with $(fault_ctl GET uploads | jq --arg b "$FB" '[.[] | select(.bucket == $b) | .parts | length] | add') parts on faults3"
kill -INT "$PID"
wait_exit 30
assert_rc 130 "arca after SIGINT (faults3)"
stats=$(fault_ctl GET "stats?bucket=$FB")
assert_eq "$(jq -r .multipart_in_progress <<< "$stats")" 0 "multipart uploads in progress on faults3 after SIGINT"
assert_eq "$(jq -r .objects <<< "$stats")" 0 "objects on faults3 after SIGINT"
aborts=$(fault_log "$FB" | jq '[.[] | select(.method == "DELETE" and (.query | test("uploadId=")))] | length')
assert_eq "$aborts" 1 "AbortMultipartUpload requests after SIGINT"
