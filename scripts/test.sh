#!/bin/bash
# test.sh: THE test command. From any directory, on a fresh Debian 12 or
# here, again and again:
#
#   1. install the build and test dependencies (scripts/install-deps.sh)
#   2. build with -DARCA_WERROR=ON in build/
#   3. build with ASan+UBSan in build-asan/ and run its unit tests (a
#      failure there is reported at the end; the other tests still run)
#   4. start the test servers (scripts/servers.sh), stopped by PID on exit
#   5. run every test, unit and integration, in build/ (ctest -j2), with
#      every AWS_* and ARCA_* variable of the caller's environment unset
#
# Exits non-zero when anything failed. The last test summary printed is
# CTest's for step 5. Extra arguments go to that ctest, e.g.
#   scripts/test.sh -R integration/test_servers
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp /tmp/arca-test-log.XXXXXX) || exit 1
trap 'rm -f "$log"' EXIT
# build directories, relative to the project root (ARCA_TEST_BUILD_DIR=dir
# uses dir/ and dir-asan/ instead)
build=${ARCA_TEST_BUILD_DIR:-build}
asan=$build-asan

step() { printf '\n== %s\n' "$*"; }
die() {
    printf '\nscripts/test.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

step "dependencies"
bash scripts/install-deps.sh || die "installing dependencies"

step "build ($build/, -Werror)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DARCA_WERROR=ON -DARCA_SANITIZE=OFF > "$log" 2>&1 ||
    { cat "$log"; die "configuring $build/"; }
cmake --build "$build" -j"$jobs" || die "building $build/"

step "build ($asan/, ASan+UBSan, -Werror) and its unit tests"
cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=Debug -DARCA_WERROR=ON -DARCA_SANITIZE=ON > "$log" 2>&1 ||
    { cat "$log"; die "configuring $asan/"; }
cmake --build "$asan" -j"$jobs" || die "building $asan/"
# allocator_may_return_null: an impossible allocation fails as with glibc
# (tests of overflow checks rely on it) instead of aborting
asan_failed=0
(cd "$asan" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -L unit --output-on-failure -j"$jobs") || asan_failed=1

# The tests see only the variables below: no credentials, endpoints, CA
# bundles or settings of the caller's (AWS_CA_BUNDLE is set on some machines
# and breaks rclone), and no proxies (every target is 127.0.0.1).
for v in $(compgen -e); do
    case "$v" in
    AWS_* | ARCA_* | http_proxy | https_proxy | HTTP_PROXY | HTTPS_PROXY | all_proxy | ALL_PROXY) unset "$v" ;;
    esac
done
ARCA_TEST_STATE=$(mktemp -d /tmp/arca-test-servers.XXXXXX) || die "mktemp"
export ARCA_TEST_STATE

step "test servers"
# shellcheck disable=SC2317  # (called by the trap)
stop_servers() {
    bash "$root/scripts/servers.sh" stop || echo "scripts/test.sh: stopping the test servers failed" >&2
    rm -f "$log"
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash scripts/servers.sh start || die "starting the test servers"
set -a
# shellcheck disable=SC1091
. "$ARCA_TEST_STATE/servers.env"
set +a

step "all tests ($build/)"
cd "$build" || die "no $build/"
rc=0
ctest --output-on-failure -j2 "$@" || rc=$?
if [ "$asan_failed" = 1 ]; then
    printf '\nscripts/test.sh: FAILED: unit tests under ASan+UBSan (in %s/, see above)\n' "$asan" >&2
    [ "$rc" = 0 ] && rc=1
fi
exit "$rc"
