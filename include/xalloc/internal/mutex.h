/*
 * mutex: a thin wrapper over pthread mutexes, with the prefork/postfork
 * steps every lock needs so that fork() from a threaded process leaves the
 * child a usable allocator.
 */
#ifndef XALLOC_INTERNAL_MUTEX_H
#define XALLOC_INTERNAL_MUTEX_H

#include <pthread.h>
#include <stdbool.h>

typedef struct {
  pthread_mutex_t lock;
} xmutex_t;

#define XMUTEX_INITIALIZER {PTHREAD_MUTEX_INITIALIZER}

static inline void xmutex_init(xmutex_t *m) { pthread_mutex_init(&m->lock, NULL); }
/* Spin briefly before sleeping: the allocator's critical sections are
 * short, and a futex sleep and wake-up costs far more than waiting them
 * out. */
#define XMUTEX_SPIN 64
__attribute__((noinline, cold)) static void xmutex_lock_slow(xmutex_t *m) {
  for (int i = 0; i < XMUTEX_SPIN; i++) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (pthread_mutex_trylock(&m->lock) == 0) return;
  }
  pthread_mutex_lock(&m->lock);
}
static inline void xmutex_lock(xmutex_t *m) {
  if (__builtin_expect(pthread_mutex_trylock(&m->lock) == 0, 1)) return;
  xmutex_lock_slow(m);
}
static inline void xmutex_unlock(xmutex_t *m) { pthread_mutex_unlock(&m->lock); }
/* True if the lock was taken. */
static inline bool xmutex_trylock(xmutex_t *m) { return pthread_mutex_trylock(&m->lock) == 0; }
static inline void xmutex_prefork(xmutex_t *m) { pthread_mutex_lock(&m->lock); }
static inline void xmutex_postfork_parent(xmutex_t *m) { pthread_mutex_unlock(&m->lock); }
/* The child's one thread is the one that forked, which took every lock in
 * the prefork step: it unlocks them. (Initializing a mutex again is
 * undefined in POSIX, and ThreadSanitizer then still has the lock held by
 * that thread, so that the child's next thread to take it is a "double
 * lock".) */
static inline void xmutex_postfork_child(xmutex_t *m) { pthread_mutex_unlock(&m->lock); }

#endif
