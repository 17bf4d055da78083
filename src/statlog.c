/* statlog: one line of memory figures every stats_interval_ms (see statlog.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/stats.h"
#include "xalloc/internal/statlog.h"

/* NONE: not started (or never to be: option off); STARTING: a start is in
 * progress; RUNNING; OFF: stopped, failed, or in a fork child: never
 * started again. */
enum { ST_NONE = 0, ST_STARTING = 1, ST_RUNNING = 2, ST_OFF = 3 };

static int st_state;
static bool st_ctor_done, st_booted; /* atomics */
static xmutex_t st_mtx = XMUTEX_INITIALIZER;
static pthread_cond_t st_cond; /* CLOCK_MONOTONIC; st_mtx */
static bool st_stop, st_done;  /* st_mtx */
static pthread_t st_thread;
static int st_fd = -1;
static uint64_t st_start_ns;
static uint64_t st_nlines;

static uint64_t st_now_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void st_cond_init(void) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&st_cond, &attr);
  pthread_condattr_destroy(&attr);
}

/* Read a small /proc file into buf (NUL-terminated); its length, or -1. */
static ssize_t st_read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  while (n + 1 < size) {
    ssize_t r = read(fd, buf + n, size - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  return (ssize_t)n;
}

/* The decimal number after position p (skipping blanks); false if none. */
static bool st_parse_u64(const char *p, uint64_t *out) {
  while (*p == ' ' || *p == '\t') p++;
  if (*p < '0' || *p > '9') return false;
  uint64_t x = 0;
  for (; *p >= '0' && *p <= '9'; p++) x = x * 10 + (uint64_t)(*p - '0');
  *out = x;
  return true;
}

/* "Name:   123 kB" in smaps_rollup, in bytes. */
static bool st_rollup_field(const char *text, const char *key, uint64_t *out) {
  size_t klen = strlen(key);
  for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL) {
    if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
      uint64_t kb;
      if (!st_parse_u64(p + klen + 1, &kb)) return false;
      *out = kb * 1024;
      return true;
    }
  }
  return false;
}

/* " key=value" (value "-" if unknown) appended at *pos. */
static void st_put(char *buf, size_t size, size_t *pos, const char *key, bool known, uint64_t v) {
  if (*pos >= size) return;
  if (known)
    *pos += util_format(buf + *pos, size - *pos, " %s=%llu", key, (unsigned long long)v);
  else
    *pos += util_format(buf + *pos, size - *pos, " %s=-", key);
}

/* One line, with no lock held. */
static void st_write_line(bool at_exit) {
  char line[768], proc[4096];
  size_t pos = 0;
  uint64_t wall = st_now_ns(CLOCK_REALTIME), mono = st_now_ns(CLOCK_MONOTONIC);
  uint64_t ms = (wall / 1000000u) % 1000u;
  pos += util_format(line, sizeof(line), "xalloc-stats: pid=%d time=%llu.%s%s%llu elapsed_ms=%llu event=%s",
                     (int)getpid(), (unsigned long long)(wall / 1000000000u), ms < 100 ? "0" : "",
                     ms < 10 ? "0" : "", (unsigned long long)ms,
                     (unsigned long long)((mono - st_start_ns) / 1000000u), at_exit ? "exit" : "interval");
  uint64_t rss = 0, rrss = 0, lazy = 0, pages = 0;
  bool have_rss = false, have_rollup = false;
  if (st_read_file("/proc/self/statm", proc, sizeof(proc)) > 0) {
    const char *p = strchr(proc, ' ');
    if (p != NULL && st_parse_u64(p, &pages)) {
      rss = pages << LG_PAGE;
      have_rss = true;
    }
  }
  if (st_read_file("/proc/self/smaps_rollup", proc, sizeof(proc)) > 0 && st_rollup_field(proc, "Rss", &rrss) &&
      st_rollup_field(proc, "LazyFree", &lazy))
    have_rollup = true;
  stats_totals_t t;
  stats_totals(&t);
  st_put(line, sizeof(line), &pos, "rss", have_rss, rss);
  st_put(line, sizeof(line), &pos, "rss_nolazy", have_rollup, rrss >= lazy ? rrss - lazy : 0);
  st_put(line, sizeof(line), &pos, "lazyfree", have_rollup, lazy);
  st_put(line, sizeof(line), &pos, "allocated", true, t.allocated);
  st_put(line, sizeof(line), &pos, "active", true, t.active);
  st_put(line, sizeof(line), &pos, "resident", true, t.resident);
  st_put(line, sizeof(line), &pos, "dirty", true, t.dirty);
  st_put(line, sizeof(line), &pos, "muzzy", true, t.muzzy);
  st_put(line, sizeof(line), &pos, "retained", true, t.retained);
  st_put(line, sizeof(line), &pos, "mapped", true, t.mapped);
  st_put(line, sizeof(line), &pos, "metadata", true, t.metadata);
  if (pos >= sizeof(line) - 1) pos = sizeof(line) - 2;
  line[pos++] = '\n';
  line[pos] = '\0';
  /* One write per line, so that processes sharing the file (O_APPEND)
   * never interleave within a line. */
  size_t off = 0;
  while (off < pos) {
    ssize_t w = write(st_fd, line + off, pos - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  __atomic_fetch_add(&st_nlines, 1, __ATOMIC_RELAXED);
}

static void *st_main(void *arg) {
  (void)arg;
  uint64_t period = (uint64_t)opt_stats_interval_ms * 1000000u;
  uint64_t next = st_start_ns + period;
  xmutex_lock(&st_mtx);
  for (;;) {
    while (!st_stop && st_now_ns(CLOCK_MONOTONIC) < next) {
      struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
      pthread_cond_timedwait(&st_cond, &st_mtx.lock, &ts);
    }
    if (st_stop) break;
    xmutex_unlock(&st_mtx);
    st_write_line(false);
    /* On the grid start + k * period; ticks missed (a slow line, a
     * stopped process) are skipped, not made up. */
    uint64_t now = st_now_ns(CLOCK_MONOTONIC);
    next += period;
    if (next <= now) next += (now - next) / period * period + period;
    xmutex_lock(&st_mtx);
  }
  xmutex_unlock(&st_mtx);
  st_write_line(true);
  xmutex_lock(&st_mtx);
  st_done = true;
  pthread_cond_broadcast(&st_cond);
  xmutex_unlock(&st_mtx);
  return NULL;
}

/* The destination: stats_log's file, or a copy of stderr (programs close
 * stderr in atexit handlers). No lock held: may allocate (strerror_r). */
static int st_open(void) {
  const char *path = opt_stats_log;
  if (path != NULL && path[0] != '\0') {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    char ebuf[128];
    const char *msg = strerror_r(errno, ebuf, sizeof(ebuf));
    util_warn("xalloc: cannot open stats_log file '%s' (%s); writing the statistics lines to stderr\n", path,
              msg);
  }
  int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
  return fd >= 0 ? fd : STDERR_FILENO;
}

static void st_try_start(void) {
  if (!__atomic_load_n(&st_booted, __ATOMIC_ACQUIRE) || !__atomic_load_n(&st_ctor_done, __ATOMIC_ACQUIRE))
    return;
  if (opt_stats_interval_ms == 0) return;
  int expected = ST_NONE;
  /* pthread_create allocates: the nested call finds xalloc initialized and
   * does not come here (st_booted is set once). */
  if (!__atomic_compare_exchange_n(&st_state, &expected, ST_STARTING, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE))
    return;
  st_fd = st_open();
  st_start_ns = st_now_ns(CLOCK_MONOTONIC);
  st_stop = false;
  st_done = false;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&st_thread, NULL, st_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    util_warn("xalloc: cannot create the stats_interval_ms thread (error %d); no statistics lines\n", err);
    if (st_fd != STDERR_FILENO) close(st_fd);
    st_fd = -1;
    __atomic_store_n(&st_state, ST_OFF, __ATOMIC_RELEASE);
    return;
  }
  __atomic_store_n(&st_state, ST_RUNNING, __ATOMIC_RELEASE);
}

void statlog_boot(void) {
  if (__atomic_exchange_n(&st_booted, true, __ATOMIC_ACQ_REL)) return;
  st_cond_init();
  st_try_start();
}

void statlog_ctor(void) {
  if (__atomic_exchange_n(&st_ctor_done, true, __ATOMIC_ACQ_REL)) return;
  st_try_start();
}

void statlog_stop(void) {
  int st;
  while ((st = __atomic_load_n(&st_state, __ATOMIC_ACQUIRE)) == ST_STARTING) sched_yield();
  if (st != ST_RUNNING) return;
  __atomic_store_n(&st_state, ST_OFF, __ATOMIC_RELEASE);
  xmutex_lock(&st_mtx);
  st_stop = true;
  pthread_cond_broadcast(&st_cond);
  /* Bounded: the thread may be stuck in stats_totals (a user's extent
   * hook giving a chunk back), and exit must not hang on it. */
  uint64_t deadline = st_now_ns(CLOCK_MONOTONIC) + (uint64_t)STATLOG_EXIT_WAIT_MS * 1000000u;
  while (!st_done && st_now_ns(CLOCK_MONOTONIC) < deadline) {
    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    pthread_cond_timedwait(&st_cond, &st_mtx.lock, &ts);
  }
  bool done = st_done;
  xmutex_unlock(&st_mtx);
  if (done)
    pthread_join(st_thread, NULL);
  else
    pthread_detach(st_thread); /* it ends with the process */
}

bool statlog_running(void) { return __atomic_load_n(&st_state, __ATOMIC_ACQUIRE) == ST_RUNNING; }
uint64_t statlog_nlines(void) { return __atomic_load_n(&st_nlines, __ATOMIC_RELAXED); }

/* st_mtx is a leaf (never held while taking another lock), held by the
 * thread only while it sleeps. */
void statlog_prefork(void) { xmutex_prefork(&st_mtx); }
void statlog_postfork_parent(void) { xmutex_postfork_parent(&st_mtx); }
void statlog_postfork_child(void) {
  xmutex_postfork_child(&st_mtx);
  st_cond_init();
  /* The thread is not in the child, and is not started again there. */
  int st = __atomic_load_n(&st_state, __ATOMIC_RELAXED);
  if (st == ST_RUNNING || st == ST_STARTING) {
    __atomic_store_n(&st_state, ST_OFF, __ATOMIC_RELAXED);
    if (st_fd >= 0 && st_fd != STDERR_FILENO) close(st_fd);
    st_fd = -1;
  }
}
