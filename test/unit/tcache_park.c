/*
 * Parked caches (tcache.h, option tcache_park): a thread that exits with
 * objects in its cache leaves the cache for the next thread to adopt.
 *   - the objects stay out of the runs while parked (the bin's current
 *     regions do not drop), the next new thread adopts the cache and gets
 *     exactly those objects back, and its own counters start from zero
 *     (thread.allocated; the process's request counts stay exact);
 *   - tcache_park:0, a cache that holds nothing, or one of a thread bound
 *     to an explicit arena, parks nothing;
 *   - at most tcache_park caches and TSD_PARK_BYTES of objects are parked;
 *   - a parked cache no thread adopts is flushed once it waited the reuse
 *     window, by another thread's GC step;
 *   - malloc_trim and arena.<i>.purge flush them at once; arena.<i>.reset
 *     and destroy flush them before the arena's memory is freed (a parked
 *     object of the arena would otherwise be handed out again over a new
 *     block of the arena).
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/sz.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"
#include "xchild.h"

const char *malloc_conf = "narenas:1,reuse_window_ms:100";

#define SIZE 96
#define NOBJ 40

static void *objs[NOBJ];

/* Caches parked when n would be with the caches on (tcache:false: none, a
 * cache that holds nothing is never parked). */
static unsigned parked(unsigned n) { return tcache_active ? n : 0; }

/* stats.arenas.0.bins.<SIZE's bin>.curregs, this thread's cache flushed
 * first (it may hold objects of the class: the stats calls allocate). */
static size_t curregs(void) {
  tcache_flush_all(tsd_fetch());
  char name[64];
  snprintf(name, sizeof(name), "bins.%u.curregs", sz_size2index(SIZE));
  return arena_stat(0, name);
}

/* Allocate NOBJ objects of SIZE, free them into the cache, exit. */
static void *leave_cached(void *arg) {
  (void)arg;
  for (int i = 0; i < NOBJ; i++) objs[i] = malloc(SIZE);
  for (int i = NOBJ - 1; i >= 0; i--) free(objs[i]);
  return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg) {
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
}

/* The adopting thread: its first allocations are the parked objects. */
static int adopted_all;
static uint64_t adopter_allocated0;
static void *adopt(void *arg) {
  (void)arg;
  void *got[NOBJ];
  for (int i = 0; i < NOBJ; i++) got[i] = malloc(SIZE);
  uint64_t a = 0;
  size_t sz = sizeof(a);
  EXPECT(mallctl("thread.allocated", &a, &sz, NULL, 0) == 0);
  adopter_allocated0 = a;
  int found = 0;
  for (int i = 0; i < NOBJ; i++)
    for (int j = 0; j < NOBJ; j++)
      if (got[i] == objs[j]) {
        found++;
        break;
      }
  adopted_all = found == NOBJ;
  for (int i = 0; i < NOBJ; i++) free(got[i]);
  return NULL;
}

static void test_adopted(void **state) {
  (void)state;
  tsd_park_flush();
  size_t before = curregs();
  run_thread(leave_cached, NULL);
  assert_int_equal(tsd_nparked, parked(1));
  /* Still out of the runs: in the parked cache. */
  if (tcache_active) assert_true(curregs() >= before + NOBJ);
  /* stats.tcache_parked / _bytes. */
  uint64_t epoch = 1;
  size_t n = 0, bytes = 0, sz = sizeof(n);
  assert_int_equal(mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)), 0);
  assert_int_equal(mallctl("stats.tcache_parked", &n, &sz, NULL, 0), 0);
  assert_int_equal(mallctl("stats.tcache_parked_bytes", &bytes, &sz, NULL, 0), 0);
  assert_int_equal(n, parked(1));
  if (tcache_active) assert_true(bytes >= (size_t)NOBJ * sz_index2size(sz_size2index(SIZE)));
  else assert_int_equal(bytes, 0);
  run_thread(adopt, NULL);
  if (tcache_active) assert_true(adopted_all);
  /* NOBJ pops of SIZE's class, nothing else counted from the cache. */
  assert_int_equal(adopter_allocated0, (uint64_t)NOBJ * sz_index2size(sz_size2index(SIZE)));
  /* The adopter left the cache parked in turn. */
  assert_int_equal(tsd_nparked, parked(1));
  tsd_park_flush();
  assert_int_equal(tsd_nparked, 0);
  assert_true(curregs() <= before);
}

/* The process's request counts: each malloc and free once, whether the
 * cache that served it was parked and adopted or not. */
static void *alloc_free_n(void *arg) {
  int n = (int)(intptr_t)arg;
  for (int i = 0; i < n; i++) free(malloc(SIZE));
  return leave_cached(NULL);
}

static void test_counts(void **state) {
  (void)state;
  tsd_park_flush();
  uint64_t m0, f0, m1, f1, m2, f2;
  tcache_requests(&m0, &f0);
  for (int k = 0; k < 5; k++) run_thread(alloc_free_n, (void *)(intptr_t)(100 * k));
  assert_int_equal(tsd_nparked, parked(1));
  tcache_requests(&m1, &f1);
  /* Each call once: the threads' (this thread makes none in between). */
  uint64_t want = 5 * NOBJ + 100 * (0 + 1 + 2 + 3 + 4);
  assert_int_equal(m1 - m0, want);
  assert_int_equal(f1 - f0, want);
  tsd_park_flush(); /* a flush is no call */
  tcache_requests(&m2, &f2);
  assert_int_equal(m2, m1);
  assert_int_equal(f2, f1);
}

static void *nothing(void *arg) {
  (void)arg;
  return NULL;
}

static void test_not_parked(void **state) {
  (void)state;
  tsd_park_flush();
  /* A thread whose cache holds nothing (made and gone without a call). */
  run_thread(nothing, NULL);
  assert_int_equal(tsd_nparked, 0);
  /* tcache_park:0. */
  unsigned saved = opt_tcache_park;
  opt_tcache_park = 0;
  size_t before = curregs();
  run_thread(leave_cached, NULL);
  assert_int_equal(tsd_nparked, 0);
  assert_true(curregs() <= before);
  opt_tcache_park = saved;
  unsigned v = 0;
  size_t sz = sizeof(v);
  assert_int_equal(mallctl("opt.tcache_park", &v, &sz, NULL, 0), 0);
  assert_int_equal(v, saved);
}

/* Threads alive at once, each with objects cached, then all gone. */
#define NWIDE 80
static pthread_barrier_t wide_barrier;
static size_t wide_size;
static void *hold_and_exit(void *arg) {
  (void)arg;
  void *p[20];
  for (int i = 0; i < 20; i++) p[i] = malloc(wide_size);
  for (int i = 0; i < 20; i++) free(p[i]);
  pthread_barrier_wait(&wide_barrier);
  return NULL;
}

static void run_wide(size_t size, unsigned n) {
  wide_size = size;
  pthread_t th[NWIDE];
  pthread_barrier_init(&wide_barrier, NULL, n);
  for (unsigned i = 0; i < n; i++) assert_int_equal(pthread_create(&th[i], NULL, hold_and_exit, NULL), 0);
  for (unsigned i = 0; i < n; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  pthread_barrier_destroy(&wide_barrier);
}

static void test_budget(void **state) {
  (void)state;
  tsd_park_flush();
  run_wide(SIZE, NWIDE);
  assert_int_equal(tsd_nparked, parked(opt_tcache_park));
  tsd_park_flush();
  /* 20 x 32 KiB per cache: room for 64 caches, but the byte budget holds
   * 12 of them. */
  unsigned saved = opt_tcache_park;
  opt_tcache_park = 64;
  size_t big = tcache_maxclass;
  run_wide(big, 20);
  opt_tcache_park = saved;
  assert_int_equal(tsd_nparked, parked((unsigned)(TSD_PARK_BYTES / (20 * big))));
  tsd_park_flush();
  assert_int_equal(tsd_nparked, 0);
}

static void test_expired(void **state) {
  (void)state;
  tsd_park_flush();
  size_t before = curregs();
  run_thread(leave_cached, NULL);
  assert_int_equal(tsd_nparked, parked(1));
  usleep(150 * 1000); /* past reuse_window_ms:100 */
  /* This thread's GC steps (one per 256 pops of a bin) look. */
  for (int i = 0; i < 4096 && tsd_nparked != 0; i++) free(malloc(16));
  assert_int_equal(tsd_nparked, 0);
  assert_true(curregs() <= before);
}

static void test_trim_purge(void **state) {
  (void)state;
  tsd_park_flush();
  run_thread(leave_cached, NULL);
  assert_int_equal(tsd_nparked, parked(1));
  malloc_trim(0);
  assert_int_equal(tsd_nparked, 0);
  run_thread(leave_cached, NULL);
  assert_int_equal(tsd_nparked, parked(1));
  assert_int_equal(mallctl("arena.0.purge", NULL, NULL, NULL, 0), 0);
  assert_int_equal(tsd_nparked, 0);
  /* A decay leaves them to their time. */
  run_thread(leave_cached, NULL);
  assert_int_equal(mallctl("arena.0.decay", NULL, NULL, NULL, 0), 0);
  assert_int_equal(tsd_nparked, parked(1));
  tsd_park_flush();
}

/* A thread that uses explicit arena ind through its cache and exits. */
static void *use_explicit(void *arg) {
  unsigned ind = (unsigned)(uintptr_t)arg;
  for (int i = 0; i < NOBJ; i++) objs[i] = mallocx(SIZE, MALLOCX_ARENA(ind));
  for (int i = 0; i < NOBJ; i++) free(objs[i]);
  return NULL;
}

static void reset_or_destroy(bool destroy) {
  tsd_park_flush();
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  run_thread(use_explicit, (void *)(uintptr_t)ind);
  assert_int_equal(tsd_nparked, parked(1));
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.%s", ind, destroy ? "destroy" : "reset");
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  /* Nothing of the arena may be left in a cache. */
  assert_int_equal(tsd_nparked, 0);
  if (!destroy) {
    /* The arena's memory serves new blocks; none is handed out twice. */
    void *fresh[NOBJ];
    for (int i = 0; i < NOBJ; i++) {
      fresh[i] = mallocx(SIZE, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
      assert_non_null(fresh[i]);
      memset(fresh[i], 0x11, SIZE);
    }
    run_thread(adopt, NULL); /* nothing parked: fills from arena 0 */
    for (int i = 0; i < NOBJ; i++) {
      for (size_t k = 0; k < SIZE; k++) assert_int_equal(((unsigned char *)fresh[i])[k], 0x11);
      dallocx(fresh[i], MALLOCX_TCACHE_NONE);
    }
    snprintf(name, sizeof(name), "arena.%u.destroy", ind);
    tsd_park_flush();
    assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  }
  tsd_park_flush();
}

/* A thread bound to explicit arena ind (thread.arena) that exits with
 * objects cached. */
static void *bound_to_explicit(void *arg) {
  unsigned ind = (unsigned)(uintptr_t)arg;
  EXPECT(mallctl("thread.arena", NULL, NULL, &ind, sizeof(ind)) == 0);
  return leave_cached(NULL);
}

/* Its cache goes with it: a new thread must not start bound to the
 * explicit arena. */
static void test_explicit_bound_not_parked(void **state) {
  (void)state;
  tsd_park_flush();
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  run_thread(bound_to_explicit, (void *)(uintptr_t)ind);
  assert_int_equal(tsd_nparked, 0);
  char name[64];
  snprintf(name, sizeof(name), "bins.%u.curregs", sz_size2index(SIZE));
  assert_int_equal(arena_stat(ind, name), 0);
  snprintf(name, sizeof(name), "arena.%u.destroy", ind);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
}

static void test_reset(void **state) {
  (void)state;
  reset_or_destroy(false);
}

static void test_destroy(void **state) {
  (void)state;
  reset_or_destroy(true);
}

int main(void) {
  free(malloc(1)); /* boot, and make this thread's tsd (a prefixed build has made no call yet) */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adopted),    cmocka_unit_test(test_counts), cmocka_unit_test(test_not_parked),
      cmocka_unit_test(test_budget),     cmocka_unit_test(test_expired), cmocka_unit_test(test_trim_purge),
      cmocka_unit_test(test_reset),      cmocka_unit_test(test_destroy), cmocka_unit_test(test_explicit_bound_not_parked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
