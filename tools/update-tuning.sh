#!/bin/sh
# Replace the options table in doc/TUNING.md (between the two marker
# comments) with the output of tools/opts_table. Usage: update-tuning.sh
# OPTS_TABLE_PROGRAM TUNING_MD
set -eu
prog=$1 doc=$2
begin='<!-- options table: generated from include/xalloc/internal/opts.h by `make doc`; do not edit -->'
end='<!-- end of options table -->'
grep -qF "$begin" "$doc" && grep -qF "$end" "$doc" || { echo "update-tuning: markers missing in $doc" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$prog" > "$tmp.table"
awk -v b="$begin" -v e="$end" -v t="$tmp.table" '
  $0 == b { print; while ((getline l < t) > 0) print l; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' "$doc" > "$tmp"
rm -f "$tmp.table"
cat "$tmp" > "$doc"
