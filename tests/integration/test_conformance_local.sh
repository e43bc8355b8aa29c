#!/bin/bash
# test_conformance_local: the storage conformance suite (tests/conformance)
# against the local driver, then nothing left in its directory.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_conformance "$IT_TMP/root"
it_conformance_leftovers "$IT_TMP/root"
