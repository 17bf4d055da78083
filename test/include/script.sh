# Sourced by the shell tests of test/integration/ after `set -eu`: checks
# the directories test/run.sh names, keeps the configuration it passes
# (tcache:false) in $base ("" or "CONF,") and clears the variables that
# would change what the test runs, picks a C compiler ($CC) and turns core
# dumps off (some tests crash a program on purpose).
: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
: "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}"
base=${XALLOC_CONF:+$XALLOC_CONF,}
unset XALLOC_CONF MALLOC_CONF LD_PRELOAD 2>/dev/null || true
CC=${CC:-cc}
command -v "$CC" > /dev/null 2>&1 || CC=gcc
ulimit -c 0 2>/dev/null || true
