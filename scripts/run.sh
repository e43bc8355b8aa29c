#!/bin/bash
# The README's "main job": install build dependencies, build arca, and run a
# short demonstration of the one-shot commands on a sample folder (copy,
# incremental re-run, check, sync). The service (`arca serve`) replaces this
# demonstration in a later release.
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
echo
echo "demo finished: source in $demo/source, backup in $demo/backup"
echo "next: arca --help, docs/CLI.md; S3 remotes: docs/REMOTES.md"
