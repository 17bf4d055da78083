/*
 * Statistics read while other threads allocate: the main thread refreshes
 * the mallctl snapshot (epoch), reads the totals, prints the report (text
 * and JSON), calls mallinfo2, purges (malloc_trim, arena.<i>.decay) and
 * asks for thread counts, while four threads allocate, resize and free
 * small, large and huge blocks. Every read succeeds and is coherent
 * (allocated and active within mapped); afterwards the totals are back
 * where they were and the heap check passes. Under ThreadSanitizer (make
 * check-tsan) this is the test of the counters that one thread writes and
 * another reads.
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>

#include "xalloc/xalloc.h"

#define NTHREADS 4
#define SLOTS 64
#define ROUNDS 200   /* at least, of the main thread's reads */
#define PROGRESS 400 /* at least, of the workers' rounds meanwhile */

/* Relaxed atomics: set by main (stop) or by the workers. */
static int stop, failures;
static unsigned progress;

static size_t pick_size(uint64_t *s) {
  uint64_t r = xtest_rand(s);
  switch (r % 16) {
  case 0: return (size_t)(r >> 20) % (3u << 20) + (2u << 20); /* huge */
  case 1: case 2: return (size_t)(r >> 20) % 60000 + 16384;   /* large */
  default: return (size_t)(r >> 20) % 4096 + 1;               /* small */
  }
}

static void *worker(void *arg) {
  uint64_t seed = 0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1);
  unsigned char *slot[SLOTS] = {0};
  size_t len[SLOTS] = {0};
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    for (unsigned k = 0; k < 64; k++) {
      unsigned i = (unsigned)(xtest_rand(&seed) % SLOTS);
      if (slot[i] != NULL && slot[i][0] != (unsigned char)len[i])
        __atomic_store_n(&failures, 1, __ATOMIC_RELAXED);
      if (slot[i] != NULL && xtest_rand(&seed) % 4 == 0) {
        size_t n = pick_size(&seed);
        unsigned char *q = realloc(slot[i], n);
        if (q == NULL) { __atomic_store_n(&failures, 1, __ATOMIC_RELAXED); continue; }
        slot[i] = q;
        len[i] = n;
      } else {
        free(slot[i]);
        len[i] = pick_size(&seed);
        slot[i] = malloc(len[i]);
        if (slot[i] == NULL) { __atomic_store_n(&failures, 1, __ATOMIC_RELAXED); continue; }
      }
      slot[i][0] = (unsigned char)len[i];
    }
    uint64_t a;
    size_t sz = sizeof(a);
    if (mallctl("thread.allocated", &a, &sz, NULL, 0) != 0 || a == 0)
      __atomic_store_n(&failures, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&progress, 1, __ATOMIC_RELAXED);
  }
  for (unsigned i = 0; i < SLOTS; i++) free(slot[i]);
  return NULL;
}

static void refresh(void) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  assert_int_equal(mallctl("epoch", &e, &sz, &e, sz), 0);
}
static size_t total(const char *name) {
  size_t v = 0, sz = sizeof(v);
  assert_int_equal(mallctl(name, &v, &sz, NULL, 0), 0);
  return v;
}
static void sink(void *opaque, const char *s) { *(size_t *)opaque += strlen(s); }

static void test_stats_while_allocating(void **state) {
  (void)state;
  mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
  refresh();
  size_t before = total("stats.allocated");
  pthread_t th[NTHREADS];
  for (uintptr_t i = 0; i < NTHREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)i), 0);
  char name[64];
  for (unsigned k = 0; k < ROUNDS || __atomic_load_n(&progress, __ATOMIC_RELAXED) < PROGRESS; k++) {
    refresh();
    size_t allocated = total("stats.allocated"), active = total("stats.active"), mapped = total("stats.mapped");
    (void)total("stats.resident");
    if (allocated > mapped || active > mapped)
      fail_msg("round %u: allocated %zu, active %zu, mapped %zu", k, allocated, active, mapped);
    if (k % 20 == 0) {
      size_t n = 0;
      malloc_stats_print(sink, &n, k % 40 == 0 ? NULL : "J");
      assert_true(n > 100);
    }
    if (k % 25 == 1) {
      struct mallinfo2 mi = mallinfo2();
      assert_true(mi.arena > 0);
    }
    if (k % 50 == 2) malloc_trim(0);
    if (k % 30 == 3) {
      unsigned n = 0;
      size_t sz = sizeof(n);
      snprintf(name, sizeof(name), "stats.arenas.%u.nthreads", (unsigned)MALLCTL_ARENAS_ALL);
      assert_int_equal(mallctl(name, &n, &sz, NULL, 0), 0);
      snprintf(name, sizeof(name), "arena.%u.decay", (unsigned)MALLCTL_ARENAS_ALL);
      assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
    }
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < NTHREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  assert_int_equal(failures, 0);
  /* Every worker has exited; its cache was flushed, or parked for a new
   * thread (tcache_park), which malloc_trim flushes. */
  mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
  malloc_trim(0);
  refresh();
  size_t after = total("stats.allocated");
  if (after > before + 65536) fail_msg("allocated %zu before, %zu after", before, after);
  bool ok = false;
  size_t oklen = sizeof(ok);
  snprintf(name, sizeof(name), "arena.%u.check", (unsigned)MALLCTL_ARENAS_ALL);
  assert_int_equal(mallctl(name, &ok, &oklen, NULL, 0), 0);
  assert_true(ok);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stats_while_allocating)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
