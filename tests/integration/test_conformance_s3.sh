#!/bin/bash
# test_conformance_s3: the storage conformance suite (tests/conformance)
# against the S3 driver on s3rver, as a named remote of a config file (part
# size 5M, so a pending or aborted writer has sent a part); then botocore
# sees nothing under the prefix and s3rver keeps no multipart upload of it.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_S3_ENDPOINT ARCA_TEST_S3_ACCESS_KEY ARCA_TEST_S3_SECRET_KEY ARCA_TEST_S3_DATA_DIR
B=${ARCA_TEST_S3_BUCKET:-arca-test}
P=$(it_prefix)
it_s3_forget "$B" "$P"
cfg=$(it_conformance_config s3t type=s3 endpoint="$ARCA_TEST_S3_ENDPOINT" \
    region="${ARCA_TEST_S3_REGION:-us-east-1}" access_key_id="$ARCA_TEST_S3_ACCESS_KEY" \
    secret_access_key="$ARCA_TEST_S3_SECRET_KEY" part_size=5M)

it_conformance "s3t:$B/$P" "$cfg"

left=$("$PY" - "$ARCA_TEST_S3_ENDPOINT" "$ARCA_TEST_S3_ACCESS_KEY" "$ARCA_TEST_S3_SECRET_KEY" "$B" "$P/" << 'PYEOF'
import sys, botocore.session
ep, ak, sk, bucket, prefix = sys.argv[1:]
c = botocore.session.get_session().create_client(
    "s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1")
r = c.list_objects_v2(Bucket=bucket, Prefix=prefix)
print(" ".join(o["Key"] for o in r.get("Contents", [])))
PYEOF
)
assert_eq "$left" "" "objects botocore lists under '$P/' after the suite"
n=0
for up in "$ARCA_TEST_S3_DATA_DIR/$B/._S3rver_uploads"/*/; do
    [ -f "$up/key" ] || continue
    case "$(cat "$up/key")" in "$P"/*) n=$((n + 1)) ;; esac
done
assert_eq "$n" 0 "multipart uploads s3rver keeps for keys under '$P/'"
