/*
 * chunk: per-arena chunk trees on chunk_arena_t's of the test's own (the
 * ranges are never registered in the radix tree, so the library never
 * sees them): alignment, best fit, coalescing, geometric reservations,
 * purging, and failures of mmap.
 */
#include "xtest.h"

#include <errno.h>
#include <sys/mman.h>

#include "wrap.h"
#include "xalloc/internal/chunk.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/sz.h"

static size_t C; /* chunk size */

static int setup(void **state) {
  (void)state;
  void *p = malloc(1); /* boots the library */
  if (p == NULL) return -1;
  free(p);
  C = sz_chunksize;
  return C == 0 ? -1 : 0;
}

#define FOR_EACH_FREE(ca, n) \
  for (rb_node_t *r_ = rb_first(&(ca)->ad); r_ != NULL && ((n) = rb_entry(r_, extent_node_t, ad)); r_ = rb_next(r_))

static const extent_node_t *free_node_containing(chunk_arena_t *ca, const char *a, size_t size) {
  extent_node_t *n;
  FOR_EACH_FREE(ca, n) {
    if (n->addr <= a && a + size <= n->addr + n->size) return n;
  }
  return NULL;
}

static bool overlaps_free(chunk_arena_t *ca, const char *a, size_t size) {
  extent_node_t *n;
  FOR_EACH_FREE(ca, n) {
    if (n->addr < a + size && a < n->addr + n->size) return true;
  }
  return false;
}

/* Best fit by hand: smallest free range that holds size at alignment,
 * lowest address among equals. NULL if none. */
/* Best fit (smallest, then lowest address) among the dirty ranges, else
 * the muzzy ones, else the clean ones. */
static char *expected_fit(chunk_arena_t *ca, size_t size, size_t align) {
  for (int k = 0; k < 3; k++) {
    const extent_node_t *best = NULL;
    char *best_addr = NULL;
    extent_node_t *n;
    FOR_EACH_FREE(ca, n) {
      if (k == 0 ? !n->dirty : k == 1 ? !n->muzzy : n->dirty || n->muzzy) continue;
      char *a = (char *)ALIGNMENT_CEILING((uintptr_t)n->addr, align);
      if (a + size > n->addr + n->size) continue;
      if (best == NULL || n->size < best->size || (n->size == best->size && n->addr < best->addr)) {
        best = n;
        best_addr = a;
      }
    }
    if (best != NULL) return best_addr;
  }
  return NULL;
}

/* No page of a clean free range is resident (clean = purged or never
 * touched). */
static void check_clean_not_resident(chunk_arena_t *ca) {
  static unsigned char vec[1 << 16];
  extent_node_t *n;
  FOR_EACH_FREE(ca, n) {
    if (n->dirty) continue;
    for (size_t off = 0; off < n->size; off += sizeof(vec) * PAGE) {
      size_t len = n->size - off < sizeof(vec) * PAGE ? n->size - off : sizeof(vec) * PAGE;
      assert_int_equal(mincore(n->addr + off, len, vec), 0);
      for (size_t i = 0; i < len / PAGE; i++) {
        if (vec[i] & 1) fprintf(stderr, "clean free range %p+%zu: page %zu resident\n", (void *)n->addr, n->size, off / PAGE + i);
        assert_int_equal(vec[i] & 1, 0);
      }
    }
  }
}

typedef struct {
  char *addr;
  size_t size;
  bool touched; /* pages may be resident */
  unsigned char pat;
  bool filled;
} alloc_t;

static int alloc_cmp(const void *a, const void *b) {
  const alloc_t *x = a, *y = b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Everything the trees and the live set must agree on. */
static void check_state(chunk_arena_t *ca, alloc_t *live, size_t nlive, bool deep) {
  assert_true(chunk_validate(ca));
  size_t allocated = 0;
  for (size_t i = 0; i < nlive; i++) allocated += live[i].size;
  /* Every reserved byte is either free or handed out. */
  assert_int_equal(ca->free_bytes + allocated, ca->reserved);
  /* Coalesced: free ranges never overlap, and two that touch differ in
   * state (a clean range reads as zero; merging it into a dirty one would
   * lose that); chunk aligned. */
  const extent_node_t *prev = NULL;
  extent_node_t *n;
  size_t nfree = 0;
  FOR_EACH_FREE(ca, n) {
    assert_int_equal((uintptr_t)n->addr % C, 0);
    assert_int_equal(n->size % C, 0);
    if (prev != NULL) {
      assert_true(prev->addr + prev->size <= n->addr);
      if (prev->addr + prev->size == n->addr) assert_true(prev->dirty != n->dirty);
    }
    prev = n;
    nfree++;
  }
  assert_int_equal(nfree, ca->ad.n);
  /* Live ranges: pairwise disjoint, none in the free trees. */
  alloc_t sorted[256];
  assert_true(nlive <= 256);
  memcpy(sorted, live, nlive * sizeof(alloc_t));
  qsort(sorted, nlive, sizeof(alloc_t), alloc_cmp);
  for (size_t i = 0; i < nlive; i++) {
    if (i > 0) assert_true(sorted[i - 1].addr + sorted[i - 1].size <= sorted[i].addr);
    if (deep) assert_false(overlaps_free(ca, sorted[i].addr, sorted[i].size));
  }
  if (deep) check_clean_not_resident(ca);
}

static void fill(alloc_t *a) {
  memset(a->addr, a->pat, PAGE);
  memset(a->addr + a->size - PAGE, a->pat, PAGE);
  a->touched = true;
  a->filled = true;
}

static void check_fill(const alloc_t *a) {
  for (size_t i = 0; i < PAGE; i += 8) {
    assert_int_equal((unsigned char)a->addr[i], a->pat);
    assert_int_equal((unsigned char)a->addr[a->size - PAGE + i], a->pat);
  }
}

/* A zeroed range must read as zero: first and last byte of every page. */
static void check_zero(const alloc_t *a) {
  for (size_t off = 0; off < a->size; off += PAGE) {
    assert_int_equal(a->addr[off], 0);
    assert_int_equal(a->addr[off + PAGE - 1], 0);
  }
}

static chunk_arena_t arena_store;

static void log_clear_chunk(void) { memset(wrap_mmap_log, 0, sizeof(wrap_mmap_log)); }

static chunk_arena_t *fresh_arena(void) {
  chunk_arena_init(&arena_store);
  assert_true(chunk_validate(&arena_store));
  assert_int_equal(arena_store.reserved, 0);
  return &arena_store;
}

static void test_random(void **state) {
  (void)state;
  static alloc_t live[256];
  for (uint64_t s = 1; s <= 8; s++) {
    uint64_t seed = s * 0x2545F4914F6CDD1DULL + 11;
    chunk_arena_t *ca = fresh_arena();
    size_t nlive = 0;
    for (int op = 0; op < 400; op++) {
      bool do_alloc = nlive == 0 || (nlive < 40 && xtest_rand(&seed) % 100 < 55);
      if (do_alloc) {
        size_t size = C * (1 + (size_t)(xtest_rand(&seed) % 6));
        unsigned lga = (unsigned)(xtest_rand(&seed) % 8); /* C .. 128 C */
        size_t align = C << (lga < 5 ? 0 : lga - 4);      /* mostly C */
        if (align > ((size_t)64 << 20)) align = (size_t)64 << 20;
        if (align < C) align = C;
        char *want = expected_fit(ca, size, align);
        size_t reserved = ca->reserved, dirty = chunk_dirty_bytes(ca);
        bool zeroed;
        char *p = chunk_alloc(ca, size, align, &zeroed);
        assert_non_null(p);
        /* Allocating never makes free memory dirty (new reservations are
         * clean). */
        if (chunk_dirty_bytes(ca) > dirty)
          fprintf(stderr, "chunk_alloc(%zu chunks, align %zu chunks): dirty bytes %zu -> %zu chunks\n", size / C,
                  align / C, dirty / C, chunk_dirty_bytes(ca) / C);
        assert_true(chunk_dirty_bytes(ca) <= dirty);
        assert_int_equal((uintptr_t)p % align, 0);
        if (want != NULL) {
          assert_ptr_equal(p, want); /* best fit, no new reservation */
          assert_int_equal(ca->reserved, reserved);
        } else {
          assert_true(ca->reserved >= reserved + size);
        }
        alloc_t *a = &live[nlive++];
        /* Not zeroed: may hold old data and resident pages, so it must go
         * back dirty even if untouched here. */
        *a = (alloc_t){p, size, !zeroed, (unsigned char)(1 + op % 250), false};
        if (zeroed) {
          check_zero(a);
          a->touched = true; /* reading maps pages */
        }
        if (xtest_rand(&seed) % 10 < 7) fill(a);
      } else {
        size_t i = (size_t)(xtest_rand(&seed) % nlive);
        alloc_t a = live[i];
        live[i] = live[--nlive];
        if (a.filled) check_fill(&a);
        uint64_t npurged = ca->npurged;
        size_t dirty = chunk_dirty_bytes(ca);
        chunk_dalloc(ca, a.addr, a.size, a.touched);
        /* Coalesced into one free range holding it. */
        assert_non_null(free_node_containing(ca, a.addr, a.size));
        /* Freeing never purges by itself (decay does, later). */
        assert_int_equal(ca->npurged, npurged);
        assert_int_equal(chunk_dirty_bytes(ca), dirty + (a.touched ? a.size : 0));
        /* Now and then, everything is purged. */
        if (op % 50 == 0) {
          chunk_purge_all(ca);
          assert_int_equal(chunk_dirty_bytes(ca) + chunk_muzzy_bytes(ca), 0);
          if (dirty + (a.touched ? a.size : 0) != 0) assert_true(ca->npurged > npurged);
        }
      }
      check_state(ca, live, nlive, op % 25 == 0);
    }
    /* Free everything: all reserved memory is free again. */
    while (nlive > 0) {
      alloc_t a = live[--nlive];
      chunk_dalloc(ca, a.addr, a.size, a.touched);
      check_state(ca, live, nlive, false);
    }
    assert_int_equal(ca->free_bytes, ca->reserved);
    chunk_purge_all(ca);
    assert_int_equal(chunk_dirty_bytes(ca), 0);
    check_state(ca, live, 0, true);
  }
}

/*
 * A fresh reservation that lands next to a dirty free range: the new
 * memory has never been touched, so it must come back zeroed (or calloc
 * of a huge block would memset, and make resident, fresh memory) and must
 * not be counted as dirty.
 */
static void test_fresh_memory_stays_clean(void **state) {
  (void)state;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  /* Two reservations of 2 chunks: the next one is 4 chunks. */
  char *p[4], *m = NULL;
  for (int i = 0; i < 4; i++) {
    p[i] = chunk_alloc(ca, C, C, &z);
    assert_non_null(p[i]);
    if (m == NULL || p[i] < m) m = p[i];
  }
  assert_int_equal(ca->reserved, 4 * C);
  /* The lowest chunk (where the kernel puts the next mapping, just below)
   * is freed dirty. */
  memset(m, 1, C);
  chunk_dalloc(ca, m, C, true);
  assert_int_equal(chunk_dirty_bytes(ca), C);
  log_clear_chunk();
  char *c = chunk_alloc(ca, 3 * C, C, &z);
  assert_non_null(c);
  assert_true(ca->reserved > 4 * C);
  /* c lies in memory mapped by this very call. */
  bool fresh = false;
  for (unsigned k = 0; k < WRAP_LOG; k++) {
    char *r = wrap_mmap_log[k].addr;
    if (r != NULL && r <= c && c + 3 * C <= r + wrap_mmap_log[k].size) fresh = true;
  }
  assert_true(fresh);
  if (chunk_dirty_bytes(ca) > C)
    fprintf(stderr, "after a fresh reservation next to a dirty chunk: %zu dirty chunks, 1 expected\n", chunk_dirty_bytes(ca) / C);
  if (!z) fprintf(stderr, "fresh range %p (next to a dirty free range) not reported zeroed\n", (void *)c);
  assert_int_equal(chunk_dirty_bytes(ca), C);
  assert_true(z);
}

static void test_best_fit_and_coalesce(void **state) {
  (void)state;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  char *b = chunk_alloc(ca, 16 * C, C, &z);
  assert_non_null(b);
  assert_true(z);
  assert_int_equal(ca->reserved, 16 * C); /* exactly what was asked, nothing free */
  assert_int_equal(ca->free_bytes, 0);
  /* Free ranges (in chunks): [0,3) [4,5) [6,8) [9,10); the rest stays allocated. */
  chunk_dalloc(ca, b, 3 * C, false);
  chunk_dalloc(ca, b + 4 * C, C, false);
  chunk_dalloc(ca, b + 6 * C, 2 * C, false);
  chunk_dalloc(ca, b + 9 * C, C, false);
  assert_true(chunk_validate(ca));
  assert_int_equal(ca->ad.n, 4);
  assert_ptr_equal(chunk_alloc(ca, C, C, &z), b + 4 * C); /* smallest, lowest */
  assert_ptr_equal(chunk_alloc(ca, C, C, &z), b + 9 * C);
  assert_ptr_equal(chunk_alloc(ca, C, C, &z), b + 6 * C); /* then the 2-chunk range */
  assert_ptr_equal(chunk_alloc(ca, C, C, &z), b + 7 * C);
  assert_ptr_equal(chunk_alloc(ca, 2 * C, C, &z), b);
  assert_int_equal(ca->ad.n, 1);
  assert_int_equal(ca->free_bytes, C);
  assert_int_equal(ca->reserved, 16 * C);
  /* Give it all back in pieces, out of order: one range in the end. */
  static const size_t order[] = {9, 0, 4, 15, 1, 6, 3, 10, 12, 8, 11, 7, 14, 5, 13};
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    size_t k = order[i];
    if (k == 2) continue; /* still free */
    chunk_dalloc(ca, b + k * C, C, false);
    assert_true(chunk_validate(ca));
  }
  assert_int_equal(ca->ad.n, 1);
  const extent_node_t *n = free_node_containing(ca, b, 16 * C);
  assert_non_null(n);
  assert_ptr_equal(n->addr, b);
  assert_int_equal(n->size, 16 * C);
  assert_int_equal(ca->free_bytes, 16 * C);
}

static void test_alloc_at(void **state) {
  (void)state;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  char *b = chunk_alloc(ca, 8 * C, C, &z);
  assert_non_null(b);
  chunk_dalloc(ca, b + C, 6 * C, false); /* free [1, 7) */
  assert_false(chunk_alloc_at(ca, b + 2 * C, 3 * C, &z));
  assert_true(z);
  assert_true(chunk_validate(ca));
  assert_false(overlaps_free(ca, b + 2 * C, 3 * C));
  assert_non_null(free_node_containing(ca, b + C, C));
  assert_non_null(free_node_containing(ca, b + 5 * C, 2 * C));
  /* Not (wholly) free: refused, nothing changes. */
  size_t fb = ca->free_bytes;
  assert_true(chunk_alloc_at(ca, b + 2 * C, C, &z));
  assert_true(chunk_alloc_at(ca, b + C, 2 * C, &z));
  assert_true(chunk_alloc_at(ca, b + 6 * C, 2 * C, &z));
  assert_true(chunk_alloc_at(ca, b, C, &z));
  assert_true(chunk_alloc_at(ca, b + 4 * C, 2 * C, &z));
  assert_int_equal(ca->free_bytes, fb);
  assert_true(chunk_validate(ca));
  /* The exact free ranges, whole. */
  assert_false(chunk_alloc_at(ca, b + C, C, &z));
  assert_false(chunk_alloc_at(ca, b + 5 * C, 2 * C, &z));
  assert_int_equal(ca->free_bytes, fb - 3 * C);
  assert_true(chunk_validate(ca));
  /* A dirty range comes back not zeroed. */
  memset(b + 5 * C, 7, PAGE);
  chunk_dalloc(ca, b + 5 * C, 2 * C, true);
  assert_false(chunk_alloc_at(ca, b + 5 * C, C, &z));
  assert_false(z);
  chunk_dalloc(ca, b, 6 * C, true);      /* [0, 6) */
  chunk_dalloc(ca, b + 7 * C, C, false); /* [7, 8); [6, 7) is free */
  assert_true(chunk_validate(ca));
  assert_int_equal(ca->free_bytes, ca->reserved);
}

static void test_geometric_growth(void **state) {
  (void)state;
  chunk_arena_t *ca = fresh_arena();
  const size_t N = 128;
  static char *p[128];
  size_t sizes[64];
  unsigned nres = 0;
  unsigned long mmaps0 = wrap_nmmap;
  for (size_t i = 0; i < N; i++) {
    size_t before = ca->reserved;
    bool z;
    p[i] = chunk_alloc(ca, C, C, &z);
    assert_non_null(p[i]);
    if (ca->reserved != before) {
      assert_true(nres < 64);
      sizes[nres++] = ca->reserved - before;
    }
    assert_true(chunk_validate(ca));
  }
  unsigned long nmaps = wrap_nmmap - mmaps0;
  unsigned lgN = 0;
  while (((size_t)1 << lgN) < N) lgN++;
  /* K reservations of each size, doubling: O(K log N) mappings. */
  assert_true(nres <= CHUNK_GROW_K * (lgN + 1));
  assert_true(nmaps <= 2 * (unsigned long)nres + 8); /* aligned mapping: <= 2 mmaps each; a few for metadata */
  for (unsigned i = 0; i < nres; i++) {
    assert_int_equal(sizes[i] % C, 0);
    if (i > 0) assert_true(sizes[i] >= sizes[i - 1]);
    unsigned same = 0;
    for (unsigned j = 0; j < nres; j++) same += sizes[j] == sizes[i];
    assert_true(same <= CHUNK_GROW_K);
  }
  assert_int_equal(sizes[nres - 1] > sizes[0], 1);
  /* Bounded virtual overhead: about (1+K)/K of what is used. */
  assert_true(ca->reserved <= N * C * (CHUNK_GROW_K + 1) / CHUNK_GROW_K + 4 * C);
  /* Chunks handed out are distinct and aligned. */
  for (size_t i = 0; i < N; i++) {
    assert_int_equal((uintptr_t)p[i] % C, 0);
    for (size_t j = 0; j < i; j++) assert_ptr_not_equal(p[i], p[j]);
  }
  for (size_t i = 0; i < N; i++) chunk_dalloc(ca, p[i], C, false);
  assert_true(chunk_validate(ca));
  assert_int_equal(ca->free_bytes, ca->reserved);
  /* Reuse: the same N chunks again without a single new mapping. */
  mmaps0 = wrap_nmmap;
  size_t reserved = ca->reserved;
  for (size_t i = 0; i < N; i++) {
    bool z;
    p[i] = chunk_alloc(ca, C, C, &z);
    assert_non_null(p[i]);
  }
  assert_int_equal(ca->reserved, reserved);
  assert_true(wrap_nmmap - mmaps0 <= 2); /* metadata at most */
  for (size_t i = 0; i < N; i++) chunk_dalloc(ca, p[i], C, false);
}

static void test_mmap_failure(void **state) {
  (void)state;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  /* Prime the metadata pools so that only chunk memory needs mmap. */
  void *warm[8];
  for (int i = 0; i < 8; i++) warm[i] = chunk_node_alloc(ca);
  for (int i = 0; i < 8; i++) chunk_node_free(ca, warm[i]);
  char *a = chunk_alloc(ca, C, C, &z);
  assert_non_null(a);
  assert_int_equal(ca->free_bytes, C); /* the first reservation is 2 chunks */
  size_t reserved = ca->reserved, fb = ca->free_bytes;
  pages_stats_t st0, st1;
  pages_stats_get(&st0);
  static const size_t aligns[] = {1, 1, 4, 32};
  for (int i = 0; i < 4; i++) {
    wrap_fail_mmap = 1000;
    errno = 0;
    assert_null(chunk_alloc(ca, 8 * C, C * aligns[i], &z));
    assert_int_equal(errno, ENOMEM);
    wrap_reset();
    assert_true(chunk_validate(ca));
    assert_int_equal(ca->reserved, reserved);
    assert_int_equal(ca->free_bytes, fb);
  }
  pages_stats_get(&st1);
  assert_int_equal(st1.mapped, st0.mapped);
  /* What fits in free memory still works while mmap fails. */
  wrap_fail_mmap = 1000;
  char *b = chunk_alloc(ca, C, C, &z);
  wrap_reset();
  assert_non_null(b);
  assert_int_equal(ca->free_bytes, 0);
  /* Only the growth-sized reservation fails: the exact size is tried. */
  assert_true(ca->grow_size > C);
  wrap_fail_mmap = 1;
  char *c = chunk_alloc(ca, C, C, &z);
  wrap_reset();
  assert_non_null(c);
  assert_true(z);
  assert_int_equal(ca->reserved, reserved + C);
  assert_true(chunk_validate(ca));
  chunk_dalloc(ca, a, C, false);
  chunk_dalloc(ca, b, C, false);
  chunk_dalloc(ca, c, C, false);
  assert_true(chunk_validate(ca));
  assert_int_equal(ca->free_bytes, ca->reserved);
}

static void test_purge(void **state) {
  (void)state;
  chunk_arena_t *ca = fresh_arena();
  enum { N = 12 };
  alloc_t a[N];
  bool z;
  for (int i = 0; i < N; i++) {
    char *p = chunk_alloc(ca, C, C, &z);
    assert_non_null(p);
    a[i] = (alloc_t){p, C, false, (unsigned char)(0x40 + i), false};
    memset(p, a[i].pat, C); /* every page resident */
    a[i].touched = true;
  }
  /* Free every other one (no coalescing among them), then the rest. */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = pass; i < N; i += 2) {
      chunk_dalloc(ca, a[i].addr, C, true);
      assert_true(chunk_validate(ca));
    }
  }
  assert_int_equal(chunk_dirty_bytes(ca), N * C);
  /* Lazy purge through decay with dirty time 0: dirty -> muzzy. */
  ssize_t d0 = opt_dirty_decay_ms, m0 = opt_muzzy_decay_ms;
  ca->dirty.decay[DIRTY_D].time_ms = 0;
  uint64_t purged0 = ca->npurged;
  chunk_decay(ca, decay_now_ns(), true);
  assert_true(chunk_validate(ca));
  assert_int_equal(chunk_dirty_bytes(ca), 0);
  assert_int_equal(chunk_muzzy_bytes(ca), N * C);
  assert_int_equal(ca->npurged, purged0 + N * C);
  /* Muzzy ranges are not zeroed: a muzzy chunk handed out says so. */
  char *mz = chunk_alloc(ca, C, C, &z);
  assert_false(z);
  chunk_dalloc_state(ca, mz, C, CHUNK_MUZZY);
  /* Then forced with muzzy time 0: muzzy -> clean, not resident. */
  ca->dirty.decay[DIRTY_M].time_ms = 0;
  chunk_decay(ca, decay_now_ns(), true);
  assert_int_equal(chunk_muzzy_bytes(ca), 0);
  opt_dirty_decay_ms = d0;
  opt_muzzy_decay_ms = m0;
  check_clean_not_resident(ca);
  /* Everything that comes back zeroed reads as zero. */
  for (int i = 0; i < N; i++) {
    char *p = chunk_alloc(ca, C, C, &z);
    assert_non_null(p);
    a[i].addr = p;
    if (z) {
      for (size_t off = 0; off < C; off += 64) assert_int_equal(p[off], 0);
    }
  }
  for (int i = 0; i < N; i++) chunk_dalloc(ca, a[i].addr, C, true);
  chunk_purge_all(ca);
  assert_int_equal(chunk_dirty_bytes(ca), 0);
  check_clean_not_resident(ca);
  /* A failed purge leaves a range that is not claimed zeroed. */
  char *p = chunk_alloc(ca, C, C, &z);
  assert_true(z);
  memset(p, 0x99, C);
  chunk_dalloc(ca, p, C, true);
  for (int i = 0; i < N; i++) {
    a[i].addr = chunk_alloc(ca, C, C, &z);
    memset(a[i].addr, 1, PAGE);
  }
  wrap_fail_madvise = 1000;
  for (int i = 0; i < N; i++) chunk_dalloc(ca, a[i].addr, C, true);
  size_t dirty = chunk_dirty_bytes(ca);
  chunk_purge_all(ca);
  wrap_reset();
  assert_int_equal(chunk_dirty_bytes(ca), dirty); /* nothing lost, nothing claimed */
  assert_true(chunk_validate(ca));
  extent_node_t *n;
  FOR_EACH_FREE(ca, n) {
    if (n->zeroed) {
      for (size_t off = 0; off < n->size; off += PAGE) assert_int_equal(n->addr[off], 0);
    }
  }
  chunk_purge_all(ca);
  assert_int_equal(chunk_dirty_bytes(ca), 0);
}

/* retain:false: freed ranges are kept for reuse (dirty, still mapped) and
 * unmapped when purged for good (here chunk_purge_all; decay and the
 * reuse window do the same); a failed munmap keeps the range (purged,
 * clean, retained), is reported once, and the range is reused. */
static void unmap_failure_child(void *arg) {
  (void)arg;
  opt_retain = false;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  enum { N = 8 };
  char *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = chunk_alloc(ca, 2 * C, C, &z);
    if (p[i] == NULL || !z) _exit(10);
    memset(p[i], 0x11, 2 * C);
  }
  if (ca->reserved != N * 2 * C || ca->free_bytes != 0) _exit(11); /* exact reservations */
  pages_stats_t s0, s1;
  pages_stats_get(&s0);
  /* Freed: kept, dirty, mapped. */
  chunk_dalloc(ca, p[0], 2 * C, true);
  chunk_dalloc(ca, p[1], 2 * C, true);
  chunk_dalloc(ca, p[2], 2 * C, true);
  pages_stats_get(&s1);
  if (!maps_all_mapped((uintptr_t)p[0], 2 * C) || s1.mapped != s0.mapped) _exit(12);
  if (chunk_dirty_bytes(ca) != 3 * 2 * C || ca->reserved != N * 2 * C) _exit(23);
  /* Purged for good: unmapped. */
  chunk_purge_all(ca);
  pages_stats_get(&s1);
  if (ca->free_bytes != 0 || s1.mapped + 3 * 2 * C != s0.mapped) _exit(13);
  if (maps_all_mapped((uintptr_t)p[0], 2 * C)) _exit(24);
  if (!chunk_validate(ca) || ca->free_bytes + 5 * 2 * C != ca->reserved) _exit(14);
  /* munmap fails (vm.max_map_count): kept, purged, clean, counted. */
  size_t mapped = s1.mapped, reserved = ca->reserved;
  wrap_fail_munmap = 1000;
  chunk_dalloc(ca, p[3], 2 * C, true);
  chunk_dalloc(ca, p[4], 2 * C, true);
  chunk_dalloc(ca, p[5], 2 * C, true);
  chunk_purge_all(ca);
  wrap_reset();
  pages_stats_get(&s1);
  if (s1.mapped != mapped || ca->reserved != reserved) _exit(15);
  if (ca->nunmap_kept < 1 || s1.nunmap_kept != s0.nunmap_kept + ca->nunmap_kept) _exit(16);
  if (s1.stranded != s0.stranded) _exit(17); /* kept, not stranded */
  if (!chunk_validate(ca) || chunk_dirty_bytes(ca) + chunk_muzzy_bytes(ca) != 0) _exit(18);
  if (ca->free_bytes != ca->reserved - 2 * 2 * C) _exit(22); /* p[6], p[7] live */
  check_clean_not_resident(ca);
  /* Reused: what was kept is handed out again without a new mapping. */
  unsigned long m0 = wrap_nmmap;
  char *q = chunk_alloc(ca, 2 * C, C, &z);
  if (q == NULL || wrap_nmmap != m0) _exit(19);
  for (size_t off = 0; off < 2 * C; off += PAGE)
    if (z && q[off] != 0) _exit(20);
  chunk_dalloc(ca, q, 2 * C, true);
  for (int i = 6; i < N; i++) chunk_dalloc(ca, p[i], 2 * C, true);
  if (!chunk_validate(ca) || ca->free_bytes + ca->purging_bytes != ca->reserved) _exit(21);
  _exit(0);
}

/* retain:false follows the same policy as retain:true: a block freed and
 * asked for again (200 cycles of 8 chunks) is reused, not unmapped and
 * mapped again each time (it was: 200 mmaps and munmaps). */
static void cycles_child(void *arg) {
  (void)arg;
  opt_retain = false;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  unsigned long m0 = wrap_nmmap, u0 = wrap_nmunmap;
  for (int i = 0; i < 200; i++) {
    char *p = chunk_alloc(ca, 8 * C, C, &z);
    if (p == NULL) _exit(10);
    p[0] = p[8 * C - 1] = 1;
    chunk_dalloc(ca, p, 8 * C, true);
  }
  if (wrap_nmmap - m0 > 2 || wrap_nmunmap != u0) _exit(11);
  /* Purged for good: unmapped now. */
  chunk_purge_all(ca);
  if (wrap_nmunmap == u0 || ca->reserved != 0 || !chunk_validate(ca)) _exit(12);
  _exit(0);
}

static void test_retain_false_cycles(void **state) {
  (void)state;
  char err[4096];
  int st = xtest_run_child(cycles_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "child status %d, stderr:\n%s\n", st, err);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_retain_false_unmap_failure(void **state) {
  (void)state;
  char err[4096];
  int st = xtest_run_child(unmap_failure_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "child status %d, stderr:\n%s\n", st, err);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  /* Reported exactly once for the failed munmaps. */
  const char *first = strstr(err, "munmap failed");
  assert_non_null(first);
  assert_null(strstr(first + 1, "munmap failed"));
}

/* retain:false, munmap and the MADV_DONTNEED fallback both fail (as under
 * mlockall): the range is kept, but nothing says it reads as zero, so it
 * must not be handed out as zeroed (calloc would skip zeroing and return
 * stale bytes). */
static void unmap_and_purge_failure_child(void *arg) {
  (void)arg;
  opt_retain = false;
  chunk_arena_t *ca = fresh_arena();
  bool z;
  enum { N = 6 };
  char *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = chunk_alloc(ca, 2 * C, C, &z);
    if (p[i] == NULL || !z) _exit(10);
    memset(p[i], 0x11, 2 * C);
  }
  /* Freed (kept), then purged for good: the unmaps and their purge
   * fallbacks fail. */
  for (int i = 0; i < N; i++) chunk_dalloc(ca, p[i], 2 * C, true);
  wrap_fail_munmap = 1000;
  wrap_fail_madvise = 1000;
  chunk_purge_all(ca);
  wrap_reset();
  if (ca->nunmap_kept < 1) _exit(11);
  if (!chunk_validate(ca)) _exit(12);
  /* Everything free is still dirty or muzzy: no byte of it is known zero. */
  if (chunk_dirty_bytes(ca) + chunk_muzzy_bytes(ca) != ca->free_bytes) _exit(13);
  for (int i = 0; i < N; i++) {
    char *q = chunk_alloc(ca, 2 * C, C, &z);
    if (q == NULL) _exit(14);
    if (z) {
      for (size_t off = 0; off < 2 * C; off += PAGE)
        if (q[off] != 0) _exit(15); /* claimed zeroed, holds old bytes */
    }
  }
  _exit(0);
}

static void test_retain_false_unmap_and_purge_failure(void **state) {
  (void)state;
  char err[4096];
  int st = xtest_run_child(unmap_and_purge_failure_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "child status %d, stderr:\n%s\n", st, err);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/*
 * User extent hooks on a chunk arena, over a bump allocator in one region
 * reserved by the test (so that consecutive ranges are adjacent and the
 * outcome of each refusal is deterministic).
 */
static char *hb_base, *hb_next;
static size_t hb_len;
static unsigned hb_nalloc, hb_ndalloc, hb_nsplit, hb_nmerge, hb_npurge;
static bool hb_refuse_merge, hb_refuse_split;
static size_t hb_last_size, hb_last_align, hb_dalloc_bytes;

static void *hb_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero, bool *commit,
                      unsigned ind) {
  (void)h, (void)ind;
  assert_null(new_addr);
  hb_last_size = size;
  hb_last_align = alignment;
  char *p = (char *)ALIGNMENT_CEILING((uintptr_t)hb_next, alignment);
  if (p + size > hb_base + hb_len) return NULL;
  hb_next = p + size;
  hb_nalloc++;
  *zero = true;
  *commit = true;
  return p;
}
static bool hb_dalloc(extent_hooks_t *h, void *addr, size_t size, bool c, unsigned ind) {
  (void)h, (void)c, (void)ind;
  assert_true((char *)addr >= hb_base && (char *)addr + size <= hb_base + hb_len);
  hb_ndalloc++;
  hb_dalloc_bytes += size;
  return false;
}
static bool hb_split(extent_hooks_t *h, void *addr, size_t size, size_t a, size_t b, bool c, unsigned ind) {
  (void)h, (void)addr, (void)c, (void)ind;
  assert_int_equal(a + b, size);
  if (hb_refuse_split) return true;
  hb_nsplit++;
  return false;
}
static bool hb_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned ind) {
  (void)h, (void)sb, (void)c, (void)ind;
  assert_ptr_equal((char *)a + sa, b);
  if (hb_refuse_merge) return true;
  hb_nmerge++;
  return false;
}
static bool hb_purge(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind) {
  (void)h, (void)ind;
  assert_true(off + len <= size);
  hb_npurge++;
  return madvise((char *)addr + off, len, MADV_DONTNEED) != 0;
}

static void test_user_hooks(void **state) {
  (void)state;
  hb_len = 64 * C;
  /* Base 4C-aligned: the 4-chunk free range below starts 2C-aligned. */
  void *region = mmap(NULL, hb_len + 4 * C, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(region != MAP_FAILED);
  hb_base = hb_next = (char *)ALIGNMENT_CEILING((uintptr_t)region, 4 * C);
  extent_hooks_t h = {hb_alloc, hb_dalloc, NULL, NULL, NULL, NULL, NULL, hb_split, hb_merge};
  chunk_arena_t ca;
  chunk_arena_init(&ca);
  chunk_arena_set_user_hooks(&ca, &h, 77);
  bool z;
  /* Exactly what is needed, no geometric reservation. */
  char *a = chunk_alloc(&ca, C, C, &z);
  assert_ptr_equal(a, hb_base);
  assert_true(z);
  assert_int_equal(hb_last_size, C);
  assert_int_equal(hb_last_align, C);
  char *b = chunk_alloc(&ca, C, C, &z);
  assert_ptr_equal(b, a + C);
  assert_int_equal(hb_nalloc, 2);
  assert_int_equal(ca.reserved, 2 * C);
  /* Merge refused: two free nodes side by side, and a 2-chunk request
   * cannot use them. */
  hb_refuse_merge = true;
  chunk_dalloc(&ca, a, C, true);
  chunk_dalloc(&ca, b, C, true);
  assert_int_equal(ca.ad.n, 2);
  assert_true(chunk_validate(&ca));
  char *c = chunk_alloc(&ca, 2 * C, C, &z);
  assert_int_equal(hb_nalloc, 3);
  assert_int_equal(hb_last_size, 2 * C);
  assert_ptr_equal(c, b + C);
  /* Merge accepted: freeing c merges it with b (and b with a). */
  hb_refuse_merge = false;
  chunk_dalloc(&ca, c, 2 * C, true);
  assert_true(hb_nmerge >= 1);
  assert_true(chunk_validate(&ca));
  /* a stays apart (its merge was refused); b and c merged. Best fit: a,
   * whole, no split. */
  unsigned nsplit = hb_nsplit;
  char *d = chunk_alloc(&ca, C, 2 * C, &z);
  assert_ptr_equal(d, a);
  assert_int_equal(ca.ad.n, 1); /* [a + C, a + 4C) */
  assert_int_equal(hb_nsplit, nsplit);
  assert_int_equal(hb_nalloc, 3);
  /* Split refused: a fresh range from the hook. */
  hb_refuse_split = true;
  unsigned nalloc = hb_nalloc;
  char *e = chunk_alloc(&ca, C, C, &z);
  assert_ptr_equal(e, a + 4 * C);
  assert_int_equal(hb_nalloc, nalloc + 1);
  assert_int_equal(ca.ad.n, 1);
  hb_refuse_split = false;
  assert_true(chunk_validate(&ca));
  /* Split accepted: the 3-chunk range is cut, no new range. */
  char *f = chunk_alloc(&ca, C, C, &z);
  assert_ptr_equal(f, a + C);
  assert_int_equal(hb_nsplit, nsplit + 1);
  assert_int_equal(hb_nalloc, nalloc + 1);
  chunk_dalloc(&ca, f, C, true);
  /* Purge hooks NULL: nothing is purged, the dirty bytes stay counted. */
  size_t dirty = chunk_dirty_bytes(&ca);
  assert_true(dirty > 0);
  chunk_purge_all(&ca);
  assert_int_equal(chunk_dirty_bytes(&ca), dirty);
  assert_true(chunk_validate(&ca));
  /* Purge hooks set: everything clean. */
  h.purge_lazy = h.purge_forced = hb_purge;
  chunk_purge_all(&ca);
  assert_int_equal(chunk_dirty_bytes(&ca), 0);
  assert_true(hb_npurge > 0);
  assert_true(chunk_validate(&ca));
  /* Alloc failing: NULL, ENOMEM. */
  errno = 0;
  assert_null(chunk_alloc(&ca, 128 * C, C, &z));
  assert_int_equal(errno, ENOMEM);
  /* Release gives back every byte obtained. */
  chunk_dalloc(&ca, d, C, true);
  chunk_dalloc(&ca, e, C, true);
  size_t reserved = ca.reserved;
  chunk_arena_release(&ca);
  assert_int_equal(hb_dalloc_bytes, reserved);
  assert_int_equal(ca.free_bytes, 0);
  munmap(region, hb_len + 4 * C);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_hooks),      cmocka_unit_test(test_random),          cmocka_unit_test(test_best_fit_and_coalesce),
      cmocka_unit_test(test_alloc_at),        cmocka_unit_test(test_geometric_growth),
      cmocka_unit_test(test_mmap_failure),    cmocka_unit_test(test_purge),
      cmocka_unit_test(test_fresh_memory_stays_clean), cmocka_unit_test(test_retain_false_unmap_failure), cmocka_unit_test(test_retain_false_cycles),
      cmocka_unit_test(test_retain_false_unmap_and_purge_failure),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
