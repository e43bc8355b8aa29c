#!/bin/bash
# test_bad_input: every kind of bad input gives one clear error line naming
# the thing, the documented exit status, and writes nothing.
#
#   malformed remotes (s3://, s3:///x, s3://a/x, gs://b/x, credentials in
#   the URL)                                    exit 2
#   a wrong secret (SignatureDoesNotMatch)      exit 6, secret never printed
#   no credentials                              exit 6
#   a bucket that does not exist                exit 5; --create-bucket creates it
#   a source path that does not exist           exit 5
#   a destination below a regular file          exit 9 (ENOTDIR: local I/O)
#   a destination directory we may not write    exit 7 (run as 'nobody' when
#                                               we are root: root writes anywhere)
#   an unreachable endpoint                     exit 8 within 30 s, "after N attempts"
#   a config file others can read (0644)        exit 4, says chmod 600
#   --secret-access-key / --secret on the command line   exit 2
# and what must work: named remotes from a 0600 config file (type = s3 with
# the secret in it, with and without 'bucket ='), --secret-file, and
# 'name:path' where name is no configured remote is a local path.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"
DATA=$ARCA_TEST_S3_DATA_DIR

SRC=$IT_TMP/src
mkdir -p "$SRC/sub"
echo one > "$SRC/one"
echo two > "$SRC/sub/two"

# nothing_at_prefix WHAT: no object under s3://$B/$P (s3rver's files and
# arca's own listing with good credentials agree).
nothing_at_prefix() {
    [ ! -e "$DATA/$B/$P" ] || fail "$1: something was written under s3://$B/$P: $(find "$DATA/$B/$P" | head -n 3)"
    (
        use_s3rver
        n=$(s3_keys "s3://$B/$P" | wc -l)
        [ "$n" -eq 0 ] || fail "$1: $n objects listed under s3://$B/$P"
    )
}

# --- malformed remotes: exit 2, the remote named, nothing written -------------------
use_s3rver
for bad in 's3://' 's3:///x' 's3://a/x' 'gs://b/x' 's3://KEY:s3cr3tInURL@bucket/x'; do
    arca_run copy "$SRC" "$bad"
    assert_rc 2 "copy to '$bad'"
    case "$bad" in
    *s3cr3tInURL*)
        assert_err_has "credentials" "never in a URL"
        assert_one_line_error "credentials"
        # the secret typed into the URL must not be echoed into logs
        it_defer assert_no_secret "s3cr3tInURL"
        ;;
    s3://a/x)
        assert_err_has "bucket name 'a'" "3 to 63 characters"
        assert_one_line_error "bucket name 'a'"
        ;;
    gs://*)
        assert_err_has "'gs://b/x'" "scheme 'gs'"
        assert_one_line_error "'gs://b/x'"
        ;;
    *)
        assert_err_has "'$bad'" "no bucket"
        assert_one_line_error "'$bad'"
        ;;
    esac
    [ -z "$(cat "$IT_OUT")" ] || fail "copy to '$bad' printed to stdout: $(head -c 300 "$IT_OUT")"
    # as a source: the local destination is not even created
    arca_run copy "$bad" "$IT_TMP/never"
    assert_rc 2 "copy from '$bad'"
    [ ! -e "$IT_TMP/never" ] || fail "copy from '$bad' created its destination"
    arca_run ls "$bad"
    assert_rc 2 "ls '$bad'"
done

# --- a wrong secret: exit 6, SignatureDoesNotMatch, the secret never printed ------------
WRONG=wrong-Secret-7f3a9c21e
AWS_SECRET_ACCESS_KEY=$WRONG arca_run copy "$SRC" "s3://$B/$P"
assert_rc 6 "copy with a wrong secret"
assert_err_has "SignatureDoesNotMatch" "secret access key"
assert_one_line_error "SignatureDoesNotMatch"
assert_no_secret "$WRONG"
AWS_SECRET_ACCESS_KEY=$WRONG arca_run copy "$SRC" "s3://$B/$P" --json -vv
assert_rc 6 "copy with a wrong secret (--json -vv)"
assert_summary status failed
assert_err_has "SignatureDoesNotMatch"
assert_no_secret "$WRONG"
AWS_SECRET_ACCESS_KEY=$WRONG arca_run ls "s3://$B" -vv
assert_rc 6 "ls with a wrong secret (-vv)"
assert_no_secret "$WRONG"
nothing_at_prefix "copy with a wrong secret"

# --- no credentials: exit 6, says where credentials come from ------------------------------
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    arca_run copy "$SRC" "s3://$B/$P"
    assert_rc 6 "copy without credentials"
    assert_err_has "no credentials" "AWS_ACCESS_KEY_ID" "'s3://$B/$P'"
    assert_one_line_error "no credentials"
    unset AWS_SECRET_ACCESS_KEY
    export AWS_ACCESS_KEY_ID=$ARCA_TEST_S3_ACCESS_KEY
    arca_run copy "$SRC" "s3://$B/$P"
    assert_rc 6 "copy with an access key id and no secret"
)
nothing_at_prefix "copy without credentials"

# --- a bucket that does not exist: exit 5; --create-bucket creates it ------------------------
NB=it-nobucket-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
it_on_exit "rm -rf '$DATA/$NB'"
arca_run copy "$SRC" "s3://$NB/x"
assert_rc 5 "copy to a bucket that does not exist"
assert_err_has "bucket '$NB' does not exist" "--create-bucket"
assert_one_line_error "bucket '$NB' does not exist"
[ ! -e "$DATA/$NB" ] || fail "copy to a missing bucket without --create-bucket created it"
arca_run ls "s3://$NB"
assert_rc 5 "ls of a bucket that does not exist"
assert_err_has "'$NB'"
arca_run copy "s3://$NB/x" "$IT_TMP/never"
assert_rc 5 "copy from a bucket that does not exist"
[ ! -e "$IT_TMP/never" ] || fail "copy from a missing bucket created its destination"
arca_run copy "$SRC" "s3://$NB/x" --create-bucket --json
assert_rc 0 "copy with --create-bucket"
assert_summary files_transferred 2
[ -d "$DATA/$NB" ] || fail "--create-bucket did not create bucket '$NB' in s3rver's data"
assert_eq "$(s3_keys "s3://$NB/x" | tr '\n' ' ')" "one sub/two " "keys in the created bucket"

# --- a source that does not exist: exit 5 -------------------------------------------------------
arca_run copy "$IT_TMP/no/such/dir" "s3://$B/$P"
assert_rc 5 "copy from a missing local directory"
assert_err_has "'$IT_TMP/no/such/dir'" "does not exist"
assert_one_line_error "'$IT_TMP/no/such/dir'"
nothing_at_prefix "copy from a missing local directory"
arca_run copy "s3://$B/$P-absent" "$IT_TMP/from-empty-prefix"
# an empty S3 prefix lists nothing: that is not an error for copy
assert_rc 0 "copy from an S3 prefix that holds nothing"
assert_empty_dir "$IT_TMP/from-empty-prefix" "copy from an empty S3 prefix"
arca_run sync "$IT_TMP/no/such/dir" "$IT_TMP/never"
assert_rc 5 "sync from a missing local directory"
[ ! -e "$IT_TMP/never" ] || fail "sync from a missing directory created its destination"

# --- destinations we cannot write ------------------------------------------------------------------
# (a) below a regular file: the directory cannot be made (ENOTDIR)
echo plain > "$IT_TMP/file.txt"
arca_run copy "$SRC" "$IT_TMP/file.txt/sub"
assert_rc 9 "copy to a path below a regular file"
assert_err_has "'$IT_TMP/file.txt/sub'"
assert_one_line_error "'$IT_TMP/file.txt/sub'"
assert_eq "$(cat "$IT_TMP/file.txt")" plain "the regular file in the way"
# (b) a directory without write permission, as a user it applies to
RO=$IT_TMP/perm
mkdir -p "$RO/src" "$RO/dst"
cp -a "$SRC/." "$RO/src/"
chmod 0755 "$IT_TMP" "$RO" "$RO/src" "$RO/src/sub"
chmod 0644 "$RO/src/one" "$RO/src/sub/two"
chmod 0555 "$RO/dst"
if [ "$(id -u)" -eq 0 ]; then
    it_need_cmd runuser
    as_user=(runuser -u nobody -- env HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent)
else
    as_user=(env)
fi
IT_LAST_CMD="(as nobody) arca copy $RO/src $RO/dst"
RC=0
"${as_user[@]}" "$ARCA_BIN" copy "$RO/src" "$RO/dst" > "$IT_OUT" 2> "$IT_ERR" || RC=$?
assert_rc 7 "copy into a directory without write permission"
assert_err_has "'$RO/dst'" "permission denied"
assert_one_line_error "permission denied"
assert_empty_dir "$RO/dst" "read-only destination"
RC=0
"${as_user[@]}" "$ARCA_BIN" copy "$RO/src" "$RO/dst/new" > "$IT_OUT" 2> "$IT_ERR" || RC=$?
assert_rc 7 "copy into a new directory below one without write permission"
assert_err_has "'$RO/dst/new'" "permission denied"
assert_empty_dir "$RO/dst" "read-only destination"
chmod 0700 "$IT_TMP"

# --- an unreachable endpoint: exit 8 within 30 s, after N attempts -------------------------------
t0=$(date +%s.%N)
arca_run copy "$SRC" "s3://$B/$P" --endpoint http://127.0.0.1:1
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", b - a + 0.999 }')
assert_rc 8 "copy to an unreachable endpoint"
assert_le "$took" 31 "seconds before giving up on an unreachable endpoint (default retry timeout 30 s)"
assert_err_has "'http://127.0.0.1:1'"
it_messages | grep -qE 'after [0-9]+ attempts' || fail "the error does not say 'after N attempts'"
n=$(it_messages | grep -oE 'after [0-9]+ attempts' | head -n 1 | grep -oE '[0-9]+')
assert_ge "$n" 2 "attempts at an unreachable endpoint"
assert_one_line_error "'http://127.0.0.1:1'"
note "unreachable endpoint: gave up after $n attempts in ${took} s"
t0=$(date +%s.%N)
arca_run ls "s3://$B/$P" --endpoint http://127.0.0.1:1 --retry-timeout 2
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", b - a + 0.999 }')
assert_rc 8 "ls of an unreachable endpoint with --retry-timeout 2"
assert_le "$took" 5 "seconds before giving up with --retry-timeout 2"

# --- config files ---------------------------------------------------------------------------------
CFG=$IT_TMP/arca.conf
cat > "$CFG" << EOF
# remotes for test_bad_input
[store]
type = s3
endpoint = $ARCA_TEST_S3_ENDPOINT
access_key_id = $ARCA_TEST_S3_ACCESS_KEY
secret_access_key = $ARCA_TEST_S3_SECRET_KEY

[pinned]
type = s3
endpoint = $ARCA_TEST_S3_ENDPOINT
bucket = $B
access_key_id = $ARCA_TEST_S3_ACCESS_KEY
secret_access_key = $ARCA_TEST_S3_SECRET_KEY
EOF
chmod 0644 "$CFG"
arca_run copy "$SRC" "store:$B/$P/named" --config "$CFG"
assert_rc 4 "a config file with mode 0644"
assert_err_has "'$CFG'" "chmod 600"
assert_one_line_error "chmod 600"
nothing_at_prefix "a refused config file"
# the default location is checked the same way
mkdir -p "$XDG_CONFIG_HOME/arca"
cp "$CFG" "$XDG_CONFIG_HOME/arca/config"
chmod 0640 "$XDG_CONFIG_HOME/arca/config"
arca_run ls "$SRC"
assert_rc 4 "a default config file with mode 0640"
assert_err_has "chmod 600"
rm "$XDG_CONFIG_HOME/arca/config"

chmod 0600 "$CFG"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL AWS_REGION
    arca_run copy "$SRC" "store:$B/$P/named" --config "$CFG" --json
    assert_rc 0 "copy to a named remote (bucket in the path)"
    assert_summary files_transferred 2
    arca_run copy "pinned:$P/named" "$IT_TMP/named-back" --config "$CFG" --json
    assert_rc 0 "copy from a named remote (bucket in the section)"
    assert_summary files_transferred 2
    assert_same_tree "$SRC" "$IT_TMP/named-back" "through named remotes"
    arca_run check "$SRC" "pinned:/$P/named" --config "$CFG"
    assert_rc 0 "check against a named remote"
)
assert_eq "$(s3_keys "s3://$B/$P/named" | tr '\n' ' ')" "one sub/two " "keys written through the named remote"

# --secret-file: the access key id by flag, the secret from a 0600 file
SECRET_FILE=$IT_TMP/secret
printf '%s\n' "$ARCA_TEST_S3_SECRET_KEY" > "$SECRET_FILE"
chmod 0600 "$SECRET_FILE"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL
    arca_run ls "s3://$B/$P/named" --endpoint "$ARCA_TEST_S3_ENDPOINT" \
        --access-key-id "$ARCA_TEST_S3_ACCESS_KEY" --secret-file "$SECRET_FILE"
    assert_rc 0 "ls with --secret-file"
    assert_eq "$(wc -l < "$IT_OUT")" 2 "lines listed with --secret-file"
    chmod 0644 "$SECRET_FILE"
    arca_run ls "s3://$B/$P/named" --endpoint "$ARCA_TEST_S3_ENDPOINT" \
        --access-key-id "$ARCA_TEST_S3_ACCESS_KEY" --secret-file "$SECRET_FILE"
    assert_rc 4 "a secret file with mode 0644"
    assert_err_has "'$SECRET_FILE'" "chmod 600"
)

# secrets on the command line are refused before anything else
for flag in --secret-access-key --secret; do
    arca_run copy "$SRC" "s3://$B/$P/flag" "$flag" CmdLineSecretX9
    assert_rc 2 "$flag on the command line"
    assert_err_has "--secret-file"
    assert_one_line_error "--secret-file"
    assert_no_secret "CmdLineSecretX9"
done
[ ! -e "$DATA/$B/$P/flag" ] || fail "a refused command line wrote to s3://$B/$P/flag"

# 'name:path' where name is not a configured remote is a local path
W=$IT_TMP/work
mkdir -p "$W/notaremote:dir/x"
echo local > "$W/notaremote:dir/x/f"
(
    cd "$W"
    arca_run copy "notaremote:dir" "nothere:out" --config "$CFG" --json
    assert_rc 0 "copy between 'name:path' strings that name no remote"
    assert_summary files_transferred 1
    [ -f "$W/nothere:out/x/f" ] || fail "'nothere:out' was not taken as a local directory"
    arca_run copy "notaremote:dir" "s3://$B/$P/colon" --json
    assert_rc 0 "copy from 'notaremote:dir' (no config file) to S3"
)
assert_eq "$(s3_keys "s3://$B/$P/colon" | tr '\n' ' ')" "x/f " "keys copied from a local 'name:path'"

# --- overlapping source and destination ---------------------------------------------------
OV=$IT_TMP/overlap
mkdir -p "$OV/src/sub"
echo x > "$OV/src/f"
arca_run sync "$OV/src" "$OV/src/backup"
assert_rc 2 "sync into a directory inside the source"
assert_err_has "overlap"
[ ! -e "$OV/src/backup" ] || fail "the overlapping sync created its destination"
arca_run copy "$OV/src/sub" "$OV/src"
assert_rc 2 "copy into a directory around the source"
arca_run copy "$OV/src" "$OV/src2" --json
assert_rc 0 "copy to a sibling whose name starts like the source"
arca_run sync "s3://$B/$P/ov" "s3://$B/$P/ov/inner"
assert_rc 2 "sync into a prefix inside the source prefix"
assert_err_has "overlap"
arca_run check "$OV/src" "$OV/src" --json
assert_rc 0 "check of a tree against itself (read-only, allowed)"
