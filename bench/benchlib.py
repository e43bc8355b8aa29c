"""benchlib.py - data, verification and the report table for bench/run.sh
and bench/sftp.sh.

Run with /usr/bin/python3 (standard library only):

  gen-big PATH MIB MANIFEST          one file of MIB MiB of random bytes
  gen-small DIR COUNT SIZE DIRS MANIFEST
                                     COUNT random files of SIZE bytes spread
                                     over DIRS subdirectories
  verify-tree DIR MANIFEST [SUFFIX]  DIR holds exactly the files of MANIFEST
                                     (same relative paths, sizes, SHA-256);
                                     with SUFFIX only files named *SUFFIX
                                     count and the suffix is cut off (the
                                     object files of s3rver's data directory)
  snapshot DIR OUT                   size, mtime and inode of every file
  same-snapshot A B                  the two snapshots are equal
  record RUNS_JSONL key=value...     append one run (numbers parsed)
  report RUNS_JSONL META_JSON [OUT]  print the table; with OUT also write JSON

A manifest maps a relative path to [size, sha256]. Exit status 0 means yes;
1 prints the first differences on stdout.

META_JSON (strings) may change the table; without these keys it is
bench/run.sh's:
  tools        "arca,rclone,openssh": the tools, in table order; ratios are
               the first tool's to each other one (default "arca,rclone")
  server_cols  "sshd_cpu_s:sshd%,s3rver_cpu_s:s3rver%": per-run server CPU
               seconds to show as % of wall time, with their headers
               (default "server_cpu_s:srv CPU%"); a run without the key
               shows "-"
  title_N      the title of row N
  notes        the text under the table (lines separated by newlines)
"""

import hashlib
import json
import os
import statistics
import sys

CHUNK = 1 << 20


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def gen_big(path, mib, manifest):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(int(mib)):
            b = os.urandom(CHUNK)
            h.update(b)
            f.write(b)
    write_json(manifest, {os.path.basename(path): [int(mib) * CHUNK, h.hexdigest()]})


def gen_small(top, count, size, dirs, manifest):
    count, size, dirs = int(count), int(size), int(dirs)
    m = {}
    for i in range(count):
        rel = "d%03d/f%05d.bin" % (i % dirs, i)
        full = os.path.join(top, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        b = os.urandom(size)
        with open(full, "wb") as f:
            f.write(b)
        m[rel] = [size, hashlib.sha256(b).hexdigest()]
    write_json(manifest, m)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def walk_files(top):
    for d, _, files in os.walk(top):
        for name in files:
            full = os.path.join(d, name)
            yield os.path.relpath(full, top), full


def verify_tree(top, manifest, suffix=""):
    with open(manifest) as f:
        want = json.load(f)
    if not os.path.isdir(top):
        print("'%s' does not exist" % top)
        return 1
    got = {}
    for rel, full in walk_files(top):
        if suffix:
            if not rel.endswith(suffix):
                continue
            rel = rel[: -len(suffix)]
        got[rel] = full
    problems = []
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        problems.append("%d file(s) missing, e.g. '%s'" % (len(missing), missing[0]))
    if extra:
        problems.append("%d unexpected file(s), e.g. '%s'" % (len(extra), extra[0]))
    bad = 0
    for rel in sorted(set(want) & set(got)):
        size, digest = want[rel]
        full = got[rel]
        if os.path.getsize(full) != size or file_sha256(full) != digest:
            if not bad:
                problems.append("content of '%s' differs from the source" % rel)
            bad += 1
    if bad > 1:
        problems.append("%d file(s) differ in all" % bad)
    if problems:
        print("; ".join(problems))
        return 1
    return 0


def snapshot(top, out):
    snap = {}
    for rel, full in walk_files(top):
        st = os.lstat(full)
        snap[rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
    write_json(out, snap)


def same_snapshot(a, b):
    with open(a) as f:
        sa = json.load(f)
    with open(b) as f:
        sb = json.load(f)
    if sa == sb:
        return 0
    changed = sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
    print("%d server file(s) written, e.g. '%s'" % (len(changed), changed[0]))
    return 1


def parse_value(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def record(path, pairs):
    run = {}
    for p in pairs:
        k, _, v = p.partition("=")
        run[k] = parse_value(v)
    with open(path, "a") as f:
        f.write(json.dumps(run, sort_keys=True) + "\n")


def size_name(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return "%d %s" % (n // div, unit)
    return "%d B" % n


def row_title(row, meta):
    if "title_%d" % row in meta:
        return meta["title_%d" % row]
    big = size_name(int(meta.get("big_mib", 1024)) << 20)
    count = int(meta.get("small_count", 10000))
    count = "%dk" % (count // 1000) if count % 1000 == 0 else str(count)
    small = size_name(int(meta.get("small_size", 4096)))
    return {
        1: "%s file local -> S3" % big,
        2: "%s file S3 -> local" % big,
        3: "%s x %s local -> S3" % (count, small),
        4: "%s no-change re-run" % count,
    }.get(row, "")


TOOLS = ("arca", "rclone")


def tools_of(meta):
    if meta.get("tools"):
        return tuple(meta["tools"].split(","))
    return TOOLS


def server_cols(meta):
    """[(run key, summary key prefix, header)]: server_cpu_s -> server_cpu_pct."""
    spec = meta.get("server_cols") or "server_cpu_s:srv CPU%"
    cols = []
    for item in spec.split(","):
        key, _, head = item.partition(":")
        base = key[:-2] if key.endswith("_s") else key
        cols.append((key, base, head or key))
    return cols


def median(xs):
    return statistics.median(xs) if xs else None


def summarize(runs, meta):
    out = []
    for row in sorted({r["row"] for r in runs}):
        for tool in tools_of(meta):
            rs = [r for r in runs if r["row"] == row and r["tool"] == tool]
            if not rs:
                continue
            ok = [r for r in rs if r["ok"] == 1]
            s = {"row": row, "title": row_title(row, meta),
                 "tool": tool, "runs": len(rs), "ok": len(ok)}
            if ok:
                s["wall_s"] = median([r["wall_s"] for r in ok])
                s["cpu_s"] = median([r["user_s"] + r["sys_s"] for r in ok])
                s["rss_mib"] = median([r["rss_kib"] / 1024.0 for r in ok])
                for key, base, _ in server_cols(meta):
                    has = [r for r in ok if key in r]
                    s[base + "_pct"] = median([100.0 * r[key] / r["wall_s"] for r in has])
                    s[key] = median([r[key] for r in has])
                s["other_cpu_pct"] = median([100.0 * r["other_cpu_s"] / r["wall_s"] for r in ok])
                s["sync_after_s"] = median([r.get("sync_after_s", 0) for r in ok])
                s["iowait_s"] = median([r.get("iowait_s", 0) for r in ok])
                if "requests" in ok[0]:
                    s["requests"] = median([r["requests"] for r in ok])
                units = ok[0].get("units", 0)
                if units:
                    s["rate"] = units / s["wall_s"]
                    s["rate_unit"] = ok[0].get("unit_name", "")
            out.append(s)
    return out


def fmt(v, spec, width):
    return (spec % v if v is not None else "-").rjust(width)


def ratio(a, b, key):
    if a.get(key) is None or not b.get(key):
        return None
    return a[key] / b[key]


NOTES = """Medians of the successful runs. CPU s = user+sys of the client process; srv CPU% =
s3rver's CPU time / wall time (100% = one core; s3rver runs its JS on one thread,
so near 100% it is the bottleneck); other% = CPU used by everything else on the
machine during the run (noise from other work, and kernel writeback); sync s = time
of a 'sync' right after the run, outside the timing: data the run left unwritten
(arca makes what it writes durable before it exits, rclone does not); rate = size or files / median wall."""


def report(runs_path, meta_path, out_path=None):
    runs = []
    if os.path.exists(runs_path):
        with open(runs_path) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    with open(meta_path) as f:
        meta = json.load(f)
    summary = summarize(runs, meta)
    reqs = any("requests" in s for s in summary)
    tools = tools_of(meta)
    cols = [(base, head, max(9, len(head) + 1)) for _, base, head in server_cols(meta)]

    head = ("%-27s %-12s %5s %8s %7s %8s" % ("row", "tool", "ok", "wall s", "CPU s", "RSS MiB") +
            "".join(" %*s" % (w, h) for _, h, w in cols) +
            " %8s %7s %11s" % ("other%", "sync s", "rate"))
    if reqs:
        head += " %9s" % "requests"
    print(head)
    print("-" * len(head))
    by = {(s["row"], s["tool"]): s for s in summary}
    for row in sorted({s["row"] for s in summary}):
        first = True
        for tool in tools:
            s = by.get((row, tool))
            if not s:
                continue
            rate = None
            if s.get("rate") is not None:
                rate = "%.1f %s" % (s["rate"], s["rate_unit"])
            line = "%-27s %-12s %5s %s %s %s" % (
                ("%d %s" % (row, s["title"])) if first else "",
                tool, "%d/%d" % (s["ok"], s["runs"]),
                fmt(s.get("wall_s"), "%.2f", 8), fmt(s.get("cpu_s"), "%.2f", 7),
                fmt(s.get("rss_mib"), "%.1f", 8))
            first = False
            for base, _, w in cols:
                line += " " + fmt(s.get(base + "_pct"), "%.0f%%", w)
            line += " %s %s %s" % (
                fmt(s.get("other_cpu_pct"), "%.0f%%", 8), fmt(s.get("sync_after_s"), "%.2f", 7),
                (rate or "-").rjust(11))
            if reqs:
                line += " %s" % fmt(s.get("requests"), "%.0f", 9)
            print(line)
        a = by.get((row, tools[0]))
        for other in tools[1:]:
            b = by.get((row, other))
            if not (a and b):
                continue
            rw, rc, rr = ratio(a, b, "wall_s"), ratio(a, b, "cpu_s"), ratio(a, b, "rss_mib")
            if other == tools[1]:
                a["ratio_wall"], a["ratio_cpu"], a["ratio_rss"] = rw, rc, rr
            else:
                a["ratio_wall_" + other], a["ratio_cpu_" + other] = rw, rc
                a["ratio_rss_" + other] = rr
            print("%-27s %-12s %5s %s %s %s" % ("", "%s/%s" % (tools[0], other), "",
                                              fmt(rw, "%.2fx", 8), fmt(rc, "%.2fx", 7),
                                              fmt(rr, "%.2fx", 8)))
    print()
    print(meta.get("notes") or NOTES)
    failed = [r for r in runs if r["ok"] != 1]
    for r in failed:
        print("FAILED: row %s %s rep %s: %s" % (r["row"], r["tool"], r["rep"], r.get("why", "")))
    if out_path:
        write_json(out_path, {"meta": meta, "summary": summary, "runs": runs})
    return 1 if failed else 0


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "gen-big" and len(args) == 3:
        gen_big(*args)
        return 0
    if cmd == "gen-small" and len(args) == 5:
        gen_small(*args)
        return 0
    if cmd == "verify-tree" and len(args) in (2, 3):
        return verify_tree(*args)
    if cmd == "snapshot" and len(args) == 2:
        snapshot(*args)
        return 0
    if cmd == "same-snapshot" and len(args) == 2:
        return same_snapshot(*args)
    if cmd == "record" and len(args) >= 1:
        record(args[0], args[1:])
        return 0
    if cmd == "report" and len(args) in (2, 3):
        return report(*args)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
