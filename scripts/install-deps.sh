#!/bin/bash
# install-deps.sh: install everything arca's build and tests need, on Debian 12.
#
# Idempotent and quiet: packages already present are left alone, 'apt-get
# update' runs only when a package has to be fetched, the npm packages of
# tests/servers/ are installed only when package-lock.json changed, and
# s3rver is (re)patched every time (tests/servers/patch-s3rver.js).
# Runs as root, or through sudo when that is available.
#
# usage: install-deps.sh [--build-only]
#   --build-only   only what building arca needs (scripts/run.sh)
set -euo pipefail

build_only=0
case "${1:-}" in
"") ;;
--build-only) build_only=1 ;;
*)
    echo "usage: install-deps.sh [--build-only]" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
servers_dir="$root/tests/servers"

build_packages=(
    build-essential cmake pkg-config
    libcurl4-openssl-dev libssl-dev libexpat1-dev libjansson-dev libzstd-dev zlib1g-dev
    libssh2-1-dev libsmbclient-dev libsodium-dev
)
packages=(
    "${build_packages[@]}"
    libcmocka-dev clang-format git
    # test servers and their tools
    python3 python3-botocore curl openssl ca-certificates jq procps time xxd
    openssh-server openssh-client samba smbclient passwd iproute2
    # independent tools the integration tests check arca's output with
    rclone restic zstd gzip tar coreutils sqlite3
)

log=$(mktemp /tmp/arca-install-deps.XXXXXX)
trap 'rm -f "$log"' EXIT

die() {
    echo "install-deps.sh: $*" >&2
    exit 1
}

# run CMD...: quiet unless it fails, then its output is shown
run() {
    if ! "$@" > "$log" 2>&1; then
        cat "$log" >&2
        die "'$*' failed"
    fi
}

as_root=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo > /dev/null; then
        as_root=(sudo)
    fi
fi

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"
    done
}

apt_install() {
    local missing
    missing=$(missing_packages "$@" | tr '\n' ' ')
    missing=${missing% }
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ] && [ ${#as_root[@]} = 0 ]; then
        die "missing packages: $missing; run this script as root"
    fi
    echo "install-deps.sh: installing $missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-cache show --no-all-versions $missing > /dev/null 2>&1; then
        run "${as_root[@]}" apt-get update -qq
    fi
    # shellcheck disable=SC2086
    if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends $missing > "$log" 2>&1; then
        # stale package lists: refresh once and retry
        run "${as_root[@]}" apt-get update -qq
        # shellcheck disable=SC2086
        run "${as_root[@]}" apt-get install -y -qq --no-install-recommends $missing
    fi
}

command -v dpkg-query > /dev/null || die "this script needs Debian (dpkg, apt-get)"
if [ "$build_only" = 1 ]; then
    apt_install "${build_packages[@]}"
    exit 0
fi
apt_install "${packages[@]}"

# Node.js and npm: a fresh Debian 12 has neither; an image that ships its own
# Node.js (which bundles npm) conflicts with Debian's npm package.
if ! command -v npm > /dev/null || ! command -v node > /dev/null; then
    apt_install nodejs npm
fi

# s3rver and friends, pinned by tests/servers/package-lock.json
stamp="$servers_dir/node_modules/.arca-installed"
want=$(cat "$servers_dir/package.json" "$servers_dir/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] ||
    [ ! -f "$servers_dir/node_modules/@20minutes/s3rver/package.json" ]; then
    echo "install-deps.sh: installing the npm packages of tests/servers"
    (cd "$servers_dir" && run npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
fi
if ! node "$servers_dir/patch-s3rver.js" > "$log" 2>&1; then
    # patched by an older patch-s3rver.js: start again from a clean install
    echo "install-deps.sh: reinstalling the npm packages of tests/servers"
    (cd "$servers_dir" && run npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
    run node "$servers_dir/patch-s3rver.js"
fi

# The unprivileged account the SFTP and SMB test servers log in as (a root
# login would bypass the file permissions the tests check). scripts/servers.sh
# gives it a random password (kept root-only in /var/lib/arca-test/) that
# only its private sshd on 127.0.0.1 accepts: the shell is nologin.
if ! id arca-test > /dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] && [ ${#as_root[@]} = 0 ]; then
        die "the test account 'arca-test' is missing; run this script as root"
    fi
    run "${as_root[@]}" useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin arca-test
fi
