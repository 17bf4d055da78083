/* The heap profiler's sampling and records (prof.h, sample.h): how often
 * objects are sampled, the page word that sends frees of a sample's page
 * to the slow path, in-place resizes, arena resets. Runs with the thread
 * cache on and off. */
#include "xtest.h"

#include <math.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/prof.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/sample.h"
#include "xalloc/xalloc.h"

const char *malloc_conf = "prof:true,lg_prof_sample:19";

static void set_lg_sample(size_t lg) {
  assert_int_equal(mallctl("prof.reset", NULL, NULL, &lg, sizeof(lg)), 0);
  /* A new rate takes effect at each thread's next countdown: restart this
   * thread's. */
  tsd_t *t = tsd_fetch();
  sample_tsd_init(t);
}

static uint64_t page_word(const void *p) {
  uint64_t *w = rtree_pw_grain((uintptr_t)p);
  assert_non_null(w);
  return w[((uintptr_t)p >> LG_PAGE) & (RTREE_PW_PER_GRAIN - 1)];
}

/* lg_prof_sample:0 samples (nearly) every allocation: a sampled small
 * object's page loses its word (frees there go to the slow path) until its
 * last sample is freed. */
static void test_page_word(void **state) {
  (void)state;
  set_lg_sample(0);
  /* A class nothing else uses here; each allocation alone in its page is
   * not guaranteed, so take a whole run's worth and look at the pages. */
  enum { N = 64 };
  void *p[N];
  size_t sampled = 0;
  for (int i = 0; i < N; i++) {
    p[i] = malloc(2900);
    if (prof_is_sample(p[i])) {
      sampled++;
      assert_int_equal(page_word(p[i]), 0);
    }
  }
  /* 1 - exp(-3072) is 1: every one (not a single one missed). */
  assert_int_equal(sampled, N);
  for (int i = 0; i < N; i++) {
    free(p[i]);
    assert_false(prof_is_sample(p[i]));
  }
  set_lg_sample(19);
  /* The pages' words are back: a new object there is freed on the fast
   * path (its page word names its bin). */
  void *q = malloc(2900);
  if (!prof_is_sample(q)) assert_int_not_equal(page_word(q), 0);
  free(q);
}

/* Samples per size class against the model: an object of usize bytes is
 * sampled with probability 1 - exp(-usize / 2^lg). */
static void test_rate_by_size(void **state) {
  (void)state;
  static const size_t sizes[] = {16, 48, 256, 1024, 3000, 12288, 40000, 300000};
  size_t lg = 14; /* 16 KiB */
  set_lg_sample(lg);
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    size_t usize = nallocx(sizes[s], 0);
    double prob = 1 - exp(-(double)usize / (double)(1 << lg));
    /* Enough allocations for about 4000 expected samples (at most 1e6),
     * freed in batches so that the caches are used. */
    size_t n = (size_t)(4000 / prob);
    if (n > 1000000) n = 1000000;
    if (n < 2000) n = 2000;
    double expect = prob * (double)n;
    size_t got = 0;
    enum { B = 500 };
    void *batch[B];
    for (size_t i = 0; i < n;) {
      size_t k = 0;
      for (; k < B && i < n; k++, i++) {
        batch[k] = malloc(sizes[s]);
        if (prof_is_sample(batch[k])) got++;
      }
      for (size_t j = 0; j < k; j++) free(batch[j]);
    }
    double sd = sqrt(expect * (1 - prob));
    print_message("usize %zu: %zu samples of %zu, model %.1f (sd %.1f)\n", usize, got, n, expect, sd);
    assert_true(fabs((double)got - expect) <= 5 * sd + 0.015 * expect);
  }
  set_lg_sample(19);
}

/* Every allocation is equally likely to be sampled whatever the program's
 * pattern: here one allocation in 256 comes from "site b", in a loop of
 * exactly 256 (the cache's batch length when not sampling). */
static void test_periodic_pattern(void **state) {
  (void)state;
  set_lg_sample(12);
  size_t a = 0, b = 0, na = 0, nb = 0;
  enum { ROUNDS = 4000, PER = 256 };
  void *p[PER];
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < PER; i++) {
      p[i] = malloc(64);
      bool s = prof_is_sample(p[i]);
      if (i == PER - 1) {
        nb++;
        b += s;
      } else {
        na++;
        a += s;
      }
    }
    for (int i = 0; i < PER; i++) free(p[i]);
  }
  double prob = 1 - exp(-64.0 / 4096.0);
  double eb = prob * (double)nb, ea = prob * (double)na;
  print_message("site a %zu samples (model %.1f), site b %zu (model %.1f)\n", a, ea, b, eb);
  assert_true(fabs((double)a - ea) <= 5 * sqrt(ea) + 0.015 * ea);
  assert_true(fabs((double)b - eb) <= 5 * sqrt(eb) + 2);
  set_lg_sample(19);
}

/* A sampled large block resized in place keeps its record, with the page
 * word the resize wrote saved (and 0 again in the page); its free gives
 * the right word back. */
static void test_resize_in_place(void **state) {
  (void)state;
  /* A fresh arena: the block starts its first chunk, free pages after it
   * (whatever the earlier tests and the library's own boot allocated). */
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  set_lg_sample(0);
  void *p = mallocx(20000, fl);
  assert_true(prof_is_sample(p));
  assert_int_equal(page_word(p), 0);
  void *q = rallocx(p, 28000, fl);
  assert_ptr_equal(q, p); /* in place in a fresh chunk's run */
  assert_true(prof_is_sample(p));
  assert_int_equal(page_word(p), 0);
  q = rallocx(p, 12288, fl);
  assert_non_null(q);
  assert_true(prof_is_sample(q)); /* in place, or moved and sampled again (every allocation is) */
  if (q == p) assert_int_equal(page_word(p), 0);
  free(q);
  assert_false(prof_is_sample(q));
  set_lg_sample(19);
  /* A new block at that address is not a sample and is freed normally. */
  void *r = mallocx(12288, fl);
  assert_false(prof_is_sample(r) && r == p && page_word(r) != 0);
  free(r);
  assert_true(arena_validate(arenas[ind]));
}

/* arena.<i>.reset frees an arena's allocations without free(): their
 * records go first. */
static void test_arena_reset(void **state) {
  (void)state;
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  set_lg_sample(0);
  uint64_t before = prof_nlive;
  void *p[100];
  for (int i = 0; i < 100; i++) p[i] = mallocx(100 + (size_t)i * 700, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
  assert_true(prof_nlive >= before + 100);
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.reset", ind);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  assert_true(prof_nlive <= before);
  for (int i = 0; i < 100; i++) assert_false(prof_is_sample(p[i]));
  set_lg_sample(19);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_page_word),       cmocka_unit_test(test_rate_by_size),
      cmocka_unit_test(test_periodic_pattern), cmocka_unit_test(test_resize_in_place),
      cmocka_unit_test(test_arena_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
