/* background: the optional purging thread (see background.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "xalloc/internal/background.h"
#include "xalloc/internal/opts.h"

enum { BG_NONE = 0, BG_STARTING = 1, BG_RUNNING = 2, BG_FAILED = 3 };

static xmutex_t bg_mtx = XMUTEX_INITIALIZER;
static pthread_cond_t bg_cond;
static int bg_state;
static bool bg_stop; /* bg_mtx */

static void *background_main(void *arg) {
  (void)arg;
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
    if (sleep_ns < BACKGROUND_MIN_NS) sleep_ns = BACKGROUND_MIN_NS;
    uint64_t deadline = now + sleep_ns;
    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    xmutex_lock(&bg_mtx);
    if (!bg_stop) pthread_cond_timedwait(&bg_cond, &bg_mtx.lock, &ts);
  }
  xmutex_unlock(&bg_mtx);
  return NULL;
}

/* The tick hook: start the thread on first use (no lock held here). */
static void background_ensure(void) {
  if (likely(__atomic_load_n(&bg_state, __ATOMIC_ACQUIRE) != BG_NONE)) return;
  int expected = BG_NONE;
  /* pthread_create may allocate: the recursive call sees BG_STARTING. */
  if (!__atomic_compare_exchange_n(&bg_state, &expected, BG_STARTING, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE))
    return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  xmutex_lock(&bg_mtx);
  bg_stop = false;
  xmutex_unlock(&bg_mtx);
  /* Detached: nothing ever waits for it (background_stop). */
  pthread_t thread;
  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&thread, &attr, background_main, NULL);
    pthread_attr_destroy(&attr);
  }
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
  if (opt_background_thread) arena_tick_hook = background_ensure;
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
}

void background_prefork(void) { xmutex_prefork(&bg_mtx); }
void background_postfork_parent(void) { xmutex_postfork_parent(&bg_mtx); }
void background_postfork_child(void) {
  xmutex_postfork_child(&bg_mtx);
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
