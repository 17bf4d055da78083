#!/bin/sh
# make install (DESTDIR, prefix) installs the libraries, header, pkg-config
# file and wrapper; programs built against the installed tree (pkg-config
# flags and -lxalloc, or the static archive) use xalloc; bin/xalloc prints
# usage without arguments and runs a program with xalloc preloaded.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
: "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}"
unset XALLOC_CONF MALLOC_CONF LD_PRELOAD 2>/dev/null || true
# A make run from inside "make check" must not inherit its job server.
unset MAKEFLAGS MFLAGS MAKELEVEL 2>/dev/null || true
CC=${CC:-cc}
command -v "$CC" > /dev/null 2>&1 || CC=gcc

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-packaging.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

dest=$tmp/dest
root=$dest/usr/local
echo "checking: make install DESTDIR=$dest prefix=/usr/local"
if ! make -C "$XALLOC_BUILDDIR" install DESTDIR="$dest" prefix=/usr/local > "$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"
  echo "FAIL: make install failed"
  exit 1
fi
for f in lib/libxalloc.so.0 lib/libxalloc.so lib/libxalloc.a include/xalloc/xalloc.h \
  lib/pkgconfig/xalloc.pc bin/xalloc bin/xalloc-prof; do
  if [ -e "$root/$f" ]; then pass "installed $f"; else fail "not installed: /usr/local/$f"; fi
done
if [ -L "$root/lib/libxalloc.so" ] && [ "$(readlink "$root/lib/libxalloc.so")" = libxalloc.so.0 ]; then
  pass "lib/libxalloc.so is a symlink to libxalloc.so.0"
else
  fail "lib/libxalloc.so is not a relative symlink to libxalloc.so.0"
fi
[ -x "$root/bin/xalloc" ] && pass "bin/xalloc is executable" || fail "bin/xalloc is not executable"
[ -x "$root/bin/xalloc-prof" ] && pass "bin/xalloc-prof is executable" || fail "bin/xalloc-prof is not executable"
# Nothing may land outside the prefix.
outside=$(cd "$dest" && find . \( -type f -o -type l \) ! -path './usr/local/*')
[ -z "$outside" ] && pass "nothing installed outside the prefix" || fail "installed outside the prefix: $outside"
if grep -q '/usr/local/lib' "$root/bin/xalloc" 2>/dev/null; then
  pass "installed bin/xalloc looks for the library in /usr/local/lib"
else
  fail "installed bin/xalloc does not refer to /usr/local/lib"
fi
if [ "$failures" -ne 0 ]; then
  echo "packaging: the install is incomplete; stopping"
  exit 1
fi

# The test program: malloc_usable_size(malloc(100)) is 112 with xalloc
# (size classes 96, 112, ...) and 104 with glibc.
cat > "$tmp/usable.c" <<'EOF'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xalloc/xalloc.h>

int main(void) {
  char *p = malloc(100);
  if (p == NULL) return 1;
  memset(p, 'x', 100);
  size_t u = malloc_usable_size(p);
  void *q = NULL;
  if (posix_memalign(&q, 4096, 5000) != 0 || ((size_t)q & 4095) != 0) return 2;
  char *r = realloc(p, 100000);
  if (r == NULL || r[99] != 'x') return 3;
  free(q);
#ifndef PLAIN /* glibc before 2.39 lacks the C23 sized frees */
  void *s = malloc(300), *a = aligned_alloc(256, 768);
  if (s == NULL || a == NULL || ((size_t)a & 255) != 0) return 4;
  free_sized(s, 300);
  free_aligned_sized(a, 256, 768);
#endif
  free(r);
  printf("%zu %s\n", u, XALLOC_VERSION);
  return 0;
}
EOF
version=$(sed -n 's/^#define XALLOC_VERSION "\(.*\)"$/\1/p' "$root/include/xalloc/xalloc.h")
echo "checking: header version is '$version'"
[ -n "$version" ] || fail "no XALLOC_VERSION in the installed header"

# expect_xalloc LABEL OUTPUT_FILE: the program printed "112 VERSION".
expect_xalloc() {
  out=$(cat "$2")
  if [ "$out" = "112 $version" ]; then
    pass "$1: malloc_usable_size(malloc(100)) = 112 (xalloc)"
  else
    fail "$1: printed '$out', expected '112 $version' (104 means glibc's malloc)"
  fi
}

# ---- dynamic link through pkg-config ----------------------------------------
if command -v pkg-config > /dev/null 2>&1; then
  PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_LIBDIR=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
  export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
  cflags=$(pkg-config --cflags xalloc) || { fail "pkg-config --cflags xalloc failed"; cflags=; }
  libs=$(pkg-config --libs xalloc) || { fail "pkg-config --libs xalloc failed"; libs=; }
  pcver=$(pkg-config --modversion xalloc || true)
  unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
  echo "pkg-config: cflags '$cflags' libs '$libs' version '$pcver'"
  case " $cflags " in *" -I$root/include "*) pass "pkg-config cflags name the installed include dir" ;;
    *) fail "pkg-config cflags '$cflags' lack -I$root/include" ;; esac
  case " $libs " in *" -L$root/lib -lxalloc "*) pass "pkg-config libs are -L$root/lib -lxalloc" ;;
    *) fail "pkg-config libs '$libs' lack -L$root/lib -lxalloc" ;; esac
  [ "$pcver" = "$version" ] && pass "pkg-config version $pcver matches the header" ||
    fail "pkg-config version '$pcver' differs from the header's '$version'"
else
  echo "note: pkg-config not found; using -I/-L by hand"
  cflags="-I$root/include"
  libs="-L$root/lib -lxalloc"
fi
# shellcheck disable=SC2086 # the flags are word lists
if "$CC" $cflags -o "$tmp/usable-dyn" "$tmp/usable.c" $libs -Wl,-rpath,"$root/lib" 2> "$tmp/cc.log"; then
  pass "compiled and linked with the pkg-config flags"
  if "$tmp/usable-dyn" > "$tmp/dyn.out" 2> "$tmp/dyn.err"; then
    expect_xalloc "-lxalloc" "$tmp/dyn.out"
  else
    fail "-lxalloc program failed"; cat "$tmp/dyn.err"
  fi
  # It resolved the installed library, not the build tree's.
  if command -v ldd > /dev/null 2>&1; then
    if ldd "$tmp/usable-dyn" | grep -q "libxalloc.so.0 => $root/lib/libxalloc.so.0"; then
      pass "the program loads $root/lib/libxalloc.so.0"
    else
      fail "the program does not load the installed library:"; ldd "$tmp/usable-dyn"
    fi
  fi
  XALLOC_CONF=stats_print:true "$tmp/usable-dyn" > /dev/null 2> "$tmp/dyn.stats" || true
  grep -q '^___ Begin xalloc statistics ___$' "$tmp/dyn.stats" &&
    pass "-lxalloc program prints xalloc statistics with stats_print:true" ||
    fail "-lxalloc program printed no xalloc statistics with stats_print:true"
else
  cat "$tmp/cc.log"
  fail "could not compile against the installed tree with '$cflags' '$libs'"
fi

# ---- static link with libxalloc.a -lpthread ---------------------------------
if "$CC" -I"$root/include" -o "$tmp/usable-static" "$tmp/usable.c" "$root/lib/libxalloc.a" -lpthread \
  2> "$tmp/cc.log"; then
  pass "linked statically with libxalloc.a -lpthread"
  if "$tmp/usable-static" > "$tmp/static.out" 2> "$tmp/static.err"; then
    expect_xalloc "libxalloc.a" "$tmp/static.out"
  else
    fail "statically linked program failed"; cat "$tmp/static.err"
  fi
  if command -v ldd > /dev/null 2>&1 && ldd "$tmp/usable-static" | grep -q libxalloc; then
    fail "the statically linked program still depends on libxalloc.so"
  fi
  XALLOC_CONF=stats_print:true "$tmp/usable-static" > /dev/null 2> "$tmp/static.stats" || true
  grep -q '^___ Begin xalloc statistics ___$' "$tmp/static.stats" &&
    pass "static program prints xalloc statistics with stats_print:true" ||
    fail "static program printed no xalloc statistics with stats_print:true"
else
  cat "$tmp/cc.log"
  fail "could not link statically with $root/lib/libxalloc.a -lpthread"
fi

# ---- the bin/xalloc wrapper ---------------------------------------------------
# A plain (glibc) build of the test program, to be preloaded.
"$CC" -DPLAIN -I"$root/include" -o "$tmp/usable-plain" "$tmp/usable.c"
if "$tmp/usable-plain" > "$tmp/plain.out" 2>&1 && [ "$(cat "$tmp/plain.out")" != "112 $version" ]; then
  pass "without xalloc the program prints '$(cat "$tmp/plain.out")'"
else
  fail "the plain build printed '$(cat "$tmp/plain.out")'; the 112 check cannot tell xalloc from glibc here"
fi

# An installed prefix with no DESTDIR, so that its bin/xalloc finds its library.
prefix=$tmp/prefix
if make -C "$XALLOC_BUILDDIR" install prefix="$prefix" > "$tmp/install2.log" 2>&1; then
  pass "make install prefix=$prefix"
else
  cat "$tmp/install2.log"
  fail "make install prefix=$prefix failed"
fi

for w in "$XALLOC_BUILDDIR/bin/xalloc" "$root/bin/xalloc" "$prefix/bin/xalloc"; do
  [ -f "$w" ] || { fail "$w is missing"; continue; }
  echo "checking: $w"
  set +e
  "$w" > "$tmp/usage.out" 2> "$tmp/usage.err"
  rc=$?
  set -e
  if [ "$rc" -ne 0 ] && grep -qi usage "$tmp/usage.err" "$tmp/usage.out"; then
    pass "$w with no arguments prints usage and exits $rc"
  else
    fail "$w with no arguments: exit $rc, output: $(cat "$tmp/usage.out" "$tmp/usage.err")"
  fi
done

for w in "$XALLOC_BUILDDIR/bin/xalloc" "$prefix/bin/xalloc"; do
  [ -f "$w" ] || continue
  set +e
  "$w" "$tmp/usable-plain" > "$tmp/wrap.out" 2> "$tmp/wrap.err"
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    expect_xalloc "$w PROGRAM" "$tmp/wrap.out"
  else
    fail "$w PROGRAM exited $rc: $(cat "$tmp/wrap.err")"
  fi
  # Arguments are passed through unchanged, and the exit status too.
  set +e
  "$w" sh -c 'printf "%s|" "$@"; exit 7' sh 'a b' '' 'c' > "$tmp/args.out" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 7 ] && [ "$(cat "$tmp/args.out")" = "a b||c|" ]; then
    pass "$w passes arguments and the exit status through"
  else
    fail "$w: arguments/exit status not passed through (exit $rc, output '$(cat "$tmp/args.out")')"
  fi
done
# The prefix install's wrapper preloads the prefix's library.
if [ -f "$prefix/bin/xalloc" ]; then
  got=$("$prefix/bin/xalloc" sh -c 'echo "$LD_PRELOAD"')
  case "$got" in "$prefix/lib/libxalloc.so.0"*) pass "installed wrapper preloads $got" ;;
    *) fail "installed wrapper preloads '$got', expected $prefix/lib/libxalloc.so.0" ;; esac
fi

[ "$failures" -eq 0 ] || { echo "packaging: $failures check(s) failed"; exit 1; }
echo "packaging: all checks passed"
