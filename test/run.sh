#!/bin/sh
# Run the test programs of the given tiers (unit, integration, stress) from
# the build directory, each under a time limit, and print one line per test
# and a closing "N passed, N failed" line. Exit status 1 if any failed.
#
# An argument with a slash names one test (test/unit/tcache, or a script
# test/integration/NAME.sh of the source tree) instead of a tier.
#
# Every test runs once per configuration in XALLOC_TEST_CONFS (default:
# the defaults, then with the thread cache off), passed as XALLOC_CONF.
srcdir=${XALLOC_SRCDIR:-.}
export XALLOC_BUILDDIR="$(pwd)" XALLOC_SRCDIR="$srcdir"
limit=${XALLOC_TEST_TIMEOUT:-600}
confs=${XALLOC_TEST_CONFS:-"default tcache:false"}
pass=0 fail=0 failed=""
log=test/logs
mkdir -p $log
for conf in $confs; do
  if [ "$conf" = default ]; then unset XALLOC_CONF; else XALLOC_CONF=$conf; export XALLOC_CONF; fi
  for tier in "$@"; do
    one=false
    case "$tier" in
      */*.sh) list=$tier ;;
      */*) list=${tier##*/}; tier=${tier%/*}; tier=${tier#test/}; one=true ;;
      *) list="$(ls test/$tier/ 2>/dev/null | sort) $(cd "$srcdir" && ls test/$tier/*.sh 2>/dev/null | sort)" ;;
    esac
    for t in $list; do
      case "$t" in
        test/*.sh) prog="$srcdir/$t"; name=$t; cmd="sh $prog" ;;
        *.o|*.c|*.sh|*.py) continue ;;
        *) prog=test/$tier/$t; name=$prog; cmd=$prog
          if [ ! -x "$prog" ]; then
            $one || continue
            fail=$((fail + 1)); failed="$failed $name[$conf]"; echo "FAIL $name [$conf]: not built"; continue
          fi ;;
      esac
      out=$log/$(echo "$name.$conf" | tr /: __).log
      start=$(date +%s)
      if timeout "$limit" $cmd > "$out" 2>&1; then
        pass=$((pass + 1)); echo "PASS $name [$conf] ($(( $(date +%s) - start ))s)"
      else
        rc=$?
        fail=$((fail + 1)); failed="$failed $name[$conf]"
        echo "FAIL $name [$conf] (exit $rc, $(( $(date +%s) - start ))s); last lines of $out:"
        tail -n 30 "$out" | sed 's/^/    /'
      fi
    done
  done
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
