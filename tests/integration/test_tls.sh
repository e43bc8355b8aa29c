#!/bin/bash
# test_tls: s3rver over TLS with a self-signed certificate.
#
#  - refused by default (the system store does not hold it): exit 8, the
#    message says 'certificate' and names --ca-cert; nothing written;
#  - refused with --ca-cert naming another CA (exit 8);
#  - --ca-cert naming a file that does not exist: an error naming the file;
#  - accepted with --ca-cert $ARCA_TEST_S3TLS_CA: a round trip is
#    byte-identical and check agrees.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3TLS_ENDPOINT ARCA_TEST_S3TLS_CA ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY
it_need_cmd openssl
case "$ARCA_TEST_S3TLS_ENDPOINT" in
https://127.0.0.1:*) ;;
*) fail "ARCA_TEST_S3TLS_ENDPOINT '$ARCA_TEST_S3TLS_ENDPOINT' is not https://127.0.0.1:PORT" ;;
esac
[ -r "$ARCA_TEST_S3TLS_CA" ] || fail "ARCA_TEST_S3TLS_CA '$ARCA_TEST_S3TLS_CA' is not readable"
export AWS_ACCESS_KEY_ID=$ARCA_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$ARCA_TEST_S3_SECRET_KEY
export AWS_ENDPOINT_URL=$ARCA_TEST_S3TLS_ENDPOINT
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
if [ -n "${ARCA_TEST_S3TLS_DATA_DIR:-}" ]; then
    it_on_exit "rm -rf '$ARCA_TEST_S3TLS_DATA_DIR/$B/$P'"
fi
# the server really is there and speaks TLS with that certificate
curl -sS --noproxy '*' --max-time 10 -o /dev/null --cacert "$ARCA_TEST_S3TLS_CA" "$ARCA_TEST_S3TLS_ENDPOINT/" ||
    fail "s3rver over TLS does not answer at $ARCA_TEST_S3TLS_ENDPOINT with CA '$ARCA_TEST_S3TLS_CA'"

SRC=$IT_TMP/src
mkdir -p "$SRC/d"
echo hello > "$SRC/hello.txt"
make_file "$SRC/d/blob" 3M

nothing_written() {
    arca_run ls --json "s3://$B/$P" --ca-cert "$ARCA_TEST_S3TLS_CA"
    assert_rc 0 "listing with the right CA"
    assert_eq "$(jq -r 'select(.type == "entry") | .path' "$IT_OUT" | wc -l)" 0 "objects written by $1"
}

# --- default trust store: refused ------------------------------------------------------
arca_run copy "$SRC" "s3://$B/$P"
assert_rc 8 "copy to a self-signed TLS endpoint without --ca-cert"
assert_err_has "certificate" "--ca-cert" "'$ARCA_TEST_S3TLS_ENDPOINT'"
assert_one_line_error "--ca-cert"
arca_run ls "s3://$B"
assert_rc 8 "ls of a self-signed TLS endpoint without --ca-cert"
assert_err_has "certificate" "--ca-cert"
nothing_written "a copy without --ca-cert"

# --- another CA: refused ----------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$IT_TMP/other.key" -out "$IT_TMP/other.pem" > /dev/null 2>&1 || fail "openssl could not make a certificate"
arca_run copy "$SRC" "s3://$B/$P" --ca-cert "$IT_TMP/other.pem"
assert_rc 8 "copy with --ca-cert naming another CA"
assert_err_has "certificate"
nothing_written "a copy with the wrong CA"

# --- a CA file that does not exist -------------------------------------------------------------
arca_run ls "s3://$B" --ca-cert "$IT_TMP/no-such-ca.pem"
assert_ne "$RC" 0 "ls with --ca-cert naming a missing file"
assert_err_has "$IT_TMP/no-such-ca.pem"

# --- the right CA: accepted, byte-identical ---------------------------------------------------
arca_run copy "$SRC" "s3://$B/$P" --ca-cert "$ARCA_TEST_S3TLS_CA" --json
assert_rc 0 "copy with --ca-cert"
assert_summary files_transferred 2
arca_run copy "s3://$B/$P" "$IT_TMP/back" --ca-cert "$ARCA_TEST_S3TLS_CA" --json
assert_rc 0 "download with --ca-cert"
assert_same_tree "$SRC" "$IT_TMP/back" "round trip over TLS"
arca_run check "$SRC" "s3://$B/$P" --ca-cert "$ARCA_TEST_S3TLS_CA"
assert_rc 0 "check over TLS"
# the CA can come from a named remote's config section too
cat > "$IT_TMP/arca.conf" << EOF
[tls]
type = s3
endpoint = $ARCA_TEST_S3TLS_ENDPOINT
ca_cert = $ARCA_TEST_S3TLS_CA
access_key_id = $ARCA_TEST_S3_ACCESS_KEY
secret_access_key = $ARCA_TEST_S3_SECRET_KEY
EOF
chmod 0600 "$IT_TMP/arca.conf"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL
    arca_run ls --json "tls:$B/$P" --config "$IT_TMP/arca.conf"
    assert_rc 0 "ls through a named remote with ca_cert"
    assert_eq "$(jq -r 'select(.type == "entry") | .path' "$IT_OUT" | tr '\n' ' ')" "d/blob hello.txt " "keys over TLS"
)

# --- S3 -> S3 between two endpoints: streamed through arca, no staging ----------------
it_need_env ARCA_TEST_S3_ENDPOINT
it_s3_forget "$B" "$P"
cat >> "$IT_TMP/arca.conf" << EOF
[plain]
type = s3
endpoint = $ARCA_TEST_S3_ENDPOINT
access_key_id = $ARCA_TEST_S3_ACCESS_KEY
secret_access_key = $ARCA_TEST_S3_SECRET_KEY
EOF
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL
    # TMPDIR points nowhere writable: a copy that staged on disk would fail
    export TMPDIR=/nonexistent
    n=$(find "$SRC" -type f | wc -l)
    arca_run copy "tls:$B/$P" "plain:$B/$P/from-tls" --config "$IT_TMP/arca.conf" --json --s3-part-size 5M
    assert_rc 0 "copy from the TLS endpoint to the plain one"
    assert_summary files_transferred "$n"
    streamed=$(jq -r 'select(.type == "file" and .action == "copied" and (.server_side // false) == false) | .path' "$IT_OUT" | wc -l)
    assert_eq "$streamed" "$n" "files streamed (not server-side) between endpoints"
    arca_run check "$SRC" "plain:$B/$P/from-tls" --config "$IT_TMP/arca.conf" --json
    assert_rc 0 "check of what crossed endpoints"
)
