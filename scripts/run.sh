#!/bin/bash
# The README's "main job": install build dependencies, build arca, and run a
# short demonstration of the one-shot commands on a sample folder (copy,
# incremental re-run, check, sync; then mirror and archive backups, a
# point-in-time restore and a verify). The service (`arca serve`) replaces
# this demonstration in a later release.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh --build-only
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
arca=$root/build/arca
echo "built $("$arca" version)"

demo=${ARCA_DEMO_DIR:-$root/arca-demo}
rm -rf "$demo"
mkdir -p "$demo/source/photos/2024" "$demo/source/docs"
printf 'hello from arca\n' > "$demo/source/README.txt"
printf 'quarterly numbers\n' > "$demo/source/docs/report – Q1.txt"
head -c 3145728 /dev/urandom > "$demo/source/photos/2024/beach.raw"
printf 'x' > "$demo/source/photos-index"
: > "$demo/source/docs/empty"

step() { printf '\n$ %s\n' "$*"; "$@"; }
step "$arca" copy "$demo/source" "$demo/backup" -v
step "$arca" copy "$demo/source" "$demo/backup"
echo "(nothing changed, so nothing was transferred)"
printf 'edited\n' >> "$demo/source/README.txt"
rm "$demo/source/photos-index"
step "$arca" check "$demo/source" "$demo/backup" || echo "(check exits 1 when it finds differences)"
step "$arca" sync "$demo/source" "$demo/backup" -v
step "$arca" check "$demo/source" "$demo/backup"
step "$arca" ls "$demo/backup"

# the backup engines: point-in-time runs, restore, verify
step "$arca" backup --mode mirror "$demo/source" "$demo/mirror"
printf 'edited again\n' >> "$demo/source/README.txt"
step "$arca" backup --mode mirror "$demo/source" "$demo/mirror"
step "$arca" backup "$demo/source" "$demo/archive"
step "$arca" runs "$demo/mirror"
first=$("$arca" runs --json "$demo/mirror" | sed -n 's/.*"run":"\([^"]*\)".*/\1/p' | head -n 1)
step "$arca" restore "$demo/mirror" "$demo/restored-first" --run "$first"
echo "(README.txt as of the first run:)"
cat "$demo/restored-first/README.txt"
step "$arca" verify --read-data "$demo/archive"
echo
echo "demo finished: source in $demo/source, copies in $demo/backup, backups in $demo/mirror and $demo/archive"
echo "next: arca --help, docs/CLI.md; formats: docs/FORMAT.md; S3 remotes: docs/REMOTES.md"
