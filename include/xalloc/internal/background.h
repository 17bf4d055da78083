/*
 * background: the optional purging thread (background_thread:true, or
 * mallctl("background_thread") at run time). It
 * wakes when the next decay epoch of some arena ends (at least every
 * BACKGROUND_MIN_NS, at most every BACKGROUND_MAX_NS), calls arena_decay on
 * every arena, and sleeps again, so an idle process returns its freed
 * memory without any allocation call.
 *
 * It is created lazily, on the first decay tick of an allocation or free
 * slow path (never at initialization, never before the first such call),
 * with every signal blocked; a failed pthread_create is reported once and
 * not retried. It holds no allocator lock while it sleeps and never holds
 * its own lock (bg_mtx) while purging, so fork (which takes bg_mtx first,
 * then the arenas' locks) cannot deadlock with it. In the child the thread
 * does not exist: its state goes back to "not started" and it is created
 * again lazily. At exit (the library destructor) it is asked to stop, and
 * not waited for: it may be busy, or blocked in a user's purge hook, and
 * exit must not hang (it is detached; the process's end ends it).
 */
#ifndef XALLOC_INTERNAL_BACKGROUND_H
#define XALLOC_INTERNAL_BACKGROUND_H

#include "xalloc/internal/arena.h"

#define BACKGROUND_MIN_NS ((uint64_t)2 * 1000 * 1000)
#define BACKGROUND_MAX_NS ((uint64_t)1000 * 1000 * 1000)
/* While caches of exited threads are parked (tcache.h): their expiry is
 * checked at least this often. */
#define BACKGROUND_PARK_NS ((uint64_t)250 * 1000 * 1000)

/* Arm the lazy start when the option is set. */
void background_boot(void);
/* Ask the thread to stop if it runs (for good); never waits for it. */
void background_stop(void);
/* mallctl("background_thread") written: true starts the thread now (and
 * lets later ticks restart it), false stops and joins it (until enabled
 * again). True (and off) if the thread cannot be created. One call at a
 * time (its own lock, taken before the thread's). */
bool background_set_enabled(bool enable);
/* mallctl("background_thread") read: whether the thread is switched on
 * (opt.background_thread, then the last write). */
bool background_enabled(void);
/* The average time between two passes, ns (0 before the first). */
uint64_t background_run_interval_ns(void);
/* Whether the thread is running (for tests). */
bool background_running(void);
/* Passes over the arenas made so far (for tests). */
uint64_t background_npasses(void);

void background_prefork(void);
void background_postfork_parent(void);
void background_postfork_child(void);
#endif
