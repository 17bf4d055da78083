#!/bin/sh
# Options: an unknown or malformed option in XALLOC_CONF / MALLOC_CONF /
# the malloc_conf symbol gets exactly one warning line naming the option
# and its source, keeps the default, and the program runs on;
# abort_conf:true turns a bad option into SIGABRT; a program's
# malloc_conf symbol is read; later sources win (malloc_conf, then
# XALLOC_CONF, then MALLOC_CONF).
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
: "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}"
unset XALLOC_CONF MALLOC_CONF LD_PRELOAD 2>/dev/null || true
CC=${CC:-cc}
command -v "$CC" > /dev/null 2>&1 || CC=gcc
ulimit -c 0 2>/dev/null || true

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-options.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# The test program: allocates, prints a result line. With -DCONF=... it
# also defines the malloc_conf symbol.
cat > "$tmp/prog.c" <<'EOF'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef CONF
const char *malloc_conf = CONF;
#endif
int main(void) {
  size_t total = 0;
  for (int i = 1; i <= 1000; i++) {
    char *p = malloc((size_t)i * 3);
    if (p == NULL) return 1;
    memset(p, 1, (size_t)i * 3);
    total += malloc_usable_size(p) >= (size_t)i * 3;
    free(p);
  }
  printf("ran %zu\n", total);
  return 0;
}
EOF
build() { # build OUTPUT [CFLAGS...]
  out=$1
  shift
  "$CC" -std=gnu11 -O1 -I"$XALLOC_SRCDIR/include" "$@" -o "$out" "$tmp/prog.c" \
    -L"$XALLOC_BUILDDIR/lib" -Wl,-rpath,"$XALLOC_BUILDDIR/lib" -lxalloc -lpthread
}
build "$tmp/prog"
build "$tmp/prog-stats" '-DCONF="stats_print:true"'
build "$tmp/prog-chunk24" '-DCONF="lg_chunk:24,stats_print:true"'
build "$tmp/prog-bad" '-DCONF="bogus_symbol_opt:1"'
"$CC" -std=gnu11 -O1 '-DCONF="stats_print:true"' -o "$tmp/prog-static" "$tmp/prog.c" \
  "$XALLOC_BUILDDIR/lib/libxalloc.a" -lpthread

# run NAME PROGRAM [VAR=VALUE...]: run with the given environment (under
# $wrap if set); sets $rc, and leaves stdout in $tmp/NAME.out and stderr
# in $tmp/NAME.err.
wrap=
run() {
  name=$1 prog=$2
  shift 2
  set +e
  env "$@" ${wrap:+"$wrap"} "$prog" > "$tmp/$name.out" 2> "$tmp/$name.err"
  rc=$?
  set -e
}
# ran_ok NAME: exit 0 and the program's normal output.
ran_ok() {
  if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/$1.out")" = "ran 1000" ]; then
    pass "$1: the program ran normally"
  else
    fail "$1: exit $rc, output '$(cat "$tmp/$1.out")' (expected exit 0, 'ran 1000')"
    sed 's/^/    stderr: /' "$tmp/$1.err" | head -n 5
  fi
}
# one_warning NAME OPTION SOURCE: stderr has exactly one "xalloc:" warning
# line, naming OPTION (quoted) and SOURCE, and nothing else outside the
# statistics report.
one_warning() {
  # Every stderr line outside the statistics report counts.
  awk '/^___ Begin xalloc statistics ___$/ { s = 1 } !s { print } /^___ End xalloc statistics ___$/ { s = 0 }' \
    "$tmp/$1.err" > "$tmp/$1.warn"
  n=$(wc -l < "$tmp/$1.warn")
  line=$(head -n 1 "$tmp/$1.warn")
  if [ "$n" -ne 1 ]; then
    fail "$1: expected exactly one warning line, got $n:"
    sed 's/^/    /' "$tmp/$1.warn"
  elif ! grep -q "^xalloc: " "$tmp/$1.warn"; then
    fail "$1: the warning does not start with 'xalloc: ': $line"
  elif ! grep -q "'$2'" "$tmp/$1.warn"; then
    fail "$1: the warning does not name '$2': $line"
  elif ! grep -Eq "in $3([;( ]|\$)" "$tmp/$1.warn"; then
    fail "$1: the warning does not name the source $3: $line"
  else
    pass "$1: one warning: $line"
  fi
}
no_warning() {
  if grep -q -e '^xalloc: ' "$tmp/$1.err"; then
    fail "$1: unexpected warning: $(grep '^xalloc: ' "$tmp/$1.err" | head -n 1)"
  else
    pass "$1: no warning"
  fi
}
# options_line NAME: the "Options:" line of the statistics report.
options_line() { sed -n 's/^Options: //p' "$tmp/$1.err"; }
has_stats() { grep -q '^___ Begin xalloc statistics ___$' "$tmp/$1.err"; }

# ---- baseline -----------------------------------------------------------------
run base "$tmp/prog"
ran_ok base
[ -s "$tmp/base.err" ] && fail "base: stderr not empty: $(head -n 3 "$tmp/base.err")" || pass "base: no output on stderr"
run basestats "$tmp/prog" XALLOC_CONF=stats_print:true
has_stats basestats && pass "basestats: stats_print:true prints the report" ||
  fail "basestats: stats_print:true printed no report"
default=$(options_line basestats)
echo "default options: '$default'"
case "$default" in *lg_chunk:*abort:*) ;; *) fail "no 'lg_chunk:... abort:...' in the Options line: '$default'" ;; esac
default_chunk=$(sed -n 's/.*chunk size: \([0-9]*\).*/\1/p' "$tmp/basestats.err")
# A valid value does change the report (so the checks below can fail).
run valid "$tmp/prog" XALLOC_CONF=lg_chunk:25,abort:false,stats_print:true
ran_ok valid
no_warning valid
case "$(options_line valid)" in
  "lg_chunk:25 abort:false") pass "valid: lg_chunk:25,abort:false is applied" ;;
  *) fail "valid: Options line is '$(options_line valid)', expected 'lg_chunk:25 abort:false'" ;;
esac
grep -q 'chunk size: 33554432$' "$tmp/valid.err" && pass "valid: chunk size is 33554432" ||
  fail "valid: chunk size is not 33554432: $(grep 'chunk size' "$tmp/valid.err")"

# Empty strings and stray commas are not errors.
for conf in "" "," "stats_print:true," ",stats_print:true,,"; do
  run empty "$tmp/prog" XALLOC_CONF="$conf"
  ran_ok empty
  no_warning empty
done

# ---- unknown option -------------------------------------------------------------
run unknown "$tmp/prog" XALLOC_CONF=no_such_option:1
ran_ok unknown
one_warning unknown no_such_option XALLOC_CONF
# An unknown option does not stop the ones after it.
run unknown2 "$tmp/prog" XALLOC_CONF=no_such_option:1,stats_print:true
ran_ok unknown2
one_warning unknown2 no_such_option XALLOC_CONF
has_stats unknown2 && pass "unknown2: the valid option after it still applies" ||
  fail "unknown2: stats_print:true after an unknown option was not applied"
# A name without ":value".
run novalue "$tmp/prog" XALLOC_CONF=stats_print
ran_ok novalue
one_warning novalue stats_print XALLOC_CONF
has_stats novalue && fail "novalue: 'stats_print' without a value turned stats on" || true
# The same under the bin/xalloc wrapper (one process, one line).
wrap=$XALLOC_BUILDDIR/bin/xalloc
run wrapper "$tmp/prog" XALLOC_CONF=no_such_option:1
wrap=
ran_ok wrapper
one_warning wrapper no_such_option XALLOC_CONF

# ---- malformed values keep the default --------------------------------------------
for bad in lg_chunk:abc lg_chunk:99 lg_chunk:20 lg_chunk:-1 lg_chunk: lg_chunk:21x \
  lg_chunk:99999999999999999999999 lg_chunk:18446744073709551636 abort:maybe abort:1 abort:TRUE; do
  # (18446744073709551636 is 2^64 + 20: it must not wrap around to 20.)
  opt=${bad%%:*}
  name=bad_$(echo "$bad" | tr -c 'a-zA-Z0-9_\n' '_')
  run "$name" "$tmp/prog" XALLOC_CONF="$bad,stats_print:true"
  echo "checking: XALLOC_CONF=$bad"
  ran_ok "$name"
  one_warning "$name" "$opt" XALLOC_CONF
  got=$(options_line "$name")
  if [ "$got" = "$default" ]; then
    pass "$name: default kept ($got)"
  else
    fail "$name: options changed to '$got' (default '$default')"
  fi
  chunk=$(sed -n 's/.*chunk size: \([0-9]*\).*/\1/p' "$tmp/$name.err")
  [ "$chunk" = "$default_chunk" ] || fail "$name: chunk size $chunk, default $default_chunk"
done
run bad_stats "$tmp/prog" XALLOC_CONF=stats_print:yes
ran_ok bad_stats
one_warning bad_stats stats_print XALLOC_CONF
has_stats bad_stats && fail "bad_stats: stats_print:yes turned stats on" || pass "bad_stats: stats stay off"

# ---- MALLOC_CONF ------------------------------------------------------------------
run mconf "$tmp/prog" MALLOC_CONF=no_such_option:1
ran_ok mconf
one_warning mconf no_such_option MALLOC_CONF
run mconf2 "$tmp/prog" MALLOC_CONF=stats_print:true
ran_ok mconf2
has_stats mconf2 && pass "mconf2: MALLOC_CONF=stats_print:true prints the report" ||
  fail "mconf2: MALLOC_CONF=stats_print:true printed no report"
run mconf3 "$tmp/prog" MALLOC_CONF=lg_chunk:abc,stats_print:true
one_warning mconf3 lg_chunk MALLOC_CONF
[ "$(options_line mconf3)" = "$default" ] && pass "mconf3: default kept" ||
  fail "mconf3: options changed to '$(options_line mconf3)'"

# ---- abort_conf ---------------------------------------------------------------------
for conf in abort_conf:true,no_such_option:1 no_such_option:1,abort_conf:true abort_conf:true,lg_chunk:abc; do
  run abortconf "$tmp/prog" XALLOC_CONF="$conf"
  # 134 = 128 + SIGABRT as the shell reports it.
  if [ "$rc" -eq 134 ] && [ ! -s "$tmp/abortconf.out" ]; then
    pass "abort_conf ($conf): the program aborted with SIGABRT before running"
  else
    fail "abort_conf ($conf): exit $rc, output '$(cat "$tmp/abortconf.out")' (expected SIGABRT, exit 134)"
  fi
  grep -q 'no_such_option\|lg_chunk' "$tmp/abortconf.err" && pass "abort_conf ($conf): the bad option is named" ||
    fail "abort_conf ($conf): the bad option is not named: $(cat "$tmp/abortconf.err")"
done
run abortconf_src "$tmp/prog" XALLOC_CONF=abort_conf:true MALLOC_CONF=no_such_option:1
[ "$rc" -eq 134 ] && pass "abort_conf in XALLOC_CONF, bad option in MALLOC_CONF: SIGABRT" ||
  fail "abort_conf in XALLOC_CONF, bad option in MALLOC_CONF: exit $rc, expected 134"
run abortconf_ok "$tmp/prog" XALLOC_CONF=abort_conf:true,lg_chunk:24
ran_ok abortconf_ok
no_warning abortconf_ok
run abortconf_off "$tmp/prog" XALLOC_CONF=abort_conf:false,no_such_option:1
ran_ok abortconf_off

# ---- the malloc_conf symbol -----------------------------------------------------------
run sym "$tmp/prog-stats"
ran_ok sym
has_stats sym && pass "sym: malloc_conf=\"stats_print:true\" in the program prints the report" ||
  fail "sym: malloc_conf=\"stats_print:true\" in the program printed no report"
no_warning sym
run symstatic "$tmp/prog-static"
ran_ok symstatic
has_stats symstatic && pass "symstatic: malloc_conf works when linked with libxalloc.a" ||
  fail "symstatic: malloc_conf ignored when linked with libxalloc.a"
run symbad "$tmp/prog-bad"
ran_ok symbad
one_warning symbad bogus_symbol_opt malloc_conf

# ---- later sources win --------------------------------------------------------------------
run order0 "$tmp/prog-chunk24"
case "$(options_line order0)" in lg_chunk:24\ *) pass "order0: malloc_conf sets lg_chunk:24" ;;
  *) fail "order0: Options '$(options_line order0)', expected lg_chunk:24 from malloc_conf" ;; esac
run order1 "$tmp/prog-chunk24" XALLOC_CONF=lg_chunk:22
case "$(options_line order1)" in lg_chunk:22\ *) pass "order1: XALLOC_CONF beats malloc_conf (lg_chunk:22)" ;;
  *) fail "order1: Options '$(options_line order1)', expected lg_chunk:22 from XALLOC_CONF" ;; esac
grep -q 'chunk size: 4194304$' "$tmp/order1.err" && pass "order1: chunk size 4194304" ||
  fail "order1: chunk size is not 4194304: $(grep 'chunk size' "$tmp/order1.err")"
run order2 "$tmp/prog-chunk24" XALLOC_CONF=lg_chunk:22 MALLOC_CONF=lg_chunk:26
case "$(options_line order2)" in lg_chunk:26\ *) pass "order2: MALLOC_CONF beats XALLOC_CONF (lg_chunk:26)" ;;
  *) fail "order2: Options '$(options_line order2)', expected lg_chunk:26 from MALLOC_CONF" ;; esac
run order3 "$tmp/prog-chunk24" XALLOC_CONF=stats_print:false
ran_ok order3
has_stats order3 && fail "order3: XALLOC_CONF=stats_print:false did not override malloc_conf" ||
  pass "order3: XALLOC_CONF=stats_print:false overrides malloc_conf's stats_print:true"
# Within one string, the last value wins; a bad later value keeps the earlier one.
run order4 "$tmp/prog" XALLOC_CONF=lg_chunk:27,stats_print:true,lg_chunk:23
case "$(options_line order4)" in lg_chunk:23\ *) pass "order4: the last value in a string wins" ;;
  *) fail "order4: Options '$(options_line order4)', expected lg_chunk:23" ;; esac
run order5 "$tmp/prog-chunk24" XALLOC_CONF=lg_chunk:abc
one_warning order5 lg_chunk XALLOC_CONF
case "$(options_line order5)" in lg_chunk:24\ *) pass "order5: a malformed XALLOC_CONF value keeps malloc_conf's" ;;
  *) fail "order5: Options '$(options_line order5)', expected lg_chunk:24" ;; esac

[ "$failures" -eq 0 ] || { echo "options: $failures check(s) failed"; exit 1; }
echo "options: all checks passed"
