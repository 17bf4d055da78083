#!/bin/sh
# Generate ./configure, then run it with the given arguments.
set -e
cd "$(dirname "$0")"
autoconf
autoheader
cd - >/dev/null
exec "$(dirname "$0")/configure" "$@"
