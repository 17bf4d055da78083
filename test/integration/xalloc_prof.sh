#!/bin/sh
# bin/xalloc-prof, the heap profile reader (doc/PROFILING.md), on the dumps
# of a program with known allocation sites (site_alpha in the program,
# site_beta in a shared library; churn allocates and frees, so must not
# appear), run with prof:true,prof_final:true,lg_prof_sample:14 (16 KiB):
# - --json: >= 95 % of the bytes in site_alpha and site_beta, each within
#   10 % of its true live usable bytes, the total within 10 % of the true
#   total, churn absent, objects near the true counts;
# - --text: the Total line and one line per function, --top N;
#   jeprof --text (when installed) gives a Total within 5 % of ours;
# - --collapsed: "outer;...;inner BYTES" lines, main;site_alpha and
#   main;site_beta among them, summing to the JSON total;
# - --svg: well-formed XML (xml.etree), a rectangle with a <title> for both
#   sites, widths in proportion to the bytes;
# - --base: two prof.dump dumps (before and after site_beta) show only the
#   growth; --alloc (prof_accum:true) shows churn's bytes;
# - an executable gone since the run: its frames as prog+0xOFFSET;
# - libxalloc.a linked into the program: the allocator's frames dropped up
#   to malloc, the program's own stack_push kept;
# - a missing file, a directory, an empty file, a text file, a bad line:
#   one line on stderr, exit status 2, no traceback.
set -eu

. "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}/test/include/script.sh"
PY=${PYTHON:-python3}
if ! command -v "$PY" > /dev/null 2>&1; then
  echo "skip: no python3 (bin/xalloc-prof needs it)"
  exit 0
fi
tool=${XALLOC_PROF:-$XALLOC_SRCDIR/bin/xalloc-prof}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xa-prof.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

cat > "$tmp/beta.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
/* In a shared library: its frames are found through the library's own
 * PT_LOAD headers and symbol table. */
__attribute__((noinline)) void *site_beta(size_t n) {
  void *p = malloc(n);
  if (p != NULL) memset(p, 2, n);
  return p;
}
EOF
cat > "$tmp/prog.c" <<'EOF'
/* prog DIR: site_alpha keeps 100000 blocks of 500 bytes; churn allocates
 * and frees 40 MB; prof.dump to DIR/a.heap; site_beta (libbeta.so) keeps
 * 120000 blocks of 300 bytes; prof.dump to DIR/b.heap. Prints the live
 * usable bytes and counts of each site.
 * (Sizes at most 1/32 of the sampling mean, 16 KiB here: the thread
 * cache's batched countdowns (sample.h) are exact to 1.5 % only up to
 * there; 9000-byte blocks come out about 9 % low with the tcache on.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
size_t malloc_usable_size(void *p);
void *site_beta(size_t n);
#define NA 100000
#define NB 120000
static void *keep_a[NA], *keep_b[NB];
__attribute__((noinline)) void *site_alpha(size_t n) {
  void *p = malloc(n);
  if (p != NULL) memset(p, 1, n);
  return p;
}
__attribute__((noinline)) void churn(void) {
  for (int i = 0; i < 8000; i++) {
    void *p = malloc(5000);
    if (p == NULL) exit(3);
    ((volatile char *)p)[0] = 1;
    free(p);
  }
}
static int dump(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  const char *s = path;
  return mallctl("prof.dump", NULL, NULL, (void *)&s, sizeof(s));
}
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t ua = 0, ub = 0;
  for (int i = 0; i < NA; i++) {
    keep_a[i] = site_alpha(500);
    if (keep_a[i] == NULL) return 3;
    ua += malloc_usable_size(keep_a[i]);
  }
  churn();
  int ra = dump(argv[1], "a.heap");
  for (int i = 0; i < NB; i++) {
    keep_b[i] = site_beta(300);
    if (keep_b[i] == NULL) return 3;
    ub += malloc_usable_size(keep_b[i]);
  }
  int rb = dump(argv[1], "b.heap");
  printf("alpha %zu %d\nbeta %zu %d\ntotal %zu\ndumps %d %d\n", ua, NA, ub, NB, ua + ub, ra, rb);
  return 0;
}
EOF
lib=$XALLOC_BUILDDIR/lib
"$CC" -std=gnu11 -O1 -fPIC -shared -o "$tmp/libbeta.so" "$tmp/beta.c"
"$CC" -std=gnu11 -O1 -o "$tmp/prog" "$tmp/prog.c" -L"$tmp" -L"$lib" -Wl,-rpath,"$tmp" -Wl,-rpath,"$lib" \
  -lbeta -lxalloc -lpthread

# ---- the run ------------------------------------------------------------------------
mkdir "$tmp/d"
set +e
XALLOC_CONF="${base}prof:true,prof_final:true,lg_prof_sample:14,prof_prefix:$tmp/d/f" "$tmp/prog" "$tmp/d" \
  > "$tmp/run.out" 2> "$tmp/run.err"
rc=$?
set -e
final=$(ls "$tmp"/d/f.*.f.heap 2>/dev/null | head -n 1)
if [ "$rc" -ne 0 ] || [ -z "$final" ] || [ ! -s "$tmp/d/a.heap" ] || [ ! -s "$tmp/d/b.heap" ] ||
   ! grep -qx "dumps 0 0" "$tmp/run.out"; then
  fail "the profiled run: exit $rc, $(cat "$tmp/run.out" "$tmp/run.err" | tr '\n' ' '), dumps: $(ls "$tmp/d" | tr '\n' ' ')"
  echo "xalloc_prof: cannot go on"
  exit 1
fi
pass "the profiled run left $(basename "$final"), a.heap and b.heap ($(grep -c '^@' "$final") stacks)"
set -- $(sed -n 's/^alpha //p' "$tmp/run.out"); alpha=$1 na=$2
set -- $(sed -n 's/^beta //p' "$tmp/run.out"); beta=$1 nb=$2
total=$(sed -n 's/^total //p' "$tmp/run.out")

# tool NAME ARGS...: run the tool; $rc, stdout and stderr in $tmp/NAME.out/.err
tool() {
  name=$1
  shift
  set +e
  "$PY" "$tool" "$@" > "$tmp/$name.out" 2> "$tmp/$name.err"
  rc=$?
  set -e
}
# pycheck LABEL FILE SCRIPT ARGS...: run SCRIPT (python, reads the JSON in
# FILE as `d`, sys.argv[2:] as ARGS); it prints its problems, nothing if
# none; the last line it prints on success is the pass detail.
pycheck() {
  label=$1 file=$2 script=$3
  shift 3
  if "$PY" - "$file" "$@" > "$tmp/check.txt" 2>&1 <<EOF
import json, sys
d = json.load(open(sys.argv[1]))
a = sys.argv[2:]
f = {x["name"]: x for x in d["functions"]}
def flat(n, k="flat_bytes"): return f[n][k] if n in f else 0
bad = []
$script
if bad:
    print("; ".join(bad)); sys.exit(1)
EOF
  then pass "$label: $(tail -n 1 "$tmp/check.txt")"; else fail "$label: $(cat "$tmp/check.txt")"; fi
}

# ---- --json: the sites and the total ---------------------------------------------
tool json --json "$final"
if [ "$rc" -eq 0 ]; then
  pycheck "--json: bytes by site (alpha $alpha, beta $beta, total $total true)" "$tmp/json.out" '
alpha, beta, total = (float(x) for x in a[:3])
na, nb = float(a[3]), float(a[4])
fa, fb, t = flat("site_alpha"), flat("site_beta"), d["total_bytes"]
if t <= 0: bad.append("total %d" % t)
elif (fa + fb) < 0.95 * t: bad.append("only %.1f %% of %d bytes in site_alpha and site_beta" % (100.0 * (fa + fb) / t, t))
# Each site has about 1500 samples (2.5 % standard error): 12 % is 5 sigmas.
if abs(fa - alpha) > 0.12 * alpha: bad.append("site_alpha %d, true %d" % (fa, alpha))
if abs(fb - beta) > 0.12 * beta: bad.append("site_beta %d, true %d" % (fb, beta))
if abs(t - total) > 0.10 * total: bad.append("total %d, true %d" % (t, total))
for n in f:
    if n.startswith("churn") and (f[n]["flat_bytes"] or f[n]["cum_bytes"]): bad.append("churn has %d bytes" % f[n]["cum_bytes"])
oa, ob = flat("site_alpha", "flat_objects"), flat("site_beta", "flat_objects")
if abs(oa - na) > 0.12 * na: bad.append("site_alpha %d objects, true %d" % (oa, na))
if abs(ob - nb) > 0.12 * nb: bad.append("site_beta %d objects, true %d" % (ob, nb))
if f.get("main", {}).get("cum_bytes", 0) < 0.95 * t: bad.append("main is not cumulative for nearly all: %s" % f.get("main"))
if any(n.startswith(("xa_", "prof_", "malloc")) for n in f): bad.append("allocator frames kept: %s" % [n for n in f if n.startswith(("xa_", "prof_", "malloc"))])
print("site_alpha %d (%+.1f %%), site_beta %d (%+.1f %%), total %d (%+.1f %%), %.1f %% in the two sites, from %d samples" % (
    fa, 100.0 * (fa - alpha) / alpha, fb, 100.0 * (fb - beta) / beta, t, 100.0 * (t - total) / total,
    100.0 * (fa + fb) / t, d["samples"]))
' "$alpha" "$beta" "$total" "$na" "$nb"
else
  fail "--json: exit $rc, $(head -n 3 "$tmp/json.err")"
fi

# ---- --text, --top, and jeprof ------------------------------------------------------
tool text "$final"
ours=$(sed -n 's/^Total: \([0-9.]*\) MB$/\1/p' "$tmp/text.out")
if [ "$rc" -eq 0 ] && [ -n "$ours" ] &&
   awk 'NR > 1 && !/^ *-?[0-9.]+ +-?[0-9.]+% +-?[0-9.]+% +-?[0-9.]+ +-?[0-9.]+% [^ ]/ { bad = 1 } END { exit bad }' "$tmp/text.out" &&
   grep -q '% site_alpha$' "$tmp/text.out" && grep -q '% site_beta$' "$tmp/text.out"; then
  pass "--text: Total: $ours MB, $(($(wc -l < "$tmp/text.out") - 1)) functions, both sites"
else
  fail "--text: exit $rc, $(head -n 5 "$tmp/text.out" "$tmp/text.err")"
fi
first=$(sed -n 2p "$tmp/text.out" | awk '{print $6}')
tool top --text --top 1 "$final"
[ "$rc" -eq 0 ] && [ "$(wc -l < "$tmp/top.out")" -eq 2 ] && [ "$(sed -n 2p "$tmp/top.out" | awk '{print $6}')" = "$first" ] &&
  pass "--top 1: the Total and $first" || fail "--top 1: $(cat "$tmp/top.out" "$tmp/top.err")"
if command -v jeprof > /dev/null 2>&1; then
  set +e
  jeprof --text "$tmp/prog" "$final" > "$tmp/jeprof.out" 2> "$tmp/jeprof.err"
  set -e
  theirs=$(sed -n 's/^Total: \([0-9.]*\) MB$/\1/p' "$tmp/jeprof.out")
  if [ -n "$theirs" ] && [ -n "$ours" ] &&
     awk -v a="$ours" -v b="$theirs" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= 0.05 * b) }'; then
    pass "jeprof --text: Total: $theirs MB, ours $ours MB"
  else
    fail "jeprof --text: Total '$theirs' MB, ours '$ours' MB: $(head -n 3 "$tmp/jeprof.out" "$tmp/jeprof.err")"
  fi
  grep -q ' site_alpha$' "$tmp/jeprof.out" && grep -q ' site_beta$' "$tmp/jeprof.out" &&
    pass "jeprof names both sites too" || fail "jeprof does not name both sites: $(head -n 6 "$tmp/jeprof.out")"
else
  echo "skip: jeprof is not installed (Debian: libjemalloc-dev): not compared"
fi

# ---- --collapsed ------------------------------------------------------------------------
tool collapsed --collapsed "$final"
jtotal=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_bytes"])' "$tmp/json.out" 2>/dev/null || echo 0)
if [ "$rc" -eq 0 ] && [ -s "$tmp/collapsed.out" ] &&
   awk -v t="$jtotal" '!/^[^ ;][^;]*(;[^;]+)* [0-9]+$/ { print "bad line: " $0; bad = 1 } { s += $NF }
     END { d = s - t; if (d < 0) d = -d; if (d > 0.001 * t + NR) { print "sum " s ", json total " t; bad = 1 }; exit bad }' \
     "$tmp/collapsed.out" > "$tmp/c.txt" &&
   grep -q '\(^\|;\)main;site_alpha [0-9]*$' "$tmp/collapsed.out" && grep -q '\(^\|;\)main;site_beta [0-9]*$' "$tmp/collapsed.out"; then
  pass "--collapsed: $(wc -l < "$tmp/collapsed.out") stacks, main;site_alpha and main;site_beta, summing to the total"
else
  fail "--collapsed: exit $rc, $(cat "$tmp/c.txt" 2>/dev/null) $(head -n 4 "$tmp/collapsed.out" "$tmp/collapsed.err")"
fi

# ---- --svg ----------------------------------------------------------------------------------
tool svg --svg "$tmp/flame.svg" "$final"
if [ "$rc" -eq 0 ] && [ -s "$tmp/flame.svg" ] && [ ! -s "$tmp/svg.out" ]; then
  if "$PY" - "$tmp/flame.svg" "$alpha" "$beta" > "$tmp/check.txt" 2>&1 <<'EOF'
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
alpha, beta = float(sys.argv[2]), float(sys.argv[3])
if root.tag != ns + "svg": print("root is", root.tag); sys.exit(1)
frames = []
for g in root.iter(ns + "g"):
    r, t = g.find(ns + "rect"), g.find(ns + "title")
    if r is None or t is None: continue
    frames.append((t.text, float(r.get("width")), float(r.get("x")), float(r.get("y"))))
def find(n): return [f for f in frames if f[0].startswith(n + " (")]
a, b, al = find("site_alpha"), find("site_beta"), find("all")
bad = []
if not a or not b: bad.append("no rectangle for site_alpha or site_beta: %s" % [f[0] for f in frames][:10])
if len(al) != 1: bad.append("%d root rectangles" % len(al))
if not bad:
    wa, wb = sum(f[1] for f in a), sum(f[1] for f in b)
    want = alpha / beta
    if abs(wa / wb - want) > 0.15 * want: bad.append("widths %.1f and %.1f, bytes ratio %.2f" % (wa, wb, want))
    if not all(f[3] < al[0][3] for f in a + b): bad.append("the sites are not above the root")
    if al[0][1] < 1000: bad.append("root width %.1f" % al[0][1])
if bad: print("; ".join(bad)); sys.exit(1)
print("%d frames, site_alpha %.0f px and site_beta %.0f px wide, root at the bottom" % (len(frames), wa, wb))
EOF
  then pass "--svg: well-formed, $(cat "$tmp/check.txt")"; else fail "--svg: $(cat "$tmp/check.txt")"; fi
else
  fail "--svg: exit $rc, $(head -n 3 "$tmp/svg.err")"
fi

# ---- --base: only the growth --------------------------------------------------------------
tool basej --json --base "$tmp/d/a.heap" "$tmp/d/b.heap"
if [ "$rc" -eq 0 ]; then
  pycheck "--base a.heap b.heap: site_beta grew, site_alpha did not" "$tmp/basej.out" '
alpha, beta = float(a[0]), float(a[1])
fa, fb, t = flat("site_alpha"), flat("site_beta"), d["total_bytes"]
if abs(fb - beta) > 0.12 * beta: bad.append("site_beta %d, grew by %d" % (fb, beta))
if abs(fa) > 0.02 * alpha: bad.append("site_alpha %d (did not grow)" % fa)
if abs(t - beta) > 0.12 * beta: bad.append("total %d, growth %d" % (t, beta))
print("site_beta %d (true %d), site_alpha %d, total %d" % (fb, beta, fa, t))
' "$alpha" "$beta"
else
  fail "--base: exit $rc, $(head -n 3 "$tmp/basej.err")"
fi
tool basec --collapsed --base "$tmp/d/a.heap" "$tmp/d/b.heap"
[ "$rc" -eq 0 ] && grep -q ';site_beta [0-9]*$' "$tmp/basec.out" && ! grep -q 'site_alpha' "$tmp/basec.out" &&
  pass "--base --collapsed: site_beta only" || fail "--base --collapsed: exit $rc, $(head -n 4 "$tmp/basec.out" "$tmp/basec.err")"

# ---- --alloc with prof_accum:true ------------------------------------------------------------
mkdir "$tmp/acc"
set +e
XALLOC_CONF="${base}prof:true,prof_final:true,prof_accum:true,lg_prof_sample:14,prof_prefix:$tmp/acc/f" \
  "$tmp/prog" "$tmp/acc" > /dev/null 2>&1
set -e
acc=$(ls "$tmp"/acc/f.*.f.heap 2>/dev/null | head -n 1)
if [ -n "$acc" ]; then
  tool alloc --json --alloc "$acc"
  [ "$rc" -eq 0 ] && pycheck "--alloc: churn's 40 MB allocated since start" "$tmp/alloc.out" '
c, fa = flat("churn"), flat("site_alpha")
if abs(c - 40e6) > 0.12 * 40e6: bad.append("churn %d, expected about 40000000 (8000 x 5000)" % c)
if d["kind"] != "alloc": bad.append("kind %s" % d["kind"])
if abs(fa - float(a[0])) > 0.12 * float(a[0]): bad.append("site_alpha %d, true %s" % (fa, a[0]))
print("churn %d, site_alpha %d" % (c, fa))
' "$alpha" || { [ "$rc" -eq 0 ] || fail "--alloc: exit $rc, $(head -n 3 "$tmp/alloc.err")"; }
else
  fail "prof_accum:true: no dump ($(ls "$tmp/acc"))"
fi

# ---- an executable gone since the run ------------------------------------------------------
mv "$tmp/prog" "$tmp/prog.moved"
tool gone "$final"
mv "$tmp/prog.moved" "$tmp/prog"
if [ "$rc" -eq 0 ] && grep -q '% prog+0x[0-9a-f]*$' "$tmp/gone.out" && grep -q '% site_beta$' "$tmp/gone.out" &&
   grep -q "^xalloc-prof: warning: cannot open '$tmp/prog'" "$tmp/gone.err"; then
  pass "a missing executable: its frames as prog+0xOFFSET, a warning, the library still named"
else
  fail "missing executable: exit $rc, $(head -n 4 "$tmp/gone.out" "$tmp/gone.err")"
fi
tool given "$final" "$tmp/prog"
[ "$rc" -eq 0 ] && grep -q '% site_alpha$' "$tmp/given.out" && pass "PROGRAM given on the command line" ||
  fail "PROGRAM argument: exit $rc, $(head -n 4 "$tmp/given.out" "$tmp/given.err")"

# ---- xalloc linked into the program ----------------------------------------------------------
# The allocator's frames are then in the executable (stack capture cannot
# skip them): they go up to malloc, and the program's own stack_push keeps
# its name although xalloc has functions named stack_*.
cat > "$tmp/static.c" <<'EOF'
#include <stdlib.h>
__attribute__((noinline)) void *stack_push(unsigned n) { return malloc(n); }
int main(void) {
  for (int i = 0; i < 60000; i++) if (stack_push(400) == NULL) return 3;
  return 0;
}
EOF
if [ -f "$lib/libxalloc.a" ] && "$CC" -std=gnu11 -O1 -o "$tmp/static" "$tmp/static.c" "$lib/libxalloc.a" -lpthread -ldl 2> "$tmp/static.cc.err"; then
  mkdir "$tmp/st"
  set +e
  XALLOC_CONF="${base}prof:true,prof_final:true,lg_prof_sample:14,prof_prefix:$tmp/st/f" "$tmp/static" > /dev/null 2>&1
  set -e
  st=$(ls "$tmp"/st/f.*.f.heap 2>/dev/null | head -n 1)
  if [ -n "$st" ]; then
    tool static --json "$st"
    [ "$rc" -eq 0 ] && pycheck "libxalloc.a linked in: the allocator's frames dropped, stack_push kept" "$tmp/static.out" '
t, fs = d["total_bytes"], flat("stack_push")
if t <= 0 or fs < 0.95 * t: bad.append("stack_push %d of %d bytes; functions %s" % (fs, t, [x["name"] for x in d["functions"]][:6]))
internal = [n for n in f if n.startswith(("xa_", "prof_", "sample_", "tcache_", "stack_capture", "malloc"))]
if internal: bad.append("allocator frames kept: %s" % internal)
print("stack_push %.1f %% of %d bytes" % (100.0 * fs / max(t, 1), t))
' || { [ "$rc" -eq 0 ] || fail "static: exit $rc, $(head -n 3 "$tmp/static.err")"; }
  else
    fail "libxalloc.a linked in: no dump"
  fi
else
  echo "skip: cannot link with lib/libxalloc.a: $(head -n 2 "$tmp/static.cc.err" 2>/dev/null)"
fi

# ---- bad input -------------------------------------------------------------------------------------
: > "$tmp/empty.heap"
echo "hello, world" > "$tmp/text.heap"
head -c 3000 /dev/urandom > "$tmp/random.heap" 2>/dev/null || printf '\177ELF\002\001\000' > "$tmp/random.heap"
printf 'heap_v2/524288\n  t*: 1: 100 [0: 0]\n@ 0x1234 zzz\n  t*: 1: 100 [0: 0]\n' > "$tmp/badline.heap"
mkdir "$tmp/adir"
for f in "$tmp/no/such.heap" "$tmp/adir" "$tmp/empty.heap" "$tmp/text.heap" "$tmp/random.heap" "$tmp/badline.heap"; do
  for mode in --text --svg=$tmp/bad.svg; do
    tool bad $mode "$f"
    if [ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/bad.err")" -eq 1 ] && grep -q "^xalloc-prof: .*$(basename "$f")" "$tmp/bad.err" &&
       [ ! -s "$tmp/bad.out" ] && [ ! -e "$tmp/bad.svg" ]; then
      pass "$(basename "$f") $mode: exit 2, $(cat "$tmp/bad.err")"
    else
      fail "$(basename "$f") $mode: exit $rc, stdout $(wc -c < "$tmp/bad.out") bytes, stderr: $(head -n 3 "$tmp/bad.err")"
    fi
  done
done
tool badbase --base "$tmp/text.heap" "$final"
[ "$rc" -eq 2 ] && grep -q "^xalloc-prof: .*text.heap" "$tmp/badbase.err" && pass "a bad --base: exit 2" ||
  fail "bad --base: exit $rc, $(cat "$tmp/badbase.err")"
tool badout --svg "$tmp/no/dir/x.svg" "$final"
[ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/badout.err")" -eq 1 ] && pass "an unwritable --svg: $(cat "$tmp/badout.err")" ||
  fail "unwritable --svg: exit $rc, $(cat "$tmp/badout.err")"

[ "$failures" -eq 0 ] || { echo "xalloc_prof: $failures check(s) failed"; exit 1; }
echo "xalloc_prof: all checks passed"
