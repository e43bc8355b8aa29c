'use strict';
// patch-s3rver.js: make the installed @20minutes/s3rver 4.0.4 behave like S3
// where arca's tests depend on it. Idempotent: the first run keeps a pristine
// copy of each file it edits (FILE.arca-orig) and every run rebuilds the file
// from that copy, so a changed patch replaces the old one. An anchor that is
// missing (or not unique) is a hard error, so an upgrade of s3rver cannot
// silently leave a patch out. Every edit carries an 'arca-test-patch' marker.
//
// usage: node patch-s3rver.js [node_modules dir]   (default: ./node_modules)
//
// What changes (see docs/TESTING.md):
//   list      ListObjects v1/v2: walk every directory under the prefix, sort
//             keys by their UTF-8 bytes, then apply start-after / marker /
//             continuation token, delimiter (CommonPrefixes, counted against
//             max-keys like S3) and max-keys; tokens carry the last returned
//             key or common prefix, so pages never repeat or skip
//   token     continuation tokens no longer use DES (no legacy OpenSSL needed)
//   encoding  encoding-type=url is honoured (keys, prefixes, delimiter,
//             start-after and markers URL-encoded, EncodingType returned)
//   xml       no double escaping of '&' in XML answers (errors too); XML
//             request bodies keep values as text (key '007' stays '007',
//             no trimming) and decode numeric entities (&#34; from Go clients)
//   auth      a trailing '/' of the path ('/bucket/') is kept when the
//             signature is checked; query strings are canonicalized with
//             RFC 3986 encoding (SigV4 rules: ! ' ( ) * are escaped)
//   abort     DELETE /bucket/key?uploadId=X aborts a multipart upload: its
//             parts under <bucket>/._S3rver_uploads/X are removed, 204
//   uploads   UploadPart / Complete / Abort of an unknown upload answer 404
//             NoSuchUpload; Complete checks part order, part ETags and the
//             5 MiB minimum size of every part but the last, like S3
//   range     'Range: bytes=-N' returns the last N bytes
//   vhost     virtual-host requests (<bucket>.s3.<service endpoint>) are
//             checked against the SigV4 path as sent ("/key"), as S3 does
//   copy      x-amz-copy-source is decoded whole (decodeURIComponent), so keys
//             holding @ : , $ = # + ? ; copy on the server as on S3
const fs = require('fs');
const path = require('path');

const MARK = 'arca-test-patch';
const modulesDir = path.resolve(process.argv[2] || path.join(__dirname, 'node_modules'));
const root = path.join(modulesDir, '@20minutes', 's3rver');

function fail(msg) {
    process.stderr.write(`patch-s3rver: ${msg}\n`);
    process.exit(1);
}

function count(haystack, needle) {
    let n = 0;
    for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + 1)) n++;
    return n;
}

// One edit: either replace `find` (must occur exactly once) by `text`, or,
// with `from`/`to`, replace everything from `from` up to (not including) `to`.
function applyEdit(src, file, e) {
    const marker = `${MARK}:${e.id}`;
    const text = e.text.replace('@MARK@', `/* ${marker} */`);
    if (!text.includes(marker)) fail(`edit '${e.id}' has no marker`);
    if (e.find !== undefined) {
        const n = count(src, e.find);
        if (n !== 1) fail(`'${file}': anchor of edit '${e.id}' found ${n} times (want 1); is this s3rver 4.0.4?`);
        return src.replace(e.find, () => text);
    }
    const a = src.indexOf(e.from);
    const b = a === -1 ? -1 : src.indexOf(e.to, a + e.from.length);
    if (a === -1 || b === -1 || count(src, e.from) !== 1) {
        fail(`'${file}': anchors of edit '${e.id}' not found; is this s3rver 4.0.4?`);
    }
    return src.slice(0, a) + text + src.slice(b);
}

const edits = {
    'lib/stores/filesystem.js': [
        {
            id: 'require-error',
            find: "const S3Object = require('../models/object');\n",
            text: "const S3Object = require('../models/object');\n" +
                "const S3Error = require('../models/error'); @MARK@\n",
        },
        {
            id: 'list',
            from: '  async listObjects(bucket, options) {\n',
            to: '  async existsObject(bucket, key) {\n',
            text: `  async listObjects(bucket, options) {
    @MARK@
    // S3 order: every key under the prefix, sorted by UTF-8 bytes. startAfter
    // filters keys; continueAfter (continuation token, v1 marker) filters the
    // returned entries, so a common prefix given back as a marker skips every
    // key rolled up into it.
    const {
      delimiter = '',
      startAfter = '',
      continueAfter = '',
      prefix = '',
      maxKeys = Infinity,
    } = options;
    const bucketPath = this.getBucketPath(bucket);
    const objectSuffix = format(S3RVER_SUFFIX, '', 'object');
    const uploadsName = format(S3RVER_SUFFIX, '', 'uploads');
    const dirs = FilesystemStore.encodeKeyPath(prefix).split('/');
    dirs.pop();
    const startBuf = Buffer.from(startAfter, 'utf8');
    const found = [];
    const pending = [path.join(bucketPath, ...dirs)];
    while (pending.length) {
      const dir = pending.pop();
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') continue;
        throw err;
      }
      for (const entry of entries) {
        const full = dir + '/' + entry.name;
        if (entry.isDirectory()) {
          if (!(dir === bucketPath && entry.name === uploadsName)) {
            pending.push(full);
          }
          continue;
        }
        if (!entry.name.endsWith(objectSuffix)) continue;
        const key = FilesystemStore.decodeKeyPath(
          full.slice(bucketPath.length + 1, full.length - objectSuffix.length),
        );
        if (!key.startsWith(prefix)) continue;
        const buf = Buffer.from(key, 'utf8');
        if (startAfter && Buffer.compare(buf, startBuf) <= 0) continue;
        found.push({ key, buf });
      }
    }
    found.sort((a, b) => Buffer.compare(a.buf, b.buf));

    const contBuf = continueAfter ? Buffer.from(continueAfter, 'utf8') : null;
    const keys = [];
    const commonPrefixes = [];
    let last = null;
    let isTruncated = false;
    for (const { key, buf } of found) {
      let entry = key;
      let entryBuf = buf;
      let rolledUp = false;
      if (delimiter) {
        const idx = key.indexOf(delimiter, prefix.length);
        if (idx !== -1) {
          entry = key.slice(0, idx + delimiter.length);
          entryBuf = Buffer.from(entry, 'utf8');
          rolledUp = true;
        }
      }
      if (entry === last) continue;
      if (contBuf && Buffer.compare(entryBuf, contBuf) <= 0) continue;
      if (keys.length + commonPrefixes.length >= maxKeys) {
        isTruncated = true;
        break;
      }
      (rolledUp ? commonPrefixes : keys).push(entry);
      last = entry;
    }

    const metadataArr = await Promise.all(
      keys.map((key) =>
        this.getMetadata(bucket, key).catch((err) => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        }),
      ),
    );

    return {
      objects: zip(keys, metadataArr)
        .filter(([, metadata]) => metadata !== undefined)
        .map(([key, metadata]) => new S3Object(bucket, key, null, metadata)),
      commonPrefixes,
      isTruncated,
      nextMarker: last,
    };
  }

`,
        },
        {
            id: 'range-suffix',
            find: '      const metadata = await this.getMetadata(bucket, key);\n',
            text: '      const metadata = await this.getMetadata(bucket, key);\n' +
                '      @MARK@\n' +
                '      if (options && options.suffix !== undefined) {\n' +
                "        const size = Number(metadata['content-length']);\n" +
                '        options = { start: Math.max(0, size - options.suffix), end: size - 1 };\n' +
                '      }\n',
        },
        {
            id: 'uploads',
            find: '  async getSubresource(bucket, key, resourceType) {\n',
            text: `  @MARK@
  // the directory of an upload that exists, else NoSuchUpload (as S3)
  async requireUpload(bucket, uploadId) {
    if (typeof uploadId === 'string' && /^[0-9a-f]{32}$/.test(uploadId)) {
      const dir = path.join(
        this.getResourcePath(bucket, undefined, 'uploads'),
        uploadId,
      );
      try {
        await fs.stat(path.join(dir, 'key'));
        return dir;
      } catch (err) {
        if (err.code !== 'ENOENT') throw err;
      }
    }
    throw new S3Error(
      'NoSuchUpload',
      'The specified upload does not exist. The upload ID may be invalid, ' +
        'or the upload may have been aborted or completed.',
      { UploadId: String(uploadId) },
    );
  }

  async abortUpload(bucket, uploadId) {
    const dir = await this.requireUpload(bucket, uploadId);
    await fs.rm(dir, { recursive: true, force: true });
  }

  async checkParts(bucket, uploadId, parts) {
    const dir = await this.requireUpload(bucket, uploadId);
    // S3 compares ETags without their quotes, however they were escaped
    const bare = (etag) =>
      String(etag).replace(/&quot;|&#34;|&#x22;|"/gi, '').trim();
    const partError = (part) =>
      new S3Error(
        'InvalidPart',
        'One or more of the specified parts could not be found. The part ' +
          'may not have been uploaded, or the specified entity tag may not ' +
          "match the part's entity tag.",
        { PartNumber: String(part.number), ETag: String(part.etag) },
      );
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i > 0 && !(part.number > parts[i - 1].number)) {
        throw new S3Error(
          'InvalidPartOrder',
          'The list of parts was not in ascending order. The parts list ' +
            'must be specified in order by part number.',
        );
      }
      if (!Number.isInteger(part.number) || part.number < 1) {
        throw partError(part);
      }
      const partPath = path.join(dir, String(part.number));
      let md5;
      let size;
      try {
        md5 = (await fs.readFile(partPath + '.md5')).toString();
        size = (await fs.stat(partPath)).size;
      } catch (err) {
        if (err.code !== 'ENOENT') throw err;
        throw partError(part);
      }
      if (bare(part.etag) !== md5) throw partError(part);
      if (i < parts.length - 1 && size < 5 * 1024 * 1024) {
        throw new S3Error(
          'EntityTooSmall',
          'Your proposed upload is smaller than the minimum allowed object size.',
          {
            ProposedSize: String(size),
            MinSizeAllowed: String(5 * 1024 * 1024),
            PartNumber: String(part.number),
            ETag: part.etag,
          },
        );
      }
    }
  }

  async getSubresource(bucket, key, resourceType) {
`,
        },
        {
            id: 'put-part',
            find: '  async putPart(bucket, uploadId, partNumber, content) {\n',
            text: '  async putPart(bucket, uploadId, partNumber, content) {\n' +
                '    @MARK@\n' +
                '    await this.requireUpload(bucket, uploadId);\n' +
                '    if (!/^[0-9]{1,5}$/.test(String(partNumber)) ||\n' +
                '        Number(partNumber) < 1 || Number(partNumber) > 10000) {\n' +
                "      throw new S3Error('InvalidArgument',\n" +
                "        'Part number must be an integer between 1 and 10000, inclusive',\n" +
                "        { ArgumentName: 'partNumber', ArgumentValue: String(partNumber) });\n" +
                '    }\n' +
                '    partNumber = Number(partNumber);\n',
        },
        {
            id: 'complete',
            find: '  async putObjectMultipart(bucket, uploadId, parts) {\n',
            text: '  async putObjectMultipart(bucket, uploadId, parts) {\n' +
                '    @MARK@\n' +
                '    await this.checkParts(bucket, uploadId, parts);\n',
        },
    ],
    'lib/controllers/bucket.js': [
        {
            id: 'token',
            from: 'function generateContinuationToken(bucket, keyName, region) {\n',
            to: 'exports.bucketExists = ',
            text: `@MARK@
// The token carries the bucket and the last key or common prefix returned.
function generateContinuationToken(bucket, marker, region) {
  return Buffer.from(JSON.stringify({ r: region, b: bucket, m: marker }), 'utf8')
    .toString('base64');
}

function decipherContinuationToken(token) {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
    return t && typeof t.m === 'string' && typeof t.b === 'string' ? t : null;
  } catch (err) {
    return null;
  }
}

`,
        },
        {
            id: 'token-parse',
            find: "        const [, region, bucket, startAfter] =\n" +
                "          /([\\w-.]+)\\/([\\w-.]+)\\/(.+)/.exec(token) || [];\n" +
                "        if (region !== 'us-east-1' || bucket !== ctx.params.bucket) {\n",
            text: '        @MARK@\n' +
                "        const { r: region, b: bucket, m: marker } = token || {};\n" +
                "        if (region !== 'us-east-1' || bucket !== ctx.params.bucket) {\n",
        },
        {
            id: 'token-use',
            find: '        options.startAfter = startAfter;\n',
            text: '        options.continueAfter = marker; @MARK@\n',
        },
        {
            id: 'marker-v1',
            find: '      options.startAfter = ctx.query.marker;\n',
            text: '      options.startAfter = ctx.query.marker;\n' +
                '      options.continueAfter = ctx.query.marker; @MARK@\n',
        },
        {
            id: 'next-token',
            find: '                ? generateContinuationToken(\n' +
                '                    ctx.params.bucket,\n' +
                '                    result.objects[result.objects.length - 1].key,\n',
            text: '                ? generateContinuationToken( @MARK@\n' +
                '                    ctx.params.bucket,\n' +
                '                    result.nextMarker,\n',
        },
        {
            id: 'next-marker',
            find: '                  ? result.objects[result.objects.length - 1].key\n',
            text: '                  ? result.nextMarker @MARK@\n',
        },
        {
            id: 'encoding-type',
            find: '        CommonPrefixes: result.commonPrefixes.map((prefix) => ({\n' +
                '          Prefix: prefix,\n' +
                '        })),\n' +
                '      },\n' +
                '    };\n',
            text: '        CommonPrefixes: result.commonPrefixes.map((prefix) => ({\n' +
                '          Prefix: prefix,\n' +
                '        })),\n' +
                '      },\n' +
                '    };\n' +
                `    @MARK@
    if (ctx.query['encoding-type'] === 'url') {
      // like S3: every byte but unreserved ones and '/' escaped, ' ' as '+'
      const enc = (s) =>
        typeof s === 'string'
          ? encodeURIComponent(s)
              .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
              .replace(/%2F/g, '/')
              .replace(/%20/g, '+')
          : s;
      const r = ctx.body.ListBucketResult;
      for (const f of ['Prefix', 'StartAfter', 'Delimiter', 'Marker', 'NextMarker']) {
        r[f] = enc(r[f]);
      }
      for (const c of r.Contents) c.Key = enc(c.Key);
      for (const p of r.CommonPrefixes) p.Prefix = enc(p.Prefix);
      r.EncodingType = 'url';
    }
`,
        },
    ],
    'lib/controllers/object.js': [
        {
            // S3 clients percent-encode the whole key in x-amz-copy-source;
            // decodeURI leaves reserved characters (@ : , $ = # + ? ;) encoded
            id: 'copy-source-decode',
            find: 'exports.putObjectCopy = async function putObjectCopy(ctx) {\n' +
                "  let copySource = decodeURI(ctx.headers['x-amz-copy-source']);\n",
            text: 'exports.putObjectCopy = async function putObjectCopy(ctx) {\n' +
                '  @MARK@\n' +
                "  let copySource = decodeURIComponent(ctx.headers['x-amz-copy-source']);\n",
        },
        {
            id: 'copy-part-source-decode',
            find: 'exports.uploadPartCopy = async function uploadPartCopy(ctx) {\n' +
                "  let copySource = decodeURI(ctx.headers['x-amz-copy-source']);\n",
            text: 'exports.uploadPartCopy = async function uploadPartCopy(ctx) {\n' +
                '  @MARK@\n' +
                "  let copySource = decodeURIComponent(ctx.headers['x-amz-copy-source']);\n",
        },
        {
            id: 'range-suffix',
            find: '    options.start = Number(start);\n' +
                '    if (end) options.end = Number(end);\n',
            text: '    @MARK@\n' +
                "    if (start === '' && end) {\n" +
                '      options.suffix = Number(end);\n' +
                '    } else {\n' +
                '      options.start = Number(start);\n' +
                '      if (end) options.end = Number(end);\n' +
                '    }\n',
        },
    ],
    'lib/routes.js': [
        {
            id: 'abort',
            find: "      case undefined:\n" +
                "        return objectCtrl.deleteObject(ctx);\n",
            text: "      case undefined:\n" +
                "        return objectCtrl.deleteObject(ctx);\n" +
                "      case 'uploadId': @MARK@\n" +
                '        return ctx.store\n' +
                '          .abortUpload(ctx.params.bucket, ctx.query.uploadId)\n' +
                '          .then(() => {\n' +
                '            ctx.status = 204;\n' +
                '          });\n',
        },
    ],
    'lib/middleware/authentication.js': [
        {
            id: 'trailing-slash',
            find: '    canonicalizedResource = canonicalizedResource\n' +
                "      .split('/')\n",
            text: '    @MARK@\n' +
                "    if (!ctx.state.vhost && ctx.path.endsWith('/') && !canonicalizedResource.endsWith('/')) {\n" +
                "      canonicalizedResource += '/';\n" +
                '    }\n' +
                '    canonicalizedResource = canonicalizedResource\n' +
                "      .split('/')\n",
        },
        {
            // SigV4 signs the path as sent: for a virtual-host request that is
            // "/key", not the "/bucket/key" that SigV2 canonicalizes
            id: 'vhost-v4-uri',
            find: '      case 4:\n' +
                '        canonicalRequest.timestamp = request.time;\n',
            text: '      case 4:\n' +
                '        @MARK@\n' +
                "        if (ctx.state.vhost && ctx.params.bucket) {\n" +
                "          canonicalRequest.uri = canonicalRequest.uri.slice(encodeURIComponentRFC3986(ctx.params.bucket).length + 1) || '/';\n" +
                '        }\n' +
                '        canonicalRequest.timestamp = request.time;\n',
        },
        {
            id: 'query-rfc3986',
            find: '            : [param, value].map(encodeURIComponent).join(\'=\'),',
            text: '            : [param, value].map(encodeURIComponentRFC3986).join(\'=\'), @MARK@',
        },
    ],
    'lib/utils.js': [
        {
            id: 'xml-body',
            find: '  const xmlParser = new XMLParser();\n' +
                '  ctx.request.body = xmlParser.parse(xmlString, {\n' +
                '    tagValueProcessor: (a) => he.decode(a),\n' +
                '  });\n',
            text: '  @MARK@\n' +
                '  const xmlParser = new XMLParser({\n' +
                '    parseTagValue: false,\n' +
                '    trimValues: false,\n' +
                '    processEntities: false,\n' +
                '    tagValueProcessor: (tagName, a) => he.decode(a),\n' +
                '  });\n' +
                '  ctx.request.body = xmlParser.parse(xmlString);\n',
        },
    ],
    'lib/models/error.js': [
        {
            id: 'xml-escape',
            find: '  toXML() {\n' +
                '    const builder = new XMLBuilder({\n',
            text: '  toXML() {\n' +
                '    const builder = new XMLBuilder({\n' +
                '      processEntities: false, @MARK@\n',
        },
    ],
    'lib/s3rver.js': [
        {
            id: 'xml-escape',
            find: "        attributesGroupName: '@',\n" +
                '        tagValueProcessor: (tagName, a) => {\n',
            text: "        attributesGroupName: '@',\n" +
                '        processEntities: false, @MARK@\n' +
                '        tagValueProcessor: (tagName, a) => {\n',
        },
    ],
};

function main() {
    let pkg;
    try {
        pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    } catch (err) {
        fail(`cannot read '${root}/package.json' (${err.message}); run scripts/install-deps.sh first`);
    }
    if (pkg.version !== '4.0.4') fail(`s3rver ${pkg.version} installed, patches are for 4.0.4`);
    let changed = 0;
    for (const [rel, list] of Object.entries(edits)) {
        const file = path.join(root, rel);
        const orig = file + '.arca-orig';
        const before = fs.readFileSync(file, 'utf8');
        let pristine;
        if (fs.existsSync(orig)) {
            pristine = fs.readFileSync(orig, 'utf8');
        } else if (before.includes(MARK)) {
            fail(`'${rel}' is patched but its pristine copy is gone; reinstall: ` +
                `rm -rf tests/servers/node_modules && scripts/install-deps.sh`);
        } else {
            pristine = before;
            fs.writeFileSync(orig, pristine);
        }
        let src = pristine;
        for (const e of list) src = applyEdit(src, rel, e);
        if (src !== before) {
            fs.writeFileSync(file + '.arca-tmp', src);
            fs.renameSync(file + '.arca-tmp', file);
            changed++;
        }
    }
    // every patched module must still load
    require(path.join(root, 'lib', 's3rver.js'));
    process.stdout.write(`patch-s3rver: ${changed ? `patched ${changed} file(s)` : 'up to date'}\n`);
}

main();
