#!/bin/sh
# Hold as many blocks as possible under `ulimit -v` (RLIMIT_AS, per
# process: safe to run on a shared machine), for each allocator and
# size. Usage: bench/commit/ulimit.sh [LIMIT_KIB] [SIZES...]
# (default 2 GiB, 100K and 3M). Prints one holdmax line per run.
. "$(dirname "$0")/common.sh"
limit=${1:-2097152}
[ $# -gt 0 ] && shift
sizes=${*:-"100K 3M"}
echo "ulimit -v $limit (KiB)"
for size in $sizes; do
  for a in $allocs; do
    ( ulimit -v "$limit" && run_one "${a%%=*}" "${a#*=}" "$size" )
  done
done
