#!/bin/bash
# test_servers.sh: the test servers themselves behave as the other tests
# assume: the patched s3rver lists in UTF-8 byte order across pages (checked
# with botocore), checks signatures and aborts multipart uploads; the TLS
# s3rver is trusted only with its CA; faults3 verifies bodies and fires
# scripted faults. Needs the ARCA_TEST_* variables of scripts/servers.sh.
set -euo pipefail

fail() {
    echo "test_servers: FAIL: $*" >&2
    exit 1
}

for v in ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR \
    ARCA_TEST_S3TLS_ENDPOINT ARCA_TEST_S3TLS_CA ARCA_TEST_FAULT_ENDPOINT; do
    [ -n "${!v:-}" ] || fail "$v is not set; run through scripts/test.sh, or 'scripts/servers.sh start' and eval \"\$(scripts/servers.sh env)\""
done

py=/usr/bin/python3
run=$$-$RANDOM

# --- s3rver: listing order, delimiter, signature check, abort --------------
"$py" - "$run" << 'EOF' || fail "s3rver checks failed (see above)"
import os
import sys

import botocore.session
from botocore.config import Config

run = sys.argv[1]
env = os.environ


def client(secret):
    return botocore.session.get_session().create_client(
        's3', endpoint_url=env['ARCA_TEST_S3_ENDPOINT'], region_name='us-east-1',
        aws_access_key_id=env['ARCA_TEST_S3_ACCESS_KEY'], aws_secret_access_key=secret,
        config=Config(s3={'addressing_style': 'path'}, retries={'total_max_attempts': 1}))


c = client(env['ARCA_TEST_S3_SECRET_KEY'])
bucket = 'arca-test'
prefix = 'servers-%s/' % run
names = ['a-b', 'a/b', 'a0', 'photos.zip', 'photos/x', 'p/a/b/c.txt', '\u00e9t\u00e9', 'z\u00ff',
         '\U0001f600', 'sp ace+plus', "q(1)!*'"]
for n in names:
    c.put_object(Bucket=bucket, Key=prefix + n, Body=n.encode())
want = sorted((prefix + n for n in names), key=lambda k: k.encode())
got, token, pages = [], None, 0
while True:
    kw = {'Bucket': bucket, 'Prefix': prefix, 'MaxKeys': 2}
    if token:
        kw['ContinuationToken'] = token
    r = c.list_objects_v2(**kw)
    pages += 1
    got += [o['Key'] for o in r.get('Contents', [])]
    if not r['IsTruncated']:
        break
    token = r['NextContinuationToken']
if got != want:
    sys.exit('listing with MaxKeys=2 is not in byte order or repeats/skips keys:\n got  %r\n want %r' % (got, want))
if pages != (len(names) + 1) // 2:
    sys.exit('%d pages for %d keys with MaxKeys=2' % (pages, len(names)))
for a, b in zip(got, got[1:]):
    if not a.encode() < b.encode():
        sys.exit('not strictly increasing: %r, %r' % (a, b))

# a 'directory' holding only subdirectories still gives its CommonPrefix
r = c.list_objects_v2(Bucket=bucket, Prefix=prefix + 'p/', Delimiter='/')
cps = [p['Prefix'] for p in r.get('CommonPrefixes', [])]
if cps != [prefix + 'p/a/']:
    sys.exit('delimiter listing gave CommonPrefixes %r, want [%r]' % (cps, prefix + 'p/a/'))

# start-after compares bytes
r = c.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=prefix + 'a/b')
sa = [o['Key'] for o in r.get('Contents', [])]
if sa != [k for k in want if k.encode() > (prefix + 'a/b').encode()]:
    sys.exit('start-after listing wrong: %r' % sa)

# the trailing '/' of '/bucket/' is signed correctly
c.get_bucket_location(Bucket=bucket)

# a wrong secret is refused
try:
    client('not-the-secret').list_objects_v2(Bucket=bucket, Prefix=prefix)
    sys.exit('s3rver accepted a request signed with a wrong secret')
except botocore.exceptions.ClientError as e:
    if e.response['Error']['Code'] != 'SignatureDoesNotMatch':
        sys.exit('wrong secret gave %r, want SignatureDoesNotMatch' % e.response['Error'])

# AbortMultipartUpload removes the parts
up = c.create_multipart_upload(Bucket=bucket, Key=prefix + 'mp')['UploadId']
c.upload_part(Bucket=bucket, Key=prefix + 'mp', UploadId=up, PartNumber=1, Body=b'x' * 1000)
parts = os.path.join(env['ARCA_TEST_S3_DATA_DIR'], bucket, '._S3rver_uploads', up)
if not os.path.isdir(parts):
    sys.exit('no upload directory %s' % parts)
c.abort_multipart_upload(Bucket=bucket, Key=prefix + 'mp', UploadId=up)
if os.path.exists(parts):
    sys.exit('abort left %s behind' % parts)

for k in want:
    c.delete_object(Bucket=bucket, Key=k)
print('s3rver: %d keys over %d pages in byte order, delimiter, start-after, signing, abort: ok' % (len(got), pages))
EOF

# --- s3rver and rclone: a multipart upload completes (Go escapes the quotes of
# the ETags in CompleteMultipartUpload as &#34;), and the copy checks out ---
tmp=$(mktemp -d /tmp/arca-test-servers-it.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/up"
head -c 11000000 /dev/urandom > "$tmp/up/multipart.bin"
rcl() {
    env -u AWS_CA_BUNDLE RCLONE_CONFIG_S_TYPE=s3 RCLONE_CONFIG_S_PROVIDER=Other \
        RCLONE_CONFIG_S_ENDPOINT="$ARCA_TEST_S3_ENDPOINT" RCLONE_CONFIG_S_ACCESS_KEY_ID="$ARCA_TEST_S3_ACCESS_KEY" \
        RCLONE_CONFIG_S_SECRET_ACCESS_KEY="$ARCA_TEST_S3_SECRET_KEY" rclone --config /dev/null -q "$@"
}
rcl copy "$tmp/up" "s:arca-test/servers-$run-rclone" --s3-upload-cutoff 5M --s3-chunk-size 5M ||
    fail "rclone could not upload an 11 MB file in 5 MiB parts to s3rver"
rcl check "$tmp/up" "s:arca-test/servers-$run-rclone" --fast-list || fail "rclone check after the multipart upload"
rcl purge "s:arca-test/servers-$run-rclone" || fail "rclone purge"
echo "s3rver: rclone multipart upload and check: ok"

# --- TLS s3rver: trusted with its CA only ----------------------------------
curl -sf -o /dev/null --noproxy '*' --cacert "$ARCA_TEST_S3TLS_CA" "$ARCA_TEST_S3TLS_ENDPOINT/" ||
    fail "TLS s3rver does not answer with --cacert $ARCA_TEST_S3TLS_CA"
rc=0
curl -s -o /dev/null --noproxy '*' "$ARCA_TEST_S3TLS_ENDPOINT/" || rc=$?
[ "$rc" = 60 ] || fail "curl without the CA exited $rc against the TLS s3rver, want 60 (certificate not trusted)"
echo "s3rver TLS: trusted with the CA, refused without it: ok"

# --- faults3: body verification and a scripted fault -----------------------
f=$ARCA_TEST_FAULT_ENDPOINT
b=servers-$run
auth=(-H 'Authorization: AWS4-HMAC-SHA256 Credential=test' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
body='hello faults3'
md5=$(printf %s "$body" | openssl dgst -md5 -binary | base64)
code() { curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "$@"; }

[ "$(code -X PUT "${auth[@]}" -H 'Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==' --data-binary "$body" "$f/$b/k")" = 400 ] ||
    fail "faults3 accepted a PUT whose Content-MD5 does not match the body"
out=$(curl -s --noproxy '*' -X PUT "${auth[@]}" -H 'Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==' --data-binary "$body" "$f/$b/k")
case "$out" in *'<Code>BadDigest</Code>'*) ;; *) fail "wrong Content-MD5 answer: $out" ;; esac
[ "$(code -X PUT -H 'Authorization: AWS4-HMAC-SHA256 x' -H "x-amz-content-sha256: $(printf x | sha256sum | cut -d' ' -f1)" \
    --data-binary "$body" "$f/$b/k")" = 400 ] || fail "faults3 accepted a wrong x-amz-content-sha256"
[ "$(code -X PUT -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --data-binary "$body" "$f/$b/k")" = 403 ] ||
    fail "faults3 accepted a PUT without Authorization"
[ "$(code -X PUT "${auth[@]}" -H "Content-MD5: $md5" --data-binary "$body" "$f/$b/k")" = 200 ] ||
    fail "faults3 refused a PUT with the right Content-MD5"
[ "$(curl -s --noproxy '*' "${auth[@]}" "$f/$b/k")" = "$body" ] || fail "faults3 GET does not return the body"

curl -sf --noproxy '*' -X POST --data "[{\"method\": \"GET\", \"match\": \"/$b/k\", \"status\": 503, \"code\": \"SlowDown\"}]" \
    "$f/__control/faults" > /dev/null || fail "faults3 refused a fault rule"
[ "$(code "${auth[@]}" "$f/$b/k")" = 503 ] || fail "the scripted 503 did not fire"
[ "$(code "${auth[@]}" "$f/$b/k")" = 200 ] || fail "the scripted 503 fired more than once"

stats=$(curl -sf --noproxy '*' "$f/__control/stats?bucket=$b")
[ "$(jq -c '.uploads | [.total, .content_md5, .neither]' <<< "$stats")" = '[4,3,1]' ] ||
    fail "faults3 upload counters are off: $stats"
curl -sf --noproxy '*' -X POST --data "{\"bucket\": \"$b\"}" "$f/__control/reset" > /dev/null
echo "faults3: body checks, scripted fault, counters: ok"
