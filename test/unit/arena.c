/*
 * arena: runs, bins, small and large allocations on fresh arenas of the
 * test's own (arena_new(100 + k)); pointers are freed through the radix
 * tree like free() does.
 */
#include "xtest.h"

#include <errno.h>

#include "wrap.h"
#include "xalloc/internal/arena.h"
#include "xalloc/internal/rtree.h"

static size_t C;
static unsigned next_ind = 100;

static int setup(void **state) {
  (void)state;
  void *p = malloc(1); /* boots the library */
  if (p == NULL) return -1;
  free(p);
  C = sz_chunksize;
  return 0;
}

static arena_t *fresh(void) {
  arena_t *a = arena_new(next_ind++);
  assert_non_null(a);
  assert_true(arena_validate(a));
  return a;
}

static arena_chunk_t *chunk_of(const void *p) {
  arena_chunk_t *c = rtree_get((uintptr_t)p);
  assert_non_null(c);
  assert_int_equal(c->kind, META_ARENA_CHUNK);
  return c;
}

static void dalloc(arena_t *a, void *p) {
  arena_chunk_t *c = chunk_of(p);
  assert_ptr_equal(c->arena, a);
  arena_dalloc(c, p);
}

static arena_run_t *run_of(const void *p) {
  arena_chunk_t *c = chunk_of(p);
  return c->map[((uintptr_t)p - (uintptr_t)c->addr) >> LG_PAGE];
}

/* ---- random workload ---- */

typedef struct {
  unsigned char *p;
  size_t size;
  uint64_t tag;
} obj_t;

static void obj_fill(obj_t *o) {
  if (o->size <= SZ_SMALL_MAX) {
    memset(o->p, (int)(o->tag & 0xff), o->size);
    if (o->size >= 8) memcpy(o->p, &o->tag, 8);
  } else {
    for (size_t off = 0; off < o->size; off += PAGE) memcpy(o->p + off, &o->tag, 8);
    memcpy(o->p + o->size - 8, &o->tag, 8);
  }
}

static void obj_check(const obj_t *o) {
  uint64_t t;
  if (o->size <= SZ_SMALL_MAX) {
    size_t from = o->size >= 8 ? 8 : 0;
    if (o->size >= 8) {
      memcpy(&t, o->p, 8);
      assert_int_equal(t, o->tag);
    }
    for (size_t i = from; i < o->size; i++) assert_int_equal(o->p[i], (unsigned char)(o->tag & 0xff));
  } else {
    for (size_t off = 0; off < o->size; off += PAGE) {
      memcpy(&t, o->p + off, 8);
      assert_int_equal(t, o->tag);
    }
    memcpy(&t, o->p + o->size - 8, 8);
    assert_int_equal(t, o->tag);
  }
}

static void check_zero(const unsigned char *p, size_t size) {
  static const unsigned char zero[4096];
  for (size_t off = 0; off < size; off += sizeof(zero)) {
    size_t n = size - off < sizeof(zero) ? size - off : sizeof(zero);
    assert_int_equal(memcmp(p + off, zero, n), 0);
  }
}

static int obj_cmp(const void *x, const void *y) {
  const obj_t *a = x, *b = y;
  return a->p < b->p ? -1 : a->p > b->p;
}

#define MAXOBJ 3000
static obj_t objs[MAXOBJ], sorted[MAXOBJ];

static void check_live(arena_t *a, size_t n) {
  assert_true(arena_validate(a));
  memcpy(sorted, objs, n * sizeof(obj_t));
  qsort(sorted, n, sizeof(obj_t), obj_cmp);
  size_t active = 0;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) assert_true(sorted[i - 1].p + sorted[i - 1].size <= sorted[i].p);
    obj_check(&sorted[i]);
    arena_chunk_t *c = chunk_of(sorted[i].p);
    assert_ptr_equal(c->arena, a);
    assert_int_equal(arena_salloc(c, sorted[i].p), sorted[i].size);
    if (sorted[i].size > SZ_SMALL_MAX) active += sorted[i].size;
  }
  assert_int_equal(a->stats.allocated_large, active);
}

static size_t random_large(uint64_t *seed) {
  size_t s = SZ_SMALL_MAX + 1 + (size_t)(xtest_rand(seed) % (xtest_rand(seed) % 4 == 0 ? sz_large_max - SZ_SMALL_MAX : 200000));
  return sz_s2u(s);
}

static void test_random_workload(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 6; s++) {
    uint64_t seed = s * 0x9E3779B97F4A7C15ULL;
    arena_t *a = fresh();
    size_t n = 0;
    for (int op = 0; op < 6000; op++) {
      bool alloc = n == 0 || (n < MAXOBJ && xtest_rand(&seed) % 100 < (op % 2000 < 1200 ? 65 : 35));
      if (alloc) {
        obj_t *o = &objs[n];
        bool zero = xtest_rand(&seed) % 4 == 0;
        if (xtest_rand(&seed) % 10 < 8) {
          unsigned bin = (unsigned)(xtest_rand(&seed) % SZ_NBINS);
          if (xtest_rand(&seed) % 2) bin %= 12; /* favour small classes */
          o->p = arena_malloc_small(a, bin, zero);
          o->size = sz_bin_info[bin].reg_size;
          assert_non_null(o->p);
          assert_int_equal(((uintptr_t)o->p - (uintptr_t)run_of(o->p)->chunk->addr -
                            ((size_t)run_of(o->p)->pageind << LG_PAGE)) % o->size, 0);
        } else {
          size_t usize = random_large(&seed);
          size_t align = PAGE << (xtest_rand(&seed) % 9); /* up to 1 MiB */
          while (usize + align - PAGE > C) align >>= 1;
          o->p = arena_malloc_large(a, usize, align, zero);
          o->size = usize;
          assert_non_null(o->p);
          assert_int_equal((uintptr_t)o->p % align, 0);
        }
        if (zero) check_zero(o->p, o->size);
        o->tag = xtest_rand(&seed) | 1;
        obj_fill(o);
        n++;
      } else {
        size_t i = (size_t)(xtest_rand(&seed) % n);
        obj_check(&objs[i]);
        dalloc(a, objs[i].p);
        objs[i] = objs[--n];
      }
      if (op % 500 == 499) check_live(a, n);
    }
    check_live(a, n);
    while (n > 0) {
      obj_check(&objs[n - 1]);
      dalloc(a, objs[--n].p);
    }
    /* Everything free: no active page, no region, at most the spare chunk. */
    assert_true(arena_validate(a));
    assert_int_equal(a->nactive, 0);
    assert_true(a->nchunks <= 1);
    for (unsigned b = 0; b < SZ_NBINS; b++) {
      assert_int_equal(a->bins[b].stats.curregs, 0);
      assert_int_equal(a->bins[b].stats.curruns, 0);
    }
    assert_int_equal(a->stats.allocated_large, 0);
    arena_purge_all(a);
    assert_int_equal(a->dirty.npages[DIRTY_D], 0);
    assert_int_equal(chunk_dirty_bytes(&a->chunks), 0);
    assert_true(arena_validate(a));
  }
}

/* ---- small runs ---- */

static void test_small_runs(void **state) {
  (void)state;
  static const unsigned bins[] = {0, 1, 5, 13, 20, 27, 35};
  for (size_t k = 0; k < sizeof(bins) / sizeof(bins[0]); k++) {
    arena_t *a = fresh();
    unsigned b = bins[k];
    const sz_bin_info_t *info = &sz_bin_info[b];
    size_t nregs = info->nregs;
    static void *r1[PAGE], *r2[PAGE];
    /* One run's worth: consecutive regions of one run, lowest first. */
    for (size_t i = 0; i < nregs; i++) {
      r1[i] = arena_malloc_small(a, b, false);
      assert_non_null(r1[i]);
      assert_ptr_equal(run_of(r1[i]), run_of(r1[0]));
      assert_ptr_equal((char *)r1[i], (char *)r1[0] + i * info->reg_size);
      assert_int_equal(arena_salloc(chunk_of(r1[i]), r1[i]), info->reg_size);
    }
    arena_run_t *run1 = run_of(r1[0]);
    assert_int_equal(run1->state, RUN_SMALL);
    assert_int_equal(run1->npages, info->run_pages);
    assert_int_equal(run1->nfree, 0);
    assert_int_equal(a->bins[b].stats.curruns, 1);
    assert_int_equal(a->nactive, info->run_pages);
    /* The next region opens a second run. */
    r2[0] = arena_malloc_small(a, b, false);
    arena_run_t *run2 = run_of(r2[0]);
    assert_ptr_not_equal(run2, run1);
    assert_int_equal(a->bins[b].stats.curruns, 2);
    assert_true(arena_validate(a));
    /* A freed region of the full (lower) run is reused first. */
    size_t j = nregs / 2;
    dalloc(a, r1[j]);
    assert_int_equal(run1->nfree, 1);
    assert_true(arena_validate(a));
    void *again = arena_malloc_small(a, b, false);
    if ((char *)run1->chunk->addr + ((size_t)run1->pageind << LG_PAGE) < (char *)r2[0])
      assert_ptr_equal(again, r1[j]);
    else
      assert_ptr_equal(run_of(again), run2);
    if (again != r1[j]) dalloc(a, again);
    else r1[j] = again;
    /* Emptying the first run gives its pages back to the arena. */
    size_t active = a->nactive;
    uint32_t pageind = run1->pageind;
    arena_chunk_t *chunk = run1->chunk;
    for (size_t i = 0; i < nregs; i++)
      if (again == r1[j] || i != j) dalloc(a, r1[i]);
    assert_int_equal(a->nactive, active - info->run_pages);
    assert_int_equal(a->bins[b].stats.curruns, 1);
    arena_run_t *fr = chunk->map[pageind];
    assert_non_null(fr);
    assert_int_equal(fr->state, RUN_FREE);
    assert_true(arena_validate(a));
    /* Its pages are used again, no new chunk needed. */
    size_t nchunks = a->nchunks;
    for (size_t i = 0; i < nregs; i++) r1[i] = arena_malloc_small(a, b, false);
    assert_int_equal(a->nchunks, nchunks);
    assert_true(arena_validate(a));
    for (size_t i = 0; i < nregs; i++) dalloc(a, r1[i]);
    dalloc(a, r2[0]);
    assert_int_equal(a->nactive, 0);
    assert_true(arena_validate(a));
  }
}

/* ---- spare chunk ---- */

static bool in_chunk_trees(arena_t *a, const char *addr) {
  for (rb_node_t *r = rb_first(&a->chunks.ad); r != NULL; r = rb_next(r)) {
    extent_node_t *n = rb_entry(r, extent_node_t, ad);
    if (n->addr <= addr && addr + C <= n->addr + n->size) return true;
  }
  return false;
}

static void test_spare_chunk(void **state) {
  (void)state;
  arena_t *a = fresh();
  size_t big = sz_large_max; /* one per chunk */
  char *p = arena_malloc_large(a, big, PAGE, false);
  char *q = arena_malloc_large(a, big, PAGE, false);
  assert_non_null(p);
  assert_non_null(q);
  arena_chunk_t *cp = chunk_of(p), *cq = chunk_of(q);
  assert_ptr_not_equal(cp, cq);
  char *cp_addr = cp->addr, *cq_addr = cq->addr;
  assert_int_equal(a->nchunks, 2);
  memset(p, 0xAA, big);
  memset(q, 0xBB, big);
  /* p's chunk wholly free: it becomes the spare, still an arena chunk. */
  dalloc(a, p);
  assert_ptr_equal(a->spare, cp);
  assert_int_equal(a->nchunks, 2);
  assert_ptr_equal(rtree_get((uintptr_t)cp_addr), cp);
  assert_false(in_chunk_trees(a, cp_addr));
  assert_true(arena_validate(a));
  /* q's chunk too: it is the new spare, the old one goes back. */
  dalloc(a, q);
  assert_ptr_equal(a->spare, cq);
  assert_int_equal(a->nchunks, 1);
  assert_null(rtree_get((uintptr_t)cp_addr));
  assert_true(in_chunk_trees(a, cp_addr));
  assert_false(in_chunk_trees(a, cq_addr));
  assert_true(arena_validate(a));
  /* The spare serves the next allocation, the trees the one after. */
  unsigned long maps = wrap_nmmap;
  char *r = arena_malloc_large(a, big, PAGE, true);
  assert_ptr_equal(chunk_of(r)->addr, cq_addr);
  assert_null(a->spare);
  check_zero((unsigned char *)r, big);
  char *s = arena_malloc_large(a, big, PAGE, true);
  assert_ptr_equal(chunk_of(s)->addr, cp_addr);
  check_zero((unsigned char *)s, big);
  assert_false(in_chunk_trees(a, cp_addr));
  assert_true(wrap_nmmap - maps <= 1); /* no new chunk memory */
  assert_true(arena_validate(a));
  dalloc(a, r);
  dalloc(a, s);
  assert_true(arena_validate(a));
  assert_int_equal(a->nchunks, 1);
}

/* A chunk whose purge failed is not clean: when it goes back to the chunk
 * trees and is handed out again, zero=true must still give zeros. */
static void test_failed_purge_then_zero(void **state) {
  (void)state;
  arena_t *a = fresh();
  size_t big = sz_large_max;
  char *p = arena_malloc_large(a, big, PAGE, false);
  char *q = arena_malloc_large(a, big, PAGE, false);
  memset(p, 0xAA, big);
  memset(q, 0xBB, big);
  char *cp_addr = chunk_of(p)->addr;
  /* Free p with every madvise failing: p's chunk becomes the spare and the
   * purge of its dirty pages fails. */
  wrap_fail_madvise = 1000;
  dalloc(a, p);
  wrap_reset();
  assert_true(arena_validate(a));
  /* Freeing q sends p's chunk back to the chunk trees. */
  dalloc(a, q);
  assert_true(in_chunk_trees(a, cp_addr));
  assert_true(arena_validate(a));
  /* Allocate both chunks again, asking for zeroed memory. */
  char *r = arena_malloc_large(a, big, PAGE, true);
  char *s = arena_malloc_large(a, big, PAGE, true);
  assert_non_null(r);
  assert_non_null(s);
  char *x = chunk_of(r)->addr == cp_addr ? r : s;
  assert_ptr_equal(chunk_of(x)->addr, cp_addr);
  for (size_t off = 0; off < big; off += 4096)
    if (x[off] != 0) {
      fprintf(stderr, "zero=true allocation in a chunk whose purge failed holds old data (0x%02x at +%zu)\n",
              (unsigned char)x[off], off);
      break;
    }
  check_zero((unsigned char *)r, big);
  check_zero((unsigned char *)s, big);
  dalloc(a, r);
  dalloc(a, s);
}

/* ---- large: alignment, in-place resizing ---- */

static void test_large_aligned(void **state) {
  (void)state;
  arena_t *a = fresh();
  static void *ptrs[200];
  static size_t sizes[200];
  size_t n = 0;
  for (size_t align = PAGE; align <= ((size_t)1 << 20); align <<= 1) {
    for (unsigned i = SZ_NBINS; i < sz_nlarge_end && n < 200; i += 3) {
      size_t usize = sz_index2size(i);
      if (usize + align - PAGE > C) break;
      void *p = arena_malloc_large(a, usize, align, false);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p % align, 0);
      assert_int_equal(arena_salloc(chunk_of(p), p), usize);
      memset(p, (int)n, PAGE);
      ptrs[n] = p;
      sizes[n++] = usize;
    }
    assert_true(arena_validate(a));
    /* Free every other one to make the placement work around holes. */
    for (size_t i = 0; i < n; i += 2) {
      if (ptrs[i] == NULL) continue;
      assert_int_equal(((unsigned char *)ptrs[i])[0], (unsigned char)i);
      dalloc(a, ptrs[i]);
      ptrs[i] = NULL;
    }
    assert_true(arena_validate(a));
  }
  for (size_t i = 0; i < n; i++) {
    if (ptrs[i] == NULL) continue;
    for (size_t j = i + 1; j < n; j++)
      if (ptrs[j] != NULL)
        assert_true((char *)ptrs[i] + sizes[i] <= (char *)ptrs[j] || (char *)ptrs[j] + sizes[j] <= (char *)ptrs[i]);
    dalloc(a, ptrs[i]);
  }
  assert_int_equal(a->nactive, 0);
  assert_true(arena_validate(a));
}

static void test_ralloc_in_place(void **state) {
  (void)state;
  arena_t *a = fresh();
  size_t P = PAGE;
  unsigned char *p = arena_malloc_large(a, 8 * P, PAGE, false);
  unsigned char *q = arena_malloc_large(a, 24 * P, PAGE, false);
  assert_ptr_equal(q, p + 8 * P); /* fresh chunk: consecutive */
  unsigned char *g = arena_malloc_large(a, 4 * P, PAGE, false); /* guard after q */
  assert_ptr_equal(g, q + 24 * P);
  arena_chunk_t *c = chunk_of(p);
  for (size_t i = 0; i < 8 * P; i++) p[i] = (unsigned char)(i * 7);
  memset(q, 0xFF, 24 * P);
  /* Neighbour allocated: cannot grow. */
  size_t al = a->stats.allocated_large, act = a->nactive;
  assert_true(arena_ralloc_large_in_place(c, p, 8 * P, 16 * P, false));
  assert_int_equal(arena_salloc(c, p), 8 * P);
  assert_int_equal(a->stats.allocated_large, al);
  assert_int_equal(a->nactive, act);
  /* Wrong old size or not a large allocation: refused. */
  assert_true(arena_ralloc_large_in_place(c, p, 4 * P, 16 * P, false));
  assert_true(arena_ralloc_large_in_place(c, p + P, 7 * P, 8 * P, false));
  dalloc(a, q); /* 24 dirty pages after p */
  assert_true(arena_validate(a));
  /* Grow into them, zeroed. */
  assert_false(arena_ralloc_large_in_place(c, p, 8 * P, 16 * P, true));
  assert_int_equal(arena_salloc(c, p), 16 * P);
  for (size_t i = 0; i < 8 * P; i++) assert_int_equal(p[i], (unsigned char)(i * 7));
  check_zero(p + 8 * P, 8 * P);
  assert_int_equal(a->stats.allocated_large, al - 24 * P + 8 * P);
  assert_int_equal(a->nactive, act - 24 * P / P + 8);
  assert_true(arena_validate(a));
  /* Grow to exactly fill the gap. */
  assert_false(arena_ralloc_large_in_place(c, p, 16 * P, 32 * P, false));
  assert_int_equal(arena_salloc(c, p), 32 * P);
  assert_true(arena_validate(a));
  /* Too much: the guard is in the way. */
  assert_true(arena_ralloc_large_in_place(c, p, 32 * P, 40 * P, false));
  assert_int_equal(arena_salloc(c, p), 32 * P);
  /* Same size: fine. */
  assert_false(arena_ralloc_large_in_place(c, p, 32 * P, 32 * P, false));
  /* Shrink: the tail is free again and can be allocated. */
  memset(p, 0x5C, 32 * P);
  assert_false(arena_ralloc_large_in_place(c, p, 32 * P, 5 * P, false));
  assert_int_equal(arena_salloc(c, p), 5 * P);
  arena_run_t *tail = c->map[(((uintptr_t)p - (uintptr_t)c->addr) >> LG_PAGE) + 5];
  assert_non_null(tail);
  assert_int_equal(tail->state, RUN_FREE);
  assert_int_equal(tail->npages, 27);
  assert_true(arena_validate(a));
  unsigned char *t = arena_malloc_large(a, 27 * P, PAGE, false);
  assert_ptr_equal(t, p + 5 * P); /* the only free run of that size below the rest of the chunk */
  for (size_t i = 0; i < 5 * P; i++) assert_int_equal(p[i], 0x5C);
  dalloc(a, t);
  dalloc(a, p);
  dalloc(a, g);
  assert_int_equal(a->nactive, 0);
  assert_int_equal(a->stats.allocated_large, 0);
  assert_true(arena_validate(a));
}

/* ---- bad frees, in a child ---- */

static arena_t *child_arena;

static void double_free_small(void *arg) {
  (void)arg;
  void *p = arena_malloc_small(child_arena, 11, false); /* 224 bytes */
  void *keep = arena_malloc_small(child_arena, 11, false);
  (void)keep;
  dalloc(child_arena, p);
  dalloc(child_arena, p);
}

static void interior_free_large(void *arg) {
  (void)arg;
  char *p = arena_malloc_large(child_arena, 5 * PAGE, PAGE, false);
  dalloc(child_arena, p + PAGE);
}

static void free_of_free_pages(void *arg) {
  (void)arg;
  char *p = arena_malloc_large(child_arena, 5 * PAGE, PAGE, false);
  char *keep = arena_malloc_small(child_arena, 0, false);
  (void)keep;
  dalloc(child_arena, p);
  dalloc(child_arena, p);
}

static void test_bad_frees(void **state) {
  (void)state;
  child_arena = fresh();
  assert_int_equal(sz_bin_info[11].reg_size, 224);
  char err[1024];
  int st = xtest_run_child(double_free_small, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "double free"));
  char want[64];
  snprintf(want, sizeof(want), "(size class 224, arena %u)", child_arena->ind);
  assert_non_null(strstr(err, want));
  st = xtest_run_child(interior_free_large, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "invalid free"));
  st = xtest_run_child(free_of_free_pages, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "xalloc: "));
  /* The parent's arena is untouched. */
  assert_true(arena_validate(child_arena));
  assert_int_equal(child_arena->nactive, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_workload), cmocka_unit_test(test_small_runs),
      cmocka_unit_test(test_spare_chunk),     cmocka_unit_test(test_failed_purge_then_zero),
      cmocka_unit_test(test_large_aligned),   cmocka_unit_test(test_ralloc_in_place),
      cmocka_unit_test(test_bad_frees),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
