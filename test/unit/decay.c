/* decay: the smoothstep curve on synthetic time, 0 and -1; the reuse
 * window (decay_note, decay_removed, decay_idle). */
#include "xtest.h"

#include "xalloc/internal/decay.h"
#include "xalloc/internal/opts.h"

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

/* Pages freed and never asked for again: idle once they have been there
 * through a whole window (4 steps of 150 ms), not before. */
static void test_reuse_idle(void **state) {
  (void)state;
  opt_reuse_window_ms = 600;
  decay_t d;
  decay_init(&d, 10000, 0);
  size_t npages = 0;
  assert_int_equal(decay_idle(&d, 10 * MS, npages), 0);
  npages = 10000; /* freed at 10 ms */
  uint64_t t = 20;
  for (; t < 750; t += 10) assert_int_equal(decay_idle(&d, t * MS, npages), 0);
  /* The step [600, 750) ends at 750: [150, 750) held all of them. */
  assert_int_equal(decay_idle(&d, 750 * MS, npages), 10000);
  decay_removed(&d, 10000); /* the owner purged them */
  npages = 0;
  for (t = 760; t < 2000; t += 10) assert_int_equal(decay_idle(&d, t * MS, npages), 0);
}

/* A working set taken and given back every 50 ms stays; what is left
 * beside it, never taken, goes; purging that does not count as reuse. */
static void test_reuse_working_set(void **state) {
  (void)state;
  opt_reuse_window_ms = 600;
  decay_t d;
  decay_init(&d, 10000, 0);
  size_t npages = 10000, purged = 0;
  for (uint64_t t = 10; t < 3000; t += 10) {
    if (t % 50 == 0) {
      decay_note(&d, npages - 8000); /* 8000 taken... */
      /* ...and freed again right after */
    }
    size_t idle = decay_idle(&d, t * MS, npages);
    if (idle != 0) {
      assert_true(idle <= npages - 8000); /* never the working set */
      decay_removed(&d, idle);
      npages -= idle;
      purged += idle;
    }
  }
  assert_int_equal(purged, 2000);
  assert_int_equal(npages, 8000);
}

/* A program that stops and resumes: steps that passed with no call count
 * no more than the lowest since the last call. */
static void test_reuse_gap(void **state) {
  (void)state;
  opt_reuse_window_ms = 600;
  decay_t d;
  decay_init(&d, 10000, 0);
  assert_int_equal(decay_idle(&d, 1 * MS, 500), 0);
  assert_int_equal(decay_idle(&d, 200 * MS, 500), 0); /* a step with 500 begins */
  decay_note(&d, 100); /* 400 of them reused at some point */
  /* Five seconds later, with no call between: 100 stayed throughout, the
   * lowest since the step began (not 500: no step is assumed higher). */
  assert_int_equal(decay_idle(&d, 5000 * MS, 500), 100);
}

/* Off: reuse_window_ms 0, or a curve that never purges (-1); and the
 * curve purging at once (0) leaves nothing for it. */
static void test_reuse_off(void **state) {
  (void)state;
  decay_t d;
  opt_reuse_window_ms = 0;
  decay_init(&d, 10000, 0);
  for (uint64_t t = 0; t < 3000; t += 10) assert_int_equal(decay_idle(&d, t * MS, 10000), 0);
  assert_true(decay_ns_until_step(&d, 0) == UINT64_MAX);
  opt_reuse_window_ms = 600;
  decay_init(&d, -1, 0);
  for (uint64_t t = 0; t < 3000; t += 10) assert_int_equal(decay_idle(&d, t * MS, 10000), 0);
  decay_init(&d, 0, 0);
  assert_int_equal(decay_idle(&d, 3000 * MS, 10000), 0);
  decay_init(&d, 10000, 0);
  assert_true(decay_ns_until_step(&d, 100 * MS) == 50 * MS);
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
      cmocka_unit_test(test_reuse_idle),
      cmocka_unit_test(test_reuse_working_set),
      cmocka_unit_test(test_reuse_gap),
      cmocka_unit_test(test_reuse_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
