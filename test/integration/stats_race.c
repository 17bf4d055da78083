/*
 * The call counters of the statistics (text "Allocation calls: N, free
 * calls: N", JSON stats.nmalloc / stats.ndalloc) sum the per-thread
 * counters of live threads, read while those threads run (issue 9, item
 * 10). Worker threads (long-lived ones, and short-lived ones whose counters
 * are small) allocate and free in bursts that fill and flush their thread
 * caches, while the main thread prints the statistics again and again. Each
 * reading must be plausible (no wrapped, huge values) and neither count may
 * ever go down. At the end, with every worker gone, the counts must cover
 * every call the workers made.
 */
#include "xtest.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "xalloc/xalloc.h"

#define NLONG 2
#define NSHORT 2
#define READ_MS 2500
#define BURST 300 /* more than a bin holds: fills and flushes */
#define PLAUSIBLE ((unsigned long long)1 << 40)

static int stop;
static unsigned long long ncalls_done; /* malloc calls of finished bursts */

static void burst(uint64_t *s, unsigned n) {
  void *p[BURST];
  for (unsigned i = 0; i < n; i++) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    size_t size = (*s >> 20) % 8 == 0 ? 1 + (size_t)(*s % 30000) : 1 + (size_t)(*s % 2000);
    p[i] = malloc(size);
    if (p[i] == NULL) abort();
  }
  for (unsigned i = 0; i < n; i++) free(p[i]);
  __atomic_fetch_add(&ncalls_done, n, __ATOMIC_RELAXED);
}

static void *long_worker(void *arg) {
  uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) burst(&s, 1 + (unsigned)(s % BURST));
  return NULL;
}

static void *short_worker(void *arg) {
  uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 7;
  for (int i = 0; i < 3; i++) burst(&s, 1 + (unsigned)(s % BURST));
  return NULL;
}

static void *short_spawner(void *arg) {
  uintptr_t k = (uintptr_t)arg * 1000;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_worker, (void *)k++) != 0) abort();
    pthread_join(t, NULL);
  }
  return NULL;
}

typedef struct {
  unsigned long long nmalloc, nfree;
  int found;
} reading_t;

static void stats_cb(void *opaque, const char *s) {
  reading_t *r = opaque;
  const char *l = strstr(s, "Allocation calls: ");
  if (l != NULL && sscanf(l, "Allocation calls: %llu, free calls: %llu", &r->nmalloc, &r->nfree) == 2) r->found++;
}

static reading_t read_stats(void) {
  reading_t r = {0, 0, 0};
  malloc_stats_print(stats_cb, &r, "mabl");
  return r;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_counts_never_wrap_or_drop(void **state) {
  (void)state;
  pthread_t lt[NLONG], st[NSHORT];
  for (uintptr_t i = 0; i < NLONG; i++) assert_int_equal(pthread_create(&lt[i], NULL, long_worker, (void *)(i + 1)), 0);
  for (uintptr_t i = 0; i < NSHORT; i++)
    assert_int_equal(pthread_create(&st[i], NULL, short_spawner, (void *)(i + 1)), 0);
  reading_t prev = read_stats();
  assert_int_equal(prev.found, 1);
  unsigned long nreads = 0, nbad = 0;
  uint64_t end = now_ms() + READ_MS;
  while (now_ms() < end) {
    reading_t r = read_stats();
    nreads++;
    assert_int_equal(r.found, 1);
    bool bad = r.nmalloc > PLAUSIBLE || r.nfree > PLAUSIBLE || r.nmalloc < prev.nmalloc || r.nfree < prev.nfree;
    if (bad && nbad++ < 10)
      fprintf(stderr, "reading %lu: nmalloc %llu, nfree %llu after %llu, %llu\n", nreads, r.nmalloc, r.nfree,
              prev.nmalloc, prev.nfree);
    prev = r;
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < NLONG; i++) pthread_join(lt[i], NULL);
  for (int i = 0; i < NSHORT; i++) pthread_join(st[i], NULL);
  reading_t fin = read_stats();
  fprintf(stderr, "%lu readings, %lu bad; at the end nmalloc %llu, nfree %llu; the workers made %llu calls\n", nreads,
          nbad, fin.nmalloc, fin.nfree, ncalls_done);
  assert_true(nreads > 100);
  assert_int_equal(nbad, 0);
  assert_true(fin.nmalloc >= prev.nmalloc && fin.nfree >= prev.nfree);
  assert_true(fin.nmalloc >= ncalls_done && fin.nfree >= ncalls_done);
  assert_true(fin.nmalloc < PLAUSIBLE && fin.nfree < PLAUSIBLE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counts_never_wrap_or_drop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
