#!/usr/bin/python3
"""Oracle for tests/unit/test_sigv4.c: sign requests with botocore's S3SigV4Auth.

Usage: sigv4_oracle.py CASES.jsonl RESULTS.json

Each input line is one request as arca's signer saw it (raw, unencoded path,
query and headers, the body or "unsigned", credentials, epoch time) plus the
path+query arca put in its URL. For each one this prints botocore's canonical
request, string to sign and Authorization header, and checks that arca's URL
decodes back to exactly the raw path and query (so what is sent is what both
signers signed).

How botocore is driven, so the comparison means "what AWS computes":
 - the URL path is built with botocore.utils.percent_encode(key, safe='/~'),
   exactly what botocore's REST serializer does for S3 keys; S3SigV4Auth then
   uses that path verbatim (no normalization, no second encoding);
 - query parameters go in as raw (name, value) pairs through
   AWSRequest.params, which botocore encodes and sorts itself;
 - the time is pinned by replacing botocore.auth's datetime.utcnow, and the
   real S3SigV4Auth.add_auth() runs; canonical request and string to sign
   are captured on their way through.
Exit status: 0 when every case was processed, 3 when botocore is missing,
1 on any other failure.
"""
import os
import sys

# Nothing from the environment may leak into the signer (profiles, tokens,
# CA bundles, regions...).
for _name in list(os.environ):
    if _name.startswith("AWS_") or _name.startswith("BOTO"):
        del os.environ[_name]

import datetime
import json
from unittest import mock
from urllib.parse import unquote_to_bytes

try:
    import botocore.auth
    import botocore.awsrequest
    import botocore.config
    import botocore.credentials
    import botocore.utils
except ImportError as exc:  # the C test turns this into a failure
    sys.stderr.write("sigv4_oracle: botocore is not installed (%s); "
                     "install python3-botocore\n" % exc)
    sys.exit(3)

URL_SAFE = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%/")


class RecordingAuth(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth that keeps the canonical request and string to sign."""

    canonical = None
    sts = None

    def canonical_request(self, request):
        self.canonical = super().canonical_request(request)
        return self.canonical

    def string_to_sign(self, request, canonical_request):
        self.sts = super().string_to_sign(request, canonical_request)
        return self.sts


def fixed_datetime(epoch):
    real = datetime.datetime

    class Fixed(real):
        @classmethod
        def utcnow(cls):
            return real.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None)

    return Fixed


def check_url(case):
    """Return "ok" or why arca's URL does not carry the raw path and query."""
    url = case["url_path_query"].encode("ascii")
    if not set(url) <= URL_SAFE | {ord("?"), ord("&"), ord("=")}:
        return "url has a byte that should have been encoded: %r" % url
    path, qmark, query = url.partition(b"?")
    raw_path = case["path"].encode("utf-8")
    expect_path = botocore.utils.percent_encode(raw_path, safe="/~").encode("ascii")
    if path != expect_path:
        return "url path %r, botocore encodes the key as %r" % (path, expect_path)
    if unquote_to_bytes(path) != raw_path:
        return "url path %r does not decode to %r" % (path, raw_path)
    got = []
    if qmark:
        if not query:
            return "url has '?' but no query"
        for item in query.split(b"&"):
            name, _, value = item.partition(b"=")
            got.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    want = [(k.encode("utf-8"), v.encode("utf-8")) for k, v in case["query"]]
    if sorted(got) != sorted(want):
        return "url query %r decodes to %r, expected %r" % (query, sorted(got), sorted(want))
    return "ok"


def sign(case):
    creds = botocore.credentials.Credentials(
        case["access_key"], case["secret_key"], case.get("token"))
    auth = RecordingAuth(creds, case["service"], case["region"])
    path = botocore.utils.percent_encode(case["path"].encode("utf-8"), safe="/~")
    body = None if case["unsigned"] else bytes.fromhex(case["body_hex"])
    req = botocore.awsrequest.AWSRequest(
        method=case["method"],
        url="http://" + case["host"] + path,
        data=body,
        params=[(k, v) for k, v in case["query"]],
    )
    if case["host_header"]:
        req.headers["Host"] = case["host"]
    for name, value in case["headers"]:
        req.headers[name] = value  # HTTPHeaders appends: repeats are kept
    if case["unsigned"]:
        req.context["client_config"] = botocore.config.Config(
            s3={"payload_signing_enabled": False})
    with mock.patch.object(botocore.auth, "datetime") as dt:
        dt.datetime = fixed_datetime(case["now"])
        auth.add_auth(req)
    return {
        "id": case["id"],
        "canonical_request": auth.canonical,
        "string_to_sign": auth.sts,
        "authorization": req.headers["Authorization"],
        "amz_date": req.headers["X-Amz-Date"],
        "content_sha256": req.headers["X-Amz-Content-SHA256"],
        "url_check": check_url(case),
    }


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: sigv4_oracle.py CASES.jsonl RESULTS.json\n")
        return 1
    results = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                results.append(sign(json.loads(line)))
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
