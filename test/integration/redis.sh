#!/bin/sh
# A real jemalloc program: Debian's redis-server (built against jemalloc's
# API: mallctl, malloc_stats_print) run with xalloc preloaded, on a free
# loopback port, with its own directory and no persistence. A bounded
# redis-benchmark workload, then what redis asks of its allocator: INFO
# memory (figures from mallctl stats.*, consistent with xalloc's own
# report), MEMORY PURGE (arena.<arenas.narenas>.purge: must answer OK),
# MEMORY MALLOC-STATS (xalloc's report), MEMORY DOCTOR, MEMORY STATS, the
# background thread switched through CONFIG SET jemalloc-bg-thread, and a
# clean SHUTDOWN NOSAVE. Every step has a time limit. A missing redis is a
# failure, not a skip (CI installs redis-server).
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
xalloc=$XALLOC_BUILDDIR/bin/xalloc
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

[ -x "$xalloc" ] || { echo "FAIL: $xalloc is missing or not executable"; exit 1; }
for p in redis-server redis-cli redis-benchmark; do
  command -v "$p" >/dev/null 2>&1 || {
    echo "FAIL: $p is not installed (apt-get install redis-server)"
    exit 1
  }
done
if ! ldd "$(command -v redis-server)" | grep -q libjemalloc; then
  echo "FAIL: this redis-server is not built against jemalloc (the test needs Debian's)"
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-redis.XXXXXX")
job=
cleanup() {
  if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then
    [ -s "$tmp/redis.pid" ] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true
    kill "$job" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# A free high port on 127.0.0.1 (the kernel picks it), tried up to 5 times.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@"; }

port=
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  rm -f "$tmp/redis.pid"
  # redis keeps XALLOC_CONF from the test run (default, tcache:false).
  timeout 60 "$xalloc" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log" --daemonize no \
    >"$tmp/redis.out" 2>&1 &
  job=$!
  ready=
  for i in $(seq 1 50); do
    if [ "$(cli ping 2>/dev/null || true)" = PONG ]; then ready=1; break; fi
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ready" ] && break
  kill "$job" 2>/dev/null || true
  wait "$job" 2>/dev/null || true
  job=
done
if [ -z "$job" ]; then
  echo "FAIL: redis-server did not start under xalloc"
  tail -n 20 "$tmp/redis.log" "$tmp/redis.out" 2>/dev/null | sed 's/^/    /'
  exit 1
fi
pid=$(cat "$tmp/redis.pid")
pass "redis-server (pid $pid) answers on 127.0.0.1:$port"

# The allocator really is xalloc.
if grep -q 'libxalloc\.so' "/proc/$pid/maps"; then pass "libxalloc is mapped in the server"; else fail "libxalloc is not mapped in the server"; fi

# A bounded workload.
if timeout 60 redis-benchmark -q -n 20000 -t set,get,lpush,lrange -h 127.0.0.1 -p "$port" >"$tmp/bench.out" 2>&1; then
  tr '\r' '\n' <"$tmp/bench.out" | grep 'requests per second' >"$tmp/bench.rps" || true
  for t in SET GET LPUSH LRANGE_100 LRANGE_600; do
    if grep -q "^$t.*requests per second" "$tmp/bench.rps"; then :; else fail "redis-benchmark: no result for $t"; fi
  done
  pass "redis-benchmark: $(wc -l <"$tmp/bench.rps") tests done"
else
  fail "redis-benchmark failed or timed out"
  tail -c 500 "$tmp/bench.out"
fi
llen=$(cli llen mylist)
if [ "${llen:-0}" -ge 20000 ]; then pass "the benchmark's list holds $llen elements"; else fail "LLEN mylist = $llen"; fi

# Garbage to purge: 3000 values written, then dropped.
i=0
while [ $i -lt 3000 ]; do echo "SET k$i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx$i"; i=$((i + 1)); done >"$tmp/sets"
cli <"$tmp/sets" >/dev/null
cli del mylist >/dev/null
cli flushall >/dev/null

# field NAME FILE: the value of "NAME:value" in an INFO reply.
field() { tr -d '\r' <"$2" | sed -n "s/^$1:\\([^ ]*\\)\$/\\1/p"; }
# total NAME FILE: a figure of the "Totals:" line of xalloc's report.
total() { tr -d '\r' <"$2" | sed -n "s/^Totals:.* $1 \\([0-9][0-9]*\\).*/\\1/p"; }
# near A B: A and B within 5% + 128 KiB of each other.
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = (a > b ? a : b) / 20 + 131072; exit !(d <= m) }'; }

# MEMORY PURGE: redis calls arena.<arenas.narenas>.purge.
cli memory malloc-stats >"$tmp/stats0"
reply=$(cli memory purge | tr -d '\r')
if [ "$reply" = OK ]; then pass "MEMORY PURGE: OK"; else fail "MEMORY PURGE answered: $reply"; fi

# MEMORY MALLOC-STATS is xalloc's report; INFO memory's allocator figures
# (stats.allocated, .active, .resident through mallctl) match it. redis
# reads them in its cron (every 100 ms) and INFO shows the last reading:
# wait for one after the report.
sleep 0.3
cli memory malloc-stats >"$tmp/stats1"
sleep 0.3
cli info memory >"$tmp/info"
if grep -q '___ Begin xalloc statistics ___' "$tmp/stats1" && grep -q '___ End xalloc statistics ___' "$tmp/stats1"; then
  pass "MEMORY MALLOC-STATS is xalloc's report ($(wc -l <"$tmp/stats1") lines)"
else
  fail "MEMORY MALLOC-STATS is not xalloc's report"
  head -n 5 "$tmp/stats1" | sed 's/^/    /'
fi
dirty=$(total dirty "$tmp/stats1")
if [ -n "$dirty" ] && [ "$dirty" -le 1048576 ]; then pass "after the purge: $dirty dirty bytes"; else fail "after the purge: '$dirty' dirty bytes"; fi
alloc=$(field allocator_allocated "$tmp/info")
active=$(field allocator_active "$tmp/info")
resident=$(field allocator_resident "$tmp/info")
used=$(field used_memory "$tmp/info")
mem_allocator=$(field mem_allocator "$tmp/info")
case "$mem_allocator" in
  jemalloc*) pass "mem_allocator: $mem_allocator (redis's build-time name)" ;;
  *) fail "mem_allocator: '$mem_allocator'" ;;
esac
if [ "${alloc:-0}" -gt 0 ] && [ "$alloc" -le "$active" ] && [ "$active" -le "$resident" ] &&
  [ $((active % 4096)) -eq 0 ] && [ $((resident % 4096)) -eq 0 ] && [ "$alloc" -ge "${used:-0}" ]; then
  pass "INFO memory: allocated $alloc <= active $active <= resident $resident (pages), >= used_memory $used"
else
  fail "INFO memory: allocator_allocated '$alloc', allocator_active '$active', allocator_resident '$resident', used_memory '$used'"
fi
for f in allocated active resident; do
  eval "v=\$$(echo "$f" | sed 's/allocated/alloc/')"
  x=$(total "$f" "$tmp/stats1")
  if [ -n "$x" ] && near "$v" "$x"; then pass "allocator_$f $v agrees with xalloc's $f $x"; else fail "allocator_$f $v, xalloc's $f '$x'"; fi
done

# MEMORY DOCTOR and MEMORY STATS.
doctor=$(cli memory doctor | tr -d '\r')
if [ -n "$doctor" ] && ! echo "$doctor" | grep -q '^ERR'; then pass "MEMORY DOCTOR answers"; else fail "MEMORY DOCTOR: '$doctor'"; fi
cli memory stats | tr -d '\r' | paste - - >"$tmp/mstats"
ma=$(sed -n 's/^allocator\.allocated\t\([0-9]*\)$/\1/p' "$tmp/mstats")
mr=$(sed -n 's/^allocator\.resident\t\([0-9]*\)$/\1/p' "$tmp/mstats")
if [ "${ma:-0}" -gt 0 ] && [ "${mr:-0}" -ge "$ma" ] && near "$ma" "$alloc"; then
  pass "MEMORY STATS: allocator.allocated $ma, allocator.resident $mr"
else
  fail "MEMORY STATS: allocator.allocated '$ma', allocator.resident '$mr'"
fi

# The background thread, through mallctl("background_thread"): redis turns
# it on at start (jemalloc-bg-thread yes); it is a thread named like the
# main one (redis names its own bio_* threads).
nbg() { grep -c '^redis-server$' /proc/"$pid"/task/*/comm 2>/dev/null | awk -F: '{ n += $NF } END { print n }'; }
n_on=$(nbg)
cli config set jemalloc-bg-thread no >/dev/null
n_off=$(nbg)
cli config set jemalloc-bg-thread yes >/dev/null
n_again=$(nbg)
if [ "$n_on" -eq 2 ] && [ "$n_off" -eq 1 ] && [ "$n_again" -eq 2 ]; then
  pass "jemalloc-bg-thread: the purging thread runs, stops and runs again"
else
  fail "jemalloc-bg-thread: main+background threads $n_on, after 'no' $n_off, after 'yes' $n_again"
fi

# A clean shutdown.
cli shutdown nosave >/dev/null 2>&1 || true
status=0
wait "$job" || status=$?
job=
if [ "$status" -eq 0 ] && grep -q 'ready to exit' "$tmp/redis.log"; then
  pass "SHUTDOWN NOSAVE: the server exited cleanly"
else
  fail "SHUTDOWN NOSAVE: exit status $status"
  tail -n 20 "$tmp/redis.log" "$tmp/redis.out" | sed 's/^/    /'
fi

[ "$failures" -eq 0 ] || exit 1
echo "redis: all checks passed"
