/* Thread caches and arenas: flushing at thread exit, cross-arena frees,
 * GC, free tags, arena spreading. Runs with tcache on and off. */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/stats.h"
#include "xalloc/internal/tcache.h"

/* Bytes allocated in classes of 1 KiB and more: glibc's own allocations
 * around thread creation (the DTV) are smaller, so these figures only move
 * with what the tests do. */
static size_t allocated_now(void) {
  size_t sum = 0;
  for (unsigned i = 0; i < narenas; i++) {
    arena_t *a = arenas[i];
    for (unsigned b = sz_size2index(1024); b < SZ_NBINS; b++) {
      xmutex_lock(&a->bins[b].lock);
      sum += a->bins[b].stats.curregs * sz_bin_info[b].reg_size;
      xmutex_unlock(&a->bins[b].lock);
    }
    xmutex_lock(&a->lock);
    sum += a->stats.allocated_large;
    xmutex_unlock(&a->lock);
  }
  return sum;
}

static void validate_all(void) {
  for (unsigned i = 0; i < narenas; i++) assert_true(arena_validate(arenas[i]));
}

/* Cached objects of the thread's own bins, all bins. */
static size_t cached_bytes(const tsd_t *t) {
  size_t sum = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) sum += tcache_ncached(t, i) * sz_index2size(i);
  return sum;
}

static void *churn_and_exit(void *arg) {
  (void)arg;
  void *p[1000];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 1000; i++) p[i] = malloc(1024 + (size_t)(i % 97) * 40 + (i % 5 == 0 ? 20000 : 0));
    for (int i = 0; i < 1000; i++) free(p[i]);
  }
  /* Everything freed sits in this thread's cache (when enabled). */
  if (opt_tcache) assert_true(cached_bytes(tsd_tls) > 0);
  return NULL;
}

static void test_thread_exit_returns_cache(void **state) {
  (void)state;
  free(malloc(1)); /* boot, and create this thread's tsd */
  tcache_flush_all(tsd_fetch());
  size_t base = allocated_now();
  for (int i = 0; i < 8; i++) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_and_exit, NULL), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
  }
  /* The last exited thread's cache is parked for the next one (tcache.h):
   * at most one cache's worth is held, and none once they are flushed. */
  if (tcache_active) assert_int_equal(tsd_nparked, 1);
  tsd_park_flush();
  tcache_flush_all(tsd_fetch());
  assert_int_equal(allocated_now(), base);
  validate_all();
}

typedef struct {
  void **objs;
  int n;
  arena_t *arena;
} batch_t;

static void *alloc_only(void *arg) {
  /* Never calls free: its cache holds only the leftovers of fills. */
  batch_t *b = arg;
  for (int i = 0; i < b->n; i++) b->objs[i] = malloc(1024 + (size_t)(i % 40) * 64);
  b->arena = tsd_tls->arena;
  return NULL;
}

static void *free_only(void *arg) {
  batch_t *b = arg;
  for (int i = 0; i < b->n; i++) free(b->objs[i]);
  b->arena = tsd_tls->arena;
  return NULL;
}

static void test_cross_thread_and_arena_frees(void **state) {
  (void)state;
  enum { N = 20000 };
  void **objs = calloc(N, sizeof(void *));
  tcache_flush_all(tsd_fetch());
  size_t base = allocated_now();
  batch_t a = {objs, N, NULL}, f = {objs, N, NULL};
  pthread_t th;
  /* Keep an allocating thread alive so the freeing thread gets another arena. */
  assert_int_equal(pthread_create(&th, NULL, alloc_only, &a), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  size_t sum = 0;
  for (int i = 0; i < N; i++) sum += malloc_usable_size(objs[i]);
  tsd_park_flush(); /* the allocating thread's cache, parked (tcache.h) */
  tcache_flush_all(tsd_fetch());
  /* The allocating thread is gone: only the live objects remain counted. */
  assert_int_equal(allocated_now(), base + sum);
  validate_all();
  assert_int_equal(pthread_create(&th, NULL, free_only, &f), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  tsd_park_flush();
  tcache_flush_all(tsd_fetch());
  assert_int_equal(allocated_now(), base);
  validate_all();
  free(objs);
}

static pthread_barrier_t hold_barrier;

static void *hold_arena(void *arg) {
  batch_t *b = arg;
  void *p = malloc(10);
  b->arena = tsd_fetch()->arena;
  b->objs[0] = p;
  pthread_barrier_wait(&hold_barrier); /* all alive at once */
  return NULL;
}

static void test_threads_spread_over_arenas(void **state) {
  (void)state;
  free(malloc(1));
  assert_true(narenas_auto >= 2);
  enum { T = 6 };
  pthread_t th[T];
  batch_t b[T];
  void *slot[T];
  /* Threads alive at the same time go to different arenas while there are
   * fewer threads than arenas. */
  pthread_barrier_init(&hold_barrier, NULL, T);
  for (int i = 0; i < T; i++) {
    b[i].objs = &slot[i];
    b[i].n = 1;
    assert_int_equal(pthread_create(&th[i], NULL, hold_arena, &b[i]), 0);
  }
  for (int i = 0; i < T; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  unsigned distinct = 0;
  for (int i = 0; i < T; i++) {
    int seen = 0;
    for (int j = 0; j < i; j++) seen |= b[j].arena == b[i].arena;
    distinct += !seen;
    assert_non_null(b[i].arena);
    free(slot[i]); /* freed by another thread than the allocating one */
  }
  assert_true(distinct >= 2);
  assert_true(narenas <= narenas_auto);
  validate_all();
}

static void test_gc_shrinks_unused_bins(void **state) {
  (void)state;
  tsd_t *t = tsd_fetch();
  if (!opt_tcache) {
    /* Off: frees go straight back to the arena; bins hold nothing. */
    void *p[100];
    for (int i = 0; i < 100; i++) p[i] = malloc(64);
    for (int i = 0; i < 100; i++) free(p[i]);
    for (unsigned i = 0; i < tcache_nhbins; i++) assert_int_equal(tcache_ncached(t, i), 0);
    return;
  }
  unsigned ind = sz_size2index(64);
  void *p[100];
  for (int i = 0; i < 100; i++) p[i] = malloc(64);
  for (int i = 0; i < 100; i++) free(p[i]);
  uint32_t before = tcache_ncached(t, ind);
  assert_true(before >= 20);
  /* Use only another size for many GC rounds. */
  for (int i = 0; i < 200000; i++) free(malloc(2000));
  assert_true(tcache_ncached(t, ind) < before / 2);
}

/* A bin the thread keeps emptying and filling grows until the whole batch
 * stays in the cache; one it stops using shrinks back; one that is only
 * freed into (a consumer) never grows. */
static void *consume_only(void *arg) {
  void **objs = arg;
  tsd_t *t = tsd_fetch();
  unsigned ind = sz_size2index(16);
  for (int i = 0; i < 1600; i++) free(objs[i]);
  assert_int_equal(tcache_ncached_max(t, ind), tcache_bin_cap0(ind));
  return NULL;
}

/* The end of the starting stacks, packed after the tsd_t (tcache.c): a
 * thread whose bins never grow touches nothing past it. */
static uint32_t packed_end(void) {
  uint32_t end = (uint32_t)sizeof(tsd_t);
  for (unsigned i = 0; i < tcache_nhbins; i++) end += tcache_bin_cap0(i) * 8;
  return end;
}

/* Every bin of a thread that has not grown has its stack among the
 * starting stacks, and they do not overlap. */
static void *check_layout(void *arg) {
  (void)arg;
  tsd_t *t = tsd_fetch();
  if (!tsd_nominal(t)) return NULL;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    if (tcache_base(t, i) + tcache_bin_cap0(i) * 8 > packed_end()) {
      fprintf(stderr, "bin %u's starting stack at %u ends past %u\n", i, tcache_base(t, i), packed_end());
      _exit(5);
    }
    if (i > 0 && tcache_base(t, i) < tcache_base(t, i - 1) + tcache_bin_cap0(i - 1) * 8) _exit(6);
  }
  return NULL;
}

static void test_starting_stacks_packed(void **state) {
  (void)state;
  tsd_park_flush(); /* a new tsd, not an adopted one */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, check_layout, NULL), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_bins_grow_and_shrink(void **state) {
  (void)state;
  tsd_t *t = tsd_fetch();
  unsigned ind = sz_size2index(16);
  if (!opt_tcache) {
    assert_int_equal(tcache_ncached_max(t, ind), 0);
    return;
  }
  uint32_t cap0 = tcache_bin_cap0(ind);
  assert_int_equal(tcache_ncached_max(t, ind), cap0);
  assert_true(tcache_bin_slots(ind) >= 1600);
  static void *p[1600];
  uint64_t nflush = 0;
  for (int round = 0; round < 8; round++) {
    nflush = t->nflush[ind];
    for (int i = 0; i < 1600; i++) assert_non_null(p[i] = malloc(16));
    for (int i = 0; i < 1600; i++) free(p[i]);
  }
  /* It grew, to no more than its slots, and the last round sent nothing
   * back to the arena; its stack moved to its room after the starting
   * stacks. */
  assert_true(tcache_base(t, ind) >= packed_end());
  assert_true(tcache_ncached_max(t, ind) >= 1600);
  assert_true(tcache_ncached_max(t, ind) <= tcache_bin_slots(ind));
  assert_true(t->nflush[ind] == nflush);
  assert_true(tcache_ncached(t, ind) >= 1600);
  validate_all();
  /* Growth is bounded per thread: the other tiny classes cannot all grow
   * as far. */
  assert_true(t->grown > 0 && t->grown <= TCACHE_GROW_BUDGET);
  static void *r[6][2048];
  for (int round = 0; round < 12; round++)
    for (int c = 0; c < 6; c++) {
      size_t size = 32 + 16 * (size_t)c;
      for (int i = 0; i < 2048; i++) assert_non_null(r[c][i] = malloc(size));
      for (int i = 0; i < 2048; i++) free(r[c][i]);
    }
  assert_true(t->grown <= TCACHE_GROW_BUDGET);
  size_t extra = 0;
  for (unsigned i = 0; i < SZ_NBINS; i++)
    extra += (size_t)(tcache_ncached_max(t, i) - tcache_bin_cap0(i)) * sz_index2size(i);
  assert_int_equal(extra, t->grown);
  validate_all();
  /* Unused: the GC gives it back, and the capacity returns to the start. */
  for (int i = 0; i < 400000; i++) free(malloc(2000));
  assert_int_equal(tcache_ncached_max(t, ind), cap0);
  assert_true(tcache_base(t, ind) < packed_end()); /* back in its starting stack */
  assert_true(tcache_ncached(t, ind) <= cap0);
  /* A thread that only frees into the bin keeps the starting capacity. */
  for (int i = 0; i < 1600; i++) assert_non_null(p[i] = malloc(16));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, consume_only, p), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  validate_all();
}

/* The free fast path's region-start test (tcache.h): exact for every
 * class the caches hold and every offset a page word can give (a small
 * run's offsets, a large run's first page). */
static void test_region_start_test(void **state) {
  (void)state;
  tsd_t *t = tsd_fetch();
  if (!tsd_nominal(t)) return;
  for (unsigned i = 0; i < SZ_NFAST; i++) {
    size_t size = sz_index2size(i);
    uint32_t magic = i < tcache_nhbins ? t->bins[i].magic : (i < SZ_NBINS ? sz_div_magic[i] : TCACHE_REGION_BOUND);
    uint32_t lim = i < SZ_NBINS ? sz_bin_info[i].run_pages << LG_PAGE : PAGE;
    for (uint32_t x = 0; x < lim; x++) {
      bool pass = (uint32_t)(x * magic) < TCACHE_REGION_BOUND;
      if (pass != (x % size == 0)) fail_msg("class %zu, offset %u: test says %d", size, x, pass);
    }
  }
}

static void dbl_free_cached(void *arg) {
  (void)arg;
  char *keep = malloc(224); /* keeps the run allocated when tcache is off */
  char *p = malloc(224);
  free(p);
  free(p);
  free(keep);
}
static void write_after_free(void *arg) {
  (void)arg;
  char *p = malloc(48);
  free(p);
  memset(p, 0x41, 48); /* clobbers the free tag */
  free(p);             /* not recognised as double free: pushed again */
  void *a = malloc(48);
  void *b = malloc(48); /* must not be p a second time */
  fprintf(stderr, "returned %p and %p\n", a, b);
}

static void test_tags(void **state) {
  (void)state;
  char err[1024];
  int st = xtest_run_child(dbl_free_cached, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "double free of 0x"));
  assert_non_null(strstr(err, "size class 224"));
  st = xtest_run_child(write_after_free, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_null(strstr(err, "returned"));
}

/* Pushes into bin i (tcache.h: ncached + nflush + npop - nfill). */
static uint64_t npush(const tsd_t *t, unsigned i) {
  return tcache_ncached(t, i) + t->nflush[i] + tcache_npop(t, i) - t->nfill[i];
}

/* The published call counts (what other threads read) are the sums of the
 * bins' published counts; a flush publishes its own bin, exactly, and no
 * other; a full publication all of them; nothing is counted twice. */
static void test_flush_publishes_its_bin(void **state) {
  (void)state;
  tsd_t *t = tsd_fetch();
  unsigned a = sz_size2index(48), b = sz_size2index(96);
  void *p[40], *q[40];
  for (int i = 0; i < 40; i++) {
    p[i] = malloc(48);
    q[i] = malloc(96);
  }
  for (int i = 0; i < 40; i++) {
    free(p[i]);
    free(q[i]);
  }
  if (!t->tcache_enabled) {
    /* No bin holds anything, every call is direct: nothing to publish. */
    uint64_t m = t->pub_nmalloc;
    tsd_publish_calls(t);
    assert_int_equal(t->pub_nmalloc, m);
    return;
  }
  uint64_t pop_b = t->pub_pop[b], push_b = t->pub_push[b];
  assert_true(tcache_npop(t, b) > pop_b); /* b's calls not published yet */
  tcache_flush_bin(t, a, 0);
  assert_int_equal(t->pub_pop[a], tcache_npop(t, a));
  assert_int_equal(t->pub_push[a], npush(t, a));
  assert_int_equal(t->pub_pop[b], pop_b); /* left alone */
  assert_int_equal(t->pub_push[b], push_b);
  uint64_t m = 0, f = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    m += t->pub_pop[i];
    f += t->pub_push[i];
  }
  assert_int_equal(t->pub_nmalloc, m);
  assert_int_equal(t->pub_nfree, f);
  /* Ten more calls of bin a: the sums move by exactly ten at its next
   * flush (a GC step's full publication meanwhile changes nothing of it). */
  tsd_publish_calls(t);
  uint64_t m1 = t->pub_nmalloc, f1 = t->pub_nfree;
  for (int i = 0; i < 10; i++) free(malloc(48));
  tcache_flush_bin(t, a, 0);
  assert_int_equal(t->pub_nmalloc, m1 + 10);
  assert_int_equal(t->pub_nfree, f1 + 10);
  /* A full flush publishes every bin. */
  for (int i = 0; i < 5; i++) free(malloc(96));
  tcache_flush_all(t);
  assert_int_equal(t->pub_pop[b], tcache_npop(t, b));
  assert_int_equal(t->pub_nmalloc, m1 + 15);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_thread_exit_returns_cache),
      cmocka_unit_test(test_cross_thread_and_arena_frees),
      cmocka_unit_test(test_threads_spread_over_arenas),
      cmocka_unit_test(test_gc_shrinks_unused_bins),
      cmocka_unit_test(test_starting_stacks_packed),
      cmocka_unit_test(test_bins_grow_and_shrink),
      cmocka_unit_test(test_tags),
      cmocka_unit_test(test_flush_publishes_its_bin),
      cmocka_unit_test(test_region_start_test),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
