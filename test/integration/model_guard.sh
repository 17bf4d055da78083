#!/bin/sh
# The model test (test/integration/model.c) with guarded sampling on: one
# allocation in 2 of at most guard_max bytes is served from the guarded
# pool (and with guard_sample:1, every one), on top of the run's own
# options (the defaults, tcache:false). Each run must pass and must have
# used the pool (the statistics printed at exit).
set -eu
: "${XALLOC_BUILDDIR:?}"
prog=$XALLOC_BUILDDIR/test/integration/model
[ -x "$prog" ] || { echo "FAIL: $prog is missing"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-model-guard.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for g in 1 2 64; do
  conf="${XALLOC_CONF:+$XALLOC_CONF,}guard_sample:$g,stats_print:true,stats_print_opts:ab"
  if ! XALLOC_CONF=$conf XALLOC_MODEL_SEEDS=${XALLOC_MODEL_SEEDS:-1:10} "$prog" > "$tmp/out" 2>&1; then
    tail -n 30 "$tmp/out"
    echo "FAIL: model with $conf"
    exit 1
  fi
  line=$(grep "^Guarded pool:" "$tmp/out" || true)
  served=$(echo "$line" | sed -n 's/.*served \([0-9]*\).*/\1/p')
  [ -n "$served" ] && [ "$served" -gt 0 ] || { echo "FAIL: guard_sample:$g served nothing: $line"; exit 1; }
  echo "ok: model with guard_sample:$g: $line"
done
