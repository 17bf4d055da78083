#!/bin/sh
# stats_interval_ms / stats_log (src/statlog.c) and bin/xalloc --rss-log:
# - an idle process (no allocation call after the first few) writes a line
#   about every interval, with every figure, and a last line at exit;
# - with the option off there is no line and no extra thread;
# - stats_log:PATH appends to PATH and nothing goes to stderr; a PATH that
#   cannot be opened is reported in one line and the lines go to stderr;
# - bad values are refused with the parser's one-line warning, the program
#   runs on, and no line is written;
# - fork: the child has no logging thread and writes no line, child and
#   parent exit normally, the parent keeps logging; many forks while the
#   thread runs at 1 ms do not deadlock;
# - exit: the thread is stopped and joined (its exit line is there), and
#   exit does not wait for the interval;
# - bin/xalloc --rss-log FILE [--interval MS] sets the options, empties
#   FILE, refuses bad arguments with a message and exit status 2.
set -eu

. "${XALLOC_SRCDIR:?XALLOC_SRCDIR must name the source tree}/test/include/script.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xa-statlog.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

cat > "$tmp/prog.c" <<'EOF'
/* prog idle MS | fork | forks N | threads: allocate a little, then as
 * asked; prints "threads=N" (entries of /proc/self/task) after the first
 * allocations, and "done". */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static int nthreads(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  struct dirent *e;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}
static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}
int main(int argc, char **argv) {
  void *keep[64];
  for (int i = 0; i < 64; i++) {
    keep[i] = malloc((size_t)(i + 1) * 1000);
    if (keep[i] == NULL) return 1;
    memset(keep[i], 1, (size_t)(i + 1) * 1000);
  }
  if (argc < 2) return 2;
  int before = nthreads();
  if (strcmp(argv[1], "idle") == 0) {
    /* No allocation from here on (printf's buffer: allocated above by
     * the first printf, so print before sleeping). */
    printf("threads=%d\n", before);
    fflush(stdout);
    sleep_ms(atol(argv[2]));
  } else if (strcmp(argv[1], "fork") == 0) {
    printf("threads=%d\n", before);
    fflush(stdout);
    sleep_ms(250);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) return 3;
    if (pid == 0) {
      void *p = malloc(100000);
      if (p == NULL) _exit(4);
      memset(p, 2, 100000);
      free(p);
      printf("child threads=%d\n", nthreads());
      fflush(stdout);
      sleep_ms(400);
      exit(0); /* the library destructor runs in the child */
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      printf("child failed: status %d\n", st);
      return 5;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("child pid=%d\n", (int)pid);
    /* The child sleeps 400 ms; its exit must not wait for a thread. */
    printf("child ms=%ld\n", (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L);
    sleep_ms(250);
  } else if (strcmp(argv[1], "forks") == 0) {
    int n = atoi(argv[2]);
    for (int i = 0; i < n; i++) {
      pid_t pid = fork();
      if (pid < 0) return 3;
      if (pid == 0) {
        void *p = malloc(5000);
        free(p);
        _exit(p == NULL ? 4 : 0);
      }
      int st;
      if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 5;
      free(malloc(100));
    }
    printf("threads=%d\n", before);
  } else {
    return 2;
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  printf("done\n");
  return 0;
}
EOF
"$CC" -std=gnu11 -O1 -o "$tmp/prog" "$tmp/prog.c" -L"$XALLOC_BUILDDIR/lib" -Wl,-rpath,"$XALLOC_BUILDDIR/lib" \
  -lxalloc -lpthread

# run NAME CONF ARGS...: run prog with XALLOC_CONF=$base$CONF; $rc, and
# stdout/stderr in $tmp/NAME.out/.err; $ms: the run's wall time in ms.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
run() {
  name=$1 conf=$2
  shift 2
  set +e
  t0=$(now_ms)
  XALLOC_CONF="$base$conf" "$tmp/prog" "$@" > "$tmp/$name.out" 2> "$tmp/$name.err"
  rc=$?
  ms=$(($(now_ms) - t0))
  set -e
}
# check_lines NAME FILE MIN_LINES INTERVAL: FILE has at least MIN_LINES
# interval lines of one pid, each with every figure, spaced INTERVAL ms
# apart on average (within 25 %, no gap over 3x), and one exit line last.
fields="rss rss_nolazy lazyfree allocated active resident dirty muzzy retained mapped metadata"
check_lines() {
  if awk -v min="$3" -v iv="$4" -v fields="$fields" '
    BEGIN { nf = split(fields, want, " ") }
    !/^xalloc-stats: / { next }
    {
      delete kv
      for (i = 2; i <= NF; i++) { split($i, a, "="); kv[a[1]] = a[2] }
      for (j = 1; j <= nf; j++)
        if (!(want[j] in kv) || kv[want[j]] !~ /^[0-9]+$/) { print "missing or bad " want[j] ": " $0; bad = 1 }
      if (pid == "") pid = kv["pid"]
      if (kv["pid"] != pid) { print "two pids: " pid " and " kv["pid"]; bad = 1 }
      if (exitseen) { print "a line after the exit line: " $0; bad = 1 }
      if (kv["event"] == "exit") { exitseen = 1; next }
      if (kv["event"] != "interval") { print "bad event: " $0; bad = 1 }
      if (n > 0) { d = kv["elapsed_ms"] - last; if (d > 3 * iv) { print "gap of " d " ms"; bad = 1 } }
      else first = kv["elapsed_ms"]
      last = kv["elapsed_ms"]; n++
      if (kv["rss"] == 0 || kv["mapped"] == 0) { print "zero rss or mapped: " $0; bad = 1 }
    }
    END {
      if (n < min) { print n " interval lines, expected at least " min; bad = 1 }
      if (n >= 2) { avg = (last - first) / (n - 1); if (avg < 0.75 * iv || avg > 1.25 * iv) { print "average spacing " avg " ms, expected " iv; bad = 1 } }
      if (!exitseen) { print "no exit line"; bad = 1 }
      exit bad
    }' "$2" > "$tmp/check.txt"; then
    pass "$1: $(grep -c '^xalloc-stats: ' "$2") lines, every figure, about every $4 ms, an exit line"
  else
    fail "$1: $(cat "$tmp/check.txt")"
    head -n 3 "$2" | sed 's/^/    /'
  fi
}
ran_ok() { # NAME: exit 0 and "done"
  if [ "$rc" -eq 0 ] && grep -qx done "$tmp/$1.out"; then
    return 0
  fi
  fail "$1: exit $rc, output: $(tr '\n' ' ' < "$tmp/$1.out") stderr: $(head -n 3 "$tmp/$1.err" | tr '\n' ' ')"
  return 1
}

# ---- an idle process, lines to stderr ----------------------------------------
run idle stats_interval_ms:100 idle 1500
if ran_ok idle; then
  check_lines "idle process, stderr" "$tmp/idle.err" 11 100
  grep -qx threads=2 "$tmp/idle.out" && pass "one thread of its own" ||
    fail "expected 2 threads (main and the logging thread), got $(cat "$tmp/idle.out")"
  [ "$(grep -vc '^xalloc-stats: ' "$tmp/idle.err")" -eq 0 ] && pass "nothing else on stderr" ||
    fail "other stderr output: $(grep -v '^xalloc-stats: ' "$tmp/idle.err" | head -n 3)"
fi
run idle250 stats_interval_ms:250 idle 1300
ran_ok idle250 && check_lines "interval 250 ms" "$tmp/idle250.err" 4 250

# ---- off by default -------------------------------------------------------------
run off "" idle 300
if ran_ok off; then
  [ ! -s "$tmp/off.err" ] && grep -qx threads=1 "$tmp/off.out" && pass "off by default: no line, no thread" ||
    fail "off by default: $(cat "$tmp/off.out" "$tmp/off.err" | head -n 3)"
fi
run zero stats_interval_ms:0 idle 300
ran_ok zero && { [ ! -s "$tmp/zero.err" ] && grep -qx threads=1 "$tmp/zero.out" && pass "stats_interval_ms:0 is off" ||
  fail "stats_interval_ms:0: $(cat "$tmp/zero.out" "$tmp/zero.err" | head -n 3)"; }

# ---- stats_log -----------------------------------------------------------------------
log=$tmp/mem.log
echo "an earlier line" > "$log"
run file "stats_interval_ms:100,stats_log:$log" idle 800
if ran_ok file; then
  [ ! -s "$tmp/file.err" ] && pass "stats_log: nothing on stderr" || fail "stats_log: stderr has $(head -n 2 "$tmp/file.err")"
  check_lines "stats_log file" "$log" 6 100
  [ "$(head -n 1 "$log")" = "an earlier line" ] && pass "stats_log appends" || fail "stats_log did not append"
fi
run badfile "stats_interval_ms:100,stats_log:$tmp/no/such/dir.log" idle 500
if ran_ok badfile; then
  if [ "$(grep -c "^xalloc: cannot open stats_log file '$tmp/no/such/dir.log' (No such file or directory); writing the statistics lines to stderr$" "$tmp/badfile.err")" -eq 1 ]; then
    pass "an unopenable stats_log is reported once"
  else
    fail "unopenable stats_log: $(grep -v '^xalloc-stats' "$tmp/badfile.err" | head -n 3)"
  fi
  check_lines "unopenable stats_log: the lines go to stderr" "$tmp/badfile.err" 3 100
fi

# ---- bad values -------------------------------------------------------------------------
for v in abc -5 86400001 99999999999999999999 1.5 ""; do
  run badval "stats_interval_ms:$v" idle 250
  want="xalloc: invalid value '$v' for option 'stats_interval_ms' in XALLOC_CONF (expected an integer from 0 to 86400000); option unchanged"
  if ran_ok badval; then
    if [ "$(cat "$tmp/badval.err")" = "$want" ] && grep -qx threads=1 "$tmp/badval.out"; then
      pass "stats_interval_ms:'$v' refused with one line, the program runs, no logging"
    else
      fail "stats_interval_ms:'$v': stderr '$(cat "$tmp/badval.err")', $(cat "$tmp/badval.out")"
    fi
  fi
done
long=$tmp/$(printf 'a%.0s' $(seq 1 260)).log
run longlog "stats_interval_ms:100,stats_log:$long" idle 350
if ran_ok longlog; then
  if grep -q "^xalloc: invalid value '.*' for option 'stats_log' in XALLOC_CONF (expected at most 255 characters); option unchanged$" "$tmp/longlog.err" &&
     [ "$(grep -c '^xalloc-stats: ' "$tmp/longlog.err")" -ge 2 ] && [ ! -e "$long" ]; then
    pass "a stats_log path too long is refused; the lines go to stderr"
  else
    fail "stats_log too long: $(head -n 3 "$tmp/longlog.err")"
  fi
fi

# ---- fork -------------------------------------------------------------------------------
log=$tmp/fork.log
: > "$log"
run fork "stats_interval_ms:50,stats_log:$log" fork
if ran_ok fork; then
  child=$(sed -n 's/^child pid=//p' "$tmp/fork.out")
  if grep -qx "child threads=1" "$tmp/fork.out"; then
    pass "fork: the child has no logging thread"
  else
    fail "fork: child: $(grep child "$tmp/fork.out")"
  fi
  cms=$(sed -n 's/^child ms=//p' "$tmp/fork.out")
  if [ -n "$cms" ] && [ "$cms" -lt 1000 ]; then
    pass "fork: the child's exit did not wait (fork to reaped: $cms ms, of which 400 asleep)"
  else
    fail "fork: the child took $cms ms from fork to reaped (it sleeps 400)"
  fi
  if [ -n "$child" ] && ! grep -q "pid=$child " "$log"; then
    pass "fork: the child wrote no line and exited normally"
  else
    fail "fork: the child ($child) wrote lines: $(grep "pid=$child " "$log" | head -n 2)"
  fi
  check_lines "fork: the parent kept logging" "$log" 12 50
fi
run forks "stats_interval_ms:1,stats_log:$tmp/forks.log" forks 300
if ran_ok forks; then
  if grep -qx threads=2 "$tmp/forks.out" && [ "$(grep -c '^xalloc-stats: ' "$tmp/forks.log")" -ge 3 ] &&
     [ "$(grep -c 'event=exit' "$tmp/forks.log")" -eq 1 ] && [ ! -s "$tmp/forks.err" ]; then
    pass "300 forks while logging every 1 ms: no deadlock, one exit line ($ms ms)"
  else
    fail "forks: $(cat "$tmp/forks.out" "$tmp/forks.err" | head -n 3), $(grep -c 'event=exit' "$tmp/forks.log") exit lines"
  fi
fi

# ---- exit -------------------------------------------------------------------------------
# A long interval: exit must not wait for it, and the exit line is there
# (the thread was stopped and joined before the process ended).
run exit "stats_interval_ms:60000" idle 100
if ran_ok exit; then
  if [ "$(grep -c 'event=exit' "$tmp/exit.err")" -eq 1 ] && [ "$ms" -lt 3000 ]; then
    pass "exit with a 60 s interval: at once ($ms ms), with its exit line"
  else
    fail "exit: $ms ms, stderr: $(head -n 3 "$tmp/exit.err")"
  fi
fi

# ---- bin/xalloc --rss-log ------------------------------------------------------------------
xa=$XALLOC_BUILDDIR/bin/xalloc
plain=$tmp/plain
"$CC" -std=gnu11 -O1 -o "$plain" "$tmp/prog.c"
log=$tmp/rss.log
echo stale > "$log"
set +e
XALLOC_CONF=${base%,} "$xa" --rss-log "$log" --interval 100 "$plain" idle 700 > "$tmp/wrap.out" 2> "$tmp/wrap.err"
rc=$?
set -e
if [ "$rc" -eq 0 ] && grep -qx done "$tmp/wrap.out" && [ ! -s "$tmp/wrap.err" ]; then
  check_lines "bin/xalloc --rss-log FILE --interval 100" "$log" 5 100
  grep -q stale "$log" && fail "--rss-log did not empty the file" || pass "--rss-log empties the file first"
else
  fail "bin/xalloc --rss-log: exit $rc, $(cat "$tmp/wrap.out" "$tmp/wrap.err" | head -n 3)"
fi
# A relative name is made absolute (the program may change directory).
set +e
(cd "$tmp" && "$xa" --rss-log=rel.log --interval=50 sh -c 'cd / && exec "$0" idle 300' "$plain" > /dev/null 2>&1)
rc=$?
set -e
[ "$rc" -eq 0 ] && [ "$(grep -c '^xalloc-stats: .*event=interval' "$tmp/rel.log" 2>/dev/null)" -ge 3 ] &&
  pass "--rss-log=NAME relative to where xalloc ran" || fail "--rss-log=rel.log: exit $rc, $(cat "$tmp/rel.log" 2>&1 | head -n 2)"
# --interval alone: stderr; the default interval is 500 ms.
set +e
"$xa" --interval 100 "$plain" idle 450 > /dev/null 2> "$tmp/wrap2.err"
rc1=$?
"$xa" --rss-log - "$plain" idle 1200 > /dev/null 2> "$tmp/wrap3.err"
rc2=$?
set -e
[ "$rc1" -eq 0 ] && [ "$(grep -c 'event=interval' "$tmp/wrap2.err")" -ge 3 ] && pass "--interval alone logs to stderr" ||
  fail "--interval alone: exit $rc1, $(head -n 2 "$tmp/wrap2.err")"
n=$(grep -c 'event=interval' "$tmp/wrap3.err" || true)
[ "$rc2" -eq 0 ] && [ "$n" -ge 2 ] && [ "$n" -le 3 ] && pass "--rss-log -: stderr, every 500 ms by default" ||
  fail "--rss-log - (1.2 s): exit $rc2, $n interval lines, expected 2 (3 on a slow machine)"
# Bad arguments: a message, exit 2, the command is not run.
touch="touch $tmp/ran"
for args in "--interval abc $touch" "--interval 0 $touch" "--interval 86400001 $touch" \
  "--interval 123456789012345678901 $touch" "--interval" "--rss-log" "--rss-log $tmp/a,b $touch" \
  "--rss-log $tmp $touch" "--rss-log $tmp/no/dir/x.log $touch" "--bogus $touch" "--rss-log $tmp/x.log"; do
  set +e
  # shellcheck disable=SC2086
  "$xa" $args > "$tmp/bad.out" 2> "$tmp/bad.err"
  rc=$?
  set -e
  if [ "$rc" -eq 2 ] && [ ! -e "$tmp/ran" ] && grep -q "^xalloc: " "$tmp/bad.err"; then
    pass "bin/xalloc $args: refused ($(head -n 1 "$tmp/bad.err"))"
  else
    fail "bin/xalloc $args: exit $rc, ran: $([ -e "$tmp/ran" ] && echo yes || echo no), $(cat "$tmp/bad.err")"
  fi
  rm -f "$tmp/ran"
done
"$xa" --help | grep -q -- "--rss-log FILE" && pass "bin/xalloc --help describes --rss-log" ||
  fail "bin/xalloc --help does not mention --rss-log"

[ "$failures" -eq 0 ] || { echo "statlog: $failures check(s) failed"; exit 1; }
echo "statlog: all checks passed"
