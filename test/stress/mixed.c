/*
 * A long threaded run (make stress): 8 threads allocate, fill, check, grow
 * and free objects of every size class, handing a quarter of them to the
 * next thread, which checks and frees them. Runs for XALLOC_STRESS_SECONDS
 * (default 30) and fails on any corrupted object or failed allocation.
 * Afterwards the allocator's own statistics must balance.
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "xalloc/xalloc.h"

enum { NTHREADS = 8, SLOTS = 512, QCAP = 4096 };

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned char pat;
} obj_t;

typedef struct {
  pthread_mutex_t lock;
  obj_t q[QCAP];
  unsigned head, tail;
} queue_t;

static queue_t queues[NTHREADS];
static int stop; /* relaxed atomics: set by main or a failing worker */
static unsigned long long nops[NTHREADS];
static int failures;

static size_t pick_size(uint64_t *s) {
  uint64_t r = xtest_rand(s);
  switch (r % 16) {
  case 0: return (size_t)(r >> 8) % (1 << 20) + 16385; /* large */
  case 1: if ((r >> 4) % 64 == 0) return (size_t)(r >> 12) % (8 << 20) + (2 << 20); /* huge, rarely */
    /* fall through */
  default: return (size_t)(r >> 8) % 4096 + 1;
  }
}

/* The pattern of the first n bytes (every 61st byte), and the last byte
 * when the object is whole. */
static bool check_prefix(const obj_t *o, size_t n, bool whole) {
  for (size_t i = 0; i < n; i += 61)
    if (o->p[i] != (unsigned char)(o->pat + i)) return false;
  return !whole || o->n == 0 || o->p[o->n - 1] == (unsigned char)(o->pat + o->n - 1);
}

static bool check(const obj_t *o) { return check_prefix(o, o->n, true); }

static void fill(obj_t *o) {
  for (size_t i = 0; i < o->n; i += 61) o->p[i] = (unsigned char)(o->pat + i);
  if (o->n) o->p[o->n - 1] = (unsigned char)(o->pat + o->n - 1);
}

static void stress_fail(const char *what) {
  fprintf(stderr, "stress: %s\n", what);
  __atomic_store_n(&failures, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
}

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  uint64_t seed = 0x9e3779b97f4a7c15ULL * (id + 1);
  obj_t slots[SLOTS] = {{0}};
  queue_t *mine = &queues[id], *next = &queues[(id + 1) % NTHREADS];
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    /* Objects handed over by the previous thread. */
    pthread_mutex_lock(&mine->lock);
    while (mine->head != mine->tail) {
      obj_t o = mine->q[mine->head++ % QCAP];
      pthread_mutex_unlock(&mine->lock);
      if (!check(&o)) stress_fail("corrupted object received from another thread");
      free(o.p);
      pthread_mutex_lock(&mine->lock);
    }
    pthread_mutex_unlock(&mine->lock);
    obj_t *o = &slots[xtest_rand(&seed) % SLOTS];
    if (o->p != NULL) {
      if (!check(o)) stress_fail("corrupted object");
      uint64_t r = xtest_rand(&seed) % 8;
      if (r == 0) { /* grow or shrink in place or by moving */
        size_t n = pick_size(&seed);
        unsigned char *q = realloc(o->p, n);
        if (q == NULL) { stress_fail("realloc failed"); break; }
        size_t keep = n < o->n ? n : o->n;
        o->p = q;
        if (!check_prefix(o, keep, n >= o->n)) stress_fail("realloc lost contents");
        o->n = n;
        fill(o);
        continue;
      }
      if (r < 3) { /* hand over */
        pthread_mutex_lock(&next->lock);
        if (next->tail - next->head < QCAP) {
          next->q[next->tail++ % QCAP] = *o;
          o->p = NULL;
        }
        pthread_mutex_unlock(&next->lock);
        if (o->p == NULL) continue;
      }
      free(o->p);
      o->p = NULL;
    }
    o->n = pick_size(&seed);
    o->pat = (unsigned char)xtest_rand(&seed);
    o->p = malloc(o->n);
    if (o->p == NULL) { stress_fail("malloc failed"); break; }
    fill(o);
    nops[id]++;
  }
  for (unsigned i = 0; i < SLOTS; i++) free(slots[i].p);
  return NULL;
}

static void test_mixed_threads(void **state) {
  (void)state;
  const char *e = getenv("XALLOC_STRESS_SECONDS");
  int seconds = e != NULL ? atoi(e) : 30;
  size_t before = 0, len = sizeof(size_t);
  uint64_t epoch = 1;
  mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch));
  assert_int_equal(mallctl("stats.allocated", &before, &len, NULL, 0), 0);
  pthread_t th[NTHREADS];
  /* Every queue is ready before any thread hands an object to the next. */
  for (unsigned i = 0; i < NTHREADS; i++) pthread_mutex_init(&queues[i].lock, NULL);
  for (unsigned i = 0; i < NTHREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i), 0);
  sleep((unsigned)seconds);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < NTHREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  for (unsigned i = 0; i < NTHREADS; i++) { /* leftovers in the queues */
    while (queues[i].head != queues[i].tail) {
      obj_t o = queues[i].q[queues[i].head++ % QCAP];
      assert_true(check(&o));
      free(o.p);
    }
  }
  unsigned long long total = 0;
  for (unsigned i = 0; i < NTHREADS; i++) total += nops[i];
  fprintf(stderr, "stress: %llu allocations in %d s\n", total, seconds);
  assert_int_equal(failures, 0);
  assert_true(total > 0);
  /* Every thread has exited; its cache was flushed, or parked for a new
   * thread (tcache_park), which malloc_trim flushes: what is allocated now
   * is what was allocated before (cmocka's own blocks aside). */
  size_t after = 0;
  mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
  malloc_trim(0);
  mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch));
  assert_int_equal(mallctl("stats.allocated", &after, &len, NULL, 0), 0);
  assert_true(after <= before + 65536);
  bool ok = false;
  size_t oklen = sizeof(ok);
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.check", (unsigned)MALLCTL_ARENAS_ALL);
  assert_int_equal(mallctl(name, &ok, &oklen, NULL, 0), 0);
  assert_true(ok);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_mixed_threads)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
