#!/bin/sh
# test/integration/atfork.c (pthread_atfork handlers that allocate,
# registered from a constructor before the first allocation, then fork from
# a multithreaded process) under LD_PRELOAD: the same source compiled
# without -lxalloc. It must pass with the C library's allocator (a check of
# the test itself) and with xalloc preloaded. The program has its own
# watchdogs; `timeout` is a last resort.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
: "${XALLOC_SRCDIR:=.}"
lib=$XALLOC_BUILDDIR/lib/libxalloc.so.0
[ -f "$lib" ] || { echo "FAIL: $lib is missing"; exit 1; }
unset MALLOC_CONF LD_PRELOAD 2>/dev/null || true
CC=${CC:-cc}
command -v "$CC" > /dev/null 2>&1 || CC=gcc

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-atfork.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

"$CC" -std=gnu11 -D_GNU_SOURCE -O1 -Wall -o "$tmp/atfork" "$XALLOC_SRCDIR/test/integration/atfork.c" -lpthread
if command -v ldd > /dev/null 2>&1 && ldd "$tmp/atfork" | grep -q libxalloc; then
  fail "the test program links libxalloc; it must only be preloaded"
fi

run() { # LABEL EXPECTED_USABLE [PRELOAD]
  label=$1 want=$2
  set +e
  if [ $# -ge 3 ]; then
    LD_PRELOAD=$3 timeout 60 "$tmp/atfork" "$want" > "$tmp/out" 2>&1
  else
    timeout 60 "$tmp/atfork" "$want" > "$tmp/out" 2>&1
  fi
  rc=$?
  set -e
  sed 's/^/    /' "$tmp/out"
  if [ "$rc" -eq 0 ]; then pass "$label: exit 0"; else fail "$label: exit $rc (142: alarm, a deadlock)"; fi
}

echo "checking: the C library's allocator"
run "without xalloc" 0
echo "checking: LD_PRELOAD=$lib"
run "LD_PRELOAD" 112 "$lib"

[ "$failures" -eq 0 ] || { echo "atfork_preload: $failures check(s) failed"; exit 1; }
echo "atfork_preload: all checks passed"
