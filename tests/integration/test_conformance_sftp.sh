#!/bin/bash
# test_conformance_sftp: the storage conformance suite (tests/conformance)
# against the SFTP driver on the test sshd, then nothing left on the server.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_SFTP_PORT ARCA_TEST_SFTP_ROOT ARCA_TEST_SFTP_KEY ARCA_TEST_SFTP_KNOWN_HOSTS
dir=$ARCA_TEST_SFTP_ROOT/$(it_prefix)
mkdir -p "$dir"
chown arca-test: "$dir"
it_on_exit "rm -rf '$dir'"
cfg=$(it_conformance_config sftpt type=sftp host=127.0.0.1 port="$ARCA_TEST_SFTP_PORT" \
    user="${ARCA_TEST_SFTP_USER:-arca-test}" key_file="$ARCA_TEST_SFTP_KEY" \
    known_hosts="$ARCA_TEST_SFTP_KNOWN_HOSTS" root="$dir")
it_conformance "sftpt:" "$cfg"
it_conformance_leftovers "$dir"
