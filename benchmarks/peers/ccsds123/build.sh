#!/bin/sh
# Build the CCSDS 123.0-B-2 peer: a single C99 file, no dependencies beyond a C compiler
# (Debian/Ubuntu: apt-get install build-essential). Output: build/ccsds123 next to this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
# compiled beside the target, then renamed: a concurrent run never sees a half-written binary
tmp="$here/build/ccsds123.tmp.$$"
trap 'rm -f "$tmp"' EXIT
${CC:-cc} -std=c99 -O2 -Wall -Wextra -o "$tmp" "$here/ccsds123.c"
mv -f "$tmp" "$here/build/ccsds123"
echo "$here/build/ccsds123"
