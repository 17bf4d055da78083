#!/bin/sh
# Smoke test of bench/mimalloc-bench: clones the mimalloc-bench bundle
# (shared/mimalloc-bench.bundle beside the source tree's directory), builds
# two small C benchmarks with the bundle's CMakeLists, runs them for one
# round at a tiny scale under xalloc and glibc, and checks the Markdown
# report has both rows with a ratio per allocator (the best of the round
# at 1.00x), the geomean rows and the charts. About 5 s. A missing cmake
# or bundle is a failure, not a skip.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
: "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}"
unset XALLOC_CONF MALLOC_CONF LD_PRELOAD 2>/dev/null || true
# cmake runs make: it must not inherit the job server of "make check".
unset MAKEFLAGS MFLAGS MAKELEVEL 2>/dev/null || true

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

src=$(cd "$XALLOC_SRCDIR" && pwd)
# ../shared relative to the source tree's parent (/work/wt/mbench ->
# /work/shared); also accepted: shared/ right beside the source tree.
bundle=
for b in "$(dirname "$src")/../shared/mimalloc-bench.bundle" \
         "$src/../shared/mimalloc-bench.bundle"; do
  if [ -f "$b" ]; then bundle=$b; break; fi
done
[ -n "$bundle" ] || { echo "FAIL: no mimalloc-bench.bundle in $(dirname "$src")/../shared or $src/../shared"; exit 1; }
command -v cmake > /dev/null 2>&1 || { echo "FAIL: cmake not found (apt-get install cmake)"; exit 1; }
command -v git > /dev/null 2>&1 || { echo "FAIL: git not found"; exit 1; }
lib=$XALLOC_BUILDDIR/lib/libxalloc.so.0
[ -f "$lib" ] || { echo "FAIL: $lib is missing"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-mbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

if ! git clone -q "$bundle" "$tmp/mb" > "$tmp/clone.log" 2>&1; then
  cat "$tmp/clone.log"
  echo "FAIL: git clone $bundle"
  exit 1
fi
pass "cloned $bundle"

rows=mstressN,xmalloc-testN
out=$tmp/out/mb.md
set +e
python3 "$src/bench/mimalloc-bench" "$tmp/mb" --xalloc "$lib" -a xalloc,glibc \
  -b $rows --rounds 1 --scale 0.02 --build-dir "$tmp/build" --out "$out" \
  > "$tmp/driver.log" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ]; then
  pass "bench/mimalloc-bench exited 0"
else
  fail "bench/mimalloc-bench exited $rc"
  tail -n 40 "$tmp/driver.log"
fi
grep -q "^\[  4/4\] round 1/1 " "$tmp/driver.log" && pass "4 progress lines" ||
  fail "no progress line [  4/4] in the driver's output"

if [ ! -f "$out" ]; then
  fail "no report $out"
else
  ratio='[0-9][0-9.]* ([0-9][0-9.]*x)'
  for row in mstressN xmalloc-testN; do
    # one line in the time table, one in the peak RSS table
    n=$(grep -c "^| $row | $ratio | $ratio |\$" "$out" || true)
    [ "$n" -eq 2 ] && pass "$row: value and ratio for xalloc and glibc in both tables" ||
      fail "$row: expected 2 table lines '| $row | V (R.RRx) | V (R.RRx) |', found $n"
    n=$(grep "^| $row | " "$out" | grep -c "(1\.00x)" || true)
    [ "$n" -eq 2 ] && pass "$row: the best of the round is at 1.00x in both tables" ||
      fail "$row: expected a 1.00x ratio in both tables, found $n"
  done
  n=$(grep -c '^| \*\*geomean\*\* | \*\*[0-9.]*x\*\* | \*\*[0-9.]*x\*\* |$' "$out" || true)
  [ "$n" -eq 2 ] && pass "geomean rows" || fail "expected 2 geomean rows, found $n"
  n=$(grep -c '^| geomean without its largest row | [0-9.]*x (w/o [a-zA-Z-]*) | [0-9.]*x (w/o [a-zA-Z-]*) |$' "$out" || true)
  [ "$n" -eq 2 ] && pass "geomean-without-largest rows" ||
    fail "expected 2 'geomean without its largest row' rows, found $n"
  for f in mb.svg mb-rss.svg mb.json; do
    [ -s "$tmp/out/$f" ] && pass "$f written" || fail "$f missing"
  done
  grep -q '^<svg ' "$tmp/out/mb.svg" && grep -q '</svg>' "$tmp/out/mb.svg" &&
    pass "mb.svg is an SVG" || fail "mb.svg is not an SVG"
  [ $failures -eq 0 ] || { echo "--- report:"; cat "$out"; }
fi

[ $failures -eq 0 ] && echo "all mimalloc-bench smoke checks passed"
[ $failures -eq 0 ]
