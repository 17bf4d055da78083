#!/bin/sh
# The shared library exports exactly the public API (internal symbols stay
# hidden), and its soname is libxalloc.so.0.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
lib=$XALLOC_BUILDDIR/lib/libxalloc.so.0
nm=${NM:-nm}
LC_ALL=C
export LC_ALL
[ -f "$lib" ] || { echo "FAIL: $lib is missing"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0

sort > "$tmp/expected" <<'EOF'
malloc
free
calloc
realloc
reallocarray
posix_memalign
aligned_alloc
memalign
valloc
pvalloc
malloc_usable_size
free_sized
free_aligned_sized
__libc_malloc
__libc_free
__libc_calloc
__libc_realloc
__libc_memalign
__libc_valloc
__libc_pvalloc
__posix_memalign
_Znwm
_Znam
_ZnwmRKSt9nothrow_t
_ZnamRKSt9nothrow_t
_ZnwmSt11align_val_t
_ZnamSt11align_val_t
_ZnwmSt11align_val_tRKSt9nothrow_t
_ZnamSt11align_val_tRKSt9nothrow_t
_ZdlPv
_ZdaPv
_ZdlPvm
_ZdaPvm
_ZdlPvRKSt9nothrow_t
_ZdaPvRKSt9nothrow_t
_ZdlPvSt11align_val_t
_ZdaPvSt11align_val_t
_ZdlPvmSt11align_val_t
_ZdaPvmSt11align_val_t
_ZdlPvSt11align_val_tRKSt9nothrow_t
_ZdaPvSt11align_val_tRKSt9nothrow_t
malloc_trim
malloc_stats
mallinfo
mallinfo2
mallopt
malloc_info
mallocx
rallocx
xallocx
sallocx
dallocx
sdallocx
nallocx
mallctl
mallctlnametomib
mallctlbymib
malloc_stats_print
EOF

echo "checking: $nm -D --defined-only $lib lists exactly $(wc -l < "$tmp/expected") public symbols"
"$nm" -D --defined-only "$lib" > "$tmp/nm.out"
# Lines are "VALUE TYPE NAME" (an undefined-value line would have no VALUE);
# drop any symbol version suffix ("name@@VER").
awk 'NF >= 2 { print $NF }' "$tmp/nm.out" | sed 's/@.*//' | sort -u > "$tmp/actual"
if [ ! -s "$tmp/actual" ]; then
  echo "FAIL: nm printed no defined dynamic symbols"
  cat "$tmp/nm.out"
  exit 1
fi

comm -13 "$tmp/expected" "$tmp/actual" > "$tmp/extra"
comm -23 "$tmp/expected" "$tmp/actual" > "$tmp/missing"
if [ -s "$tmp/extra" ]; then
  echo "FAIL: exported but not part of the public API:"
  sed 's/^/    + /' "$tmp/extra"
  failures=$((failures + 1))
fi
if [ -s "$tmp/missing" ]; then
  echo "FAIL: public API symbols not exported:"
  sed 's/^/    - /' "$tmp/missing"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] && echo "ok: exports are exactly the $(wc -l < "$tmp/actual") public symbols"

# Every public symbol is a function (type T, or W/i), not data.
awk 'NF == 3 && $2 !~ /^[TWi]$/ { print }' "$tmp/nm.out" > "$tmp/nonfunc"
if [ -s "$tmp/nonfunc" ]; then
  echo "FAIL: exported symbols that are not code:"
  sed 's/^/    /' "$tmp/nonfunc"
  failures=$((failures + 1))
else
  echo "ok: every export is a function"
fi

echo "checking: the soname is libxalloc.so.0"
if command -v readelf > /dev/null 2>&1; then
  soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
else
  soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
fi
if [ "$soname" = libxalloc.so.0 ]; then
  echo "ok: soname is $soname"
else
  echo "FAIL: soname is '$soname', expected libxalloc.so.0"
  failures=$((failures + 1))
fi

# The development symlink points at the versioned library.
if [ -L "$XALLOC_BUILDDIR/lib/libxalloc.so" ] &&
  [ "$(readlink "$XALLOC_BUILDDIR/lib/libxalloc.so")" = libxalloc.so.0 ]; then
  echo "ok: lib/libxalloc.so -> libxalloc.so.0"
else
  echo "FAIL: lib/libxalloc.so is not a symlink to libxalloc.so.0"
  failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] || { echo "exports: $failures check(s) failed"; exit 1; }
echo "exports: all checks passed"
