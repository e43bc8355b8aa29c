#!/usr/bin/python3
"""faults3: an in-memory S3-like server that fails on request.

It exists to drive the error branches of arca's S3 client that a real server
(s3rver) never takes: throttling, resets, half-sent bodies, '200 with an
<Error>' answers, out-of-order listings, million-key listings. Python 3
standard library only. Listens on 127.0.0.1 only.

    /usr/bin/python3 faults3.py [--port 0] [--port-file FILE]

prints 'faults3 listening on 127.0.0.1:PORT' once it accepts connections.

S3 subset (path-style only: /BUCKET/KEY; every bucket exists)
-------------------------------------------------------------
PUT object (+ x-amz-copy-source: CopyObject), GET (Range: bytes=a-b, a-, -n),
HEAD, DELETE, POST ?delete (DeleteObjects), ListObjectsV2 (list-type=2:
prefix, delimiter, continuation-token, start-after, max-keys,
encoding-type=url) and v1 (marker), multipart: POST ?uploads, PUT
?partNumber&uploadId (+ UploadPartCopy), POST ?uploadId (Complete; checks
part order, part ETags and the minimum part size, 5 MiB unless configured),
DELETE ?uploadId (Abort), GET ?uploadId (ListParts), GET /BUCKET?uploads
(ListMultipartUploads). If-Match / If-None-Match on GET, HEAD and PUT.
Listings are in UTF-8 byte order. Keys are stored exactly as sent (x//y and
x/./z stay distinct).

No signature check, but every S3 request needs 'Authorization:
AWS4-HMAC-SHA256 ...' (else 403 AccessDenied) and an x-amz-content-sha256
header (else 400 InvalidRequest), as S3 does for header-signed requests.

Bodies are verified:
  Content-MD5            base64(md5(body))      else 400 BadDigest (InvalidDigest
                                                if it is not a base64 MD5)
  x-amz-content-sha256   hex sha256(body), UNSIGNED-PAYLOAD accepted
                                                else 400 XAmzContentSHA256Mismatch
  x-amz-checksum-sha256  base64(sha256(body))   else 400 BadDigest
  x-amz-checksum-sha1 / -crc32 likewise.
Objects keep their x-amz-checksum-sha256; GET/HEAD return it when asked with
'x-amz-checksum-mode: ENABLED'.

Control API (no Authorization needed; JSON in and out)
------------------------------------------------------
POST /__control/faults     a rule or a list of rules, appended in order:
    {"method": "PUT" | "*",        HTTP method to match (default "*")
     "match": "substring",         of the raw path + '?' + query (default "")
     "times": N,                   fire on the next N matching requests
                                   (default 1; -1: until reset)
     "skip": M,                    let the first M matching requests through
     "action": "status",           (default) answer "status" with an S3 <Error>
     "status": 503, "code": "SlowDown", "message": "...",
     "headers": {"Retry-After": "1"},
     "seconds": S}                 sleep S seconds before acting
  actions:
    "status"          the error answer, the operation is not done
    "reset"           close the connection without an answer (TCP RST), the
                      operation is not done
    "reset_after"     do the operation, then close without an answer
    "reset_mid_body"  do the operation, send the headers and half the body
                      (GET), then close the connection
    "error_200"       answer 200 with an <Error><Code>CODE</Code> body
                      (default InternalError), the operation is not done
                      (CompleteMultipartUpload, CopyObject do this in S3)
    "corrupt_body"    do the operation, flip one byte of the answer's body
    "delay"           sleep "seconds", then handle the request normally
    "headers"         handle the request normally, then answer with the
                      rule's "headers" over the usual ones (an ETag that is
                      not an MD5 and x-amz-server-side-encryption: aws:kms
                      make an object look SSE-KMS encrypted)
  The first rule (in order) that matches a request fires; a rule is dropped
  once it fired "times" times.
GET  /__control/faults     the rules still pending
POST /__control/synthetic  {"bucket": "big", "pages": 1000, "per_page": 1000,
                           "key_prefix": "k/", "unsorted": false}
    ListObjects on that bucket serves pages*per_page generated keys
    key_prefix + '%09d' % i, in strictly increasing order, never stored
    (pages hold min(per_page, max-keys) keys). "unsorted": true swaps two
    neighbouring keys in the middle of the second page. {"bucket": "big",
    "pages": 0} removes it.
POST /__control/config     {"min_part_size": 5242880}
GET  /__control/log[?bucket=B]  every S3 request seen (to bucket B):
                           [{"seq", "method", "bucket", "path",
                           "query", "headers": {selected, lowercase names},
                           "status" (0 when no answer was sent), "fault"
                           (action or null), "bytes_in"}]
GET  /__control/stats[?bucket=B]  counters (of bucket B): requests, by_method,
                           faults_fired,
                           objects, bytes_stored, multipart_in_progress,
                           uploads: {total, content_md5, checksum_sha256,
                           neither, content_sha256_hex, unsigned_payload}
                           ('uploads' = PUT object and UploadPart requests;
                           'neither' = no Content-MD5 and no
                           x-amz-checksum-sha256)
GET  /__control/objects?bucket=B   [{"key", "size", "etag"}] in byte order
GET  /__control/uploads    multipart uploads in progress
POST /__control/reset      forget objects, uploads, rules, log, stats,
                           synthetic buckets and config; with {"bucket": B}
                           only B's objects, uploads, counters, synthetic
                           listing and the rules whose match holds '/B'
Tests run in parallel against one faults3: give each test a bucket of its
own, put '/BUCKET' in every rule's match, and use ?bucket= and
{"bucket": B} rather than global stats and resets.
GET  /__control/health     200 'ok'
"""

import argparse
import base64
import binascii
import bisect
import email.utils
import hashlib
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zlib

NS = 'http://s3.amazonaws.com/doc/2006-03-01/'
LOG_MAX = 200000
DEFAULT_MIN_PART = 5 * 1024 * 1024
LOGGED_HEADERS = (
    'content-length', 'content-type', 'content-md5', 'range', 'if-match',
    'if-none-match', 'expect', 'transfer-encoding', 'user-agent',
)
DEFAULT_CODES = {
    400: 'BadRequest', 403: 'AccessDenied', 404: 'NoSuchKey',
    405: 'MethodNotAllowed', 408: 'RequestTimeout', 409: 'Conflict',
    412: 'PreconditionFailed', 416: 'InvalidRange', 500: 'InternalError',
    501: 'NotImplemented', 503: 'SlowDown',
}


class S3Fail(Exception):
    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def xesc(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '&':
            out.append('&amp;')
        elif ch == '<':
            out.append('&lt;')
        elif ch == '>':
            out.append('&gt;')
        elif ch == '"':
            out.append('&quot;')
        elif o < 0x20 or o == 0x7f:
            out.append('&#x%x;' % o)
        else:
            out.append(ch)
    return ''.join(out)


def error_xml(code, message, extra=None):
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>', xesc(code),
             '</Code><Message>', xesc(message), '</Message>']
    for k, v in (extra or {}).items():
        parts.append('<%s>%s</%s>' % (k, xesc(str(v)), k))
    parts.append('<RequestId>FAULTS3</RequestId></Error>')
    return ''.join(parts).encode()


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def iso_date(ts):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ts)) + '.000Z'


def successor(prefix):
    """Smallest byte string greater than every string starting with prefix."""
    b = bytearray(prefix)
    while b and b[-1] == 0xff:
        b.pop()
    if not b:
        return None
    b[-1] += 1
    return bytes(b)


class Obj:
    __slots__ = ('data', 'etag', 'meta', 'mtime', 'sha256')

    def __init__(self, data, etag, meta, sha256=None):
        self.data = data
        self.etag = etag
        self.meta = meta
        self.mtime = time.time()
        self.sha256 = sha256


class Synthetic:
    """A sorted, read-only virtual sequence of generated keys (bytes)."""

    def __init__(self, pages, per_page, key_prefix, unsorted):
        self.n = pages * per_page
        self.per_page = per_page
        self.prefix = key_prefix.encode()
        self.swap = None
        if unsorted and pages >= 2 and per_page >= 2:
            a = per_page + per_page // 2 - 1
            self.swap = (a, a + 1)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i < 0:
            i += self.n
        if i < 0 or i >= self.n:
            raise IndexError(i)
        if self.swap:
            if i == self.swap[0]:
                i = self.swap[1]
            elif i == self.swap[1]:
                i = self.swap[0]
        return self.prefix + b'%09d' % i

    def size(self, i):
        return 1000 + i % 997

    def etag(self, i):
        return '"%032x"' % (i * 2654435761 + 12345)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.buckets = {}        # bucket -> {key(str): Obj}
        self.sorted = {}         # bucket -> sorted list of key bytes
        self.uploads = {}        # upload id -> dict
        self.rules = []
        self.log = []
        self.log_dropped = 0
        self.seq = 0
        self.synthetic = {}
        self.min_part_size = DEFAULT_MIN_PART
        self.stats = {
            'requests': 0, 'by_method': {}, 'faults_fired': 0,
            'uploads': self.new_upload_counters(),
        }
        self.upload_seq = 0
        self.bucket_uploads = {}

    @staticmethod
    def new_upload_counters():
        return {'total': 0, 'content_md5': 0, 'checksum_sha256': 0, 'neither': 0,
                'content_sha256_hex': 0, 'unsigned_payload': 0}

    def reset_bucket(self, bucket):
        self.buckets.pop(bucket, None)
        self.sorted.pop(bucket, None)
        self.synthetic.pop(bucket, None)
        self.bucket_uploads.pop(bucket, None)
        for uid in [u for u, v in self.uploads.items() if v['bucket'] == bucket]:
            del self.uploads[uid]
        self.rules = [r for r in self.rules if '/' + bucket not in r.get('match', '')]

    def put(self, bucket, key, obj):
        objs = self.buckets.setdefault(bucket, {})
        if key not in objs:
            bisect.insort(self.sorted.setdefault(bucket, []), key.encode())
        objs[key] = obj

    def delete(self, bucket, key):
        objs = self.buckets.get(bucket, {})
        if key in objs:
            del objs[key]
            lst = self.sorted[bucket]
            kb = key.encode()
            i = bisect.bisect_left(lst, kb)
            if i < len(lst) and lst[i] == kb:
                del lst[i]
            return True
        return False

    def get(self, bucket, key):
        return self.buckets.get(bucket, {}).get(key)

    def take_rule(self, method, target):
        for i, r in enumerate(self.rules):
            m = r.get('method', '*').upper()
            if m not in ('*', method):
                continue
            if r.get('match', '') not in target:
                continue
            if r.get('skip', 0) > 0:
                r['skip'] -= 1
                return None
            times = r.get('times', 1)
            if times > 0:
                r['times'] = times - 1
                if r['times'] == 0:
                    del self.rules[i]
            self.stats['faults_fired'] += 1
            return dict(r)
        return None


STATE = State()


def check_body(headers, body):
    """Verify the integrity headers of a request body; return the sha256."""
    sha = hashlib.sha256(body)
    md5 = headers.get('content-md5')
    if md5 is not None:
        try:
            want = base64.b64decode(md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            want = b''
        if len(want) != 16:
            raise S3Fail(400, 'InvalidDigest', 'The Content-MD5 you specified is not valid.')
        if want != hashlib.md5(body).digest():
            raise S3Fail(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.',
                         ExpectedDigest=md5, CalculatedDigest=base64.b64encode(hashlib.md5(body).digest()).decode())
    csha = headers.get('x-amz-content-sha256', '')
    if len(csha) == 64 and all(c in '0123456789abcdefABCDEF' for c in csha):
        if csha.lower() != sha.hexdigest():
            raise S3Fail(400, 'XAmzContentSHA256Mismatch',
                         "The provided 'x-amz-content-sha256' header does not match what was computed.",
                         ClientComputedContentSHA256=csha, S3ComputedContentSHA256=sha.hexdigest())
    checks = (
        ('x-amz-checksum-sha256', lambda: base64.b64encode(sha.digest()).decode(), 'SHA256'),
        ('x-amz-checksum-sha1', lambda: base64.b64encode(hashlib.sha1(body).digest()).decode(), 'SHA1'),
        ('x-amz-checksum-crc32',
         lambda: base64.b64encode(struct.pack('>I', zlib.crc32(body) & 0xffffffff)).decode(), 'CRC32'),
    )
    for name, calc, algo in checks:
        v = headers.get(name)
        if v is not None and v.strip() != calc():
            raise S3Fail(400, 'BadDigest', 'The %s you specified did not match the calculated checksum.' % algo)
    return sha


def parse_copy_source(value):
    v = value.split('?', 1)[0]
    v = urllib.parse.unquote_to_bytes(v).decode('utf-8', 'strict')
    if v.startswith('/'):
        v = v[1:]
    if '/' not in v:
        raise S3Fail(400, 'InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey')
    b, k = v.split('/', 1)
    return b, k


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'faults3'
    sys_version = ''

    def log_message(self, fmt, *args):
        pass

    # --- plumbing -----------------------------------------------------------

    def read_body(self):
        if self.headers.get('transfer-encoding', '').lower() == 'chunked':
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError('eof in chunked body')
                n = int(line.split(b';', 1)[0].strip() or b'0', 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b'\r\n', b'\n', b''):
                        pass
                    break
                chunks.append(self.rfile.read(n))
                self.rfile.readline(65537)
            return b''.join(chunks)
        n = self.headers.get('content-length')
        if n is None:
            return b''
        n = int(n)
        data = self.rfile.read(n) if n > 0 else b''
        if len(data) != n:
            raise ConnectionError('short body')
        return data

    def send(self, status, body=b'', headers=None, ctype='application/xml'):
        """Answer; a pending post-operation fault (self.fault) shapes it."""
        action = self.fault.get('action') if self.fault else None
        if action == 'reset_after':
            self.reset_connection()
            return
        headers = dict(headers or {})
        if action == 'headers':
            headers.update({str(k): str(v) for k, v in (self.fault.get('headers') or {}).items()})
        if body and 'Content-Type' not in headers and ctype:
            headers['Content-Type'] = ctype
        headers.setdefault('Content-Length', str(len(body)))
        headers.setdefault('x-amz-request-id', 'FAULTS3%08d' % self.seq)
        if action == 'corrupt_body' and body:
            b = bytearray(body)
            b[len(b) // 2] ^= 0x01
            body = bytes(b)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.answered = status
        if self.command == 'HEAD':
            return
        if action == 'reset_mid_body':
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.close_connection = True
            return
        if body:
            self.wfile.write(body)

    def send_error_s3(self, status, code, message, extra=None, headers=None):
        body = b'' if self.command == 'HEAD' else error_xml(code, message, extra)
        h = {'x-amz-error-code': code}
        h.update(headers or {})
        self.send(status, body, headers=h)

    def send_json(self, status, obj):
        body = (json.dumps(obj, indent=1) + '\n').encode()
        self.send(status, body, ctype='application/json')

    def reset_connection(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.server.rst.add(id(self.connection))
        self.close_connection = True

    def do_GET(self):
        self.dispatch()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    # --- entry --------------------------------------------------------------

    def dispatch(self):
        self.answered = 0
        self.fault = None
        self.seq = 0
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith('/__control/'):
            try:
                self.control(url)
            except Exception as e:  # a test's mistake, tell it
                self.send_json(400, {'error': str(e)})
            return
        self.s3_request(url)

    def s3_request(self, url):
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        target = url.path + ('?' + url.query if url.query else '')
        with STATE.lock:
            STATE.seq += 1
            self.seq = STATE.seq
            st = STATE.stats
            st['requests'] += 1
            st['by_method'][self.command] = st['by_method'].get(self.command, 0) + 1
            fault = STATE.take_rule(self.command, target)
            entry = {
                'seq': self.seq, 'method': self.command, 'bucket': url.path.split('/')[1],
                'path': url.path, 'query': url.query,
                'headers': {k: v for k, v in hdrs.items()
                            if k in LOGGED_HEADERS or (k.startswith('x-amz-') and k != 'x-amz-security-token')},
                'status': 0, 'fault': fault.get('action', 'status') if fault else None, 'bytes_in': 0,
            }
            auth = hdrs.get('authorization')
            if auth:
                entry['headers']['authorization'] = auth.split('Signature=')[0].strip()
            STATE.log.append(entry)
            if len(STATE.log) > LOG_MAX:
                del STATE.log[:len(STATE.log) - LOG_MAX]
                STATE.log_dropped += 1
        action = None
        if fault:
            action = fault.get('action', 'status')
            if fault.get('seconds'):
                time.sleep(float(fault['seconds']))
            if action == 'delay':
                fault, action = None, None
            elif action == 'reset':
                self.reset_connection()
                return
        try:
            body = self.read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        entry['bytes_in'] = len(body)
        try:
            if action == 'status':
                status = int(fault.get('status', 503))
                code = fault.get('code') or DEFAULT_CODES.get(status, 'InternalError')
                self.send_error_s3(status, code, fault.get('message', 'injected fault'),
                                   headers={str(k): str(v) for k, v in (fault.get('headers') or {}).items()})
            elif action == 'error_200':
                code = fault.get('code') or 'InternalError'
                self.send(200, error_xml(code, fault.get('message', 'We encountered an internal error. Please try again.')))
            else:
                self.fault = fault
                try:
                    self.s3(url, hdrs, body)
                except S3Fail as e:
                    self.send_error_s3(e.status, e.code, e.message, e.extra)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        entry['status'] = self.answered

    # --- S3 -----------------------------------------------------------------

    def s3(self, url, hdrs, body):
        auth = hdrs.get('authorization', '')
        if not auth.startswith('AWS4-HMAC-SHA256 '):
            raise S3Fail(403, 'AccessDenied', 'Access Denied (faults3 wants an AWS4-HMAC-SHA256 Authorization header)')
        csha = hdrs.get('x-amz-content-sha256')
        if csha is None:
            raise S3Fail(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256')
        if csha.startswith('STREAMING-'):
            raise S3Fail(501, 'NotImplemented', 'faults3 does not take aws-chunked bodies')
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            raw = urllib.parse.unquote_to_bytes(url.path).decode('utf-8', 'strict')
        except UnicodeDecodeError:
            raise S3Fail(400, 'InvalidURI', 'Couldn\'t parse the specified URI.')
        if not raw.startswith('/'):
            raise S3Fail(400, 'InvalidURI', 'Couldn\'t parse the specified URI.')
        bucket, _, key = raw[1:].partition('/')
        m = self.command
        if not bucket:
            if m != 'GET':
                raise S3Fail(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.')
            return self.list_buckets()
        if not key:
            return self.bucket_op(m, bucket, q, hdrs, body)
        return self.object_op(m, bucket, key, q, hdrs, body)

    def xml(self, status, text, headers=None):
        self.send(status, ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode(), headers=headers)

    def list_buckets(self):
        with STATE.lock:
            names = sorted(set(STATE.buckets) | set(STATE.synthetic))
        items = ''.join('<Bucket><Name>%s</Name><CreationDate>%s</CreationDate></Bucket>'
                        % (xesc(n), iso_date(0)) for n in names)
        self.xml(200, '<ListAllMyBucketsResult xmlns="%s"><Owner><ID>faults3</ID></Owner><Buckets>%s</Buckets>'
                 '</ListAllMyBucketsResult>' % (NS, items))

    def bucket_op(self, m, bucket, q, hdrs, body):
        if m == 'GET' and 'location' in q:
            return self.xml(200, '<LocationConstraint xmlns="%s"/>' % NS)
        if m == 'GET' and 'uploads' in q:
            return self.list_uploads(bucket, q)
        if m == 'GET':
            return self.list_objects(bucket, q)
        if m == 'HEAD':
            return self.send(200)
        if m == 'PUT':
            with STATE.lock:
                STATE.buckets.setdefault(bucket, {})
                STATE.sorted.setdefault(bucket, [])
            return self.send(200)
        if m == 'POST' and 'delete' in q:
            return self.delete_objects(bucket, hdrs, body)
        if m == 'DELETE':
            return self.send(204)
        raise S3Fail(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.')

    def delete_objects(self, bucket, hdrs, body):
        if 'content-md5' not in hdrs and not any(h.startswith('x-amz-checksum-') for h in hdrs):
            raise S3Fail(400, 'InvalidRequest', 'Missing required header for this request: Content-Md5')
        check_body(hdrs, body)
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise S3Fail(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema')
        quiet = False
        keys = []
        for el in root.iter():
            tag = el.tag.split('}')[-1]
            if tag == 'Quiet':
                quiet = (el.text or '').strip().lower() == 'true'
            elif tag == 'Key':
                keys.append(el.text or '')
        if len(keys) > 1000:
            raise S3Fail(400, 'MalformedXML', 'more than 1000 keys')
        out = []
        with STATE.lock:
            for k in keys:
                STATE.delete(bucket, k)
                if not quiet:
                    out.append('<Deleted><Key>%s</Key></Deleted>' % xesc(k))
        self.xml(200, '<DeleteResult xmlns="%s">%s</DeleteResult>' % (NS, ''.join(out)))

    def list_uploads(self, bucket, q):
        prefix = q.get('prefix', '')
        with STATE.lock:
            ups = sorted(((u['key'], uid) for uid, u in STATE.uploads.items()
                          if u['bucket'] == bucket and u['key'].startswith(prefix)),
                         key=lambda t: (t[0].encode(), t[1]))
        items = ''.join('<Upload><Key>%s</Key><UploadId>%s</UploadId><Initiated>%s</Initiated></Upload>'
                        % (xesc(k), uid, iso_date(0)) for k, uid in ups)
        self.xml(200, '<ListMultipartUploadsResult xmlns="%s"><Bucket>%s</Bucket><Prefix>%s</Prefix>'
                 '<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>%s</ListMultipartUploadsResult>'
                 % (NS, xesc(bucket), xesc(prefix), items))

    def list_objects(self, bucket, q):
        v2 = q.get('list-type') == '2'
        prefix = q.get('prefix', '')
        delim = q.get('delimiter', '')
        enc = q.get('encoding-type')
        if enc not in (None, 'url'):
            raise S3Fail(400, 'InvalidArgument', 'Invalid Encoding Method specified in Request')
        mk = q.get('max-keys', '1000')
        if not mk.isdigit():
            raise S3Fail(400, 'InvalidArgument', 'Provided max-keys not an integer or within integer range')
        max_keys = min(int(mk), 1000)
        token = q.get('continuation-token') if v2 else None
        start_after = q.get('start-after', '') if v2 else ''
        marker = q.get('marker', '') if not v2 else ''
        e = (lambda s: urllib.parse.quote_plus(s, safe='/')) if enc == 'url' else xesc

        with STATE.lock:
            syn = STATE.synthetic.get(bucket)
            seq = syn if syn is not None else STATE.sorted.get(bucket, [])
            objs = STATE.buckets.get(bucket, {})
            if syn is not None:
                max_keys = min(max_keys, syn.per_page)
            pb = prefix.encode()
            db = delim.encode()
            lo = bisect.bisect_left(seq, pb)
            if token is not None:
                try:
                    t = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                    tm = t['m'].encode()
                    if t['b'] != bucket:
                        raise ValueError
                except (ValueError, KeyError, TypeError, binascii.Error):
                    raise S3Fail(400, 'InvalidArgument', 'The continuation token provided is incorrect')
                if t.get('p'):
                    s = successor(tm)
                    lo = max(lo, len(seq) if s is None else bisect.bisect_left(seq, s))
                else:
                    lo = max(lo, bisect.bisect_right(seq, tm))
            else:
                after = start_after or marker
                if after:
                    lo = max(lo, bisect.bisect_right(seq, after.encode()))
                    if marker and delim and after.encode().endswith(db):
                        s = successor(after.encode())
                        lo = max(lo, len(seq) if s is None else bisect.bisect_left(seq, s))
            contents = []
            prefixes = []
            last = None
            last_is_prefix = False
            truncated = False
            i = lo
            n = len(seq)
            count = 0
            while i < n:
                kb = seq[i]
                if not kb.startswith(pb):
                    break
                if count >= max_keys:
                    truncated = max_keys > 0
                    break
                if db:
                    j = kb.find(db, len(pb))
                    if j != -1:
                        cp = kb[:j + len(db)]
                        prefixes.append(cp)
                        last, last_is_prefix = cp, True
                        count += 1
                        s = successor(cp)
                        i = n if s is None else bisect.bisect_left(seq, s, i + 1)
                        continue
                if syn is not None:
                    idx = int(kb[len(syn.prefix):]) if kb[len(syn.prefix):].isdigit() else i
                    contents.append((kb, syn.size(idx), syn.etag(idx), 0.0))
                else:
                    o = objs[kb.decode()]
                    contents.append((kb, len(o.data), o.etag, o.mtime))
                last, last_is_prefix = kb, False
                count += 1
                i += 1

        parts = ['<ListBucketResult xmlns="%s"><Name>%s</Name><Prefix>%s</Prefix>' % (NS, xesc(bucket), e(prefix))]
        if delim:
            parts.append('<Delimiter>%s</Delimiter>' % e(delim))
        parts.append('<MaxKeys>%d</MaxKeys>' % int(mk))
        if enc:
            parts.append('<EncodingType>url</EncodingType>')
        parts.append('<IsTruncated>%s</IsTruncated>' % ('true' if truncated else 'false'))
        if v2:
            parts.append('<KeyCount>%d</KeyCount>' % count)
            if token is not None:
                parts.append('<ContinuationToken>%s</ContinuationToken>' % xesc(token))
            if start_after:
                parts.append('<StartAfter>%s</StartAfter>' % e(start_after))
            if truncated:
                tok = base64.urlsafe_b64encode(json.dumps(
                    {'b': bucket, 'm': last.decode(), 'p': last_is_prefix}).encode()).decode()
                parts.append('<NextContinuationToken>%s</NextContinuationToken>' % tok)
        else:
            parts.append('<Marker>%s</Marker>' % e(marker))
            if truncated and delim:
                parts.append('<NextMarker>%s</NextMarker>' % e(last.decode()))
        dates = {}
        for kb, size, etag, mtime in contents:
            d = dates.get(mtime)
            if d is None:
                d = dates[mtime] = iso_date(mtime)
            parts.append('<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>%s</ETag>'
                         '<Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>'
                         % (e(kb.decode()), d, xesc(etag), size))
        for cp in prefixes:
            parts.append('<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>' % e(cp.decode()))
        parts.append('</ListBucketResult>')
        self.xml(200, ''.join(parts))

    def count_upload(self, bucket, hdrs):
        md5 = 'content-md5' in hdrs
        cs = 'x-amz-checksum-sha256' in hdrs
        csha = hdrs.get('x-amz-content-sha256', '')
        with STATE.lock:
            for u in (STATE.stats['uploads'],
                      STATE.bucket_uploads.setdefault(bucket, State.new_upload_counters())):
                u['total'] += 1
                u['content_md5'] += md5
                u['checksum_sha256'] += cs
                u['neither'] += not (md5 or cs)
                u['content_sha256_hex'] += len(csha) == 64
                u['unsigned_payload'] += csha == 'UNSIGNED-PAYLOAD'

    def object_op(self, m, bucket, key, q, hdrs, body):
        if 'uploads' in q:
            if m != 'POST':
                raise S3Fail(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.')
            return self.create_upload(bucket, key, hdrs)
        if 'uploadId' in q:
            uid = q['uploadId']
            if m == 'PUT':
                return self.upload_part(bucket, key, uid, q, hdrs, body)
            if m == 'POST':
                return self.complete_upload(bucket, key, uid, hdrs, body)
            if m == 'DELETE':
                with STATE.lock:
                    self.upload_of(bucket, key, uid)
                    del STATE.uploads[uid]
                return self.send(204)
            if m == 'GET':
                return self.list_parts(bucket, key, uid)
            raise S3Fail(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.')
        if m in ('GET', 'HEAD'):
            return self.get_object(bucket, key, hdrs)
        if m == 'PUT':
            if 'x-amz-copy-source' in hdrs:
                return self.copy_object(bucket, key, hdrs)
            return self.put_object(bucket, key, hdrs, body)
        if m == 'DELETE':
            with STATE.lock:
                STATE.delete(bucket, key)
            return self.send(204)
        raise S3Fail(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.')

    @staticmethod
    def meta_of(hdrs):
        keep = ('content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language')
        return {k: v for k, v in hdrs.items() if k in keep or k.startswith('x-amz-meta-')}

    @staticmethod
    def check_conditions(existing, hdrs, write):
        im = hdrs.get('if-match')
        inm = hdrs.get('if-none-match')
        if im is not None:
            if existing is None:
                raise S3Fail(404 if write else 412, 'NoSuchKey' if write else 'PreconditionFailed',
                             'At least one of the pre-conditions you specified did not hold')
            if im.strip() not in ('*', existing.etag):
                raise S3Fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
        if inm is not None and existing is not None:
            if inm.strip() == '*' or inm.strip() == existing.etag:
                if write:
                    raise S3Fail(412, 'PreconditionFailed',
                                 'At least one of the pre-conditions you specified did not hold')
                return 304
        return None

    def put_object(self, bucket, key, hdrs, body):
        if self.headers.get('content-length') is None and 'chunked' not in hdrs.get('transfer-encoding', ''):
            raise S3Fail(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.')
        self.count_upload(bucket, hdrs)
        sha = check_body(hdrs, body)
        etag = '"%s"' % hashlib.md5(body).hexdigest()
        with STATE.lock:
            self.check_conditions(STATE.get(bucket, key), hdrs, True)
            STATE.put(bucket, key, Obj(body, etag, self.meta_of(hdrs),
                                       base64.b64encode(sha.digest()).decode()))
        h = {'ETag': etag}
        if 'x-amz-checksum-sha256' in hdrs:
            h['x-amz-checksum-sha256'] = hdrs['x-amz-checksum-sha256']
        self.send(200, headers=h)

    def get_object(self, bucket, key, hdrs):
        with STATE.lock:
            o = STATE.get(bucket, key)
        if o is None:
            raise S3Fail(404, 'NoSuchKey', 'The specified key does not exist.', Key=key)
        if self.check_conditions(o, hdrs, False) == 304:
            return self.send(304, headers={'ETag': o.etag})
        size = len(o.data)
        h = {'ETag': o.etag, 'Last-Modified': http_date(o.mtime), 'Accept-Ranges': 'bytes'}
        for k, v in o.meta.items():
            h[k] = v
        h.setdefault('content-type', 'binary/octet-stream')
        if hdrs.get('x-amz-checksum-mode', '').upper() == 'ENABLED' and o.sha256:
            h['x-amz-checksum-sha256'] = o.sha256
        rng = hdrs.get('range')
        status = 200
        data = o.data
        if rng and rng.startswith('bytes=') and ',' not in rng:
            a, _, b = rng[6:].strip().partition('-')
            try:
                if a == '':
                    n = int(b)
                    start, end = max(0, size - n), size - 1
                    ok = n > 0 and size > 0
                else:
                    start = int(a)
                    end = min(int(b), size - 1) if b else size - 1
                    ok = start < size and (not b or int(b) >= start)
            except ValueError:
                ok = None  # not a byte range S3 understands: ignored
            if ok is False:
                raise S3Fail(416, 'InvalidRange', 'The requested range is not satisfiable',
                             RangeRequested=rng, ActualObjectSize=size)
            if ok:
                status = 206
                data = o.data[start:end + 1]
                h['Content-Range'] = 'bytes %d-%d/%d' % (start, end, size)
        if self.command == 'HEAD':
            h['Content-Length'] = str(len(data))
            self.send(status, headers=h)
            return
        self.send(status, data, headers=h, ctype=None)

    def copy_object(self, bucket, key, hdrs):
        sb, sk = parse_copy_source(hdrs['x-amz-copy-source'])
        with STATE.lock:
            src = STATE.get(sb, sk)
            if src is None:
                raise S3Fail(404, 'NoSuchKey', 'The specified key does not exist.', Key=sk)
            im = hdrs.get('x-amz-copy-source-if-match')
            if im is not None and im.strip() != src.etag:
                raise S3Fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
            directive = hdrs.get('x-amz-metadata-directive', 'COPY').upper()
            if directive == 'COPY' and (sb, sk) == (bucket, key):
                raise S3Fail(400, 'InvalidRequest', 'This copy request is illegal because it is trying to copy an '
                             'object to itself without changing the object\'s metadata, storage class, website '
                             'redirect location or encryption attributes.')
            meta = dict(src.meta) if directive == 'COPY' else self.meta_of(hdrs)
            obj = Obj(src.data, src.etag, meta, src.sha256)
            STATE.put(bucket, key, obj)
        self.xml(200, '<CopyObjectResult xmlns="%s"><LastModified>%s</LastModified><ETag>%s</ETag></CopyObjectResult>'
                 % (NS, iso_date(obj.mtime), xesc(obj.etag)))

    def create_upload(self, bucket, key, hdrs):
        with STATE.lock:
            STATE.upload_seq += 1
            uid = 'fx%014d%s' % (STATE.upload_seq, hashlib.md5(os.urandom(8)).hexdigest()[:16])
            STATE.uploads[uid] = {'bucket': bucket, 'key': key, 'parts': {}, 'meta': self.meta_of(hdrs)}
        self.xml(200, '<InitiateMultipartUploadResult xmlns="%s"><Bucket>%s</Bucket><Key>%s</Key>'
                 '<UploadId>%s</UploadId></InitiateMultipartUploadResult>' % (NS, xesc(bucket), xesc(key), uid))

    @staticmethod
    def upload_of(bucket, key, uid):
        u = STATE.uploads.get(uid)
        if u is None or u['bucket'] != bucket or u['key'] != key:
            raise S3Fail(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, '
                         'or the upload may have been aborted or completed.', UploadId=uid)
        return u

    def upload_part(self, bucket, key, uid, q, hdrs, body):
        pn = q.get('partNumber', '')
        if not pn.isdigit() or not 1 <= int(pn) <= 10000:
            raise S3Fail(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive')
        if 'x-amz-copy-source' in hdrs:
            sb, sk = parse_copy_source(hdrs['x-amz-copy-source'])
            with STATE.lock:
                src = STATE.get(sb, sk)
                if src is None:
                    raise S3Fail(404, 'NoSuchKey', 'The specified key does not exist.', Key=sk)
                data = src.data
                r = hdrs.get('x-amz-copy-source-range')
                if r:
                    a, _, b = r[6:].partition('-')
                    data = data[int(a):int(b) + 1]
                etag = '"%s"' % hashlib.md5(data).hexdigest()
                self.upload_of(bucket, key, uid)['parts'][int(pn)] = (data, etag)
            return self.xml(200, '<CopyPartResult><LastModified>%s</LastModified><ETag>%s</ETag></CopyPartResult>'
                            % (iso_date(time.time()), xesc(etag)))
        self.count_upload(bucket, hdrs)
        check_body(hdrs, body)
        etag = '"%s"' % hashlib.md5(body).hexdigest()
        with STATE.lock:
            self.upload_of(bucket, key, uid)['parts'][int(pn)] = (body, etag)
        h = {'ETag': etag}
        if 'x-amz-checksum-sha256' in hdrs:
            h['x-amz-checksum-sha256'] = hdrs['x-amz-checksum-sha256']
        self.send(200, headers=h)

    def list_parts(self, bucket, key, uid):
        with STATE.lock:
            u = self.upload_of(bucket, key, uid)
            parts = sorted(u['parts'].items())
        items = ''.join('<Part><PartNumber>%d</PartNumber><ETag>%s</ETag><Size>%d</Size></Part>'
                        % (n, xesc(etag), len(data)) for n, (data, etag) in parts)
        self.xml(200, '<ListPartsResult xmlns="%s"><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId>'
                 '<IsTruncated>false</IsTruncated>%s</ListPartsResult>' % (NS, xesc(bucket), xesc(key), uid, items))

    def complete_upload(self, bucket, key, uid, hdrs, body):
        check_body(hdrs, body)
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise S3Fail(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate '
                         'against our published schema')
        want = []
        for part in root:
            if part.tag.split('}')[-1] != 'Part':
                continue
            f = {c.tag.split('}')[-1]: (c.text or '').strip() for c in part}
            if not f.get('PartNumber', '').isdigit():
                raise S3Fail(400, 'MalformedXML', 'PartNumber missing')
            want.append((int(f['PartNumber']), f.get('ETag', '')))
        if not want:
            raise S3Fail(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate '
                         'against our published schema')
        with STATE.lock:
            u = self.upload_of(bucket, key, uid)
            datas = []
            md5s = b''
            for i, (pn, etag) in enumerate(want):
                if i and pn <= want[i - 1][0]:
                    raise S3Fail(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. The parts '
                                 'list must be specified in order by part number.')
                have = u['parts'].get(pn)
                if have is None or have[1].strip('"') != etag.strip('"'):
                    raise S3Fail(400, 'InvalidPart', 'One or more of the specified parts could not be found. The '
                                 'part may not have been uploaded, or the specified entity tag may not match the '
                                 'part\'s entity tag.', PartNumber=pn, ETag=etag)
                if i < len(want) - 1 and len(have[0]) < STATE.min_part_size:
                    raise S3Fail(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed '
                                 'object size.', ProposedSize=len(have[0]), MinSizeAllowed=STATE.min_part_size,
                                 PartNumber=pn, ETag=etag)
                datas.append(have[0])
                md5s += binascii.unhexlify(have[1].strip('"'))
            data = b''.join(datas)
            etag = '"%s-%d"' % (hashlib.md5(md5s).hexdigest(), len(want))
            obj = Obj(data, etag, u['meta'])
            STATE.put(bucket, key, obj)
            del STATE.uploads[uid]
        self.xml(200, '<CompleteMultipartUploadResult xmlns="%s"><Location>/%s/%s</Location><Bucket>%s</Bucket>'
                 '<Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>'
                 % (NS, xesc(bucket), xesc(urllib.parse.quote(key)), xesc(bucket), xesc(key), xesc(etag)))

    # --- control ------------------------------------------------------------

    def control(self, url):
        what = url.path[len('/__control/'):]
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        body = self.read_body()
        arg = json.loads(body.decode()) if body.strip() else None
        m = self.command
        if what == 'health':
            return self.send(200, b'ok\n', ctype='text/plain')
        if what == 'faults' and m == 'POST':
            rules = arg if isinstance(arg, list) else [arg]
            for r in rules:
                if not isinstance(r, dict):
                    raise ValueError('a rule is a JSON object')
                act = r.get('action', 'status')
                if act not in ('status', 'reset', 'reset_after', 'reset_mid_body', 'error_200',
                               'corrupt_body', 'delay', 'headers'):
                    raise ValueError('unknown action %r' % act)
                if not isinstance(r.get('times', 1), int) or not isinstance(r.get('skip', 0), int):
                    raise ValueError('times and skip are integers')
            with STATE.lock:
                STATE.rules.extend(dict(r) for r in rules)
                n = len(STATE.rules)
            return self.send_json(200, {'ok': True, 'rules': n})
        if what == 'faults' and m == 'GET':
            with STATE.lock:
                return self.send_json(200, list(STATE.rules))
        if what == 'log' and m == 'GET':
            with STATE.lock:
                b = q.get('bucket')
                data = json.dumps([e for e in STATE.log if b is None or e['bucket'] == b])
            return self.send(200, data.encode(), ctype='application/json')
        if what == 'stats' and m == 'GET':
            with STATE.lock:
                b = q.get('bucket')
                if b is None:
                    s = json.loads(json.dumps(STATE.stats))
                    s['objects'] = sum(len(x) for x in STATE.buckets.values())
                    s['bytes_stored'] = sum(len(o.data) for x in STATE.buckets.values() for o in x.values())
                    s['multipart_in_progress'] = len(STATE.uploads)
                    s['rules_pending'] = len(STATE.rules)
                    s['log_dropped'] = STATE.log_dropped
                else:
                    mine = [e for e in STATE.log if e['bucket'] == b]
                    s = {'bucket': b, 'requests': len(mine), 'by_method': {},
                         'faults_fired': sum(1 for e in mine if e['fault']),
                         'uploads': dict(STATE.bucket_uploads.get(b, State.new_upload_counters())),
                         'objects': len(STATE.buckets.get(b, {})),
                         'bytes_stored': sum(len(o.data) for o in STATE.buckets.get(b, {}).values()),
                         'multipart_in_progress': sum(1 for u in STATE.uploads.values() if u['bucket'] == b)}
                    for e in mine:
                        s['by_method'][e['method']] = s['by_method'].get(e['method'], 0) + 1
            return self.send_json(200, s)
        if what == 'objects' and m == 'GET':
            b = q.get('bucket', '')
            with STATE.lock:
                objs = STATE.buckets.get(b, {})
                out = [{'key': k.decode(), 'size': len(objs[k.decode()].data), 'etag': objs[k.decode()].etag}
                       for k in STATE.sorted.get(b, [])]
            return self.send_json(200, out)
        if what == 'uploads' and m == 'GET':
            with STATE.lock:
                out = [{'upload_id': uid, 'bucket': u['bucket'], 'key': u['key'],
                        'parts': {str(n): len(p[0]) for n, p in sorted(u['parts'].items())}}
                       for uid, u in STATE.uploads.items()]
            return self.send_json(200, out)
        if what == 'reset' and m == 'POST':
            with STATE.lock:
                if arg and arg.get('bucket'):
                    STATE.reset_bucket(arg['bucket'])
                else:
                    STATE.reset()
            return self.send_json(200, {'ok': True})
        if what == 'synthetic' and m == 'POST':
            b = arg['bucket']
            pages = int(arg.get('pages', 0))
            per = int(arg.get('per_page', 1000))
            if pages < 0 or not 1 <= per <= 1000:
                raise ValueError('pages >= 0, 1 <= per_page <= 1000')
            with STATE.lock:
                if pages == 0:
                    STATE.synthetic.pop(b, None)
                else:
                    STATE.synthetic[b] = Synthetic(pages, per, arg.get('key_prefix', 'k/'),
                                                   bool(arg.get('unsorted')))
            return self.send_json(200, {'ok': True, 'keys': pages * per})
        if what == 'config' and m == 'POST':
            with STATE.lock:
                if 'min_part_size' in arg:
                    STATE.min_part_size = int(arg['min_part_size'])
            return self.send_json(200, {'ok': True})
        self.send_json(404, {'error': 'no such control endpoint %s %s' % (m, url.path)})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr):
        self.rst = set()
        super().__init__(addr, Handler)

    def shutdown_request(self, request):
        if id(request) in self.rst:
            self.rst.discard(id(request))
            self.close_request(request)  # linger 0: the peer gets a RST
            return
        super().shutdown_request(request)


def main():
    ap = argparse.ArgumentParser(description='scriptable in-memory S3 fault server')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    a = ap.parse_args()
    if a.host not in ('127.0.0.1', '::1', 'localhost'):
        sys.exit('faults3: listens on loopback only')
    srv = Server((a.host, a.port))
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + '.tmp', 'w') as f:
            f.write('%d\n' % port)
        os.replace(a.port_file + '.tmp', a.port_file)
    print('faults3 listening on %s:%d' % (a.host, port), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
