#!/bin/sh
# The heap profiler as a jemalloc user drives it (doc/PROFILING.md), on a
# program with known allocation sites, preloaded:
# - prof_final leaves PREFIX.<pid>.0.f.heap; with prof_leak the exit
#   report names both leaking functions, and its total is within 10 % of
#   the true live bytes, for several seeds (allocation orders);
# - jeprof (when installed) reads the dump unchanged: --text total within
#   10 % of the truth and >= 95 % of it in the two functions, --collapsed,
#   --base (a diff of two dumps), --svg when graphviz is there;
# - prof.dump without a name (PREFIX.<pid>.<seq>.m<n>.heap), lg_prof_interval
#   (.i<n>.heap) and prof_gdump (.u<n>.heap) dumps, named as jemalloc
#   names them;
# - bin/xalloc --profile PREFIX leaves the dump and says where;
# - a bad lg_prof_sample gets the one-line warning and the program runs.
set -eu

. "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}/test/include/script.sh"
lib="$XALLOC_BUILDDIR/lib/libxalloc.so.0"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xa-prof.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

cat > "$tmp/sites.c" <<'EOF'
/* sites SEED [dump]: keeps 60000 blocks of 1000 bytes from leak_small and
 * 6000 of 12000 from leak_big, in an order the seed shuffles, among
 * allocations freed at once (churn); prints the usable bytes kept. With
 * "dump", calls prof.dump (no name) after each half. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef int (*mallctl_t)(const char *, void *, size_t *, void *, size_t);
static void **keep;
static size_t nkeep, kept;
__attribute__((noinline)) void leak_small(void) {
  void *p = malloc(1000);
  memset(p, 1, 1000);
  kept += malloc_usable_size(p);
  keep[nkeep++] = p;
}
__attribute__((noinline)) void leak_big(void) {
  void *p = malloc(12000);
  memset(p, 2, 12000);
  kept += malloc_usable_size(p);
  keep[nkeep++] = p;
}
__attribute__((noinline)) void churn(unsigned x) {
  void *p = malloc(64 + x % 3000);
  memset(p, 3, 64);
  free(p);
}
int main(int argc, char **argv) {
  unsigned seed = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
  int dump = argc > 2 && strcmp(argv[2], "dump") == 0;
  mallctl_t mallctl = (mallctl_t)dlsym(RTLD_DEFAULT, "mallctl");
  keep = calloc(70000, sizeof(void *));
  unsigned x = seed * 2654435761u + 1;
  unsigned small = 0, big = 0;
  while (small < 60000 || big < 6000) {
    x = x * 1103515245u + 12345u;
    unsigned r = (x >> 8) % 11;
    if (r < 10 && small < 60000) {
      leak_small();
      small++;
    } else if (big < 6000) {
      leak_big();
      big++;
    }
    churn(x >> 4);
    if (dump && mallctl != NULL && small == 30000 && r < 10) mallctl("prof.dump", NULL, NULL, NULL, 0);
  }
  if (dump && mallctl != NULL) mallctl("prof.dump", NULL, NULL, NULL, 0);
  printf("%zu\n", kept);
  return 0;
}
EOF
"$CC" -O1 -g -rdynamic -o "$tmp/sites" "$tmp/sites.c" -ldl

# within PCT a b: |a - b| <= PCT % of b
within() { awk -v p="$1" -v a="$2" -v b="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= b * p / 100) }'; }

# ---- prof_final + prof_leak, several seeds -------------------------------------------------
for seed in 1 2 3; do
  mkdir -p "$tmp/s$seed"
  conf="${base}prof:true,prof_final:true,prof_leak:true,lg_prof_sample:15,prof_prefix:$tmp/s$seed/p"
  if ! XALLOC_CONF=$conf LD_PRELOAD=$lib "$tmp/sites" $seed > "$tmp/s$seed/out" 2> "$tmp/s$seed/err"; then
    fail "seed $seed: the program failed: $(head -n 3 "$tmp/s$seed/err")"
    continue
  fi
  truth=$(cat "$tmp/s$seed/out")
  dumps=$(ls "$tmp/s$seed"/p.*.0.f.heap 2>/dev/null | wc -l)
  [ "$dumps" -eq 1 ] && pass "seed $seed: one final dump, PREFIX.<pid>.0.f.heap" || fail "seed $seed: $dumps final dumps: $(ls "$tmp/s$seed")"
  head -n 1 "$tmp/s$seed"/p.*.f.heap | grep -qx 'heap_v2/32768' && pass "seed $seed: heap_v2 header with the rate" ||
    fail "seed $seed: header '$(head -n 1 "$tmp/s$seed"/p.*.f.heap)'"
  est=$(sed -n 's/^xalloc: leak approximation summary: ~\([0-9]*\) bytes.*/\1/p' "$tmp/s$seed/err")
  if [ -n "$est" ] && within 10 "$est" "$truth"; then
    pass "seed $seed: leak summary ~$est bytes, true $truth (within 10 %)"
  else
    fail "seed $seed: leak summary '${est:-none}' against true $truth: $(head -n 2 "$tmp/s$seed/err")"
  fi
  if grep -q 'leak_small+0x' "$tmp/s$seed/err" && grep -q 'leak_big+0x' "$tmp/s$seed/err"; then
    pass "seed $seed: prof_leak names leak_small and leak_big"
  else
    fail "seed $seed: the leak report does not name both sites: $(cat "$tmp/s$seed/err" | head -n 12)"
  fi
  grep -q 'churn+0x' "$tmp/s$seed/err" && fail "seed $seed: freed allocations (churn) reported as leaks"
  if command -v jeprof > /dev/null 2>&1; then
    d=$(ls "$tmp/s$seed"/p.*.f.heap)
    jeprof --text "$tmp/sites" "$d" > "$tmp/s$seed/jtext" 2> "$tmp/s$seed/jerr" || true
    total=$(sed -n 's/^Total: \([0-9.]*\) MB$/\1/p' "$tmp/s$seed/jtext")
    inuse=$(awk '$6 == "leak_small" || $6 == "leak_big" { s += $1 } END { print s + 0 }' "$tmp/s$seed/jtext")
    truemb=$(awk -v t="$truth" 'BEGIN { print t / 1048576 }')
    if [ -n "$total" ] && within 10 "$total" "$truemb" && awk -v a="$inuse" -v t="$total" 'BEGIN { exit !(a >= 0.95 * t) }'; then
      pass "seed $seed: jeprof --text: Total $total MB (true $truemb), $inuse MB in leak_small + leak_big"
    else
      fail "seed $seed: jeprof --text: '$(head -n 4 "$tmp/s$seed/jtext")' $(head -n 3 "$tmp/s$seed/jerr") (true $truemb MB)"
    fi
  fi
done

# ---- prof.dump without a name, jeprof --base and --collapsed ---------------------------------
mkdir -p "$tmp/m"
if XALLOC_CONF="${base}prof:true,lg_prof_sample:15,prof_prefix:$tmp/m/p" LD_PRELOAD=$lib "$tmp/sites" 4 dump > /dev/null 2> "$tmp/m/err"; then
  set -- "$tmp"/m/p.*.0.m0.heap "$tmp"/m/p.*.1.m1.heap
  if [ -e "$1" ] && [ -e "$2" ]; then
    pass "prof.dump with no name: PREFIX.<pid>.0.m0.heap, PREFIX.<pid>.1.m1.heap"
    if command -v jeprof > /dev/null 2>&1; then
      jeprof --collapsed "$tmp/sites" "$2" > "$tmp/m/coll" 2>/dev/null || true
      grep -q 'main[^;]*;leak_small[^ ;]* [0-9]' "$tmp/m/coll" && pass "jeprof --collapsed: ...;main;leak_small N" ||
        fail "jeprof --collapsed: $(head -n 3 "$tmp/m/coll")"
      jeprof --text --base="$1" "$tmp/sites" "$2" > "$tmp/m/diff" 2>/dev/null || true
      full=$(sed -n 's/^Total: \([0-9.]*\) MB$/\1/p' "$tmp/m/diff")
      jeprof --text "$tmp/sites" "$2" > "$tmp/m/all" 2>/dev/null || true
      all=$(sed -n 's/^Total: \([0-9.]*\) MB$/\1/p' "$tmp/m/all")
      if [ -n "$full" ] && [ -n "$all" ] && awk -v d="$full" -v a="$all" 'BEGIN { exit !(d > 0.3 * a && d < 0.7 * a) }'; then
        pass "jeprof --base: the growth between the dumps is $full of $all MB"
      else
        fail "jeprof --base: '$full' of '$all' MB"
      fi
      if command -v dot > /dev/null 2>&1; then
        jeprof --svg "$tmp/sites" "$2" > "$tmp/m/g.svg" 2>/dev/null || true
        grep -q 'leak_small' "$tmp/m/g.svg" && pass "jeprof --svg names leak_small" || fail "jeprof --svg: $(head -c 200 "$tmp/m/g.svg")"
      else
        echo "skip: jeprof --svg (graphviz's dot is not installed)"
      fi
    else
      echo "skip: jeprof is not installed (Debian's libjemalloc-dev)"
    fi
  else
    fail "prof.dump with no name: $(ls "$tmp/m")"
  fi
else
  fail "prof.dump run failed: $(head -n 3 "$tmp/m/err")"
fi

# ---- lg_prof_interval and prof_gdump ---------------------------------------------------------
mkdir -p "$tmp/i"
if XALLOC_CONF="${base}prof:true,lg_prof_interval:23,prof_gdump:true,prof_prefix:$tmp/i/p" LD_PRELOAD=$lib "$tmp/sites" 5 > /dev/null 2> "$tmp/i/err"; then
  ni=$(ls "$tmp/i" | grep -c '\.i[0-9]*\.heap$' || true)
  nu=$(ls "$tmp/i" | grep -c '\.u[0-9]*\.heap$' || true)
  # About 180 MB allocated in all (kept and churned): 8 MiB intervals give ~21.
  [ "$ni" -ge 10 ] && [ "$ni" -le 40 ] && ls "$tmp/i" | grep -q '^p\.[0-9]*\.[0-9]*\.i0\.heap$' &&
    pass "lg_prof_interval:23: $ni interval dumps, PREFIX.<pid>.<seq>.i<n>.heap" || fail "lg_prof_interval: $ni dumps: $(ls "$tmp/i" | head)"
  [ "$nu" -ge 3 ] && ls "$tmp/i" | grep -q '^p\.[0-9]*\.[0-9]*\.u0\.heap$' &&
    pass "prof_gdump: $nu dumps as mapped memory grew, PREFIX.<pid>.<seq>.u<n>.heap" || fail "prof_gdump: $nu dumps"
else
  fail "interval run failed: $(head -n 3 "$tmp/i/err")"
fi

# ---- bin/xalloc --profile ----------------------------------------------------------------------
mkdir -p "$tmp/w"
if XALLOC_CONF=${base%,} "$XALLOC_BUILDDIR/bin/xalloc" --profile "$tmp/w/run" "$tmp/sites" 6 > /dev/null 2> "$tmp/w/err"; then
  f=$(ls "$tmp"/w/run.*.0.f.heap 2>/dev/null | head -n 1)
  if [ -n "$f" ] && grep -q "^xalloc: heap profile $f " "$tmp/w/err" && [ "$(ls "$tmp/w" | wc -l)" -eq 2 ]; then
    pass "bin/xalloc --profile leaves one dump ($(basename "$f")) and names it"
  else
    fail "bin/xalloc --profile: $(ls "$tmp/w") / $(cat "$tmp/w/err")"
  fi
else
  fail "bin/xalloc --profile failed: $(cat "$tmp/w/err")"
fi
"$XALLOC_BUILDDIR/bin/xalloc" --profile /nonexistent-dir/p true 2> "$tmp/w/bad" && fail "--profile into a missing directory accepted" ||
  { grep -q "^xalloc: --profile '/nonexistent-dir/p': no directory /nonexistent-dir$" "$tmp/w/bad" && pass "--profile into a missing directory refused" ||
    fail "--profile bad dir: $(cat "$tmp/w/bad")"; }

# ---- bad values ---------------------------------------------------------------------------------
if XALLOC_CONF="${base}prof:true,lg_prof_sample:99" LD_PRELOAD=$lib "$tmp/sites" 7 > "$tmp/bad.out" 2> "$tmp/bad.err"; then
  if [ "$(grep -c . "$tmp/bad.err")" -eq 1 ] &&
     grep -q "^xalloc: invalid value '99' for option 'lg_prof_sample' in XALLOC_CONF (expected an integer from 0 to 62); option unchanged$" "$tmp/bad.err"; then
    pass "lg_prof_sample:99 refused with one line; the program runs"
  else
    fail "lg_prof_sample:99: $(cat "$tmp/bad.err")"
  fi
else
  fail "lg_prof_sample:99: the program failed: $(cat "$tmp/bad.err")"
fi
XALLOC_CONF="${base}prof:true,prof_prefix:/nonexistent-dir/p,prof_final:true" LD_PRELOAD=$lib "$tmp/sites" 8 > /dev/null 2> "$tmp/nodir.err" &&
  grep -q "^xalloc: cannot write the heap profile /nonexistent-dir/p\.[0-9]*\.0\.f\.heap$" "$tmp/nodir.err" &&
  pass "an unwritable prof_prefix: one line at exit, exit status 0" || fail "unwritable prof_prefix: $(cat "$tmp/nodir.err")"

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
