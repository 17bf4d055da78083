#!/bin/sh
# One program written against jemalloc's API (test/compat/jemalloc_api.c)
# builds unchanged and passes twice: against <jemalloc/jemalloc.h> with
# -ljemalloc (Debian libjemalloc-dev), and against xalloc's header with
# -lxalloc.
set -eu
: "${XALLOC_BUILDDIR:?}" "${XALLOC_SRCDIR:?}"
CC=${CC:-cc}
src=$XALLOC_SRCDIR/test/compat/jemalloc_api.c
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-jecompat.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0

if [ ! -f /usr/include/jemalloc/jemalloc.h ]; then
  echo "FAIL: /usr/include/jemalloc/jemalloc.h is missing (apt-get install libjemalloc-dev)"
  exit 1
fi
echo "building against jemalloc"
$CC -std=gnu11 -Wall -Wextra -Werror -o "$tmp/with-jemalloc" "$src" -ljemalloc
"$tmp/with-jemalloc" || { echo "FAIL: the program fails with jemalloc"; failures=$((failures + 1)); }

# xalloc's header under jemalloc's name, so that the source is unchanged.
mkdir -p "$tmp/include/jemalloc"
echo '#include <xalloc/xalloc.h>' > "$tmp/include/jemalloc/jemalloc.h"
echo "building against xalloc"
$CC -std=gnu11 -Wall -Wextra -Werror -I"$tmp/include" -I"$XALLOC_SRCDIR/include" -o "$tmp/with-xalloc" "$src" \
  -L"$XALLOC_BUILDDIR/lib" -Wl,-rpath,"$XALLOC_BUILDDIR/lib" -lxalloc
if ! nm -D --undefined-only "$tmp/with-xalloc" | grep -q ' mallctl$'; then
  echo "FAIL: the xalloc build does not take mallctl from libxalloc"
  failures=$((failures + 1))
fi
"$tmp/with-xalloc" || { echo "FAIL: the program fails with xalloc"; failures=$((failures + 1)); }
ldd "$tmp/with-xalloc" | grep -q "libjemalloc" && { echo "FAIL: the xalloc build links jemalloc"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] || exit 1
echo "jemalloc_compat: passes with both"
