#!/bin/bash
# test_conformance_smb: the storage conformance suite (tests/conformance)
# against the SMB driver on the test smbd, then nothing left in the share.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_SMB_PORT ARCA_TEST_SMB_USER ARCA_TEST_SMB_PASSWORD ARCA_TEST_SMB_SHARE \
    ARCA_TEST_SMB_SHARE_DIR
p=$(it_prefix)
dir=$ARCA_TEST_SMB_SHARE_DIR/$p
mkdir -p "$dir"
chown arca-test: "$dir"
it_on_exit "rm -rf '$dir'"
cfg=$(it_conformance_config smbt type=smb host=127.0.0.1 port="$ARCA_TEST_SMB_PORT" \
    user="$ARCA_TEST_SMB_USER" password="$ARCA_TEST_SMB_PASSWORD" share="$ARCA_TEST_SMB_SHARE")
it_conformance "smbt:$p" "$cfg"
it_conformance_leftovers "$dir"
