/*
 * The MALLOCX_* flags in every function that takes them (issue 9, B):
 * for every MALLOCX_LG_ALIGN value 0..63 (and MALLOCX_ALIGN of the same
 * power of two), alone and with MALLOCX_ZERO, MALLOCX_TCACHE_NONE, an
 * explicit cache, MALLOCX_ARENA(0) and the unused bit 7, and for sizes from
 * 0 to huge:
 *
 * - nallocx is 0 exactly when the alignment cannot be honoured, and then
 *   mallocx and rallocx return NULL with ENOMEM (rallocx leaving the old
 *   block as it was);
 * - anything mallocx or rallocx returns is aligned, has the usable size
 *   nallocx gave, is zeroed with MALLOCX_ZERO, and sdallocx with the same
 *   size and flags frees it (a mis-sized sdallocx aborts the test);
 * - xallocx of a block that is not aligned as the flags ask returns the old
 *   size and leaves the block alone; sallocx ignores the flags;
 * - posix_memalign, aligned_alloc and memalign with the same alignments
 *   give an aligned block or fail (EINVAL below sizeof(void *) for
 *   posix_memalign, ENOMEM for an alignment nothing can honour).
 *
 * Alignments up to 2^24 must succeed; above, a NULL with ENOMEM is the
 * answer of a machine that cannot map that much; 2^62 and 2^63 (beyond the
 * largest size, 2^62) must fail.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>

#include "xalloc/internal/arena.h"
#include "xalloc/xalloc.h"

#define LG_MUST_WORK 24
#define LG_NEVER 62

static const size_t sizes[] = {0, 1, 100, 5000, 40000, 300000, (size_t)3 << 20};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static unsigned tc_ind;
static unsigned nxallocx_grew;

static void check_zero(const unsigned char *p, size_t n) {
  size_t step = n > 4096 ? 4093 : 1;
  for (size_t i = 0; i < n; i += step)
    if (p[i] != 0) fail_msg("MALLOCX_ZERO block %p not zero at %zu", (void *)p, i);
  if (n > 0 && p[n - 1] != 0) fail_msg("MALLOCX_ZERO block %p not zero at its end", (void *)p);
}

/* The block p of usable size n from an allocation with flags f at lg. */
static void check_block(void *p, size_t size, size_t n, int f, unsigned lg, const char *what) {
  size_t align = (size_t)1 << lg;
  if (((uintptr_t)p & (align - 1)) != 0)
    fail_msg("%s(%zu, lg %u, flags %#x) = %p: not aligned to 2^%u", what, size, lg, (unsigned)f, p, lg);
  if (sallocx(p, f) != n || sallocx(p, 0) != n || malloc_usable_size(p) != n)
    fail_msg("%s(%zu, lg %u, flags %#x): usable size %zu, nallocx said %zu", what, size, lg, (unsigned)f,
             sallocx(p, 0), n);
  if (n < size) fail_msg("%s(%zu, lg %u): usable size %zu is too small", what, size, lg, n);
}

static void check_flags(unsigned lg, int f) {
  size_t align = (size_t)1 << lg;
  for (size_t i = 0; i < NSIZES; i++) {
    size_t size = sizes[i];
    size_t n = nallocx(size, f);
    if (lg >= LG_NEVER && n != 0) fail_msg("nallocx(%zu, lg %u) = %zu: cannot be honoured", size, lg, n);
    errno = 0;
    void *p = mallocx(size, f);
    if (p == NULL) {
      if (errno != ENOMEM) fail_msg("mallocx(%zu, lg %u, flags %#x): NULL, errno %d", size, lg, (unsigned)f, errno);
      if (lg <= LG_MUST_WORK) fail_msg("mallocx(%zu, lg %u, flags %#x) failed", size, lg, (unsigned)f);
    } else {
      if (n == 0) fail_msg("mallocx(%zu, lg %u, flags %#x) = %p but nallocx is 0", size, lg, (unsigned)f, p);
      check_block(p, size, n, f, lg, "mallocx");
      if (f & MALLOCX_ZERO) check_zero(p, n);
      if (n > 0) {
        ((unsigned char *)p)[0] = 0xa5;
        ((unsigned char *)p)[n - 1] = 0x5a;
      }
      /* The same size and flags: nothing changes size. */
      size_t x = xallocx(p, size, 0, f);
      if (x != n) fail_msg("xallocx(mallocx(%zu, lg %u), same size) = %zu, not %zu", size, lg, x, n);
      errno = 0;
      void *q = rallocx(p, size, f);
      if (q == NULL) {
        /* Only if it moved and the new mapping failed: p is still there. */
        if (lg <= LG_MUST_WORK || errno != ENOMEM) fail_msg("rallocx(same size, lg %u) failed", lg);
        q = p;
      }
      check_block(q, size, n, f, lg, "rallocx");
      if (n > 0 && (((unsigned char *)q)[0] != 0xa5 || (size > 0 && ((unsigned char *)q)[size - 1] != 0x5a &&
                                                              size == n)))
        fail_msg("rallocx(same size, lg %u) lost the contents", lg);
      sdallocx(q, size, f);
    }
    /* rallocx of a 100-byte block to size with f. */
    unsigned char *b = malloc(100);
    assert_non_null(b);
    memset(b, 0x3c, 100);
    errno = 0;
    void *r = rallocx(b, size, f);
    if (r == NULL) {
      if (errno != ENOMEM) fail_msg("rallocx(%zu, lg %u, flags %#x): NULL, errno %d", size, lg, (unsigned)f, errno);
      if (n != 0 && lg <= LG_MUST_WORK) fail_msg("rallocx(%zu, lg %u, flags %#x) failed", size, lg, (unsigned)f);
      if (malloc_usable_size(b) != 112 || b[0] != 0x3c || b[99] != 0x3c)
        fail_msg("a failed rallocx(lg %u) changed the old block", lg);
      free(b);
    } else {
      if (n == 0) fail_msg("rallocx(%zu, lg %u, flags %#x) = %p but nallocx is 0", size, lg, (unsigned)f, r);
      check_block(r, size, n, f, lg, "rallocx");
      size_t keep = size < 100 ? size : 100;
      for (size_t j = 0; j < keep; j++)
        if (((unsigned char *)r)[j] != 0x3c) fail_msg("rallocx(%zu, lg %u) lost byte %zu", size, lg, j);
      sdallocx(r, size, f);
    }
  }
  /* xallocx of a large block that is not aligned as asked: the old size,
   * the block untouched, though it could grow in place (checked after,
   * without the alignment: nxallocx_grew counts the cases). */
  unsigned char *l = mallocx(20000, MALLOCX_TCACHE_NONE);
  assert_non_null(l);
  size_t old = malloc_usable_size(l);
  l[0] = 7;
  if (((uintptr_t)l & (align - 1)) != 0) {
    size_t x = xallocx(l, 24000, 8000, f);
    if (x != old || malloc_usable_size(l) != old)
      fail_msg("xallocx(%p, lg %u, flags %#x) of a misaligned block = %zu (usable %zu), not the old %zu",
               (void *)l, lg, (unsigned)f, x, malloc_usable_size(l), old);
    if (xallocx(l, 24000, 8000, 0) > old) nxallocx_grew++;
  }
  assert_int_equal(l[0], 7);
  dallocx(l, MALLOCX_TCACHE_NONE);
}

static void test_lg_align_all(void **state) {
  (void)state;
  size_t sz = sizeof(tc_ind);
  assert_int_equal(mallctl("tcache.create", &tc_ind, &sz, NULL, 0), 0);
  for (unsigned lg = 0; lg < 64; lg++) {
    int base = MALLOCX_LG_ALIGN(lg);
    assert_int_equal(MALLOCX_ALIGN((size_t)1 << lg), base);
    const int variants[] = {base,
                            base | MALLOCX_ZERO,
                            base | MALLOCX_TCACHE_NONE,
                            base | MALLOCX_TCACHE((int)tc_ind),
                            base | MALLOCX_ARENA(0),
                            base | MALLOCX_ARENA(0) | MALLOCX_TCACHE_NONE | MALLOCX_ZERO,
                            base | 0x80};
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) check_flags(lg, variants[v]);
  }
  assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &tc_ind, sizeof(tc_ind)), 0);
  /* The misaligned xallocx checks were not vacuous. */
  assert_true(nxallocx_grew > 0);
  assert_true(arena_validate(arenas[0]));
}

static void test_standard_aligned_all(void **state) {
  (void)state;
  for (unsigned lg = 0; lg < 64; lg++) {
    size_t align = (size_t)1 << lg;
    for (size_t i = 0; i < NSIZES; i++) {
      size_t size = sizes[i];
      void *p = (void *)1;
      int err = posix_memalign(&p, align, size);
      if (align < sizeof(void *)) {
        assert_int_equal(err, EINVAL);
        assert_ptr_equal(p, (void *)1);
      } else if (err != 0) {
        if (err != ENOMEM || lg <= LG_MUST_WORK)
          fail_msg("posix_memalign(2^%u, %zu) = %d", lg, size, err);
        assert_ptr_equal(p, (void *)1);
      } else {
        if (lg >= LG_NEVER) fail_msg("posix_memalign(2^%u, %zu) succeeded", lg, size);
        assert_int_equal((uintptr_t)p & (align - 1), 0);
        free(p);
      }
      for (int fn = 0; fn < 2; fn++) {
        errno = 0;
        p = fn == 0 ? aligned_alloc(align, size) : memalign(align, size);
        if (p == NULL) {
          if (errno != ENOMEM || lg <= LG_MUST_WORK)
            fail_msg("%s(2^%u, %zu): NULL, errno %d", fn ? "memalign" : "aligned_alloc", lg, size, errno);
        } else {
          if (lg >= LG_NEVER) fail_msg("%s(2^%u, %zu) succeeded", fn ? "memalign" : "aligned_alloc", lg, size);
          assert_int_equal((uintptr_t)p & (align - 1), 0);
          assert_true(malloc_usable_size(p) >= size);
          free(p);
        }
      }
    }
  }
  assert_true(arena_validate(arenas[0]));
}

/*
 * xallocx with an alignment, then sdallocx with the size it grew to and the
 * same flags: the new usable size must be what nallocx gives for that size
 * and those flags (an aligned large block near the large/huge boundary
 * would otherwise grow to a size nallocx puts in a chunk, and the sized
 * free would abort as mis-sized).
 */
static void test_xallocx_then_sdallocx(void **state) {
  (void)state;
  unsigned ngrew = 0;
  for (unsigned lg = 0; lg <= 21; lg++) {
    int f = MALLOCX_LG_ALIGN(lg) | MALLOCX_TCACHE_NONE;
    for (size_t s = 1; s < ((size_t)5 << 20); s = s * 3 / 2 + 1) {
      for (size_t t = s; t < ((size_t)6 << 20); t = t * 5 / 4 + 1) {
        void *p = mallocx(s, f);
        assert_non_null(p);
        size_t u0 = malloc_usable_size(p);
        size_t u = xallocx(p, t, 0, f);
        assert_int_equal(u, malloc_usable_size(p));
        if (u != u0) {
          ngrew++;
          if (u < t || nallocx(t, f) != u)
            fail_msg("xallocx(mallocx(%zu, lg %u) = %zu bytes, %zu) = %zu, but nallocx(%zu, lg %u) = %zu", s, lg,
                     u0, t, u, t, lg, nallocx(t, f));
          sdallocx(p, t, f);
        } else {
          sdallocx(p, s, f);
        }
      }
    }
  }
  assert_true(ngrew > 0);
  assert_true(arena_validate(arenas[0]));
}

/* Bad arena and cache indices in the flags: NULL with EINVAL, no crash. */
static void test_bad_indices(void **state) {
  (void)state;
  for (unsigned lg = 0; lg < 64; lg += 9) {
    errno = 0;
    assert_null(mallocx(100, MALLOCX_LG_ALIGN(lg) | MALLOCX_ARENA(4000)));
    assert_true(errno == EINVAL || (lg >= LG_NEVER && errno == ENOMEM));
    errno = 0;
    assert_null(mallocx(100, MALLOCX_LG_ALIGN(lg) | MALLOCX_TCACHE(4000)));
    assert_true(errno == EINVAL || (lg >= LG_NEVER && errno == ENOMEM));
    void *b = malloc(100);
    errno = 0;
    assert_null(rallocx(b, 200, MALLOCX_LG_ALIGN(lg) | MALLOCX_ARENA(4000)));
    assert_int_equal(malloc_usable_size(b), 112);
    free(b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lg_align_all),
      cmocka_unit_test(test_standard_aligned_all),
      cmocka_unit_test(test_xallocx_then_sdallocx),
      cmocka_unit_test(test_bad_indices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
