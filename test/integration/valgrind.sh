#!/bin/sh
# Valgrind's memcheck on a program running with xalloc: a build with
# valgrind support (the default when valgrind/memcheck.h is found) tells
# memcheck about every block through client requests. valgrind must be
# told not to replace the allocator of user libraries
# (--soname-synonyms=somalloc=nouserintercepts), or it would serve malloc
# itself. A planted leak and a planted invalid read (use after free) must
# both be found, in blocks that xalloc allocated; both for a program
# linked with -lxalloc and for one run with xalloc preloaded.
set -eu
: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
b=$XALLOC_BUILDDIR
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed"; exit 1; }
grep -q '^#define XALLOC_VALGRIND 1' "$b/include/xalloc/internal/config.h" ||
  { echo "FAIL: this build has no valgrind support (valgrind/memcheck.h missing?)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-vg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/planted.c" <<'EOC'
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  void *keep[16];
  for (int i = 0; i < 16; i++) keep[i] = malloc(32);
  char *leak = malloc(100); /* planted leak: 100 bytes, size class 112 */
  leak[0] = 1;
  leak = NULL;
  char *p = malloc(48);
  p[0] = 2;
  free(p);
  volatile char c = p[5]; /* planted invalid read */
  (void)c;
  void *big = malloc(200000), *huge = malloc(3 << 20);
  free(big);
  free(huge);
  for (int i = 0; i < 16; i++) free(keep[i]);
  puts("planted done");
  return 0;
}
EOC
cc -O0 -g -o "$tmp/linked" "$tmp/planted.c" -L"$b/lib" -Wl,-rpath,"$b/lib" -lxalloc
cc -O0 -g -o "$tmp/plain" "$tmp/planted.c"
failures=0
check() { # LABEL LOG
  if grep -q 'planted done' "$2" && grep -q 'Invalid read of size 1' "$2" &&
     grep -q '112 bytes in 1 blocks are definitely lost' "$2" && grep -q 'xa_alloc_from' "$2" &&
     ! grep -q 'uninitialised' "$2"; then
    echo "ok: $1: memcheck found the leak and the invalid read in xalloc's blocks, and nothing else"
  else
    echo "FAIL: $1: memcheck output:"; sed 's/^/    /' "$2"; failures=$((failures + 1))
  fi
}
vg="valgrind -q --leak-check=full --soname-synonyms=somalloc=nouserintercepts"
$vg "$tmp/linked" > "$tmp/linked.log" 2>&1 || true
check "linked with -lxalloc" "$tmp/linked.log"
LD_PRELOAD="$b/lib/libxalloc.so.0" $vg "$tmp/plain" > "$tmp/preload.log" 2>&1 || true
check "preloaded" "$tmp/preload.log"
[ "$failures" -eq 0 ]
