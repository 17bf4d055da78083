#!/bin/sh
# C++ programs allocate through xalloc's own operator new and delete (all
# forms; src/cxx.c), linked with -lxalloc and under LD_PRELOAD: the
# program (test/compat/cxx_ops.cpp) checks that xalloc sees every form,
# that failures throw std::bad_alloc after the new_handler, nothrow forms
# return nullptr, alignments hold, and a double delete is caught.
set -eu
: "${XALLOC_BUILDDIR:?}" "${XALLOC_SRCDIR:?}"
CXX=${CXX:-c++}
src=$XALLOC_SRCDIR/test/compat/cxx_ops.cpp
lib=$XALLOC_BUILDDIR/lib
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-cxx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
command -v "$CXX" >/dev/null 2>&1 || { echo "FAIL: no C++ compiler ($CXX; apt-get install g++)"; exit 1; }

$CXX -std=c++17 -O1 -fsized-deallocation -Wall -Wextra -Werror -o "$tmp/linked" "$src" -L"$lib" -Wl,-rpath,"$lib" -lxalloc
$CXX -std=c++17 -O1 -fsized-deallocation -Wall -Wextra -Werror -o "$tmp/plain" "$src"
# The linked program takes the operators from libxalloc, not libstdc++.
for sym in _Znam _ZdaPv _ZdlPvm; do
  if ! LD_DEBUG=bindings "$tmp/linked" 2>&1 >/dev/null | grep -q "to [^ ]*libxalloc[^ ]* .*symbol \`$sym'"; then
    echo "FAIL: $sym is not bound to libxalloc in the linked program"
    failures=$((failures + 1))
  fi
done
out=$("$tmp/linked" 2>&1) || { echo "FAIL: linked with -lxalloc:"; echo "$out"; failures=$((failures + 1)); }
out=$(LD_PRELOAD=$lib/libxalloc.so.0 "$tmp/plain" 2>&1) || {
  echo "FAIL: under LD_PRELOAD:"
  echo "$out"
  failures=$((failures + 1))
}
if ! LD_PRELOAD=$lib/libxalloc.so.0 LD_DEBUG=bindings "$tmp/plain" 2>&1 >/dev/null | grep -q "to [^ ]*libxalloc[^ ]* .*symbol \`_Znwm'"; then
  echo "FAIL: operator new is not bound to libxalloc under LD_PRELOAD"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] || exit 1
echo "cxx: operator new and delete go through xalloc, linked and preloaded"
