#!/bin/bash
# servers.sh: start and stop the servers arca's integration tests talk to.
#
#   scripts/servers.sh start    start them (stopping an earlier set first)
#   scripts/servers.sh stop     stop exactly the processes 'start' recorded
#   scripts/servers.sh env      print 'export NAME=value' lines for the tests
#   scripts/servers.sh status   show what runs
#
# All listen on 127.0.0.1 on free ports the kernel picks:
#   s3rver (patched, tests/servers/patch-s3rver.js), plain HTTP, buckets
#     'arca-test' and 'arca-test2'
#   s3rver over TLS with a self-signed certificate for IP 127.0.0.1, same
#     buckets, its own data directory
#   faults3 (tests/servers/faults3.py), the scripted fault server
#   sshd (OpenSSH, its own config, ed25519 + ECDSA host keys), SFTP only,
#     logging in as the unprivileged account 'arca-test' with a key or a
#     password; client keys and a known_hosts file are made here
#   smbd (Samba, its own config): share 'data' for user arca-test, share
#     'public' for guests
# State (PIDs, logs, data, certificate, servers.env) lives in
# $ARCA_TEST_STATE, default /tmp/arca-test-servers. Run
# scripts/install-deps.sh first.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
servers_dir="$root/tests/servers"
state=${ARCA_TEST_STATE:-/tmp/arca-test-servers}
python=/usr/bin/python3
[ -x "$python" ] || python=python3

die() {
    echo "servers.sh: $*" >&2
    exit 1
}

# The command line of a PID we recorded, or nothing if it is gone.
cmdline_of() {
    { tr '\0' ' ' < "/proc/$1/cmdline"; } 2> /dev/null || true
}

# Our processes only: a recorded PID counts when its command line still names
# the script we started (PIDs get reused).
alive_pids() {
    local name pid cmd
    [ -f "$state/pids" ] || return 0
    while read -r name pid; do
        [ -n "${pid:-}" ] || continue
        cmd=$(cmdline_of "$pid")
        case "$cmd" in
        *s3rver-launcher.js* | *faults3.py* | *"$state/ssh/sshd_config"* | *"$state/smb/smb.conf"*) echo "$pid" ;;
        esac
    done < "$state/pids"
}

# What stop must end: the recorded PIDs, smbd's children (one per client),
# and samba-dcerpcd with its workers, which smbd starts on demand for RPC
# such as listing shares and which detach: every process started with our
# smb.conf.
stop_pids() {
    local pids pid
    pids=$(alive_pids)
    for pid in $pids; do
        case "$(cmdline_of "$pid")" in
        *smbd*) pids="$pids $(pgrep -P "$pid" | tr '\n' ' ' || true)" ;;
        esac
    done
    if [ -f "$state/smb/smb.conf" ]; then
        pids="$pids $(pgrep -f -- "$state/smb/smb.conf" | tr '\n' ' ' || true)"
    fi
    echo $pids
}

do_stop() {
    local pids _
    pids=$(stop_pids)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        for _ in $(seq 50); do
            pids=$(stop_pids)
            [ -z "$pids" ] && break
            sleep 0.1
        done
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.2
        fi
    fi
    if [ -d "$state" ]; then
        rm -rf "$state/s3" "$state/s3tls" "$state/tls" "$state/ssh" "$state/sftp" "$state/smb" \
            "$state/smb-data" "$state/smb-public"
        rm -f "$state/pids" "$state/servers.env" "$state"/*.log "$state"/*.port
        rmdir "$state" 2>/dev/null || true
    fi
}

# wait_port NAME LOGFILE PID: the port a server announced on stdout
wait_port() {
    local name=$1 log=$2 pid=$3 _ port
    for _ in $(seq 300); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n1)
        if [ -n "$port" ]; then
            echo "$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers.sh: $name exited during start; its log ($log):" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "servers.sh: $name did not announce a port within 30 s; its log ($log):" >&2
    tail -n 30 "$log" >&2
    return 1
}

# wait_ready NAME URL [curl options]
wait_ready() {
    local name=$1 url=$2 _
    shift 2
    for _ in $(seq 100); do
        if curl -sf -o /dev/null --max-time 2 --noproxy '*' "$@" "$url"; then
            return 0
        fi
        sleep 0.1
    done
    die "$name does not answer at $url"
}

start_s3rver() {
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    (cd "$servers_dir" && exec node "${node_flags[@]}" s3rver-launcher.js -d "$dir" -a 127.0.0.1 -p 0 --silent \
        --configure-bucket arca-test --configure-bucket arca-test2 --service-endpoint localhost "$@" \
        < /dev/null > "$state/$name.log" 2>&1) &
    echo "$name $!" >> "$state/pids"
}

# A free TCP port on 127.0.0.1 (for servers that cannot announce one).
free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The password of the test account, made once per machine, root-only.
test_password() {
    local f=/var/lib/arca-test/password
    if [ ! -s "$f" ]; then
        mkdir -p -m 0700 /var/lib/arca-test
        (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' 'xy' > "$f")
    fi
    cat "$f"
}

# start_sshd: a private sshd for SFTP on its own port, with its own host
# keys; client keys (ed25519, ECDSA, a passphrase-protected ed25519, and an
# RSA key that libssh2 1.10 cannot use) and a known_hosts file for it.
start_sshd() {
    local d="$state/ssh" k
    mkdir -p "$d" /run/sshd "$state/sftp"
    chown arca-test: "$state/sftp"
    ssh-keygen -q -t ed25519 -N '' -C arca-test-host -f "$d/host_ed25519"
    ssh-keygen -q -t ecdsa -N '' -C arca-test-host -f "$d/host_ecdsa"
    ssh-keygen -q -t ed25519 -N '' -C arca-test -f "$d/id_ed25519"
    ssh-keygen -q -t ecdsa -N '' -C arca-test -f "$d/id_ecdsa"
    ssh-keygen -q -t ed25519 -N 'arca key passphrase' -C arca-test -f "$d/id_ed25519_pass"
    ssh-keygen -q -t rsa -b 2048 -N '' -C arca-test -f "$d/id_rsa"
    for k in id_ed25519 id_ecdsa id_ed25519_pass id_rsa; do
        cat "$d/$k.pub"
    done > "$d/authorized_keys"
    chmod 0644 "$d/authorized_keys"
    sshd_port=$(free_port)
    for k in host_ed25519 host_ecdsa; do
        echo "[127.0.0.1]:$sshd_port $(cut -d' ' -f1,2 "$d/$k.pub")"
    done > "$d/known_hosts"
    cat > "$d/sshd_config" << SSHD
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $d/host_ed25519
HostKey $d/host_ecdsa
PidFile $d/sshd.pid
UsePAM no
StrictModes no
AuthorizedKeysFile $d/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers arca-test
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
MaxStartups 64:30:128
MaxSessions 64
LogLevel VERBOSE
SSHD
    (exec /usr/sbin/sshd -D -f "$d/sshd_config" -E "$state/sshd.log" < /dev/null > /dev/null 2>&1) &
    echo "sshd $!" >> "$state/pids"
}

# start_smbd: a private smbd on its own port: share 'data' (user arca-test,
# password in servers.env) and share 'public' (guests, as arca-test). Not
# --no-process-group: smbd signals its whole process group when it stops,
# which must be its own, not the caller's (scripts/test.sh).
start_smbd() {
    local d="$state/smb"
    mkdir -p "$d"/{private,lock,state,cache,pid,ncalrpc} "$state/smb-data" "$state/smb-public"
    chown arca-test: "$state/smb-data" "$state/smb-public"
    smbd_port=$(free_port)
    cat > "$d/smb.conf" << SMBCONF
[global]
  server role = standalone server
  smb ports = $smbd_port
  interfaces = 127.0.0.1
  bind interfaces only = yes
  private dir = $d/private
  lock directory = $d/lock
  state directory = $d/state
  cache directory = $d/cache
  pid directory = $d/pid
  ncalrpc dir = $d/ncalrpc
  log file = $d/log.%m
  passdb backend = tdbsam:$d/private/passdb.tdb
  map to guest = Bad User
  guest account = arca-test
  server min protocol = SMB2_02
  disable netbios = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
[data]
  path = $state/smb-data
  read only = no
  valid users = arca-test
[public]
  path = $state/smb-public
  read only = no
  guest ok = yes
  guest only = yes
SMBCONF
    printf '%s\n%s\n' "$password" "$password" |
        pdbedit -s "$d/smb.conf" -a -t -u arca-test > "$state/pdbedit.log" 2>&1 ||
        { cat "$state/pdbedit.log" >&2; die "could not add the SMB test user"; }
    (exec smbd -F -s "$d/smb.conf" --debug-stdout < /dev/null > "$state/smbd.log" 2>&1) &
    echo "smbd $!" >> "$state/pids"
}

# wait_tcp NAME PORT PID: until PORT accepts connections
wait_tcp() {
    local name=$1 port=$2 pid=$3 _
    for _ in $(seq 100); do
        if "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2> /dev/null; then
            return 0
        fi
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    echo "servers.sh: $name does not listen on 127.0.0.1:$port" >&2
    return 1
}

do_start() {
    command -v node > /dev/null || die "node is missing; run scripts/install-deps.sh"
    command -v openssl > /dev/null || die "openssl is missing; run scripts/install-deps.sh"
    [ -d "$servers_dir/node_modules/@20minutes/s3rver" ] ||
        die "s3rver is not installed in '$servers_dir'; run scripts/install-deps.sh"
    node "$servers_dir/patch-s3rver.js" > /dev/null || die "patching s3rver failed; run scripts/install-deps.sh"
    [ -x /usr/sbin/sshd ] && command -v smbd > /dev/null && command -v pdbedit > /dev/null ||
        die "sshd or smbd is missing; run scripts/install-deps.sh"
    id arca-test > /dev/null 2>&1 || die "the test account 'arca-test' is missing; run scripts/install-deps.sh"
    [ "$(id -u)" = 0 ] || die "the SFTP and SMB test servers need root (they log in as 'arca-test')"

    do_stop
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    : > "$state/pids"

    # s3rver's continuation tokens no longer need DES once patched, but keep the
    # flag that Node 17+ on OpenSSL 3 needs for it, where the flag is known.
    node_flags=()
    if node --openssl-legacy-provider -e 0 > /dev/null 2>&1; then
        node_flags=(--openssl-legacy-provider)
    fi

    mkdir -p "$state/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$state/tls/key.pem" -out "$state/tls/cert.pem" > "$state/openssl.log" 2>&1 ||
        { cat "$state/openssl.log" >&2; die "could not make the test certificate"; }

    start_s3rver s3 "$state/s3"
    start_s3rver s3tls "$state/s3tls" --key "$state/tls/key.pem" --cert "$state/tls/cert.pem"
    (exec "$python" "$servers_dir/faults3.py" --port 0 < /dev/null > "$state/faults.log" 2>&1) &
    echo "faults $!" >> "$state/pids"
    # every directory above the SFTP and SMB roots must let arca-test through
    chmod 0755 "$state"
    local password sshd_port smbd_port
    password=$(test_password)
    echo "arca-test:$password" | chpasswd || die "could not set the password of the test account"
    start_sshd
    start_smbd

    local s3_port tls_port fault_port
    pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$state/pids"; }
    s3_port=$(wait_port s3rver "$state/s3.log" "$(pid_of s3)") || { do_stop; exit 1; }
    tls_port=$(wait_port "s3rver (TLS)" "$state/s3tls.log" "$(pid_of s3tls)") || { do_stop; exit 1; }
    fault_port=$(wait_port faults3 "$state/faults.log" "$(pid_of faults)") || { do_stop; exit 1; }
    wait_ready s3rver "http://127.0.0.1:$s3_port/"
    wait_ready "s3rver (TLS)" "https://127.0.0.1:$tls_port/" --cacert "$state/tls/cert.pem"
    wait_ready faults3 "http://127.0.0.1:$fault_port/__control/health"
    wait_tcp sshd "$sshd_port" "$(pid_of sshd)" || { tail -n 20 "$state/sshd.log" >&2; do_stop; exit 1; }
    wait_tcp smbd "$smbd_port" "$(pid_of smbd)" || { tail -n 20 "$state/smbd.log" >&2; do_stop; exit 1; }
    local fp
    fp=$(ssh-keygen -l -E sha256 -f "$state/ssh/host_ed25519.pub" | cut -d' ' -f2)

    cat > "$state/servers.env.tmp" << EOF
ARCA_TEST_STATE=$state
ARCA_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
ARCA_TEST_S3_ACCESS_KEY=S3RVER
ARCA_TEST_S3_SECRET_KEY=S3RVER
ARCA_TEST_S3_REGION=us-east-1
ARCA_TEST_S3_BUCKET=arca-test
ARCA_TEST_S3_BUCKET2=arca-test2
ARCA_TEST_S3_DATA_DIR=$state/s3
ARCA_TEST_S3TLS_ENDPOINT=https://127.0.0.1:$tls_port
ARCA_TEST_S3TLS_CA=$state/tls/cert.pem
ARCA_TEST_S3TLS_DATA_DIR=$state/s3tls
ARCA_TEST_FAULT_ENDPOINT=http://127.0.0.1:$fault_port
ARCA_TEST_SFTP_HOST=127.0.0.1
ARCA_TEST_SFTP_PORT=$sshd_port
ARCA_TEST_SFTP_USER=arca-test
ARCA_TEST_SFTP_PASSWORD=$password
ARCA_TEST_SFTP_ROOT=$state/sftp
ARCA_TEST_SFTP_KEY=$state/ssh/id_ed25519
ARCA_TEST_SFTP_KEY_ECDSA=$state/ssh/id_ecdsa
ARCA_TEST_SFTP_KEY_PASS=$state/ssh/id_ed25519_pass
ARCA_TEST_SFTP_KEY_PASSPHRASE='arca key passphrase'
ARCA_TEST_SFTP_KEY_RSA=$state/ssh/id_rsa
ARCA_TEST_SFTP_KNOWN_HOSTS=$state/ssh/known_hosts
ARCA_TEST_SFTP_HOST_FINGERPRINT=$fp
ARCA_TEST_SMB_HOST=127.0.0.1
ARCA_TEST_SMB_PORT=$smbd_port
ARCA_TEST_SMB_USER=arca-test
ARCA_TEST_SMB_PASSWORD=$password
ARCA_TEST_SMB_SHARE=data
ARCA_TEST_SMB_SHARE_DIR=$state/smb-data
ARCA_TEST_SMB_GUEST_SHARE=public
ARCA_TEST_SMB_GUEST_DIR=$state/smb-public
EOF
    mv "$state/servers.env.tmp" "$state/servers.env"
    chmod 0600 "$state/servers.env"
    echo "servers.sh: s3rver :$s3_port, s3rver TLS :$tls_port, faults3 :$fault_port, sshd :$sshd_port, smbd :$smbd_port (env: $state/servers.env)"
}

do_env() {
    [ -f "$state/servers.env" ] || die "no servers running for '$state'; run 'scripts/servers.sh start'"
    sed 's/^/export /' "$state/servers.env"
}

do_status() {
    local name pid
    [ -f "$state/pids" ] || { echo "servers.sh: nothing started in '$state'"; return 0; }
    while read -r name pid; do
        if [ -n "$(cmdline_of "$pid")" ]; then
            echo "$name $pid running"
        else
            echo "$name $pid gone"
        fi
    done < "$state/pids"
}

case "${1:-}" in
start) do_start ;;
stop) do_stop ;;
env) do_env ;;
status) do_status ;;
*)
    echo "usage: scripts/servers.sh start|stop|env|status" >&2
    exit 2
    ;;
esac
