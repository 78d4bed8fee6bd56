#!/bin/sh
# Build the CCSDS 123.0-B-2 peer: a single C99 file, no dependencies beyond a C compiler
# (Debian/Ubuntu: apt-get install build-essential). Output: build/ccsds123 next to this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
${CC:-cc} -std=c99 -O2 -Wall -Wextra -o "$here/build/ccsds123" "$here/ccsds123.c"
echo "$here/build/ccsds123"
