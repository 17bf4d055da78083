#!/bin/sh
# doc/TUNING.md's options table is exactly what tools/opts_table prints
# from the option table (include/xalloc/internal/opts.h). Fix with `make doc`.
set -eu
: "${XALLOC_BUILDDIR:?}" "${XALLOC_SRCDIR:?}"
prog=$XALLOC_BUILDDIR/tools/opts_table
doc=$XALLOC_SRCDIR/doc/TUNING.md
[ -x "$prog" ] || { echo "FAIL: $prog is missing"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-tuning.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$prog" > "$tmp/generated"
[ "$(wc -l < "$tmp/generated")" -gt 10 ] || { echo "FAIL: opts_table printed too little"; exit 1; }
awk '/^<!-- options table:/ { on = 1; next } /^<!-- end of options table -->/ { on = 0 } on' "$doc" > "$tmp/documented"
if ! diff -u "$tmp/documented" "$tmp/generated"; then
  echo "FAIL: the options table in doc/TUNING.md differs from opts.h (run make doc)"
  exit 1
fi
echo "ok: doc/TUNING.md lists the $(($(wc -l < "$tmp/generated") - 2)) options of opts.h"
