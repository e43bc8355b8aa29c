#!/bin/bash
# test_restore_safety: restore never writes outside its target. A crafted
# archive (made with Python's tarfile, not arca) and a manifest that lists
# every member with its true SHA-256 hold: "../" and absolute names, a
# symlink pointing out of the target (absolute and by ".."), a symlink to a
# directory followed by a file through it, a fifo, a character device, a
# hard link, and one honest file. Restore must write the honest file, refuse
# and report every other member, leave nothing outside the target, and end
# partial (exit 3). A manifest that does not match its archive is refused
# (exit 14), and a member whose name has a NUL byte stops the restore. The
# same crafted paths in a mirror run's manifest (with current/ objects) are
# refused the same way.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_cmd python3 jq

D=$IT_TMP/dst
RUN=20261122T091500Z-0badc0de
mkdir -p "$D/archives" "$IT_TMP/outside"

# the archive (members in byte order, as arca writes them) and its manifest
python3 - "$D/archives/$RUN" "$IT_TMP" << 'PYEOF'
import hashlib, io, json, subprocess, sys, tarfile, time

base, tmp = sys.argv[1], sys.argv[2]
members = []  # (TarInfo, data or None)

def add(name, kind="file", data=b"", target=""):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1700000000
    ti.mode = 0o644
    if kind == "file":
        ti.size = len(data)
    elif kind == "symlink":
        ti.type, ti.linkname = tarfile.SYMTYPE, target
    elif kind == "fifo":
        ti.type = tarfile.FIFOTYPE
    elif kind == "chr":
        ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
    elif kind == "hard":
        ti.type, ti.linkname = tarfile.LNKTYPE, target
    members.append((ti, data, kind))

add("../escape-dotdot", data=b"evil ..\n")
add("/tmp/escape-absolute", data=b"evil abs\n")
add("a-dev", "chr")
add("a-fifo", "fifo")
add("a-hard", "hard", target="ok.txt")
add("dirlink", "symlink", target=tmp + "/outside")
add("dirlink/through", data=b"evil through a link\n")
add("link-abs", "symlink", target="/etc/passwd")
add("link-in", "symlink", target="ok.txt")
add("link-up", "symlink", target="../../outside")
add("ok.txt", data=b"honest\n")

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for ti, data, kind in members:
        tf.addfile(ti, io.BytesIO(data) if kind == "file" else None)
raw = buf.getvalue()
arch = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
open(base + ".tar.zst", "wb").write(arch)

run = base.rsplit("/", 1)[1]
lines = [{"type": "header", "format_version": 1, "run": run, "mode": "archive",
          "source": "crafted", "tool": "python", "started": "2026-11-22T09:15:00.000Z",
          "compression": "zstd", "archive": "archives/" + run + ".tar.zst"}]
files = 0
for ti, data, kind in sorted(members, key=lambda m: m[0].name.encode()):
    e = {"type": "symlink" if kind == "symlink" else "file", "path": ti.name,
         "size": len(data) if kind == "file" else 0, "mtime_ns": ti.mtime * 10**9}
    if kind == "symlink":
        e["target"] = ti.linkname
    else:
        e["sha256"] = hashlib.sha256(data).hexdigest()
    files += 1
    lines.append(e)
lines.append({"type": "trailer", "finished": "2026-11-22T09:16:00.000Z", "status": "succeeded",
              "files": files, "bytes": 0, "errors": 0, "archive_size": len(arch),
              "archive_sha256": hashlib.sha256(arch).hexdigest()})
with open(base + ".manifest.jsonl", "w") as f:
    for l in lines:
        f.write(json.dumps(l) + "\n")
PYEOF

T=$IT_TMP/target
# the target already holds a symlink out of it, where the archive has one
mkdir -p "$T"
ln -s "$IT_TMP/outside" "$T/dirlink"
arca_run restore --json "$D" "$T"
assert_rc 3 "a crafted archive restores partially"
assert_eq "$(cat "$T/ok.txt")" honest "the honest file is restored"
[ "$(readlink "$T/link-in")" = ok.txt ] || fail "the inside symlink is restored"
[ ! -e "$IT_TMP/escape-dotdot" ] && [ ! -e /tmp/escape-absolute ] || fail "a file was written outside the target"
[ -z "$(ls -A "$IT_TMP/outside")" ] || fail "a file was written through a symlink out of the target"
[ ! -L "$T/link-abs" ] && [ ! -L "$T/link-up" ] || fail "a symlink pointing out was created"
[ ! -e "$T/a-dev" ] && [ ! -e "$T/a-fifo" ] || fail "a device or fifo was created"
for p in ../escape-dotdot /tmp/escape-absolute a-dev a-fifo a-hard dirlink dirlink/through link-abs link-up; do
    jq -e --arg p "$p" -s 'map(select(.type == "file" and .path == $p and .action == "failed")) | length == 1' \
        "$IT_OUT" > /dev/null || fail "'$p' is not reported as failed"
done
assert_summary status partial

# a manifest that does not match the archive: corrupt, nothing half-written
python3 - "$D/archives/$RUN.manifest.jsonl" << 'PYEOF'
import json, sys
p = sys.argv[1]
L = [json.loads(l) for l in open(p)]
for l in L:
    if l.get("path") == "ok.txt":
        l["sha256"] = "0" * 64
open(p, "w").write("".join(json.dumps(l) + "\n" for l in L))
PYEOF
T2=$IT_TMP/target2
arca_run restore "$D" "$T2"
assert_rc 14 "a file that fails its SHA-256"
assert_err_has "'ok.txt' fails its SHA-256 check"
[ ! -e "$T2/ok.txt" ] || fail "the file that failed its check was left in the target"

# --- the same for a mirror run: a crafted manifest and current/ ---------------------
M=$IT_TMP/mdst
MRUN=20261122T091600Z-0badc0df
mkdir -p "$M/runs" "$M/current/dirlink" "$IT_TMP/outside2"
printf 'honest\n' > "$M/current/ok.txt"
printf 'evil through a link\n' > "$M/current/dirlink/through"
python3 - "$M/runs/$MRUN.manifest.jsonl" "$IT_TMP/outside2" << 'PYEOF'
import hashlib, json, sys
path, outside = sys.argv[1], sys.argv[2]
sha = lambda b: hashlib.sha256(b).hexdigest()
E = [
    ("/tmp/escape-mirror-abs", "file", b"evil abs\n", ""),
    ("../escape-mirror", "file", b"evil ..\n", ""),
    ("dirlink", "symlink", b"", outside),
    ("dirlink/through", "file", b"evil through a link\n", ""),
    ("link-abs", "symlink", b"", "/etc/passwd"),
    ("link-in", "symlink", b"", "ok.txt"),
    ("link-up", "symlink", b"", "../../outside2"),
    ("ok.txt", "file", b"honest\n", ""),
]
run = path.rsplit("/", 1)[1].split(".")[0]
L = [{"type": "header", "format_version": 1, "run": run, "mode": "mirror", "source": "crafted",
      "tool": "python", "started": "2026-11-22T09:16:00.000Z"}]
for p, kind, data, target in sorted(E, key=lambda e: e[0].encode()):
    e = {"type": kind, "path": p, "size": len(data), "mtime_ns": 1700000000 * 10**9}
    if kind == "symlink":
        e["target"] = target
    else:
        e["sha256"], e["stored"] = sha(data), "current"
    L.append(e)
L.append({"type": "trailer", "finished": "2026-11-22T09:17:00.000Z", "status": "succeeded",
          "files": len(E), "bytes": 0, "errors": 0})
open(path, "w").write("".join(json.dumps(l) + "\n" for l in L))
PYEOF
T3=$IT_TMP/target3
mkdir -p "$T3"
ln -s "$IT_TMP/outside2" "$T3/dirlink"
arca_run restore --json "$M" "$T3"
assert_rc 3 "a crafted mirror run restores partially"
assert_eq "$(cat "$T3/ok.txt")" honest "the honest file of the mirror run is restored"
[ "$(readlink "$T3/link-in")" = ok.txt ] || fail "the inside symlink of the mirror run is restored"
[ ! -e "$IT_TMP/escape-mirror" ] && [ ! -e /tmp/escape-mirror-abs ] || fail "a mirror restore wrote outside the target"
[ -z "$(ls -A "$IT_TMP/outside2")" ] || fail "a mirror restore wrote through a symlink out of the target"
[ ! -L "$T3/link-abs" ] && [ ! -L "$T3/link-up" ] || fail "a mirror restore created a symlink pointing out"
for p in ../escape-mirror /tmp/escape-mirror-abs dirlink dirlink/through link-abs link-up; do
    jq -e --arg p "$p" -s 'map(select(.type == "file" and .path == $p and .action == "failed")) | length == 1' \
        "$IT_OUT" > /dev/null || fail "mirror: '$p' is not reported as failed"
done
# a NUL byte in a mirror manifest's path stops the restore
python3 - "$M/runs/$MRUN.manifest.jsonl" << 'PYEOF'
import json, sys
p = sys.argv[1]
L = [json.loads(l) for l in open(p)]
for l in L:
    if l.get("path") == "ok.txt":
        l["path"] = "ok\u0000.txt"
L[1:-1] = sorted(L[1:-1], key=lambda e: e["path"].encode())
open(p, "w").write("".join(json.dumps(l) + "\n" for l in L))
PYEOF
arca_run restore "$M" "$IT_TMP/target4"
assert_rc 14 "a NUL byte in a mirror manifest's path"
assert_err_has "line 9: not valid JSON"

note "ok in $(it_elapsed) s"
