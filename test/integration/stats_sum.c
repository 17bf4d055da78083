/*
 * One definition for every statistic: each total under stats.* equals the
 * merged figure of every arena (stats.arenas.<MALLCTL_ARENAS_ALL>.*),
 * which equals the sum of the per-arena figures, in one epoch. Freed huge
 * ranges are purged lazily at once and kept muzzy, so that muzzy, dirty
 * and retained memory all exist when the figures are compared (muzzy
 * bytes once counted as retained in the per-arena figures only).
 */
#include "xtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "xalloc/xalloc.h"

const char *malloc_conf = "dirty_decay_ms:0,muzzy_decay_ms:-1";

#define ALL 4096 /* MALLCTL_ARENAS_ALL */

static size_t rd_z(const char *name) {
  size_t v = 0, sz = sizeof(v);
  int err = mallctl(name, &v, &sz, NULL, 0);
  if (err != 0) fail_msg("mallctl(\"%s\") = %d", name, err);
  return v;
}

static size_t rd_arena_z(unsigned i, const char *leaf) {
  char name[96];
  snprintf(name, sizeof(name), "stats.arenas.%u.%s", i, leaf);
  return rd_z(name);
}

static void epoch(void) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  assert_int_equal(mallctl("epoch", &e, &sz, &e, sizeof(e)), 0);
}

/* Per-arena figures that add up over arenas (size_t valued). */
static const char *const summed[] = {"pactive", "pdirty", "pmuzzy", "mapped", "retained", "resident",
                                     "small.allocated", "large.allocated", "huge.allocated"};
#define NSUMMED (sizeof(summed) / sizeof(summed[0]))

static void *churn(void *arg) {
  (void)arg;
  void *p[64];
  for (int r = 0; r < 20; r++) {
    for (int i = 0; i < 64; i++) p[i] = malloc((size_t)(i * 997 % 20000) + 1);
    for (int i = 0; i < 64; i += 2) free(p[i]);
    for (int i = 1; i < 64; i += 2) free(p[i]);
  }
  return NULL;
}

static void check_figures(void) {
  epoch();
  size_t page = rd_z("arenas.page");
  unsigned narenas;
  size_t sz = sizeof(narenas);
  assert_int_equal(mallctl("arenas.narenas", &narenas, &sz, NULL, 0), 0);
  size_t all[NSUMMED], sum[NSUMMED] = {0};
  for (size_t k = 0; k < NSUMMED; k++) all[k] = rd_arena_z(ALL, summed[k]);
  for (unsigned i = 0; i < narenas; i++) {
    char name[64];
    size_t mib[4], miblen = 4;
    snprintf(name, sizeof(name), "stats.arenas.%u.pactive", i);
    if (mallctlnametomib(name, mib, &miblen) != 0) continue; /* no such arena */
    for (size_t k = 0; k < NSUMMED; k++) sum[k] += rd_arena_z(i, summed[k]);
  }
  for (size_t k = 0; k < NSUMMED; k++)
    if (all[k] != sum[k]) fail_msg("stats.arenas.<all>.%s = %zu, sum over arenas %zu", summed[k], all[k], sum[k]);
  /* The totals, from the same snapshot. */
  size_t allocated = rd_z("stats.allocated"), active = rd_z("stats.active"), dirty = rd_z("stats.dirty"),
         muzzy = rd_z("stats.muzzy"), retained = rd_z("stats.retained"), resident = rd_z("stats.resident"),
         metadata = rd_z("stats.metadata"), mapped = rd_z("stats.mapped");
  size_t a_small = rd_arena_z(ALL, "small.allocated"), a_large = rd_arena_z(ALL, "large.allocated"),
         a_huge = rd_arena_z(ALL, "huge.allocated");
  assert_int_equal(retained, rd_arena_z(ALL, "retained"));
  /* large.* is everything above the small classes (jemalloc's meaning),
   * huge.* the part of a chunk or more. */
  assert_int_equal(allocated, a_small + a_large);
  assert_true(a_huge <= a_large);
  assert_int_equal(active, rd_arena_z(ALL, "pactive") * page);
  assert_int_equal(dirty, rd_arena_z(ALL, "pdirty") * page);
  assert_int_equal(muzzy, rd_arena_z(ALL, "pmuzzy") * page);
  assert_int_equal(resident, rd_arena_z(ALL, "resident") + metadata);
  /* Mapped memory holds the arenas' reservations and the metadata. */
  assert_true(mapped >= rd_arena_z(ALL, "mapped") + metadata);
  assert_true(allocated <= active && active <= resident);
}

static void test_totals_equal_merged_arenas(void **state) {
  (void)state;
  /* Small, large and huge blocks live; huge ones freed (muzzy at once). */
  void *small[200], *large[16], *huge[4];
  for (int i = 0; i < 200; i++) small[i] = malloc((size_t)(i % 40) * 16 + 8);
  for (int i = 0; i < 16; i++) large[i] = malloc((size_t)(i + 5) * 4096);
  for (int i = 0; i < 4; i++) huge[i] = malloc((size_t)(i + 3) << 20);
  for (int i = 0; i < 4; i++) memset(huge[i], 1, (size_t)(i + 3) << 20);
  for (int i = 0; i < 4; i++) free(huge[i]);
  for (int i = 0; i < 16; i += 2) free(large[i]);
  /* An explicit arena with memory of its own. */
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  void *e = mallocx(3 << 20, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
  assert_non_null(e);
  memset(e, 2, 3 << 20);
  dallocx(e, MALLOCX_TCACHE_NONE);
  void *e2 = mallocx(5000, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
  assert_non_null(e2);
  check_figures();
  /* The setup really has muzzy memory (else retained could not differ). */
  epoch();
  assert_true(rd_arena_z(ALL, "pmuzzy") > 0);
  /* Other threads spread over more arenas. */
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, churn, NULL);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  check_figures();
  dallocx(e2, MALLOCX_TCACHE_NONE);
  for (int i = 0; i < 200; i++) free(small[i]);
  for (int i = 1; i < 16; i += 2) free(large[i]);
  check_figures();
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_totals_equal_merged_arenas)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
