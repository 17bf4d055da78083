/* background: the optional purging thread (see background.h). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "xalloc/internal/background.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/tcache.h"

enum { BG_NONE = 0, BG_STARTING = 1, BG_RUNNING = 2, BG_FAILED = 3 };

static xmutex_t bg_mtx = XMUTEX_INITIALIZER;
static pthread_cond_t bg_cond;
static int bg_state;
static bool bg_stop; /* bg_mtx */
/* Joined only by a switch-off through mallctl (background_set_enabled);
 * exit never waits for it (background_stop). */
static pthread_t bg_thread;
static uint64_t bg_npasses;
/* mallctl("background_thread"): whether the thread should run (atomic),
 * and the lock that makes one switch at a time (taken before bg_mtx). */
static bool bg_enabled;
static xmutex_t bg_ctl_mtx = XMUTEX_INITIALIZER;
static uint64_t bg_interval_total_ns; /* sum of the times between passes */

static void *background_main(void *arg) {
  (void)arg;
  uint64_t prev = decay_now_ns();
  xmutex_lock(&bg_mtx);
  while (!bg_stop) {
    xmutex_unlock(&bg_mtx);
    /* With nothing pending, wake once per dirty decay epoch (frees do not
     * wake the thread). */
    uint64_t now = decay_now_ns(), sleep_ns = BACKGROUND_MAX_NS;
    if (opt_dirty_decay_ms > 0 && (uint64_t)opt_dirty_decay_ms * 1000000u / DECAY_NSTEPS < sleep_ns)
      sleep_ns = (uint64_t)opt_dirty_decay_ms * 1000000u / DECAY_NSTEPS;
    unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
      /* Not retired; one destroyed from now on is skipped by arena_decay. */
      arena_t *a = arena_get(i);
      if (a == NULL) continue;
      arena_decay(a);
      uint64_t t = arena_decay_ns_until(a, decay_now_ns());
      if (t < sleep_ns) sleep_ns = t;
    }
    /* Caches of exited threads no thread adopted (tcache.h). */
    tsd_park_tick(decay_now_ns());
    if (__atomic_load_n(&tsd_nparked, __ATOMIC_RELAXED) != 0 && sleep_ns > BACKGROUND_PARK_NS) sleep_ns = BACKGROUND_PARK_NS;
    __atomic_fetch_add(&bg_interval_total_ns, now - prev, __ATOMIC_RELAXED);
    prev = now;
    __atomic_fetch_add(&bg_npasses, 1, __ATOMIC_RELAXED);
    if (sleep_ns < BACKGROUND_MIN_NS) sleep_ns = BACKGROUND_MIN_NS;
    uint64_t deadline = now + sleep_ns;
    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    xmutex_lock(&bg_mtx);
    if (!bg_stop) pthread_cond_timedwait(&bg_cond, &bg_mtx.lock, &ts);
  }
  xmutex_unlock(&bg_mtx);
  return NULL;
}

/* The tick hook: start the thread on first use (no lock held here). Once
 * set, the hook stays (arena_decay_tick reads it without a lock); switched
 * off, it returns at once. */
static void background_ensure(void) {
  if (likely(__atomic_load_n(&bg_state, __ATOMIC_ACQUIRE) != BG_NONE)) return;
  if (!__atomic_load_n(&bg_enabled, __ATOMIC_SEQ_CST)) return;
  int expected = BG_NONE;
  /* pthread_create may allocate: the recursive call sees BG_STARTING. */
  if (!__atomic_compare_exchange_n(&bg_state, &expected, BG_STARTING, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE))
    return;
  /* Switched off (background_set_enabled) since the hook was read. */
  if (!__atomic_load_n(&bg_enabled, __ATOMIC_SEQ_CST)) {
    __atomic_store_n(&bg_state, BG_NONE, __ATOMIC_RELEASE);
    return;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  xmutex_lock(&bg_mtx);
  bg_stop = false;
  xmutex_unlock(&bg_mtx);
  /* Joinable, for a switch-off; exit does not join it (background_stop). */
  int err = pthread_create(&bg_thread, NULL, background_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    util_warn("xalloc: cannot create the background thread (error %d); purging on the allocation paths only\n",
              err);
    __atomic_store_n(&bg_state, BG_FAILED, __ATOMIC_RELEASE);
    return;
  }
  __atomic_store_n(&bg_state, BG_RUNNING, __ATOMIC_RELEASE);
}

void background_boot(void) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&bg_cond, &attr);
  pthread_condattr_destroy(&attr);
  bg_enabled = opt_background_thread;
  if (opt_background_thread) arena_tick_hook = background_ensure;
}

/* Wait out a start in progress (a lazy start from some thread's tick). */
static int background_settled_state(void) {
  int st;
  while ((st = __atomic_load_n(&bg_state, __ATOMIC_ACQUIRE)) == BG_STARTING) sched_yield();
  return st;
}

bool background_set_enabled(bool enable) {
  bool err = false;
  xmutex_lock(&bg_ctl_mtx);
  if (enable) {
    __atomic_store_n(&bg_enabled, true, __ATOMIC_SEQ_CST);
    /* An explicit request tries again after a failed (or stopped) one. */
    if (background_settled_state() == BG_FAILED) __atomic_store_n(&bg_state, BG_NONE, __ATOMIC_RELEASE);
    __atomic_store_n(&arena_tick_hook, background_ensure, __ATOMIC_RELEASE);
    background_ensure(); /* now, not at the next tick */
    err = background_settled_state() != BG_RUNNING;
    if (err) __atomic_store_n(&bg_enabled, false, __ATOMIC_SEQ_CST);
  } else {
    __atomic_store_n(&bg_enabled, false, __ATOMIC_SEQ_CST);
    if (background_settled_state() == BG_RUNNING) {
      /* Stop it and wait until it has left (it may be inside a purge). */
      xmutex_lock(&bg_mtx);
      bg_stop = true;
      pthread_cond_signal(&bg_cond);
      xmutex_unlock(&bg_mtx);
      pthread_join(bg_thread, NULL);
    }
    __atomic_store_n(&bg_state, BG_NONE, __ATOMIC_RELEASE);
  }
  xmutex_unlock(&bg_ctl_mtx);
  return err;
}

bool background_enabled(void) { return __atomic_load_n(&bg_enabled, __ATOMIC_SEQ_CST); }

uint64_t background_run_interval_ns(void) {
  uint64_t n = __atomic_load_n(&bg_npasses, __ATOMIC_RELAXED);
  return n == 0 ? 0 : __atomic_load_n(&bg_interval_total_ns, __ATOMIC_RELAXED) / n;
}

/*
 * Ask the thread to stop, without waiting for it: it may be in the middle
 * of a pass, or stuck in a user's purge hook, and exit must not hang on
 * it. It leaves at its next check of bg_stop, or ends with the process.
 * bg_mtx is never held while purging, so taking it here is brief.
 */
void background_stop(void) {
  if (__atomic_load_n(&bg_state, __ATOMIC_ACQUIRE) != BG_RUNNING) return;
  /* Stopped for good: not restarted by later ticks. */
  __atomic_store_n(&bg_state, BG_FAILED, __ATOMIC_RELEASE);
  xmutex_lock(&bg_mtx);
  bg_stop = true;
  pthread_cond_signal(&bg_cond);
  xmutex_unlock(&bg_mtx);
  /* Never joined from here on: it leaves by itself, or ends with the
   * process. */
  pthread_detach(bg_thread);
}

bool background_running(void) { return __atomic_load_n(&bg_state, __ATOMIC_ACQUIRE) == BG_RUNNING; }
uint64_t background_npasses(void) { return __atomic_load_n(&bg_npasses, __ATOMIC_RELAXED); }

void background_prefork(void) {
  xmutex_prefork(&bg_ctl_mtx);
  xmutex_prefork(&bg_mtx);
}
void background_postfork_parent(void) {
  xmutex_postfork_parent(&bg_mtx);
  xmutex_postfork_parent(&bg_ctl_mtx);
}
void background_postfork_child(void) {
  xmutex_postfork_child(&bg_mtx);
  xmutex_postfork_child(&bg_ctl_mtx);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&bg_cond, &attr);
  pthread_condattr_destroy(&attr);
  /* The thread is not in the child: start it again on first use. */
  bg_stop = false;
  int st = __atomic_load_n(&bg_state, __ATOMIC_RELAXED);
  if (st == BG_RUNNING || st == BG_STARTING) __atomic_store_n(&bg_state, BG_NONE, __ATOMIC_RELAXED);
}
