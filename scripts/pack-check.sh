#!/bin/sh
# Checks that `npx dmctl` works from the packed tarball: packs the project,
# installs the tarball in an empty folder (koffi comes from the npm registry
# as a prebuilt binary, so no compiler is needed) and runs dmctl there.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$root"
npx tsc -p .
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)

cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts "./$tarball" >/dev/null

npx --no-install dmctl --help >help.txt
grep -q '^Usage:' help.txt || { echo "pack-check: dmctl --help printed no usage" >&2; exit 1; }
npx --no-install dmctl help ls | grep -q '^Usage: dmctl ls' || { echo "pack-check: dmctl help ls failed" >&2; exit 1; }
# splitname needs no device-mapper, so it runs on any machine.
expected=$(printf 'VG   LV   LVLayer\nvg   lv          ')
actual=$(npx --no-install dmctl splitname vg-lv)
[ "$actual" = "$expected" ] || { echo "pack-check: dmctl splitname printed: $actual" >&2; exit 1; }
echo "pack-check: npx dmctl works from $tarball"
