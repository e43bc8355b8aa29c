#!/bin/bash
# test_smb: the SMB driver against a real Samba smbd (scripts/servers.sh),
# logged in as the unprivileged account arca-test, or as guest.
#
#   libsmbclient is loaded only for SMB remotes: 'arca ls LOCAL' and
#   'arca --help' never open it (LD_DEBUG=files), an SMB remote does; a
#   broken or missing library gives the one-line install hint (exit 4)
#   round trip local -> SMB -> local (ordering traps, unicode, '%', '#',
#   ';', spaces..., an empty and a 20 MiB file) compared with sha256sum,
#   mtimes kept to the microsecond both ways; listing order = byte order; a
#   re-run transfers nothing; check agrees; sync deletes on SMB and prunes
#   emptied directories; an overwritten file is replaced
#   names SMB cannot hold ('?', a trailing '.') fail per file (exit 3)
#   the guest share; the password from the config, ARCA_SMB_PASSWORD,
#   --secret-file, never shown
#   bad input, each one clear line with its exit status: a wrong password
#   (6), an unknown user that the server maps to guest (7), guest on a
#   share for users (7), a share that does not exist (5), a destination
#   root that is a file (2), a file where a directory must go (per file,
#   3), a closed port (8), a server that never answers (8, after the
#   timeout), a file and a directory we may not read in the middle of a
#   tree (the rest is copied; exit 3)
#   a connection killed in the middle of a download and of an upload: arca
#   reconnects and resumes at the byte it had reached; the data is intact
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_SMB_HOST ARCA_TEST_SMB_PORT ARCA_TEST_SMB_USER ARCA_TEST_SMB_PASSWORD \
    ARCA_TEST_SMB_SHARE ARCA_TEST_SMB_SHARE_DIR ARCA_TEST_SMB_GUEST_SHARE ARCA_TEST_SMB_GUEST_DIR
it_need_cmd ss
HOST=$ARCA_TEST_SMB_HOST
PORT=$ARCA_TEST_SMB_PORT
PW=$ARCA_TEST_SMB_PASSWORD
SHARE=$ARCA_TEST_SMB_SHARE
PFX=$(it_prefix)
# the server-side directories of this test, owned by the login account
ROOT=$ARCA_TEST_SMB_SHARE_DIR/$PFX
GROOT=$ARCA_TEST_SMB_GUEST_DIR/$PFX
mkdir -p "$ROOT" "$GROOT"
chown arca-test: "$ROOT" "$GROOT"
it_on_exit "chmod -R u+rwx '$ROOT'; rm -rf '$ROOT' '$GROOT'"

CFG=$IT_TMP/config
# section NAME [KEY=VALUE...]: an smb remote on the test server
section() {
    local name=$1 kv
    shift
    {
        echo "[$name]"
        echo "type = smb"
        echo "host = $HOST"
        echo "port = $PORT"
        for kv in "$@"; do
            echo "${kv%%=*} = ${kv#*=}"
        done
        echo
    } >> "$CFG"
}
section s "user=$ARCA_TEST_SMB_USER" "password=$PW"
section sd "user=$ARCA_TEST_SMB_USER" "password=$PW" "share=$SHARE"
section senv "user=$ARCA_TEST_SMB_USER"
section swrong "user=$ARCA_TEST_SMB_USER" "password=not-the-password-1234"
section snouser "user=no-such-user-here" "password=$PW"
section sguest
chmod 600 "$CFG"
A=(--config "$CFG")
R=s:$SHARE/$PFX

# temp_files DIR: arca temp files left below DIR
temp_files() {
    find "$1" -name '*.arca-tmp-*'
}

# --- libsmbclient is loaded only for SMB -------------------------------------------
mkdir -p "$IT_TMP/local"
echo x > "$IT_TMP/local/x"
LD_DEBUG=files "$ARCA_BIN" ls "$IT_TMP/local" > /dev/null 2> "$IT_TMP/ld.local" ||
    fail "arca ls of a local directory failed: $(tail -n 3 "$IT_TMP/ld.local")"
LD_DEBUG=files "$ARCA_BIN" --help > /dev/null 2> "$IT_TMP/ld.help" || fail "arca --help failed"
grep -q 'file=libcurl' "$IT_TMP/ld.local" || fail "LD_DEBUG=files shows no libraries being loaded; cannot tell what arca loads"
assert_file_lacks "$IT_TMP/ld.local" "libsmbclient" "libraries loaded by 'arca ls LOCAL'"
assert_file_lacks "$IT_TMP/ld.help" "libsmbclient" "libraries loaded by 'arca --help'"
LD_DEBUG=files "$ARCA_BIN" ls "${A[@]}" sguest:"$ARCA_TEST_SMB_GUEST_SHARE" > /dev/null 2> "$IT_TMP/ld.smb" ||
    fail "arca ls of the guest share failed: $(grep -v '^ *[0-9]*:' "$IT_TMP/ld.smb" | tail -n 3)"
grep -q 'file=libsmbclient.so.0 .*dynamically loaded' "$IT_TMP/ld.smb" ||
    fail "an SMB remote did not dlopen libsmbclient.so.0"
# a library that cannot be loaded (an empty file first in the search path)
mkdir -p "$IT_TMP/nolib"
: > "$IT_TMP/nolib/libsmbclient.so.0"
LD_LIBRARY_PATH=$IT_TMP/nolib arca_run ls "${A[@]}" "$R"
assert_rc 4 "libsmbclient missing"
assert_one_line_error "SMB needs libsmbclient, which is not installed; install the Debian package libsmbclient"

# --- round trip ------------------------------------------------------------------------
SRC=$IT_TMP/src
mkdir -p "$SRC/a" "$SRC/photos" "$SRC/deep/er/and/deeper" "$SRC/with space" "$SRC/dé jà"
echo 1 > "$SRC/a-b"
echo 2 > "$SRC/a/b"
echo 3 > "$SRC/a0"
echo 4 > "$SRC/photos.zip"
echo 5 > "$SRC/photos/x"
echo 6 > "$SRC/deep/er/and/deeper/f"
echo 7 > "$SRC/with space/file name"
echo 8 > "$SRC/é-ünïcödé-日本"
echo 9 > "$SRC/dé jà/vu ü"
for n in 'per%cent' 'per%20cent' 'hash#tag' 'semi;colon' 'amp&and' 'plus+plus' "quote'single" \
    'at@sign' 'dollar$' 'bang!' 'eq=sign' 'paren(s)' 'brack[et]' 'tilde~' 'comma,' ' lead'; do
    echo "$n" > "$SRC/$n"
done
: > "$SRC/empty"
make_file "$SRC/big" 20M
touch -d '2021-03-04 05:06:07.891234567' "$SRC/a-b"
touch -d '1999-12-31 23:59:59.5' "$SRC/big"
NFILES=$(find "$SRC" -type f | wc -l)

arca_run copy "${A[@]}" "$SRC" "$R/up"
assert_rc 0 "copy local -> smb"
assert_same_tree "$SRC" "$ROOT/up" "local -> smb"
[ -z "$(temp_files "$ROOT/up")" ] || fail "temp files left: $(temp_files "$ROOT/up")"
# SMB keeps mtimes to 100 ns, libsmbclient sets them to the microsecond
src_mt=$(mtime_ns "$SRC/a-b")
assert_eq "$(mtime_ns "$ROOT/up/a-b")" "${src_mt%???}000" "mtime on the server (to the microsecond)"
assert_eq "$(mtime_ns "$ROOT/up/big")" "$(mtime_ns "$SRC/big")" "mtime of the big file"

arca_run ls --json "${A[@]}" "$R/up"
assert_rc 0 "ls"
jq -r 'select(.type == "entry") | .path' "$IT_OUT" > "$IT_TMP/listed"
(cd "$SRC" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) > "$IT_TMP/want"
cmp -s "$IT_TMP/listed" "$IT_TMP/want" || {
    diff "$IT_TMP/want" "$IT_TMP/listed" >&2
    fail "ls order is not the byte order of the paths"
}

arca_run copy "${A[@]}" "$R/up" "$IT_TMP/down"
assert_rc 0 "copy smb -> local"
assert_same_tree "$SRC" "$IT_TMP/down" "smb -> local"
assert_eq "$(mtime_ns "$IT_TMP/down/a-b")" "${src_mt%???}000" "mtime back (to the microsecond)"
assert_eq "$(stat -c %s "$IT_TMP/down/empty")" 0 "empty file"

# one file as the source, as for local files and S3 objects
arca_run copy "${A[@]}" "$R/up/a-b" "$IT_TMP/one"
assert_rc 0 "copy one SMB file"
cmp -s "$SRC/a-b" "$IT_TMP/one/a-b" || fail "the single file copied is not the same"
[ "$(ls "$IT_TMP/one")" = a-b ] || fail "copying one file copied more: $(ls "$IT_TMP/one")"

arca_run copy --json "${A[@]}" "$SRC" "$R/up"
assert_rc 0 "re-run"
assert_summary files_transferred 0
assert_summary files_unchanged "$NFILES"

arca_run check "${A[@]}" "$SRC" "$R/up"
assert_rc 0 "check local vs smb"

# an overwrite replaces the file (the old version is moved aside, then deleted)
echo 'bravo, changed' > "$SRC/a/b"
rm "$SRC/a0" "$SRC/photos/x" "$SRC/deep/er/and/deeper/f"
arca_run sync --json "${A[@]}" "$SRC" "$R/up"
assert_rc 0 "sync"
assert_summary files_deleted 3
assert_summary files_transferred 1
assert_same_tree "$SRC" "$ROOT/up" "after sync"
[ ! -e "$ROOT/up/photos" ] || fail "sync left the emptied directory 'photos'"
[ ! -e "$ROOT/up/deep" ] || fail "sync left the emptied directories 'deep/er/and/deeper'"
[ -z "$(temp_files "$ROOT/up")" ] || fail "temp files left after the overwrite: $(temp_files "$ROOT/up")"

# a named remote that fixes the share
arca_run ls "${A[@]}" "sd:$PFX/up"
assert_rc 0 "remote with share = $SHARE"
assert_file_has "$IT_OUT" "photos.zip" "listing through [sd]"

# --- passwords -------------------------------------------------------------------------
ARCA_SMB_PASSWORD=$PW arca_run ls "${A[@]}" "senv:$SHARE/$PFX/up"
assert_rc 0 "password from ARCA_SMB_PASSWORD"
(umask 077 && echo "$PW" > "$IT_TMP/pw")
arca_run ls "${A[@]}" --secret-file "$IT_TMP/pw" "senv:$SHARE/$PFX/up"
assert_rc 0 "password from --secret-file"
assert_no_secret "$PW"
ARCA_SMB_PASSWORD=$PW arca_run ls "smb://arca-test@$HOST:$PORT/$SHARE/$PFX/up"
assert_rc 0 "an smb:// URL"
assert_file_has "$IT_OUT" "a-b" "URL listing"

# --- guest -------------------------------------------------------------------------------
G=$IT_TMP/gsrc
mkdir -p "$G/sub"
echo guest > "$G/sub/g.txt"
make_file "$G/blob" 100K
arca_run copy "$G" "smb://$HOST:$PORT/$ARCA_TEST_SMB_GUEST_SHARE/$PFX/g"
assert_rc 0 "copy to the guest share"
assert_same_tree "$G" "$GROOT/g" "guest upload"
arca_run copy "${A[@]}" "sguest:$ARCA_TEST_SMB_GUEST_SHARE/$PFX/g" "$IT_TMP/gdown"
assert_rc 0 "copy from the guest share"
assert_same_tree "$G" "$IT_TMP/gdown" "guest download"

# --- names SMB cannot hold -------------------------------------------------------------------
B=$IT_TMP/badnames
mkdir -p "$B"
echo ok > "$B/ok.txt"
echo q > "$B/what?.txt"
echo d > "$B/trailing."
arca_run copy --json "${A[@]}" "$B" "$R/bad"
assert_rc 3 "names SMB cannot hold"
assert_summary files_failed 2
assert_file_has "$IT_OUT" "SMB names cannot contain" "says why"
[ -f "$ROOT/bad/ok.txt" ] || fail "the valid name was not copied"

# --- bad input -------------------------------------------------------------------------------
arca_run ls "${A[@]}" "swrong:$SHARE/$PFX/up"
assert_rc 6 "wrong password"
assert_one_line_error "SMB logon to $HOST:$PORT as 'arca-test' failed: wrong user name or password"
assert_no_secret "not-the-password-1234"

arca_run copy "${A[@]}" "$SRC" "swrong:$SHARE/$PFX/up"
assert_rc 6 "wrong password (copy)"
assert_err_has "wrong user name or password"

# smbd maps unknown users to guest (map to guest = Bad User): the logon
# works, the share refuses them
arca_run ls "${A[@]}" "snouser:$SHARE/$PFX/up"
assert_rc 7 "unknown user"
assert_one_line_error "SMB share '$SHARE' on $HOST:$PORT refused user 'no-such-user-here'"
assert_no_secret "$PW"

arca_run ls "smb://$HOST:$PORT/$SHARE/$PFX/up"
assert_rc 7 "guest on a share for users"
assert_one_line_error "does not accept guests"

arca_run ls "${A[@]}" "s:no-such-share/x"
assert_rc 5 "share that does not exist"
assert_one_line_error "SMB share 'no-such-share' does not exist on $HOST:$PORT"

arca_run ls "${A[@]}" "$R/not-there"
assert_rc 5 "path that does not exist"
assert_one_line_error "does not exist"

arca_run copy "${A[@]}" "$SRC" "$R/up/a-b"
assert_rc 2 "destination root is a file"
assert_one_line_error "is a file, not a directory"

arca_run copy "${A[@]}" "$SRC" "$R/up/a-b/below"
assert_rc 2 "destination root below a file"
assert_one_line_error "is a file; give a directory"

# a file where a directory must go: per file, the rest goes on
mkdir -p "$ROOT/clash"
echo file > "$ROOT/clash/a"
chown -R arca-test: "$ROOT/clash"
arca_run copy --json "${A[@]}" "$SRC" "$R/clash"
assert_rc 3 "file in the way of a directory"
assert_summary status partial
assert_file_has "$IT_OUT" "is a file, not a directory" "names the clash"
[ -f "$ROOT/clash/big" ] || fail "the rest of the tree was not copied past the clash"

closed=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ARCA_SMB_PASSWORD=$PW arca_run ls "smb://arca-test@127.0.0.1:$closed/$SHARE/x"
assert_rc 8 "closed port"
assert_one_line_error "cannot connect to SMB server 127.0.0.1:$closed: connection refused"
assert_le "${IT_LAST_SECONDS%.*}" 10 "a closed port fails fast"

# a server that accepts the connection and never answers
hang_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $hang_port)); s.listen(8); time.sleep(60)" &
it_track_pid $!
section shang "user=$ARCA_TEST_SMB_USER" "password=$PW" "timeout=2"
sed -i "/^\[shang\]/,/^\$/ s/^port = .*/port = $hang_port/" "$CFG"
sleep 0.3
arca_run ls "${A[@]}" "shang:$SHARE/x"
assert_rc 8 "server that never answers"
assert_one_line_error "SMB server 127.0.0.1:$hang_port did not answer within 2 s"
assert_le "${IT_LAST_SECONDS%.*}" 20 "the timeout is kept"

# unreadable file and directory in the middle of a tree
P=$ROOT/perm
mkdir -p "$P/d1" "$P/locked" "$P/z"
echo ok1 > "$P/d1/ok"
echo secret > "$P/d1/unreadable"
echo hidden > "$P/locked/inside"
echo ok2 > "$P/z/ok"
chown -R arca-test: "$P"
chmod 000 "$P/d1/unreadable" "$P/locked"
arca_run copy --json "${A[@]}" "$R/perm" "$IT_TMP/perm"
chmod 755 "$P/locked"
assert_rc 3 "unreadable file and directory"
assert_summary status partial
[ -f "$IT_TMP/perm/d1/ok" ] && [ -f "$IT_TMP/perm/z/ok" ] || fail "readable files were not copied"
[ ! -e "$IT_TMP/perm/d1/unreadable" ] || fail "the unreadable file was created"
assert_file_has "$IT_OUT" "permission denied" "says permission denied"
assert_file_has "$IT_OUT" "d1/unreadable" "names the unreadable file"
assert_file_has "$IT_OUT" "locked" "names the unreadable directory"

# --- connection loss: resume -------------------------------------------------------------
make_file "$ROOT/resume/big" 24M
chown -R arca-test: "$ROOT/resume"
it_resume_after_kill download "$PORT" "$R/resume" "$IT_TMP/resume" "$ROOT/resume/big" "$IT_TMP/resume/big" "${A[@]}"
make_file "$IT_TMP/upsrc/big" 24M
it_resume_after_kill upload "$PORT" "$IT_TMP/upsrc" "$R/resume-up" "$IT_TMP/upsrc/big" "$ROOT/resume-up/big" "${A[@]}"
[ -z "$(temp_files "$ROOT/resume-up")" ] || fail "temp files left after the resumed upload"

note "ok in $(it_elapsed) s"
