#!/bin/bash
# test_listing_memory: memory stays flat however many keys a listing holds.
#
# faults3 serves synthetic listings (generated keys, never stored):
#  - `arca ls` of 1,000 pages of 1,000 keys (1,000,000 keys) prints exactly
#    1,000,000 lines, and its peak RSS (/usr/bin/time -v) is below
#    1.5 x the peak RSS of listing 10 pages (10,000 keys) + 4 MiB;
#  - the engine's merge the same way, 200,000 keys against 10,000:
#    `arca check` of two synthetic buckets (listed ETags are MD5-like, so
#    no object is read) and a `sync --dry-run` that would delete every key
#    (the deletions are spooled to a temporary file).
# Against s3rver the tests stay at 10,000 keys or fewer (test_s3_roundtrip).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_need_env ARCA_TEST_FAULT_ENDPOINT
[ -x /usr/bin/time ] || fail "/usr/bin/time is missing (Debian package 'time'); run scripts/install-deps.sh"
use_faults

# synthetic VAR TAG PAGES: a bucket listing PAGES x 1000 keys
synthetic() {
    fault_bucket "$1" "$2"
    fault_ctl POST synthetic "{\"bucket\": \"${!1}\", \"pages\": $3, \"per_page\": 1000, \"key_prefix\": \"k/\"}" > /dev/null
}

# measured OUT ARGS...: run arca under /usr/bin/time -v, stdout to OUT;
# sets RC and RSS_KB (peak resident set size)
measured() {
    local out=$1
    shift
    IT_LAST_CMD="arca $*"
    RC=0
    timeout -k 5 300 /usr/bin/time -v -o "$IT_TMP/time.txt" "$ARCA_BIN" "$@" > "$out" 2> "$IT_ERR" || RC=$?
    RSS_KB=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): \([0-9]*\)$/\1/p' "$IT_TMP/time.txt")
    [ -n "$RSS_KB" ] || fail "no peak RSS in /usr/bin/time's report: $(cat "$IT_TMP/time.txt")"
    note "$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$IT_TMP/time.txt") wall," \
        "peak RSS $((RSS_KB / 1024)) MiB ($RSS_KB KiB), exit $RC: arca $*"
}

# flat WHAT SMALL_KB BIG_KB: BIG <= 1.5 x SMALL + 4 MiB
flat() {
    local limit=$(($2 * 3 / 2 + 4096))
    echo "$1: peak RSS $2 KiB (small) vs $3 KiB (large), limit $limit KiB" >&2
    [ "$3" -le "$limit" ] || fail "$1: peak RSS grows with the number of keys: $2 KiB -> $3 KiB (limit $limit KiB)"
}

# --- ls: 10,000 vs 1,000,000 keys ------------------------------------------------------------
synthetic S small 10
synthetic L large 1000
measured "$IT_TMP/ls-small" ls "s3://$S"
assert_rc 0 "ls of 10,000 keys"
assert_eq "$(wc -l < "$IT_TMP/ls-small")" 10000 "lines listed for 10,000 keys"
small=$RSS_KB
measured "$IT_TMP/ls-large" ls "s3://$L"
assert_rc 0 "ls of 1,000,000 keys"
assert_eq "$(wc -l < "$IT_TMP/ls-large")" 1000000 "lines listed for 1,000,000 keys"
assert_eq "$(head -n 1 "$IT_TMP/ls-large" | awk '{ print $NF }')" "k/000000000" "first key"
assert_eq "$(tail -n 1 "$IT_TMP/ls-large" | awk '{ print $NF }')" "k/000999999" "last key"
# every key exactly once, in order
awk '{ print $NF }' "$IT_TMP/ls-large" | LC_ALL=C sort -c -u || fail "ls of 1,000,000 keys is not strictly increasing"
large=$RSS_KB
rm -f "$IT_TMP/ls-large"
echo "peak RSS of arca ls: 10,000 keys $small KiB, 1,000,000 keys $large KiB" >&2
flat "ls" "$small" "$large"
reqs=$(fault_ctl GET "stats?bucket=$L" | jq .requests)
assert_ge "$reqs" 1000 "list requests for 1,000 pages"

# --- the engine: check and sync --dry-run, 10,000 vs 200,000 keys ------------------------------
synthetic S2 small-b 10
synthetic M mid 200
synthetic M2 mid-b 200
measured "$IT_TMP/check-small" check "s3://$S" "s3://$S2"
assert_rc 0 "check of 10,000 keys"
check_small=$RSS_KB
measured "$IT_TMP/check-large" check "s3://$M" "s3://$M2" --json
assert_rc 0 "check of 200,000 keys"
IT_OUT=$IT_TMP/check-large assert_summary files_checked 200000
check_large=$RSS_KB
assert_eq "$(fault_ctl GET "stats?bucket=$M" | jq '.by_method.HEAD // 0')" 0 "objects read by check (HEAD)"
rm -f "$IT_TMP/check-large"
flat "check" "$check_small" "$check_large"

mkdir -p "$IT_TMP/empty"
measured "$IT_TMP/sync-small" sync "$IT_TMP/empty" "s3://$S" --dry-run --allow-empty-source --json
assert_rc 0 "sync --dry-run deleting 10,000 keys"
sync_small=$RSS_KB
measured "$IT_TMP/sync-large" sync "$IT_TMP/empty" "s3://$M" --dry-run --allow-empty-source --json
assert_rc 0 "sync --dry-run deleting 200,000 keys"
IT_OUT=$IT_TMP/sync-large assert_summary files_deleted 200000
sync_large=$RSS_KB
rm -f "$IT_TMP/sync-large"
flat "sync --dry-run" "$sync_small" "$sync_large"
dels=$(fault_log "$M" | jq '[.[] | select(.method == "DELETE" or .method == "POST")] | length')
assert_eq "$dels" 0 "delete requests of a dry run"
