/*
 * Blocks above tcache_max (arena.h, arena_large; option narenas_large):
 * a thread of automatic arena i that asks for a block of a class no thread
 * cache holds, without naming an arena, gets it from arena i %
 * narenas_large. Checked here with six automatic arenas and two large
 * ones, for each automatic arena a thread can be bound to:
 *   - large blocks above tcache_max and huge blocks come from arena i % 2,
 *     through malloc, calloc, the aligned calls, realloc (moving) and
 *     mallocx without MALLOCX_ARENA;
 *   - small blocks and the large classes the caches hold (with the cache
 *     on or off) come from arena i itself;
 *   - MALLOCX_ARENA(i) and a thread bound to an explicit arena
 *     (arenas.create) get arena i, whatever the size;
 *   - opt.narenas_large reads 2; frees go back where the block came from
 *     (the arenas' large and huge bytes return to their starting values).
 */
#include "xtest.h"

#include <malloc.h>

#include "xalloc/internal/chunk.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"
#include "xchild.h"

const char *malloc_conf = "narenas:6,narenas_large:2";

/* The index of the arena ptr's block came from. */
static unsigned owner(const void *ptr) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  assert_true(meta != NULL);
  if (*meta == META_ARENA_CHUNK) return ((arena_chunk_t *)meta)->arena->ind;
  assert_true(*meta == META_HUGE);
  return ((arena_t *)((extent_node_t *)meta)->arena)->ind;
}

/* Bind the thread to arena ind, its cache emptied (what it holds came
 * from the arena before). */
static void bind_arena(unsigned ind) {
  assert_true(mallctl("thread.arena", NULL, NULL, &ind, sizeof(ind)) == 0);
  assert_true(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
}

static void test_option(void **state) {
  (void)state;
  unsigned n = 0;
  size_t sz = sizeof(n);
  assert_true(mallctl("opt.narenas_large", &n, &sz, NULL, 0) == 0 && n == 2);
  assert_true(mallctl("opt.narenas", &n, &sz, NULL, 0) == 0 && n == 6);
}

static void test_routed(void **state) {
  (void)state;
  size_t above = tcache_maxclass + 1, huge = 3 << 20;
  for (unsigned i = 0; i < 6; i++) {
    bind_arena(i);
    unsigned want = i % 2;
    size_t large0 = arena_stat(want, "large.allocated"), huge0 = arena_stat(want, "huge.allocated");
    void *p[8];
    p[0] = malloc(above);
    p[1] = malloc(huge);
    p[2] = calloc(1, 100000);
    assert_true(posix_memalign(&p[3], 8192, 200000) == 0);
    p[4] = aligned_alloc(4096, huge);
    p[5] = mallocx(above, 0);
    p[6] = mallocx(huge, MALLOCX_ZERO);
    p[7] = realloc(malloc(100), 300000); /* moves: a new large block */
    for (int k = 0; k < 8; k++) {
      assert_true(p[k] != NULL);
      if (owner(p[k]) != want) fprintf(stderr, "thread of arena %u, block %d: arena %u\n", i, k, owner(p[k]));
      assert_true(owner(p[k]) == want);
    }
    assert_true(arena_stat(want, "large.allocated") > large0 && arena_stat(want, "huge.allocated") > huge0);
    for (int k = 0; k < 8; k++) free(p[k]);
    assert_true(arena_stat(want, "large.allocated") == large0 && arena_stat(want, "huge.allocated") == huge0);
  }
}

static void test_not_routed(void **state) {
  (void)state;
  size_t cached = tcache_maxclass, huge = 3 << 20;
  for (unsigned i = 0; i < 6; i++) {
    bind_arena(i);
    /* Classes the caches hold, through the cache and around it. */
    void *a = malloc(64), *b = malloc(cached), *c = mallocx(cached, MALLOCX_TCACHE_NONE), *d = calloc(1, 8000);
    assert_true(owner(a) == i && owner(b) == i && owner(c) == i && owner(d) == i);
    free(a), free(b), dallocx(c, MALLOCX_TCACHE_NONE), free(d);
    /* Named arenas. */
    void *e = mallocx(cached + 1, MALLOCX_ARENA(i)), *f = mallocx(huge, MALLOCX_ARENA(i) | MALLOCX_TCACHE_NONE);
    assert_true(owner(e) == i && owner(f) == i);
    dallocx(e, 0), dallocx(f, 0);
  }
  /* A thread bound to an explicit arena. */
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_true(mallctl("arenas.create", &ind, &sz, NULL, 0) == 0 && ind >= 6);
  bind_arena(ind);
  void *g = malloc(cached + 1), *h = malloc(huge);
  assert_true(owner(g) == ind && owner(h) == ind);
  free(g), free(h);
  bind_arena(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_option),
      cmocka_unit_test(test_routed),
      cmocka_unit_test(test_not_routed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
