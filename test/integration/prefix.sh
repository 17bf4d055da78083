#!/bin/sh
# A prefixed build (./configure --with-prefix=xp_), made in a directory of
# its own: the library exports exactly the prefixed public functions and
# nothing of the C library's (no malloc, no __libc_*, no malloc_trim); its
# header, pkg-config file and library are named xp_xalloc; and a program
# uses xp_malloc, mallocx (xp_mallocx), mallctl (xp_mallctl) and xp_free
# beside glibc's malloc and free, each allocator counting only its own
# blocks. The header's XALLOC_NO_DEMANGLE and XALLOC_MANGLE modes are built
# and run too.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
: "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}"
srcdir=$(cd "$XALLOC_SRCDIR" && pwd)
unset MALLOC_CONF LD_PRELOAD 2>/dev/null || true
# A make run from inside "make check" must not inherit its job server.
unset MAKEFLAGS MFLAGS MAKELEVEL 2>/dev/null || true
CC=${CC:-cc}
command -v "$CC" > /dev/null 2>&1 || CC=gcc
nm=${NM:-nm}
LC_ALL=C
export LC_ALL
P=xp_

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-prefix.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# ---- configure and build -----------------------------------------------------
b=$tmp/build
mkdir "$b"
echo "checking: configure --with-prefix=$P && make"
if ! (cd "$b" && "$srcdir/configure" -q --with-prefix=$P CC="$CC" && make -j2) > "$tmp/build.log" 2>&1; then
  tail -n 40 "$tmp/build.log"
  echo "FAIL: the prefixed build failed"
  exit 1
fi
lib=$b/lib/lib${P}xalloc.so.0
for f in lib/lib${P}xalloc.so.0 lib/lib${P}xalloc.so lib/lib${P}xalloc.a include/xalloc/${P}xalloc.h ${P}xalloc.pc; do
  [ -e "$b/$f" ] && pass "built $f" || fail "not built: $f"
done
[ -e "$b/bin/xalloc" ] && fail "a prefixed build has a preload wrapper (bin/xalloc)" || pass "no preload wrapper"
[ "$failures" -eq 0 ] || { echo "prefix: the build is incomplete; stopping"; exit 1; }

# ---- exported symbols ----------------------------------------------------------
for n in malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc pvalloc \
  malloc_usable_size free_sized free_aligned_sized malloc_trim malloc_stats mallinfo mallinfo2 mallopt \
  malloc_info mallocx rallocx xallocx sallocx dallocx sdallocx nallocx mallctl mallctlnametomib \
  mallctlbymib malloc_stats_print; do
  echo "$P$n"
done | sort > "$tmp/expected"
"$nm" -D --defined-only "$lib" | awk 'NF >= 2 { print $NF }' | sed 's/@.*//' | sort -u > "$tmp/actual"
comm -13 "$tmp/expected" "$tmp/actual" > "$tmp/extra"
comm -23 "$tmp/expected" "$tmp/actual" > "$tmp/missing"
if [ -s "$tmp/extra" ]; then
  fail "exported but not a prefixed public function:"; sed 's/^/    + /' "$tmp/extra"
fi
if [ -s "$tmp/missing" ]; then
  fail "prefixed public functions not exported:"; sed 's/^/    - /' "$tmp/missing"
fi
[ -s "$tmp/extra" ] || [ -s "$tmp/missing" ] || pass "exports are exactly the $(wc -l < "$tmp/expected") ${P}* functions"
# Nothing that would replace or hook the C library's allocator, defined or referenced.
"$nm" -D "$lib" | awk '{ print $NF }' | sed 's/@.*//' |
  grep -E '^(malloc|free|calloc|realloc|memalign|valloc|pvalloc|posix_memalign|aligned_alloc|malloc_usable_size|malloc_trim|mallinfo2?|mallopt|__libc_.*|__posix_memalign|__malloc_hook|__free_hook|__realloc_hook|__memalign_hook|__malloc_initialize_hook)$' \
  > "$tmp/libc" || true
[ -s "$tmp/libc" ] && { fail "the library names the C library's allocator:"; sed 's/^/    /' "$tmp/libc"; } ||
  pass "no malloc, free, __libc_* or glibc hook symbol, defined or undefined"
# The options symbol a program may define is ${P}malloc_conf (jemalloc's
# malloc_conf belongs to jemalloc).
"$nm" -D "$lib" | awk '$NF == "malloc_conf" { print }' > "$tmp/conf"
[ -s "$tmp/conf" ] && fail "the library refers to malloc_conf" || true
"$nm" -D "$lib" | awk -v s="${P}malloc_conf" '$NF == s && ($(NF-1) == "w" || $(NF-1) == "v") { f = 1 } END { exit !f }' &&
  pass "the library reads the weak symbol ${P}malloc_conf" || fail "the library does not refer to ${P}malloc_conf (weak)"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "lib${P}xalloc.so.0" ] && pass "soname is $soname" || fail "soname is '$soname', expected lib${P}xalloc.so.0"

# ---- install ------------------------------------------------------------------
dest=$tmp/dest
root=$dest/usr/local
if (cd "$b" && make install DESTDIR="$dest" prefix=/usr/local) > "$tmp/install.log" 2>&1; then
  pass "make install"
else
  cat "$tmp/install.log"; fail "make install failed"
fi
for f in lib/lib${P}xalloc.so.0 lib/lib${P}xalloc.so lib/lib${P}xalloc.a include/xalloc/${P}xalloc.h \
  lib/pkgconfig/${P}xalloc.pc; do
  [ -e "$root/$f" ] && pass "installed $f" || fail "not installed: /usr/local/$f"
done
for f in bin/xalloc include/xalloc/xalloc.h lib/libxalloc.so.0 lib/pkgconfig/xalloc.pc; do
  [ -e "$root/$f" ] && fail "a prefixed install has $f (the drop-in build's name)" || true
done
grep -q "^#define XALLOC_PREFIX $P\$" "$root/include/xalloc/${P}xalloc.h" &&
  pass "the installed header names the prefix" || fail "the installed header lacks '#define XALLOC_PREFIX $P'"
if command -v pkg-config > /dev/null 2>&1; then
  libs=$(PKG_CONFIG_LIBDIR=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --libs ${P}xalloc || true)
  case " $libs " in *" -l${P}xalloc "*) pass "pkg-config --libs ${P}xalloc: $libs" ;;
    *) fail "pkg-config --libs ${P}xalloc is '$libs'" ;; esac
fi

# ---- a program with both allocators ------------------------------------------
# glibc: malloc_usable_size(malloc(100)) is 104; xalloc: 112 (size class).
cat > "$tmp/both.c" <<EOF
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xalloc/${P}xalloc.h>

/* jemalloc's name: ${P}malloc_conf, read by xalloc only. */
const char *malloc_conf = "narenas:3,abort:false";

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "line %d: %s\n", __LINE__, #c); return 1; } } while (0)
#define BIG ((size_t)8 << 20)

/* xalloc's stats.allocated, refreshed. */
static size_t xa_allocated(void) {
  uint64_t e = 1;
  size_t v, sz = sizeof(e);
  if (mallctl("epoch", &e, &sz, &e, sz) != 0) abort();
  sz = sizeof(v);
  if (mallctl("stats.allocated", &v, &sz, NULL, 0) != 0) abort();
  return v;
}

int main(void) {
  /* The jemalloc names are the prefixed functions. */
  CHECK((void *)&mallocx == (void *)&${P}mallocx && (void *)&mallctl == (void *)&${P}mallctl);
  /* Options: ${P}malloc_conf, then XALLOC_CONF (MALLOC_CONF is jemalloc's). */
  unsigned na = 0, want = getenv("WANT_NARENAS") ? (unsigned)atoi(getenv("WANT_NARENAS")) : 3;
  size_t sz = sizeof(na);
  CHECK(mallctl("opt.narenas", &na, &sz, NULL, 0) == 0 && na == want);

  /* malloc is glibc's, ${P}malloc xalloc's. */
  char *g = malloc(100), *x = ${P}malloc(100);
  CHECK(g != NULL && x != NULL);
  memset(g, 'g', 100);
  memset(x, 'x', 100);
  CHECK(malloc_usable_size(g) == 104);
  CHECK(${P}malloc_usable_size(x) == 112);

  /* Each allocator counts only its own blocks. */
  size_t a0 = xa_allocated();
  struct mallinfo2 m0 = mallinfo2();
  char *gb = malloc(BIG);
  CHECK(gb != NULL);
  struct mallinfo2 m1 = mallinfo2();
  size_t a1 = xa_allocated();
  CHECK(m1.hblkhd >= m0.hblkhd + BIG); /* glibc mapped it */
  CHECK(a1 == a0);                     /* xalloc did not see it */
  char *xb = mallocx(BIG, MALLOCX_ZERO);
  CHECK(xb != NULL && xb[BIG - 1] == 0 && sallocx(xb, 0) >= BIG);
  size_t a2 = xa_allocated();
  struct mallinfo2 m2 = mallinfo2();
  CHECK(a2 >= a1 + BIG);                                             /* xalloc counts it */
  CHECK(m2.hblkhd == m1.hblkhd && m2.uordblks == m1.uordblks);       /* glibc does not */
  struct mallinfo2 xm = ${P}mallinfo2();
  CHECK(xm.hblkhd >= BIG && xm.uordblks >= BIG);                     /* xalloc's own figures */

  /* A glibc block is not xalloc's: ${P}free reports it (abort:false: and
   * ignores it), and glibc frees it. */
  ${P}free(g);
  CHECK(g[99] == 'g');
  free(g);
  free(gb);
  dallocx(xb, 0);
  CHECK(xa_allocated() == a0);
  CHECK(x[99] == 'x');
  ${P}free(x);
  printf("ok\n");
  return 0;
}
EOF
# No demangling: jemalloc's names are free for another allocator.
cat > "$tmp/nodemangle.c" <<EOF
#include <stdio.h>
#include <stdlib.h>
#define XALLOC_NO_DEMANGLE
#include <xalloc/${P}xalloc.h>
#if defined(mallocx) || defined(mallctl) || defined(malloc_conf) || defined(malloc)
#error "XALLOC_NO_DEMANGLE: a jemalloc or standard name is still a macro"
#endif
/* Another allocator's mallocx. */
static void *mallocx(size_t size, int flags) { (void)flags; return malloc(size); }
int main(void) {
  void *o = mallocx(100, 0), *x = ${P}mallocx(100, 0);
  if (o == NULL || x == NULL || o == x || ${P}sallocx(x, 0) != 112) return 1;
  free(o);
  ${P}dallocx(x, 0);
  printf("ok\n");
  return 0;
}
EOF
# Mangling: the standard names are xalloc's too.
cat > "$tmp/mangle.c" <<EOF
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#define XALLOC_MANGLE
#include <xalloc/${P}xalloc.h>
int main(void) {
  void *p = malloc(100);
  if (p == NULL || malloc_usable_size(p) != 112 || sallocx(p, 0) != 112) return 1;
  struct mallinfo2 mi = mallinfo2();
  if (mi.uordblks < 112) return 2;
  free(p);
  printf("ok\n");
  return 0;
}
EOF

run() { # LABEL PROGRAM [ENV...]: it exits 0 and prints ok
  label=$1 prog=$2
  shift 2
  if env "$@" "$prog" > "$tmp/run.out" 2> "$tmp/run.err" && [ "$(cat "$tmp/run.out")" = ok ]; then
    pass "$label"
  else
    fail "$label: exit $?, output '$(cat "$tmp/run.out")'"; sed 's/^/    /' "$tmp/run.err"
  fi
}
inc=-I$root/include
L="-L$root/lib -Wl,-rpath,$root/lib -l${P}xalloc"
# shellcheck disable=SC2086 # word lists
if "$CC" -Wall -Wextra -Werror $inc -o "$tmp/both" "$tmp/both.c" $L 2> "$tmp/cc.log"; then
  run "glibc's malloc/free and xalloc's ${P}malloc/mallocx/mallctl/${P}free in one program" "$tmp/both"
  grep -q "^xalloc: .*0x" "$tmp/run.err" && pass "${P}free of a glibc block is reported: $(head -n 1 "$tmp/run.err")" ||
    fail "${P}free of a glibc block was not reported"
  ldd "$tmp/both" | grep -q "lib${P}xalloc.so.0 => $root/lib/" && pass "it loads the installed lib${P}xalloc.so.0" ||
    fail "the program does not load the installed library"
  run "MALLOC_CONF is not read (it is jemalloc's)" "$tmp/both" MALLOC_CONF=narenas:5
  run "XALLOC_CONF is read" "$tmp/both" XALLOC_CONF=narenas:4 WANT_NARENAS=4
else
  cat "$tmp/cc.log"; fail "could not build the two-allocator program"
fi
# shellcheck disable=SC2086
if "$CC" -Wall -Wextra -Werror $inc -o "$tmp/both-static" "$tmp/both.c" "$root/lib/lib${P}xalloc.a" -lpthread 2> "$tmp/cc.log"; then
  run "the same, linked with lib${P}xalloc.a" "$tmp/both-static"
else
  cat "$tmp/cc.log"; fail "could not link the two-allocator program with lib${P}xalloc.a"
fi
for t in nodemangle mangle; do
  [ $t = mangle ] && def=XALLOC_MANGLE || def=XALLOC_NO_DEMANGLE
  # shellcheck disable=SC2086
  if "$CC" -Wall -Wextra -Werror $inc -o "$tmp/$t" "$tmp/$t.c" $L 2> "$tmp/cc.log"; then
    run "header with $def" "$tmp/$t"
  else
    cat "$tmp/cc.log"; fail "could not build the $def program"
  fi
done

[ "$failures" -eq 0 ] || { echo "prefix: $failures check(s) failed"; exit 1; }
echo "prefix: all checks passed"
