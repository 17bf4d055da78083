# Shared by ulimit.sh and strict.sh: build holdmax, find the allocators.
# XALLOC_LIB (default: lib/libxalloc.so.0 of the source tree) is xalloc.
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
XALLOC_LIB=${XALLOC_LIB:-$top/lib/libxalloc.so.0}
prog=${HOLDMAX:-/tmp/holdmax.$(id -u)}
cc -O2 -std=c11 -Wall -Wextra -fno-builtin-malloc -fno-builtin-free -o "$prog" "$here/holdmax.c" || exit 1
libdir=/usr/lib/x86_64-linux-gnu
# name=preload (empty: none); a missing library is skipped.
allocs="glibc= xalloc=$XALLOC_LIB jemalloc=$libdir/libjemalloc.so.2 mimalloc=$libdir/libmimalloc.so.2 tcmalloc=$libdir/libtcmalloc_minimal.so.4"
[ -n "${ALLOCS:-}" ] && allocs=$ALLOCS
run_one() { # name lib size
  if [ -n "$2" ] && [ ! -e "$2" ]; then echo "$1: $2 missing, skipped"; return; fi
  printf '%-10s ' "$1"
  if [ -n "$2" ]; then LD_PRELOAD=$2 "$prog" "$3"; else "$prog" "$3"; fi
}
