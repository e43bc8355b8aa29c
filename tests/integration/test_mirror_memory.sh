#!/bin/bash
# test_mirror_memory: mirror mode's memory does not grow with the number of
# files. A local tree of 20,000 files against one of 2,000: the first run
# (every file uploaded, the manifest written) and the no-change run (the
# source listing and the previous manifest merged as streams) each peak at
# most 1.5 x the small tree's RSS + 4 MiB.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x /usr/bin/time ] || fail "/usr/bin/time is missing (Debian package 'time'); run scripts/install-deps.sh"
it_need_cmd python3

# tree DIR N: N files of 100 bytes, 100 per directory
tree() {
    python3 - "$1" "$2" << 'PYEOF'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(top, "d%04d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%02d" % (i % 100)), "wb") as f:
        f.write(b"%099d\n" % i)
PYEOF
}

# rss NAME ARGS...: run arca, set RSS_KB to its peak resident set size
rss() {
    local name=$1
    shift
    RC=0
    timeout -k 5 300 /usr/bin/time -f '%M' -o "$IT_TMP/time.txt" "$ARCA_BIN" "$@" > /dev/null 2> "$IT_ERR" || RC=$?
    assert_rc 0 "$name"
    RSS_KB=$(tail -n 1 "$IT_TMP/time.txt")
    note "$name: peak RSS $((RSS_KB / 1024)) MiB"
}

tree "$IT_TMP/small" 2000
tree "$IT_TMP/big" 20000
rss "first run, 2,000 files" backup --mode mirror "$IT_TMP/small" "$IT_TMP/dsmall"
first_small=$RSS_KB
rss "no-change run, 2,000 files" backup --mode mirror "$IT_TMP/small" "$IT_TMP/dsmall"
again_small=$RSS_KB
rss "first run, 20,000 files" backup --mode mirror "$IT_TMP/big" "$IT_TMP/dbig"
first_big=$RSS_KB
rss "no-change run, 20,000 files" backup --mode mirror "$IT_TMP/big" "$IT_TMP/dbig"
again_big=$RSS_KB
assert_le "$first_big" $((first_small * 3 / 2 + 4096)) "first run: peak RSS (KiB) with 10x the files"
assert_le "$again_big" $((again_small * 3 / 2 + 4096)) "no-change run: peak RSS (KiB) with 10x the files"
rss "restore, 20,000 files" restore "$IT_TMP/dbig" "$IT_TMP/rbig"
assert_le "$RSS_KB" $((first_small * 3 / 2 + 4096)) "restore: peak RSS (KiB) of 20,000 files"
diff -r "$IT_TMP/big" "$IT_TMP/rbig" > /dev/null || fail "the restore of 20,000 files differs from the source"

note "ok in $(it_elapsed) s"
