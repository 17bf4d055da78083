#!/bin/sh
# The heap profiler and the guarded pool together: test/integration/prof_threads
# again with guard_sample:10 (a guarded block may be a profile sample; its
# free must drop the record: prof_threads fails with "samples left" when it
# does not).
set -eu
: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
base=${XALLOC_CONF:+$XALLOC_CONF,}
XALLOC_CONF="${base}guard_sample:10" "$XALLOC_BUILDDIR/test/integration/prof_threads"
