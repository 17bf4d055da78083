#!/bin/sh
# Real programs (python3, sort, gcc, sqlite3) run under bin/xalloc give the
# same output as without it, and xalloc really served them: with
# XALLOC_CONF=stats_print:true each process prints the xalloc statistics
# report at exit, with many allocation calls; without the preload there is
# no report. Every failed check is printed; the script exits 1 if any failed.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
xalloc=$XALLOC_BUILDDIR/bin/xalloc
[ -x "$xalloc" ] || { echo "FAIL: $xalloc is missing or not executable"; exit 1; }
unset XALLOC_CONF MALLOC_CONF LD_PRELOAD PYTHONMALLOC 2>/dev/null || true

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-programs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# check_same LABEL EXPECTED ACTUAL: the two files are byte for byte equal.
check_same() {
  if cmp -s "$2" "$3"; then
    pass "$1: output identical with and without xalloc ($(wc -c < "$3") bytes)"
  else
    fail "$1: output differs under xalloc"
    diff "$2" "$3" | head -n 10 || true
  fi
}

# check_exit LABEL EXPECTED ACTUAL: the exit statuses are equal.
check_exit() {
  if [ "$2" -eq "$3" ]; then
    pass "$1: exit status $3 as without xalloc"
  else
    fail "$1: exit status $3 under xalloc, $2 without"
  fi
}

# check_stats LABEL STDERR MIN_CALLS MIN_REPORTS: STDERR holds at least
# MIN_REPORTS complete xalloc statistics reports (one per process that
# used xalloc), and the largest "Allocation calls" count is >= MIN_CALLS.
check_stats() {
  label=$1 err=$2 min_calls=$3 min_reports=$4
  begins=$(grep -c '^___ Begin xalloc statistics ___$' "$err" || true)
  ends=$(grep -c '^___ End xalloc statistics ___$' "$err" || true)
  max=$(sed -n 's/^Allocation calls: \([0-9][0-9]*\), free calls: [0-9][0-9]*$/\1/p' "$err" |
    sort -n | tail -n 1)
  max=${max:-0}
  if [ "$begins" -lt "$min_reports" ] || [ "$ends" -ne "$begins" ]; then
    fail "$label: expected >= $min_reports complete xalloc statistics reports on stderr," \
      "found $begins begin / $ends end lines (was xalloc in use, and could it print?)"
    head -n 20 "$err" | sed 's/^/    stderr: /'
  else
    pass "$label: $begins xalloc statistics report(s) on stderr"
  fi
  if [ "$max" -lt "$min_calls" ]; then
    fail "$label: largest 'Allocation calls' is $max, expected >= $min_calls"
  else
    pass "$label: largest 'Allocation calls' is $max (>= $min_calls)"
  fi
}

# check_no_stats LABEL STDERR: no xalloc report when xalloc is not preloaded.
check_no_stats() {
  if grep -q 'xalloc statistics' "$2"; then
    fail "$1: an xalloc statistics report appeared without the preload"
  else
    pass "$1: no xalloc statistics report without the preload"
  fi
}

# ---- (1) python3, every allocation through malloc -------------------------
if [ -x /usr/bin/python3 ]; then
  py=/usr/bin/python3
elif command -v python3 > /dev/null 2>&1; then
  # python3 may be a shim script (pyenv): find the real interpreter.
  py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
else
  py=
fi
if [ -z "$py" ] || [ ! -x "$py" ]; then
  fail "python3: no python3 interpreter found (install the python3 package)"
else
  echo "python3: using $py"
  cat > "$tmp/work.py" <<'EOF'
import json, re, collections

# dicts and lists
d = {}
for i in range(60000):
    d["key%d" % i] = [i, i * i, str(i) * 3, {"n": i % 17}]
total = sum(v[0] + v[1] for v in d.values())
print("dict", len(d), total)

lists = [list(range(i % 50)) for i in range(40000)]
flat = [x for l in lists for x in l]
flat.sort(reverse=True)
print("lists", len(flat), flat[:5], sum(flat))

# json round trip
doc = {"items": [{"id": i, "name": "item-%05d" % i, "tags": ["t%d" % (i % 7), "x"],
                  "price": i * 1.25} for i in range(30000)]}
text = json.dumps(doc, sort_keys=True)
back = json.loads(text)
print("json", len(text), back == doc, back["items"][12345]["name"])

# regular expressions
pat = re.compile(r"item-(\d+)")
ids = [int(m.group(1)) for m in pat.finditer(text)]
print("regex", len(ids), sum(ids))
words = re.findall(r"[a-z]+", " ".join("word%sabc" % ("x" * (i % 13)) for i in range(50000)))
print("words", len(words), collections.Counter(words).most_common(3))

# string building
parts = []
for i in range(100000):
    parts.append("%06d:%s" % (i, hex(i * 2654435761 % 4294967296)))
s = "|".join(parts)
print("string", len(s), s[:40], s[-40:])
acc = ""
for i in range(20000):
    acc += chr(97 + i % 26)
print("concat", len(acc), acc.count("a"), acc[-30:])
EOF
  set +e
  PYTHONHASHSEED=0 PYTHONMALLOC=malloc "$py" "$tmp/work.py" > "$tmp/py.expected" 2> "$tmp/py.plain.err"
  rc0=$?
  PYTHONHASHSEED=0 PYTHONMALLOC=malloc XALLOC_CONF=stats_print:true \
    "$py" "$tmp/work.py" > /dev/null 2> "$tmp/py.nopreload.err"
  PYTHONHASHSEED=0 PYTHONMALLOC=malloc XALLOC_CONF=stats_print:true \
    "$xalloc" "$py" "$tmp/work.py" > "$tmp/py.out" 2> "$tmp/py.err"
  rc1=$?
  set -e
  if [ "$rc0" -ne 0 ]; then
    fail "python3: the script fails even without xalloc (exit $rc0)"
    cat "$tmp/py.plain.err"
  fi
  check_exit python3 "$rc0" "$rc1"
  check_same python3 "$tmp/py.expected" "$tmp/py.out"
  if [ "$(wc -l < "$tmp/py.out")" -ne 7 ]; then
    fail "python3: expected 7 lines of output, got $(wc -l < "$tmp/py.out")"
  fi
  # The script makes millions of allocations; Python's own start-up alone
  # makes ~80000 with PYTHONMALLOC=malloc, and a shell makes a few hundred.
  check_stats python3 "$tmp/py.err" 1000000 1
  check_no_stats python3 "$tmp/py.nopreload.err"
fi

# ---- (2) sort of 500k random lines ------------------------------------------
awk 'BEGIN { srand(12345); for (i = 0; i < 500000; i++)
       printf "%08x %d %s\n", int(rand() * 4294967295), int(rand() * 1000000), substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26)) }' \
  > "$tmp/lines.txt"
echo "sort: input has $(wc -l < "$tmp/lines.txt") lines"
set +e
LC_ALL=C sort -S 1M "$tmp/lines.txt" > "$tmp/sort.expected" 2> /dev/null
rc0=$?
LC_ALL=C XALLOC_CONF=stats_print:true sort -S 1M "$tmp/lines.txt" > /dev/null 2> "$tmp/sort.nopreload.err"
LC_ALL=C XALLOC_CONF=stats_print:true "$xalloc" sort -S 1M "$tmp/lines.txt" \
  > "$tmp/sort.out" 2> "$tmp/sort.err"
rc1=$?
set -e
check_exit sort "$rc0" "$rc1"
check_same sort "$tmp/sort.expected" "$tmp/sort.out"
# A 500k-line sort with a 1 MiB buffer (temporary files, merges) makes ~450
# allocation calls. GNU sort closes stderr in an atexit handler (gnulib's
# close_stdout), so the report must not depend on fd 2 still being open
# when xalloc's exit-time printer runs.
check_stats sort "$tmp/sort.err" 200 1
check_no_stats sort "$tmp/sort.nopreload.err"

# ---- (3) gcc compiling a multi-function C file ------------------------------
if ! command -v gcc > /dev/null 2>&1; then
  fail "gcc: no gcc found"
else
  mkdir "$tmp/cc"
  cat > "$tmp/cc/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { int key; struct node *left, *right; };

static struct node *insert(struct node *t, int key) {
  if (t == NULL) {
    t = calloc(1, sizeof(*t));
    if (t == NULL) exit(1);
    t->key = key;
  } else if (key < t->key) {
    t->left = insert(t->left, key);
  } else if (key > t->key) {
    t->right = insert(t->right, key);
  }
  return t;
}

static int height(const struct node *t) {
  if (t == NULL) return 0;
  int l = height(t->left), r = height(t->right);
  return 1 + (l > r ? l : r);
}

static long sum(const struct node *t) { return t == NULL ? 0 : t->key + sum(t->left) + sum(t->right); }

static void release(struct node *t) {
  if (t == NULL) return;
  release(t->left);
  release(t->right);
  free(t);
}

static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static void reverse(char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n / 2; i++) {
    char c = s[i];
    s[i] = s[n - 1 - i];
    s[n - 1 - i] = c;
  }
}

int main(void) {
  struct node *t = NULL;
  unsigned x = 1;
  for (int i = 0; i < 1000; i++) {
    x = x * 1103515245u + 12345u;
    t = insert(t, (int)(x >> 16) % 10000);
  }
  printf("tree height %d sum %ld\n", height(t), sum(t));
  release(t);
  printf("fib(25) = %u\n", fib(25));
  char buf[] = "xalloc integration test";
  reverse(buf);
  printf("%s\n", buf);
  return 0;
}
EOF
  set +e
  (cd "$tmp/cc" && gcc -O2 -o plain prog.c && gcc -O2 -S -o plain.s prog.c) > /dev/null 2>&1
  rc0=$?
  (cd "$tmp/cc" && XALLOC_CONF=stats_print:true gcc -O2 -o nopre prog.c) > /dev/null 2> "$tmp/cc.nopreload.err"
  (cd "$tmp/cc" && XALLOC_CONF=stats_print:true "$xalloc" gcc -O2 -o under prog.c) \
    > /dev/null 2> "$tmp/cc.err"
  rc1=$?
  (cd "$tmp/cc" && "$xalloc" gcc -O2 -S -o under.s prog.c) > /dev/null 2>&1
  rc2=$?
  set -e
  check_exit gcc "$rc0" "$rc1"
  check_exit "gcc -S" "$rc0" "$rc2"
  if [ -x "$tmp/cc/plain" ] && [ -x "$tmp/cc/under" ]; then
    "$tmp/cc/plain" > "$tmp/cc/plain.out"
    "$tmp/cc/under" > "$tmp/cc/under.out" || fail "gcc: the binary built under xalloc failed"
    check_same "gcc-built binary" "$tmp/cc/plain.out" "$tmp/cc/under.out"
    check_same "gcc -S assembly" "$tmp/cc/plain.s" "$tmp/cc/under.s"
  else
    fail "gcc: a binary is missing (plain exit $rc0, under xalloc exit $rc1)"
  fi
  # The driver, cc1, as, collect2 and ld each report; cc1 alone makes tens
  # of thousands of allocations for this file.
  check_stats gcc "$tmp/cc.err" 10000 3
  check_no_stats gcc "$tmp/cc.nopreload.err"
fi

# ---- (4) sqlite3 building a database with an index and a GROUP BY -----------
if ! command -v sqlite3 > /dev/null 2>&1; then
  fail "sqlite3: sqlite3 is not installed (install the sqlite3 package)"
else
  cat > "$tmp/db.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60000)
INSERT INTO t(grp, name, val)
  SELECT (i * 7919) % 97, printf('name-%06d-%s', i, hex(i * 31)), (i % 1000) / 7.0 FROM c;
CREATE INDEX t_grp ON t(grp, name);
UPDATE t SET val = val * 2 WHERE grp % 3 = 0;
DELETE FROM t WHERE id % 11 = 0;
SELECT grp, count(*), printf('%.3f', sum(val)), min(name), max(name)
  FROM t GROUP BY grp ORDER BY grp;
SELECT count(DISTINCT substr(name, 1, 9)) FROM t WHERE grp BETWEEN 10 AND 20;
PRAGMA integrity_check;
EOF
  set +e
  sqlite3 "$tmp/plain.db" < "$tmp/db.sql" > "$tmp/sql.expected" 2>&1
  rc0=$?
  XALLOC_CONF=stats_print:true sqlite3 "$tmp/nopre.db" < "$tmp/db.sql" > /dev/null 2> "$tmp/sql.nopreload.err"
  XALLOC_CONF=stats_print:true "$xalloc" sqlite3 "$tmp/under.db" < "$tmp/db.sql" \
    > "$tmp/sql.out" 2> "$tmp/sql.err"
  rc1=$?
  set -e
  check_exit sqlite3 "$rc0" "$rc1"
  check_same sqlite3 "$tmp/sql.expected" "$tmp/sql.out"
  if [ "$(tail -n 1 "$tmp/sql.out")" != ok ] || [ "$(wc -l < "$tmp/sql.out")" -ne 99 ]; then
    fail "sqlite3: expected 97 groups, a count and 'ok' from integrity_check"
  fi
  # Reading the database back: a second process under xalloc.
  set +e
  sqlite3 "$tmp/plain.db" 'SELECT count(*), sum(grp) FROM t;' > "$tmp/sql2.expected" 2>&1
  "$xalloc" sqlite3 "$tmp/under.db" 'SELECT count(*), sum(grp) FROM t;' > "$tmp/sql2.out" 2>&1
  set -e
  check_same "sqlite3 reopen" "$tmp/sql2.expected" "$tmp/sql2.out"
  check_stats sqlite3 "$tmp/sql.err" 50000 1
  check_no_stats sqlite3 "$tmp/sql.nopreload.err"
fi

if [ "$failures" -ne 0 ]; then
  echo "programs: $failures check(s) failed"
  exit 1
fi
echo "programs: all checks passed"
