/* The standard API: results, errors, alignment, and heap invariants. */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>

#include "xalloc/internal/arena.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/xalloc.h"

static void assert_heap_ok(void) { assert_true(arena_validate(arenas[0])); }

static void test_malloc_zero_unique(void **state) {
  (void)state;
  void *a = malloc(0), *b = malloc(0);
  assert_non_null(a);
  assert_non_null(b);
  assert_ptr_not_equal(a, b);
  assert_true(malloc_usable_size(a) >= 1);
  free(a);
  free(b);
  free(NULL);
  assert_heap_ok();
}

static void test_sizes_roundtrip(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 100, 224, 1000, 4096, 4097, 14336, 14337,
                                 16384, 100000, 1 << 20, (1 << 21) - 1, 1 << 21, (1 << 21) + 1,
                                 5 << 20, 64 << 20};
  void *p[sizeof(sizes) / sizeof(sizes[0])];
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    p[i] = malloc(sizes[i]);
    assert_non_null(p[i]);
    assert_true(malloc_usable_size(p[i]) >= sizes[i]);
    assert_int_equal((uintptr_t)p[i] % (sizes[i] >= 16 ? 16 : 8), 0);
    memset(p[i], (int)i, sizes[i]);
  }
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    unsigned char *c = p[i];
    assert_int_equal(c[0], (unsigned char)i);
    assert_int_equal(c[sizes[i] - 1], (unsigned char)i);
    free(p[i]);
  }
  assert_heap_ok();
}

static void test_calloc_zero_and_overflow(void **state) {
  (void)state;
  for (size_t size = 8; size < (8u << 20); size = size * 3 + 5) {
    unsigned char *p = malloc(size);
    memset(p, 0xff, size);
    free(p);
    p = calloc(1, size);
    assert_non_null(p);
    for (size_t i = 0; i < size; i += 61) assert_int_equal(p[i], 0);
    assert_int_equal(p[size - 1], 0);
    free(p);
  }
  /* Every size up to 300, into a block that held 0xff bytes all over its
   * class (a cache hands the same block back): every byte asked for is 0
   * (calloc clears the small sizes inline, by size or by class). */
  for (size_t size = 0; size <= 300; size++) {
    unsigned char *q = malloc(size);
    size_t u = malloc_usable_size(q);
    memset(q, 0xff, u);
    free(q);
    unsigned char *z = calloc(1, size);
    assert_non_null(z);
    for (size_t i = 0; i < size; i++) assert_int_equal(z[i], 0);
    free(z);
  }
  errno = 0;
  assert_null(calloc(SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(calloc((size_t)1 << 40, (size_t)1 << 40));
  assert_int_equal(errno, ENOMEM);
  assert_heap_ok();
}

static void test_huge_sizes_fail_cleanly(void **state) {
  (void)state;
  static const size_t bad[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)1 << 62 | 1, (size_t)1 << 63};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    errno = 0;
    assert_null(malloc(bad[i]));
    assert_int_equal(errno, ENOMEM);
    void *q = malloc(16);
    errno = 0;
    assert_null(realloc(q, bad[i]));
    assert_int_equal(errno, ENOMEM);
    free(q); /* realloc failure leaves the old block alive */
  }
  errno = 0;
  assert_null(reallocarray(NULL, SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
  /* 1 TiB is beyond what this machine will map: NULL and ENOMEM. */
  errno = 0;
  void *p = malloc((size_t)1 << 46);
  if (p == NULL) assert_int_equal(errno, ENOMEM);
  free(p);
  void *ok = malloc(100);
  assert_non_null(ok);
  free(ok);
  assert_heap_ok();
}

static void test_alignment_api(void **state) {
  (void)state;
  for (size_t align = 1; align <= ((size_t)1 << 30); align <<= 1) {
    static const size_t sizes[] = {0, 1, 8, 100, 4096, 20000, 3 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      size_t size = sizes[i];
      void *p = NULL;
      if (align >= sizeof(void *)) {
        assert_int_equal(posix_memalign(&p, align, size), 0);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % align, 0);
        assert_true(malloc_usable_size(p) >= size);
        memset(p, 1, size);
        free(p);
      }
      p = aligned_alloc(align, size);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p % align, 0);
      free(p);
      p = memalign(align, size);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p % align, 0);
      free(p);
    }
  }
  /* Small alignments take malloc's path: many blocks in a row (so that a
   * class of 8 bytes would show an odd multiple of 8), every entry point. */
  for (size_t align = 1; align <= 16; align <<= 1)
    for (size_t size = 0; size <= 40; size++) {
      void *q[64];
      for (int k = 0; k < 64; k++) {
        if (k % 3 == 0 && align >= sizeof(void *))
          assert_int_equal(posix_memalign(&q[k], align, size), 0);
        else
          q[k] = k % 3 == 1 ? aligned_alloc(align, size) : memalign(align, size);
        assert_non_null(q[k]);
        assert_int_equal((uintptr_t)q[k] % align, 0);
        /* malloc's own alignment too (16 above 8 bytes) */
        assert_int_equal((uintptr_t)q[k] % (size > 8 ? 16 : 8), 0);
        assert_true(malloc_usable_size(q[k]) >= size);
        memset(q[k], 0x5a, size);
      }
      for (int k = 0; k < 64; k++) free(q[k]);
    }
  void *p = (void *)1;
  assert_int_equal(posix_memalign(&p, 24, 10), EINVAL);
  assert_ptr_equal(p, (void *)1);
  assert_int_equal(posix_memalign(&p, 4, 10), EINVAL);
  assert_int_equal(posix_memalign(&p, 0, 10), EINVAL);
  errno = 0;
  assert_null(aligned_alloc(48, 96));
  assert_int_equal(errno, EINVAL);
  errno = 0;
  assert_null(memalign(3, 10));
  assert_int_equal(errno, EINVAL);
  /* size smaller than the alignment, and size 0: aligned, unique, freeable */
  void *a, *b;
  assert_int_equal(posix_memalign(&a, 1 << 16, 1), 0);
  assert_int_equal(posix_memalign(&b, 1 << 16, 0), 0);
  assert_ptr_not_equal(a, b);
  assert_int_equal((uintptr_t)a % (1 << 16), 0);
  assert_int_equal((uintptr_t)b % (1 << 16), 0);
  free(a);
  free(b);
  p = valloc(10);
  assert_int_equal((uintptr_t)p % 4096, 0);
  free(p);
  p = pvalloc(5000);
  assert_int_equal((uintptr_t)p % 4096, 0);
  assert_true(malloc_usable_size(p) >= 8192);
  free(p);
  assert_heap_ok();
}

static void test_realloc_contents(void **state) {
  (void)state;
  unsigned char *p = realloc(NULL, 10);
  assert_non_null(p);
  for (int i = 0; i < 10; i++) p[i] = (unsigned char)i;
  size_t size = 10;
  /* Grow through small, large and huge, checking contents. */
  while (size < (40u << 20)) {
    size_t nsize = size * 2 + 3;
    p = realloc(p, nsize);
    assert_non_null(p);
    for (size_t i = 0; i < size; i += 97) assert_int_equal(p[i], (unsigned char)(i < 10 ? i : i * 7));
    for (size_t i = size; i < nsize; i++) p[i] = (unsigned char)(i * 7);
    size = nsize;
  }
  /* Shrink back down. */
  while (size > 5) {
    size = size / 3;
    p = realloc(p, size);
    assert_non_null(p);
    for (size_t i = 0; i < size; i += 89) assert_int_equal(p[i], (unsigned char)(i < 10 ? i : i * 7));
  }
  /* realloc(p, 0) frees p and returns NULL (as glibc). */
  assert_null(realloc(p, 0));
  assert_heap_ok();
}

static void test_realloc_in_place(void **state) {
  (void)state;
  /* A large allocation followed by free pages grows in place. */
  void *guard = malloc(1 << 20);
  char *p = malloc(20000);
  void *q = realloc(p, 40000);
  assert_ptr_equal(p, q);
  q = realloc(q, 24000); /* shrink in place */
  assert_ptr_equal(p, q);
  /* Same size class: same pointer. */
  char *s = malloc(100);
  assert_ptr_equal(realloc(s, 110), s);
  /* Huge shrinks in place. */
  char *h = malloc(10 << 20);
  assert_ptr_equal(realloc(h, 5 << 20), h);
  free(h);
  free(s);
  free(q);
  free(guard);
  assert_heap_ok();
}

static void test_sized_free(void **state) {
  (void)state;
  for (size_t size = 1; size < (4u << 20); size = size * 2 + 1) {
    void *p = malloc(size);
    free_sized(p, size);
    p = aligned_alloc(64, size);
    free_aligned_sized(p, 64, size);
  }
  free_sized(NULL, 10);
  assert_heap_ok();
}

static void test_mallinfo_and_trim(void **state) {
  (void)state;
  struct mallinfo2 before = mallinfo2();
  void *p[100];
  for (int i = 0; i < 100; i++) p[i] = malloc(50000);
  struct mallinfo2 during = mallinfo2();
  assert_true(during.uordblks >= before.uordblks + 100 * 50000);
  for (int i = 0; i < 100; i++) free(p[i]);
  struct mallinfo2 after = mallinfo2();
  assert_int_equal(after.uordblks, before.uordblks);
  malloc_trim(0);
  struct mallinfo2 trimmed = mallinfo2();
  assert_int_equal(trimmed.keepcost, 0); /* nothing dirty left */
  assert_int_equal(mallopt(M_ARENA_MAX, 4), 1);
  assert_int_equal(mallopt(-12345, 4), 0);
  assert_heap_ok();
}

static void bad_free_stack(void *arg) {
  (void)arg;
  int x;
  free(&x);
}
static void bad_free_interior(void *arg) {
  (void)arg;
  char *p = malloc(224);
  free(p + 16);
}
static void bad_double_free(void *arg) {
  (void)arg;
  char *p = malloc(224);
  char *keep = malloc(224); /* keeps the run alive */
  free(p);
  free(p);
  free(keep);
}

static void test_bad_frees_reported(void **state) {
  (void)state;
  char err[1024];
  int st = xtest_run_child(bad_free_stack, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "xalloc: invalid free"));
  st = xtest_run_child(bad_free_interior, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "interior pointer"));
  st = xtest_run_child(bad_double_free, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "xalloc: double free of 0x"));
  assert_non_null(strstr(err, "(size class 224, arena 0)"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_malloc_zero_unique),     cmocka_unit_test(test_sizes_roundtrip),
      cmocka_unit_test(test_calloc_zero_and_overflow), cmocka_unit_test(test_huge_sizes_fail_cleanly),
      cmocka_unit_test(test_alignment_api),          cmocka_unit_test(test_realloc_contents),
      cmocka_unit_test(test_realloc_in_place),       cmocka_unit_test(test_sized_free),
      cmocka_unit_test(test_mallinfo_and_trim),      cmocka_unit_test(test_bad_frees_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
