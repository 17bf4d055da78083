/* decay: the smoothstep curve on synthetic time, 0 and -1. */
#include "xtest.h"

#include "xalloc/internal/decay.h"

#define MS ((uint64_t)1000000)

static void test_curve_is_smooth(void **state) {
  (void)state;
  decay_t d;
  decay_init(&d, 640, 0); /* 64 epochs of 10 ms */
  size_t limit = 0;
  /* 10000 pages freed during the first epoch. */
  assert_false(decay_advance(&d, 5 * MS, 10000, &limit)); /* epoch not over: nothing to do */
  assert_true(decay_advance(&d, 10 * MS, 10000, &limit));
  assert_int_equal(limit, 10000); /* newest epoch: all kept */
  size_t prev = limit, npages = 10000;
  for (uint64_t t = 20; t <= 700; t += 10) {
    assert_true(decay_advance(&d, t * MS, npages, &limit));
    assert_true(limit <= prev); /* never more than before */
    if (t == 330) {             /* half way: smoothstep(0.5) = 0.5 */
      assert_true(limit > 4000 && limit < 6000);
    }
    if (t == 100) assert_true(limit > 9000); /* gradual start, no cliff */
    if (t == 600) assert_true(limit < 1000 && limit > 0);
    prev = limit;
    npages = limit; /* the caller purged down to the limit */
    decay_purged(&d, npages);
  }
  assert_int_equal(limit, 0); /* all gone after the decay time */
}

static void test_zero_and_never(void **state) {
  (void)state;
  decay_t d;
  size_t limit = 1;
  decay_init(&d, 0, 0);
  assert_true(decay_advance(&d, 0, 5, &limit));
  assert_int_equal(limit, 0);
  assert_false(decay_advance(&d, 0, 0, &limit)); /* nothing to purge */
  decay_init(&d, -1, 0);
  assert_false(decay_advance(&d, (uint64_t)1 << 62, 5, &limit));
  assert_int_equal(decay_ns_until_epoch(&d, 0), UINT64_MAX);
}

static void test_h_table(void **state) {
  (void)state;
  assert_int_equal(decay_h(DECAY_NSTEPS - 1), (uint64_t)1 << DECAY_H_SHIFT);
  for (unsigned i = 1; i < DECAY_NSTEPS; i++) assert_true(decay_h(i) > decay_h(i - 1));
  assert_true(decay_h(0) < ((uint64_t)1 << DECAY_H_SHIFT) / 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_curve_is_smooth),
      cmocka_unit_test(test_zero_and_never),
      cmocka_unit_test(test_h_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
