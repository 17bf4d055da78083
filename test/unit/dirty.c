/* dirty: the purge engine on a synthetic level -- items with pages of
 * both kinds (as runs) or of one (as ranges), taken oldest first within
 * the limits, with the right purge ops, counted as removed (not reuse) on
 * both curves, and the reuse window's idle pages purged for good. */
#include "xtest.h"

#include "xalloc/internal/chunk.h"
#include "xalloc/internal/dirty.h"
#include "xalloc/internal/opts.h"

#define MS ((uint64_t)1000000)

typedef struct {
  dirty_link_t dl, ml;
  size_t nd, nm;
  bool out;
  unsigned op;
} item_t;

typedef struct {
  dirty_t *d;
  item_t *taken[16];
  unsigned ntaken;
} level_t;

static void item_add(dirty_t *d, item_t *it, size_t nd, size_t nm) {
  it->nd = nd;
  it->nm = nm;
  it->out = false;
  dirty_add(d, DIRTY_D, &it->dl, nd);
  dirty_add(d, DIRTY_M, &it->ml, nm);
}

/* As the levels' take functions: off every list the item is on, queued. */
static void take(void *ctx, dirty_link_t *l, unsigned kind, unsigned op) {
  level_t *lv = ctx;
  item_t *it = kind == DIRTY_D ? rb_entry(l, item_t, dl) : rb_entry(l, item_t, ml);
  assert_false(it->out);
  dirty_del(lv->d, DIRTY_D, &it->dl, it->nd);
  dirty_del(lv->d, DIRTY_M, &it->ml, it->nm);
  it->out = true;
  it->op = op;
  assert_true(lv->ntaken < 16);
  lv->taken[lv->ntaken++] = it;
}

/* A step, and the batch back (settled) if it took anything: as the
 * levels do (a settle after nothing was taken would count pages freed
 * since the epoch began as old). */
static void step(dirty_t *d, uint64_t now, level_t *lv) {
  unsigned before = lv->ntaken;
  dirty_step(d, now, take, lv);
  if (lv->ntaken != before) dirty_settle(d);
}

static void test_collect_oldest_first_within_limits(void **state) {
  (void)state;
  dirty_t d;
  dirty_init(&d, 10000, 10000, 0);
  item_t a, b, c, m;
  item_add(&d, &a, 4, 0);
  item_add(&d, &b, 3, 2); /* a run with pages of both kinds */
  item_add(&d, &c, 5, 0);
  item_add(&d, &m, 0, 6); /* a muzzy range */
  assert_int_equal(d.npages[DIRTY_D], 12);
  assert_int_equal(d.npages[DIRTY_M], 8);
  level_t lv = {.d = &d};
  /* Keep at most 6 dirty and 6 muzzy pages, dirty ones lazily. */
  dirty_collect(&d, 6, 6, true, take, &lv);
  /* a (4) then b (3): 5 dirty left, within 6; c stays. b's muzzy pages
   * left with it: 6 muzzy, within the limit: m stays. */
  assert_int_equal(lv.ntaken, 2);
  assert_ptr_equal(lv.taken[0], &a);
  assert_ptr_equal(lv.taken[1], &b);
  assert_int_equal(a.op, CHUNK_PURGE_LAZY);
  assert_int_equal(b.op, CHUNK_PURGE_LAZY);
  assert_false(c.out || m.out);
  assert_int_equal(d.npages[DIRTY_D], 5);
  assert_int_equal(d.npages[DIRTY_M], 6);
  /* What left counts as removed on both curves (not as reuse). */
  assert_int_equal(d.decay[DIRTY_D].removed, 7);
  assert_int_equal(d.decay[DIRTY_M].removed, 2);
  /* Everything: the muzzy ones forced, and not lazy without lazy. */
  dirty_collect(&d, 0, 0, false, take, &lv);
  assert_int_equal(lv.ntaken, 4);
  assert_ptr_equal(lv.taken[2], &c);
  assert_ptr_equal(lv.taken[3], &m);
  assert_int_equal(c.op, CHUNK_PURGE_FORCED);
  assert_int_equal(m.op, CHUNK_PURGE_FORCED);
  assert_true(dirty_list_empty(&d, DIRTY_D) && dirty_list_empty(&d, DIRTY_M));
  assert_int_equal(d.npages[DIRTY_D] + d.npages[DIRTY_M], 0);
  assert_int_equal(dirty_ns_until(&d, 0), UINT64_MAX); /* nothing left to look at */
}

/* Pages freed and not asked for again within the reuse window go for
 * good (forced, even with a muzzy decay time); until then the curve keeps
 * them. The step time is what dirty_ns_until says. */
static void test_step_idle_pages_go_forced(void **state) {
  (void)state;
  ssize_t saved = opt_reuse_window_ms;
  opt_reuse_window_ms = 400; /* steps of 100 ms */
  dirty_t d;
  /* Curves of 1000 s: no epoch of theirs ends in this test. */
  dirty_init(&d, 1000000, 1000000, 0);
  item_t a, b;
  item_add(&d, &a, 10, 0);
  item_add(&d, &b, 10, 0);
  level_t lv = {.d = &d};
  uint64_t t = 0, next = dirty_ns_until(&d, t);
  assert_true(next > 0 && next <= 100 * MS);
  /* Within the first window nothing is idle. */
  for (t = 100 * MS; t <= 400 * MS; t += 100 * MS) {
    step(&d, t, &lv);
    assert_int_equal(lv.ntaken, 0);
  }
  /* A full window with all 20 pages unused: both go, oldest first, for
   * good. */
  for (; t <= 900 * MS && lv.ntaken == 0; t += 100 * MS) {
    step(&d, t, &lv);
  }
  assert_int_equal(lv.ntaken, 2);
  assert_ptr_equal(lv.taken[0], &a);
  assert_ptr_equal(lv.taken[1], &b);
  assert_int_equal(a.op, CHUNK_PURGE_FORCED);
  assert_int_equal(b.op, CHUNK_PURGE_FORCED);
  opt_reuse_window_ms = saved;
}

/* A working set that is taken and given back within each window stays:
 * the allocations' dirty_note keeps the low mark at the reuse. */
static void test_step_reused_pages_stay(void **state) {
  (void)state;
  ssize_t saved = opt_reuse_window_ms;
  opt_reuse_window_ms = 400;
  dirty_t d;
  dirty_init(&d, 1000000, 1000000, 0);
  item_t a;
  item_add(&d, &a, 10, 0);
  level_t lv = {.d = &d};
  for (uint64_t t = 50 * MS; t <= 2000 * MS && lv.ntaken == 0; t += 50 * MS) {
    /* taken by an allocation, freed again */
    dirty_del(&d, DIRTY_D, &a.dl, a.nd);
    dirty_note(&d);
    dirty_add(&d, DIRTY_D, &a.dl, a.nd);
    step(&d, t, &lv);
  }
  assert_int_equal(lv.ntaken, 0);
  assert_int_equal(d.npages[DIRTY_D], 10);
  opt_reuse_window_ms = saved;
}

/* Decay 0: everything goes at the next step; -1: nothing, ever. */
static void test_decay_times(void **state) {
  (void)state;
  dirty_t d;
  dirty_init(&d, 0, 0, 0);
  item_t a, b;
  item_add(&d, &a, 3, 0);
  item_add(&d, &b, 0, 4);
  level_t lv = {.d = &d};
  assert_int_equal(dirty_ns_until(&d, 0), 0);
  step(&d, 1, &lv);
  assert_int_equal(lv.ntaken, 2);
  assert_int_equal(a.op, CHUNK_PURGE_FORCED); /* muzzy decay 0: dirty -> clean directly */
  dirty_init(&d, -1, -1, 0);
  item_add(&d, &a, 3, 0);
  lv.ntaken = 0;
  assert_int_equal(dirty_ns_until(&d, 0), UINT64_MAX);
  step(&d, 100000 * MS, &lv);
  assert_int_equal(lv.ntaken, 0);
  /* A new decay time counts what is there as fully decayed. */
  dirty_set_decay(&d, DIRTY_D, 1000, 100000 * MS);
  assert_int_equal(dirty_decay_ms(&d, DIRTY_D), 1000);
  step(&d, 100000 * MS + 20 * MS, &lv);
  assert_int_equal(lv.ntaken, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_collect_oldest_first_within_limits),
      cmocka_unit_test(test_step_idle_pages_go_forced),
      cmocka_unit_test(test_step_reused_pages_stay),
      cmocka_unit_test(test_decay_times),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
