#!/bin/bash
# test_backup_sources: archive and mirror backups from every source driver
# (local, S3, SFTP, SMB) restore byte for byte, with mtimes (to the source's
# precision), verify and match their source; archives' SHA256SUMS pass
# `sha256sum -c`; a mirror re-run reads nothing (every source keeps what
# tells an unchanged file). The destination is S3 for the remote sources and
# local for the local one.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY \
    ARCA_TEST_SFTP_PORT ARCA_TEST_SFTP_ROOT ARCA_TEST_SFTP_KEY ARCA_TEST_SFTP_KNOWN_HOSTS \
    ARCA_TEST_SMB_HOST ARCA_TEST_SMB_PORT ARCA_TEST_SMB_USER ARCA_TEST_SMB_PASSWORD \
    ARCA_TEST_SMB_SHARE ARCA_TEST_SMB_SHARE_DIR
it_need_cmd tar zstd sha256sum
use_s3rver
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"

# the tree every source holds
T=$IT_TMP/tree
mkdir -p "$T/d/e" "$T/ü n i"
printf 'a\n' > "$T/a"
: > "$T/empty"
make_file "$T/d/big" 9M
make_file "$T/d/e/small" 4097
printf 'x\n' > "$T/ü n i/日本.txt"
printf 'b\n' > "$T/a-b"
# more small files than archive mode reads ahead from a network source (256),
# around a large one it streams
mkdir -p "$T/many"
for i in $(seq 1 300); do printf '%d\n' "$i" > "$T/many/f$i"; done
make_file "$T/many/f150x" 1100K
i=0
while IFS= read -r -d '' f; do
    touch -d "@$((1600000000 + i * 3607))" "$f"
    i=$((i + 1))
done < <(find "$T" -type f -print0)

SFTP_ROOT=$ARCA_TEST_SFTP_ROOT/$P
SMB_ROOT=$ARCA_TEST_SMB_SHARE_DIR/$P
for d in "$SFTP_ROOT" "$SMB_ROOT"; do
    cp -a "$T" "$d"
    chown -R arca-test: "$d"
done
it_on_exit "rm -rf '$SFTP_ROOT' '$SMB_ROOT'"
arca_run copy "$T" "s3://$B/$P/src"
assert_rc 0 "the S3 source"

CFG=$IT_TMP/config
cat > "$CFG" << EOF
[sftp]
type = sftp
host = 127.0.0.1
port = $ARCA_TEST_SFTP_PORT
user = arca-test
root = $SFTP_ROOT
key_file = $ARCA_TEST_SFTP_KEY
known_hosts = $ARCA_TEST_SFTP_KNOWN_HOSTS

[smb]
type = smb
host = $ARCA_TEST_SMB_HOST
port = $ARCA_TEST_SMB_PORT
user = $ARCA_TEST_SMB_USER
password = $ARCA_TEST_SMB_PASSWORD
share = $ARCA_TEST_SMB_SHARE
EOF
chmod 600 "$CFG"

# file sha256, and mtime to the second (SFTP keeps whole seconds)
meta() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r stat -c '%n %Y %s' &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

check_source() {
    local name=$1 src=$2 dst=$3 mode
    for mode in archive mirror; do
        arca_run backup --config "$CFG" --mode $mode "$src" "$dst-$mode"
        assert_rc 0 "$mode backup from $name"
        rm -rf "$IT_TMP/restore-$name"
        arca_run restore --config "$CFG" "$dst-$mode" "$IT_TMP/restore-$name"
        assert_rc 0 "restore of the $name $mode backup"
        meta "$T" > "$IT_TMP/want"
        meta "$IT_TMP/restore-$name" > "$IT_TMP/got"
        cmp -s "$IT_TMP/want" "$IT_TMP/got" || {
            diff "$IT_TMP/want" "$IT_TMP/got" | head >&2
            fail "the $name $mode backup restores another tree"
        }
        arca_run verify --config "$CFG" --read-data "$dst-$mode"
        assert_rc 0 "verify --read-data of the $name $mode backup"
        arca_run verify --config "$CFG" "$dst-$mode" --against "$src"
        assert_rc 0 "the $name $mode run matches its source"
    done
    arca_run backup --config "$CFG" --mode mirror --json "$src" "$dst-mirror"
    assert_rc 0 "mirror re-run from $name"
    assert_summary files_transferred 0
}

check_source local "$T" "$IT_TMP/dst-local"
X=$IT_TMP/x
mkdir -p "$X"
A=$(find "$IT_TMP/dst-local-archive/archives" -name '*.tar.zst')
(cd "$X" && tar --zstd -xf "$A" && sha256sum -c --quiet "${A%.tar.zst}.SHA256SUMS") ||
    fail "tar + sha256sum -c of the local source's archive"
check_source s3 "s3://$B/$P/src" "s3://$B/$P/dst-s3"
check_source sftp "sftp:" "s3://$B/$P/dst-sftp"
check_source smb "smb:$P" "s3://$B/$P/dst-smb"

note "ok in $(it_elapsed) s"
