#!/bin/sh
# The real strict overcommit run: sets vm.overcommit_memory=2 (root), runs
# holdmax for each allocator at 100 KiB and 3 MiB, and restores the
# previous value on exit (trap). DO NOT run it on a shared machine: while
# it runs, every process on the machine is under CommitLimit, and holdmax
# takes all of it. Usage (as root, machine quiet):
#   bench/commit/strict.sh [SIZES...]
# vm.overcommit_ratio (default 50) sets CommitLimit = swap + RAM * ratio;
# OVERCOMMIT_RATIO=N sets it for the run (restored too).
. "$(dirname "$0")/common.sh"
sizes=${*:-"100K 3M"}
old_mode=$(cat /proc/sys/vm/overcommit_memory)
old_ratio=$(cat /proc/sys/vm/overcommit_ratio)
restore() {
  echo "$old_ratio" > /proc/sys/vm/overcommit_ratio
  echo "$old_mode" > /proc/sys/vm/overcommit_memory
  echo "vm.overcommit_memory restored to $(cat /proc/sys/vm/overcommit_memory)"
}
trap restore EXIT
trap 'exit 1' INT TERM HUP
[ -n "${OVERCOMMIT_RATIO:-}" ] && echo "$OVERCOMMIT_RATIO" > /proc/sys/vm/overcommit_ratio
echo 2 > /proc/sys/vm/overcommit_memory || exit 1
grep -E 'CommitLimit|Committed_AS' /proc/meminfo
for size in $sizes; do
  for a in $allocs; do
    run_one "${a%%=*}" "${a#*=}" "$size"
  done
  # xalloc with commit:off: what strict mode costs without decommit.
  XALLOC_CONF=commit:off run_one xalloc-off "$XALLOC_LIB" "$size"
done
