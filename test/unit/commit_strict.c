/*
 * commit:on (strict overcommit, forced): arena chunks are committed as
 * their runs first reach their pages (a per-chunk high-water mark,
 * arena_chunk_t.ncommitted), and a commit the limit refuses (mprotect
 * failing with ENOMEM, made to here by the wrapper) fails the allocation
 * cleanly: NULL with ENOMEM, nothing lost, the heap consistent, and the
 * same allocations succeed once commits succeed again.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>

#pragma GCC diagnostic ignored "-Wunused-function"
#include "wrap.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/run.h"
#include "xalloc/internal/stats.h"
#include "xalloc/xalloc.h"

const char *malloc_conf = "commit:on";

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static arena_chunk_t *chunk_of(const void *p) {
  arena_chunk_t *chunk = rtree_get((uintptr_t)p);
  assert_non_null(chunk);
  assert_int_equal(chunk->kind, META_ARENA_CHUNK);
  return chunk;
}

static size_t page_of(const arena_chunk_t *chunk, const void *p) {
  return (size_t)((const char *)p - chunk->addr) >> LG_PAGE;
}

static size_t committed_now(void) {
  stats_totals_t t;
  stats_totals(&t);
  return t.committed;
}

/* A new chunk is committed as far as its first run (at least
 * ARENA_COMMIT_STEP pages); each run past the mark raises it to the run's
 * end; pages past it are never handed out. */
static void test_mark(void **state) {
  (void)state;
  free(malloc(1));
  assert_true(pages_strict);
  enum { N = 30 };
  void *p[N];
  unsigned raised = 0;
  for (int i = 0; i < N; i++) {
    p[i] = malloc(100 * KiB);
    assert_non_null(p[i]);
    arena_chunk_t *chunk = chunk_of(p[i]);
    size_t first = page_of(chunk, p[i]);
    size_t mark = __atomic_load_n(&chunk->ncommitted, __ATOMIC_RELAXED);
    assert_true(first + 25 <= mark);
    /* 25-page runs are more than the step: committed exactly to the run's
     * end when it raised the mark. */
    if (mark == first + 25) raised++;
    memset(p[i], 1, 100 * KiB);
    assert_true(arena_check(chunk->arena, true));
  }
  print_message("%u of %d runs raised their chunk's commit mark to their end\n", raised, N);
  assert_true(raised >= N / 2);
  /* 20 such runs fill 500 of a chunk's 512 pages: the rest stays
   * uncommitted. */
  arena_chunk_t *c0 = chunk_of(p[0]);
  if (chunk_of(p[19]) == c0) assert_true(c0->ncommitted < arena_chunk_npages);
  for (int i = 0; i < N; i++) free(p[i]);
}

/* The commit limit refuses: allocations that need a commit fail with
 * ENOMEM (after the fallbacks), the others go on; nothing is lost. */
static void test_refused(void **state) {
  (void)state;
  enum { N = 64, NS = 20000 };
  static void *p[N], *s[NS];
  size_t c0 = committed_now();
  wrap_fail_mprotect = (unsigned long)-1 / 2;
  unsigned nnull = 0, nok = 0;
  for (int i = 0; i < N; i++) {
    errno = 0;
    p[i] = malloc(100 * KiB);
    if (p[i] == NULL) {
      assert_int_equal(errno, ENOMEM);
      nnull++;
    } else {
      memset(p[i], 2, 100 * KiB); /* what is handed out is committed */
      nok++;
    }
  }
  unsigned snull = 0;
  for (int i = 0; i < NS; i++) {
    errno = 0;
    s[i] = malloc(1 * KiB);
    if (s[i] == NULL) {
      assert_int_equal(errno, ENOMEM);
      snull++;
    } else {
      memset(s[i], 3, 1 * KiB);
    }
  }
  errno = 0;
  void *h = malloc(3 * MiB);
  int herr = errno;
  void *big = NULL;
  size_t grown = 0;
  if (nok != 0) {
    /* In place past the mark: refused, the block as it was. */
    for (int i = N; i-- > 0;)
      if (p[i] != NULL) {
        big = p[i];
        break;
      }
    grown = xallocx(big, 400 * KiB, 0, 0);
  }
  wrap_fail_mprotect = 0;
  print_message("refused: %u of %d 100 KiB blocks and %u of %d 1 KiB NULL, 3 MiB %s; in place: %zu\n", nnull, N,
                snull, NS, h == NULL ? "NULL" : "allocated", grown);
  assert_true(nnull > 0);
  assert_true(snull > 0);
  assert_null(h);
  assert_int_equal(herr, ENOMEM);
  if (big != NULL) assert_int_equal(grown, 100 * KiB);
  size_t c1 = committed_now();
  assert_true(c1 <= c0); /* nothing committed by the failed calls */
  for (unsigned i = 0; i < narenas; i++) {
    arena_t *a = arena_get(i);
    if (a != NULL) assert_true(arena_check(a, true));
  }
  /* Commits succeed again: every allocation does. */
  for (int i = 0; i < N; i++)
    if (p[i] == NULL) {
      p[i] = malloc(100 * KiB);
      assert_non_null(p[i]);
      memset(p[i], 4, 100 * KiB);
    }
  for (int i = 0; i < NS; i++)
    if (s[i] == NULL) {
      s[i] = malloc(1 * KiB);
      assert_non_null(s[i]);
      memset(s[i], 5, 1 * KiB);
    }
  h = malloc(3 * MiB);
  assert_non_null(h);
  memset(h, 6, 3 * MiB);
  if (big != NULL) {
    grown = xallocx(big, 400 * KiB, 0, 0);
    if (grown >= 400 * KiB) memset(big, 7, grown);
  }
  for (unsigned i = 0; i < narenas; i++) {
    arena_t *a = arena_get(i);
    if (a != NULL) assert_true(arena_check(a, true));
  }
  free(h);
  for (int i = 0; i < N; i++) free(p[i]);
  for (int i = 0; i < NS; i++) free(s[i]);
  malloc_trim(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mark),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
