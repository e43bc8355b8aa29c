#!/bin/bash
# test_sftp: the SFTP driver against a real OpenSSH sshd (scripts/servers.sh),
# logged in as the unprivileged account arca-test.
#
#   round trip local -> SFTP -> local (ordering traps, unicode, spaces, an
#   empty and a 6 MiB file), byte-identical, mtimes kept to the second;
#   listing order = byte order; sync deletes; a re-run transfers nothing
#   every way to log in: ed25519 and ECDSA keys, an encrypted key (passphrase
#   from the config, the environment, --secret-file), a password (config,
#   --secret-file, environment), a pinned host key fingerprint
#   bad input, each one clear line with its exit status and no secret shown:
#   an RSA key (6), a wrong passphrase (6), a wrong password (6), an unknown
#   user (6), an unknown host key (11), a changed host key (11), a wrong
#   pinned fingerprint (11), a closed port (8), a password in the URL (2), a
#   root that is a file (2), a file where a directory must go (per file, 3),
#   a file and a directory we may not read in the middle of a tree (the rest
#   is copied; exit 3)
#   symlinks skipped with a notice, followed with --follow-symlinks
#   a connection killed in the middle of a download and of an upload: arca
#   reconnects and resumes at the byte it had reached; the data is intact
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_SFTP_PORT ARCA_TEST_SFTP_ROOT ARCA_TEST_SFTP_KEY ARCA_TEST_SFTP_KEY_ECDSA \
    ARCA_TEST_SFTP_KEY_PASS ARCA_TEST_SFTP_KEY_PASSPHRASE ARCA_TEST_SFTP_KEY_RSA \
    ARCA_TEST_SFTP_KNOWN_HOSTS ARCA_TEST_SFTP_HOST_FINGERPRINT ARCA_TEST_SFTP_PASSWORD
it_need_cmd ss
PORT=$ARCA_TEST_SFTP_PORT
KH=$ARCA_TEST_SFTP_KNOWN_HOSTS
PW=$ARCA_TEST_SFTP_PASSWORD
# the server-side directory of this test, owned by the login account
ROOT=$ARCA_TEST_SFTP_ROOT/$(it_prefix)
mkdir -p "$ROOT"
chown arca-test: "$ROOT"
it_on_exit "rm -rf '$ROOT'"

CFG=$IT_TMP/config
# section NAME [KEY=VALUE...]: an sftp remote rooted at $ROOT
section() {
    local name=$1 kv
    shift
    {
        echo "[$name]"
        echo "type = sftp"
        echo "host = 127.0.0.1"
        echo "port = $PORT"
        echo "user = arca-test"
        echo "root = $ROOT"
        for kv in "$@"; do
            echo "${kv%%=*} = ${kv#*=}"
        done
        echo
    } >> "$CFG"
}
section s "key_file=$ARCA_TEST_SFTP_KEY" "known_hosts=$KH"
section secdsa "key_file=$ARCA_TEST_SFTP_KEY_ECDSA" "known_hosts=$KH"
section spass "key_file=$ARCA_TEST_SFTP_KEY_PASS" "known_hosts=$KH" "key_passphrase=$ARCA_TEST_SFTP_KEY_PASSPHRASE"
section spassenv "key_file=$ARCA_TEST_SFTP_KEY_PASS" "known_hosts=$KH"
section spw "password=$PW" "known_hosts=$KH"
section spwenv "known_hosts=$KH"
section srsa "key_file=$ARCA_TEST_SFTP_KEY_RSA" "known_hosts=$KH"
section swrongpw "password=not-the-password-1234" "known_hosts=$KH"
section spin "key_file=$ARCA_TEST_SFTP_KEY" "host_fingerprint=$ARCA_TEST_SFTP_HOST_FINGERPRINT"
section spinbad "key_file=$ARCA_TEST_SFTP_KEY" "host_fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
: > "$IT_TMP/empty_known_hosts"
section sunknown "key_file=$ARCA_TEST_SFTP_KEY" "known_hosts=$IT_TMP/empty_known_hosts"
# another host's keys under this host's name
ssh-keygen -q -t ed25519 -N '' -f "$IT_TMP/other_host" -C other
ssh-keygen -q -t ecdsa -N '' -f "$IT_TMP/other_host_ecdsa" -C other
{
    echo "# a comment, an unrelated host and a line libssh2 could not parse"
    echo "example.org ssh-ed25519 $(cut -d' ' -f2 "$IT_TMP/other_host.pub")"
    echo "@cert-authority *.example.org ssh-ed25519 $(cut -d' ' -f2 "$IT_TMP/other_host.pub")"
    echo "[127.0.0.1]:$PORT ssh-ed25519 $(cut -d' ' -f2 "$IT_TMP/other_host.pub")"
    echo "[127.0.0.1]:$PORT ecdsa-sha2-nistp256 $(cut -d' ' -f2 "$IT_TMP/other_host_ecdsa.pub")"
} > "$IT_TMP/changed_known_hosts"
section schanged "key_file=$ARCA_TEST_SFTP_KEY" "known_hosts=$IT_TMP/changed_known_hosts"
# hashed entries (ssh-keygen -H) work like plain ones
cp "$KH" "$IT_TMP/hashed_known_hosts"
ssh-keygen -q -H -f "$IT_TMP/hashed_known_hosts" > /dev/null 2>&1
rm -f "$IT_TMP/hashed_known_hosts.old"
assert_file_lacks "$IT_TMP/hashed_known_hosts" "127.0.0.1" "ssh-keygen -H hashed the names"
section shashed "key_file=$ARCA_TEST_SFTP_KEY" "known_hosts=$IT_TMP/hashed_known_hosts"
section snouser "password=$PW" "known_hosts=$KH"
sed -i '/^\[snouser\]/,/^$/ s/^user = .*/user = no-such-user-here/' "$CFG"
chmod 600 "$CFG"
A=(--config "$CFG")

# --- round trip -----------------------------------------------------------------
SRC=$IT_TMP/src
mkdir -p "$SRC/a" "$SRC/photos" "$SRC/deep/er/and/deeper" "$SRC/with space"
echo 1 > "$SRC/a-b"
echo 2 > "$SRC/a/b"
echo 3 > "$SRC/a0"
echo 4 > "$SRC/photos.zip"
echo 5 > "$SRC/photos/x"
echo 6 > "$SRC/deep/er/and/deeper/f"
echo 7 > "$SRC/with space/file name"
echo 8 > "$SRC/é-ünïcödé-日本"
: > "$SRC/empty"
make_file "$SRC/big" 6M
touch -d '2021-03-04 05:06:07.891' "$SRC/a-b"

arca_run copy "${A[@]}" "$SRC" s:up
assert_rc 0 "copy local -> sftp"
assert_same_tree "$SRC" "$ROOT/up" "local -> sftp"
assert_eq "$(stat -c %Y "$ROOT/up/a-b")" "$(stat -c %Y "$SRC/a-b")" "mtime kept (seconds)"
[ ! -e "$ROOT/up/.a-b.arca-tmp-"* ] 2> /dev/null || fail "a temp file was left behind"
[ -z "$(find "$ROOT/up" -name '*.arca-tmp-*')" ] || fail "temp files left: $(find "$ROOT/up" -name '*.arca-tmp-*')"

arca_run ls "${A[@]}" s:up
assert_rc 0 "ls"
awk '{ $1 = ""; $2 = ""; sub(/^  /, ""); print }' "$IT_OUT" > "$IT_TMP/listed"
(cd "$SRC" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) > "$IT_TMP/want"
cmp -s "$IT_TMP/listed" "$IT_TMP/want" || {
    diff "$IT_TMP/want" "$IT_TMP/listed" >&2
    fail "ls order is not the byte order of the paths"
}

arca_run copy "${A[@]}" s:up "$IT_TMP/down"
assert_rc 0 "copy sftp -> local"
assert_same_tree "$SRC" "$IT_TMP/down" "sftp -> local"
assert_eq "$(stat -c %Y "$IT_TMP/down/a-b")" "$(stat -c %Y "$SRC/a-b")" "mtime back (seconds)"

arca_run copy --json "${A[@]}" "$SRC" s:up
assert_rc 0 "re-run"
assert_summary files_transferred 0
assert_summary files_unchanged 10

rm "$SRC/a0" "$SRC/photos/x"
echo changed > "$SRC/a/b"
arca_run sync --json "${A[@]}" "$SRC" s:up
assert_rc 0 "sync"
assert_summary files_deleted 2
assert_summary files_transferred 1
assert_same_tree "$SRC" "$ROOT/up" "after sync"
[ ! -e "$ROOT/up/photos" ] || fail "sync left the emptied directory 'photos'"

arca_run check "${A[@]}" "$SRC" s:up
assert_rc 0 "check after sync"

# one file as the source, as for local files and S3 objects
arca_run copy "${A[@]}" s:up/big "$IT_TMP/one"
assert_rc 0 "copy one SFTP file"
cmp -s "$SRC/big" "$IT_TMP/one/big" || fail "the single file copied is not the same"
[ "$(ls "$IT_TMP/one")" = big ] || fail "copying one file copied more: $(ls "$IT_TMP/one")"
arca_run sync "${A[@]}" s:up/big "$IT_TMP/one"
assert_rc 2 "sync from one file"
assert_one_line_error "sync needs a directory as source"

# --- ways to log in ------------------------------------------------------------------
for r in secdsa spass spw spin shashed; do
    arca_run ls "${A[@]}" "$r:up"
    assert_rc 0 "log in with [$r]"
    assert_file_has "$IT_OUT" "a-b" "[$r] lists"
done
ARCA_SFTP_KEY_PASSPHRASE=$ARCA_TEST_SFTP_KEY_PASSPHRASE arca_run ls "${A[@]}" spassenv:up
assert_rc 0 "key passphrase from ARCA_SFTP_KEY_PASSPHRASE"
(umask 077 && echo "$ARCA_TEST_SFTP_KEY_PASSPHRASE" > "$IT_TMP/passphrase")
arca_run ls "${A[@]}" --secret-file "$IT_TMP/passphrase" spassenv:up
assert_rc 0 "key passphrase from --secret-file"
ARCA_SFTP_PASSWORD=$PW arca_run ls "${A[@]}" spwenv:up
assert_rc 0 "password from ARCA_SFTP_PASSWORD"
(umask 077 && echo "$PW" > "$IT_TMP/pw")
arca_run ls "${A[@]}" --secret-file "$IT_TMP/pw" spwenv:up
assert_rc 0 "password from --secret-file"
assert_no_secret "$PW"
arca_run ls --known-hosts "$KH" --key-file "$ARCA_TEST_SFTP_KEY" "sftp://arca-test@127.0.0.1:$PORT$ROOT/up"
assert_rc 0 "an sftp:// URL with flags"
assert_file_has "$IT_OUT" "photos.zip" "URL listing"

# --- bad input ------------------------------------------------------------------------
arca_run ls "${A[@]}" srsa:up
assert_rc 6 "RSA key"
assert_one_line_error "rsa keys need rsa-sha2, which this libssh2 lacks; use an ed25519 key"

echo wrong-passphrase > "$IT_TMP/badpass"
chmod 600 "$IT_TMP/badpass"
arca_run ls "${A[@]}" --secret-file "$IT_TMP/badpass" spassenv:up
assert_rc 6 "wrong passphrase"
assert_one_line_error "wrong passphrase"
arca_run ls "${A[@]}" spassenv:up
assert_rc 6 "no passphrase"
assert_one_line_error "is encrypted; give its passphrase"

arca_run ls "${A[@]}" swrongpw:up
assert_rc 6 "wrong password"
assert_one_line_error "as 'arca-test' failed: wrong password or unknown user"
assert_no_secret "not-the-password-1234"

arca_run ls "${A[@]}" snouser:up
assert_rc 6 "unknown user"
assert_one_line_error "as 'no-such-user-here' failed: wrong password or unknown user"
assert_no_secret "$PW"

fp=$ARCA_TEST_SFTP_HOST_FINGERPRINT
arca_run ls "${A[@]}" sunknown:up
assert_rc 11 "unknown host key"
assert_one_line_error "is not known (ssh-ed25519 $fp)"
assert_err_has "host_fingerprint = $fp" "ssh-keyscan -p $PORT 127.0.0.1"

arca_run ls "${A[@]}" schanged:up
assert_rc 11 "changed host key"
assert_one_line_error "has changed: it is now ssh-ed25519 $fp"
assert_err_has "$IT_TMP/changed_known_hosts:4" "may be an attack"

arca_run ls "${A[@]}" spinbad:up
assert_rc 11 "wrong pinned fingerprint"
assert_one_line_error "not the pinned SHA256:AAAA"

closed=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
arca_run ls --known-hosts "$KH" --key-file "$ARCA_TEST_SFTP_KEY" "sftp://arca-test@127.0.0.1:$closed/x"
assert_rc 8 "closed port"
assert_one_line_error "cannot connect to SFTP server 127.0.0.1:$closed: Connection refused"
assert_le "${IT_LAST_SECONDS%.*}" 10 "a closed port fails fast"

arca_run ls "sftp://arca-test:hunter2-in-url@127.0.0.1:$PORT/x"
assert_rc 2 "password in the URL"
assert_one_line_error "holds a password"
assert_no_secret "hunter2-in-url"

arca_run copy "${A[@]}" "$SRC" s:up/a-b
assert_rc 2 "destination root is a file"
assert_one_line_error "is a file, not a directory"

# a file where a directory must go: per file, the rest goes on
mkdir -p "$ROOT/clash"
echo file > "$ROOT/clash/a"
chown -R arca-test: "$ROOT/clash"
arca_run copy --json "${A[@]}" "$SRC" s:clash
assert_rc 3 "file in the way of a directory"
assert_summary status partial
assert_file_has "$IT_OUT" "is a file, not a directory" "names the clash"
[ -f "$ROOT/clash/big" ] || fail "the rest of the tree was not copied past the clash"

# unreadable file and directory in the middle of a tree
P=$ROOT/perm
mkdir -p "$P/d1" "$P/locked" "$P/z"
echo ok1 > "$P/d1/ok"
echo secret > "$P/d1/unreadable"
echo hidden > "$P/locked/inside"
echo ok2 > "$P/z/ok"
chown -R arca-test: "$P"
chmod 000 "$P/d1/unreadable" "$P/locked"
arca_run copy --json "${A[@]}" s:perm "$IT_TMP/perm"
chmod 755 "$P/locked"
assert_rc 3 "unreadable file and directory"
assert_summary status partial
[ -f "$IT_TMP/perm/d1/ok" ] && [ -f "$IT_TMP/perm/z/ok" ] || fail "readable files were not copied"
[ ! -e "$IT_TMP/perm/d1/unreadable" ] || fail "the unreadable file was created"
assert_file_has "$IT_OUT" "permission denied" "says permission denied"
assert_file_has "$IT_OUT" "d1/unreadable" "names the unreadable file"

# --- symlinks --------------------------------------------------------------------------
L=$ROOT/links
mkdir -p "$L/real"
echo target > "$L/real/t"
ln -s real/t "$L/link-to-file"
ln -s real "$L/link-to-dir"
ln -s nowhere "$L/dangling"
chown -R -h arca-test: "$L"
arca_run copy --json "${A[@]}" s:links "$IT_TMP/links1"
assert_rc 0 "symlinks skipped"
assert_eq "$(file_events skipped | tr '\n' ' ')" "dangling link-to-dir link-to-file " "skipped links"
[ ! -e "$IT_TMP/links1/link-to-file" ] || fail "a symlink was copied without --follow-symlinks"
arca_run copy --json --follow-symlinks "${A[@]}" s:links "$IT_TMP/links2"
assert_rc 0 "symlinks followed"
assert_eq "$(cat "$IT_TMP/links2/link-to-file")" target "followed file link"
assert_eq "$(cat "$IT_TMP/links2/link-to-dir/t")" target "followed directory link"
assert_eq "$(file_events skipped | tr '\n' ' ')" "dangling " "a dangling link is still skipped"

# --- connection loss: resume -------------------------------------------------------------
make_file "$ROOT/resume/big" 24M
chown -R arca-test: "$ROOT/resume"
it_resume_after_kill download "$PORT" s:resume "$IT_TMP/resume" "$ROOT/resume/big" "$IT_TMP/resume/big" "${A[@]}"
make_file "$IT_TMP/upsrc/big" 24M
it_resume_after_kill upload "$PORT" "$IT_TMP/upsrc" s:resume-up "$IT_TMP/upsrc/big" "$ROOT/resume-up/big" "${A[@]}"
[ -z "$(find "$ROOT/resume-up" -name '*.arca-tmp-*')" ] || fail "temp files left after the resumed upload"

# --- a large file read as several ranges at once ------------------------------------------
# 4 MiB ranges (TRANSFER_STREAM_CHUNK): 9 MiB + 5 bytes is three ranges, the
# last one short
make_file "$ROOT/streams/big" 9M
printf 'tail!' >> "$ROOT/streams/big"
chown -R arca-test: "$ROOT/streams"
arca_run copy -vv --json --read-streams 3 --read-stream-cutoff 1M "${A[@]}" s:streams "$IT_TMP/streams"
assert_rc 0 "copy with --read-streams"
cmp -s "$ROOT/streams/big" "$IT_TMP/streams/big" || fail "multi-stream read: data differs"
assert_file_has "$IT_ERR" "reading 'big' as 3 ranges at once" "the file was read as ranges"
arca_run copy -vv --read-streams 1 --read-stream-cutoff 1M "${A[@]}" s:streams "$IT_TMP/streams1"
assert_rc 0 "copy with --read-streams 1"
assert_file_lacks "$IT_ERR" "ranges at once" "--read-streams 1 reads one stream"
arca_run copy --read-streams 0 "${A[@]}" s:streams "$IT_TMP/streams0"
assert_rc 2 "--read-streams 0"
# every connection lost (streams reading, or idle in the pool while the rate
# limit holds the consumer back with 3 x 4 MiB fetched ahead): each range
# reconnects where it was, the file is whole
"$ARCA_BIN" copy -v --transfers 1 --bwlimit 8M --read-streams 3 --read-stream-cutoff 1M "${A[@]}" \
    s:resume "$IT_TMP/resume-ms" > "$IT_TMP/ms.out" 2> "$IT_TMP/ms.err" &
ms_pid=$!
it_track_pid "$ms_pid"
sleep 1.2
it_kill_peer "$PORT" "$ms_pid" all
ms_rc=0
wait "$ms_pid" || ms_rc=$?
[ "$ms_rc" -eq 0 ] || { cat "$IT_TMP/ms.err" >&2; fail "multi-stream download after a lost connection: exit $ms_rc"; }
cmp -s "$ROOT/resume/big" "$IT_TMP/resume-ms/big" || fail "multi-stream download after a lost connection: data differs"
assert_file_has "$IT_TMP/ms.err" "reconnecting" "the lost stream reconnected"

note "ok in $(it_elapsed) s"
