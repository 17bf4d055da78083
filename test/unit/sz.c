/* sz: size classes, the size <-> index maps, bin geometry and aligned sizes. */
#include "xtest.h"

#include "xalloc/internal/sz.h"

/* The expected class list, built independently of sz.c: 8, 16, 32, 48,
 * 64, then four evenly spaced classes in every doubling (64, 128], ... */
static size_t expect[SZ_NCLASSES];
static unsigned nexpect;

static int setup(void **state) {
  (void)state;
  /* The first malloc boots the library, which calls sz_boot(opt_lg_chunk). */
  void *p = malloc(1);
  if (p == NULL || sz_chunksize == 0) return -1;
  free(p);
  nexpect = 0;
  expect[nexpect++] = 8;
  expect[nexpect++] = 16;
  expect[nexpect++] = 32;
  expect[nexpect++] = 48;
  expect[nexpect++] = 64;
  for (size_t base = 64; nexpect < SZ_NCLASSES; base *= 2) {
    size_t step = base / 4;
    for (size_t s = base + step; s <= 2 * base && nexpect < SZ_NCLASSES; s += step) expect[nexpect++] = s;
  }
  return 0;
}

/* Smallest expected class >= s (index), or SZ_NCLASSES if none. */
static unsigned expect_index(size_t s) {
  unsigned lo = 0, hi = SZ_NCLASSES;
  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    if (expect[mid] >= s)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

static void test_class_table(void **state) {
  (void)state;
  static const size_t first[] = {8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320};
  for (unsigned i = 0; i < sizeof(first) / sizeof(first[0]); i++) assert_int_equal(sz_index2size(i), first[i]);
  for (unsigned i = 0; i < SZ_NCLASSES; i++) {
    assert_int_equal(sz_index2size(i), expect[i]);
    if (i > 0) assert_true(sz_index2size(i) > sz_index2size(i - 1));
    assert_int_equal(sz_index2size(i) % 8, 0);
  }
  assert_int_equal(sz_index2size(SZ_NCLASSES - 1), SZ_MAX);
  /* Exactly four classes in every doubling (2^lg, 2^(lg+1)], lg >= 6. */
  for (unsigned lg = 6; lg < 62; lg++) {
    unsigned n = 0;
    for (unsigned i = 0; i < SZ_NCLASSES; i++)
      if (sz_index2size(i) > ((size_t)1 << lg) && sz_index2size(i) <= ((size_t)1 << (lg + 1))) n++;
    assert_int_equal(n, 4);
  }
}

static void test_index_roundtrip(void **state) {
  (void)state;
  for (unsigned i = 0; i < SZ_NCLASSES; i++) {
    size_t s = sz_index2size(i);
    assert_int_equal(sz_size2index(s), i);
    assert_int_equal(sz_size2index_compute(s), i);
    assert_int_equal(sz_s2u(s), s);
    if (i + 1 < SZ_NCLASSES) {
      assert_int_equal(sz_size2index(s + 1), i + 1);
      assert_int_equal(sz_s2u(s + 1), sz_index2size(i + 1));
    }
    if (s > 8) assert_int_equal(sz_size2index(s - 1), i);
  }
}

static void test_s2u_exhaustive(void **state) {
  (void)state;
  /* Every size up to 64 KiB: the table path and the arithmetic path agree
   * and give the smallest class >= s. */
  for (size_t s = 0; s <= 65536; s++) {
    size_t u = sz_s2u(s);
    unsigned e = expect_index(s == 0 ? 1 : s);
    assert_int_equal(u, expect[e]);
    assert_true(u >= s);
    assert_int_equal(sz_index2size(sz_size2index(s)), u);
    if (s > 0) assert_int_equal(sz_size2index_compute(s), sz_size2index(s));
    if (e > 0) assert_true(expect[e - 1] < s);
  }
  /* Sampled larger sizes, up to SZ_MAX, and every class boundary +- 1. */
  uint64_t seed = 0x5eed5eed1234ULL;
  for (int k = 0; k < 200000; k++) {
    unsigned lg = 16 + (unsigned)(xtest_rand(&seed) % 47); /* 2^16 .. 2^62 */
    size_t s = (size_t)(xtest_rand(&seed) & (((size_t)1 << lg) - 1)) + ((size_t)1 << (lg - 1));
    if (s > SZ_MAX) s = SZ_MAX;
    size_t u = sz_s2u(s);
    unsigned e = expect_index(s);
    assert_int_equal(u, expect[e]);
    assert_true(u >= s);
    assert_true(expect[e - 1] < s);
  }
  for (unsigned i = 1; i < SZ_NCLASSES; i++) {
    size_t c = expect[i];
    assert_int_equal(sz_s2u(c - 1), c);
    assert_int_equal(sz_s2u(c), c);
    if (i + 1 < SZ_NCLASSES) assert_int_equal(sz_s2u(c + 1), expect[i + 1]);
  }
  /* Too large: 0. */
  assert_int_equal(sz_s2u(SZ_MAX + 1), 0);
  assert_int_equal(sz_s2u(SIZE_MAX), 0);
  assert_int_equal(sz_s2u((size_t)1 << 63), 0);
}

static void test_boundaries(void **state) {
  (void)state;
  assert_int_equal(sz_chunksize, (size_t)1 << sz_lg_chunk);
  assert_int_equal(sz_index2size(SZ_NBINS - 1), SZ_SMALL_MAX);
  assert_true(sz_index2size(SZ_NBINS) > SZ_SMALL_MAX);
  assert_true(sz_nlarge_end > SZ_NBINS);
  assert_true(sz_nlarge_end < SZ_NCLASSES);
  assert_int_equal(sz_large_max, sz_index2size(sz_nlarge_end - 1));
  assert_true(sz_large_max < sz_chunksize);
  assert_true(sz_large_max > SZ_SMALL_MAX);
  assert_true(sz_index2size(sz_nlarge_end) >= sz_chunksize);
  /* Large classes are page multiples below the chunk size; the first huge
   * class is exactly one chunk. */
  for (unsigned i = SZ_NBINS; i < sz_nlarge_end; i++) {
    assert_int_equal(sz_index2size(i) & PAGE_MASK, 0);
    assert_true(sz_index2size(i) < sz_chunksize);
  }
  assert_int_equal(sz_index2size(sz_nlarge_end), sz_chunksize);
  assert_int_equal(sz_chunk_ceiling(1), sz_chunksize);
  assert_int_equal(sz_chunk_ceiling(sz_chunksize), sz_chunksize);
  assert_int_equal(sz_chunk_ceiling(sz_chunksize + 1), 2 * sz_chunksize);
  /* Small requests land in small classes, the next size in a large one. */
  assert_true(sz_size2index(SZ_SMALL_MAX) < SZ_NBINS);
  assert_true(sz_size2index(SZ_SMALL_MAX + 1) >= SZ_NBINS);
  assert_true(sz_size2index(sz_large_max) < sz_nlarge_end);
  assert_true(sz_size2index(sz_large_max + 1) >= sz_nlarge_end);
}

/* In a child: boot other chunk sizes and check the derived limits. */
static void boot_other_chunks(void *arg) {
  (void)arg;
  for (unsigned lg = 16; lg <= 30; lg++) {
    if (sz_boot(lg)) {
      fprintf(stderr, "sz_boot(%u) failed\n", lg);
      _exit(1);
    }
    size_t chunk = (size_t)1 << lg;
    if (sz_chunksize != chunk || sz_lg_chunk != lg || sz_large_max >= chunk ||
        sz_index2size(sz_nlarge_end) < chunk || sz_large_max != sz_index2size(sz_nlarge_end - 1) ||
        sz_index2size(SZ_NBINS - 1) != SZ_SMALL_MAX || sz_nlarge_end <= SZ_NBINS) {
      fprintf(stderr, "bad limits for lg_chunk %u: large_max %zu nlarge_end %u\n", lg, sz_large_max,
              sz_nlarge_end);
      _exit(1);
    }
    /* The largest large class is the last class below the chunk. */
    for (unsigned i = 0; i < SZ_NCLASSES; i++) {
      size_t s = sz_index2size(i);
      if (s < chunk && s > sz_large_max) {
        fprintf(stderr, "class %zu is below the chunk but above large_max\n", s);
        _exit(1);
      }
    }
  }
  /* Out of range chunk sizes are refused. */
  if (!sz_boot(LG_PAGE + 1) || !sz_boot(31) || !sz_boot(0)) {
    fprintf(stderr, "sz_boot accepted an out-of-range chunk size\n");
    _exit(1);
  }
  _exit(0);
}

static void test_other_chunk_sizes(void **state) {
  (void)state;
  char err[1024];
  int st = xtest_run_child(boot_other_chunks, NULL, err, sizeof(err));
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) fprintf(stderr, "child: %s\n", err);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_bin_info(void **state) {
  (void)state;
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    const sz_bin_info_t *b = &sz_bin_info[i];
    size_t run = (size_t)b->run_pages << LG_PAGE;
    assert_int_equal(b->reg_size, sz_index2size(i));
    assert_true(b->run_pages >= 1);
    assert_true(b->nregs >= 1);
    assert_true(b->nregs <= SZ_MAX_NREGS);
    assert_true((size_t)b->nregs * b->reg_size <= run);
    /* As many regions as fit: the waste is less than one region. */
    assert_true(run - (size_t)b->nregs * b->reg_size < b->reg_size);
    assert_int_equal(b->nwords, (b->nregs + 63) / 64);
    assert_true(b->nwords <= SZ_BITMAP_WORDS);
    /* div_magic: exact quotients for every multiple in the run, and a
     * non-multiple never looks like one (interior pointers are caught). */
    for (size_t off = 0; off < run; off++) {
      size_t idx = (size_t)((off * b->div_magic) >> 32);
      if (off % b->reg_size == 0) {
        assert_int_equal(idx, off / b->reg_size);
      } else {
        assert_true(idx * b->reg_size != off);
      }
    }
  }
}

/* Smallest small class >= size that is a multiple of align, or 0. */
static size_t small_aligned_class(size_t size, size_t align) {
  for (unsigned i = 0; i < SZ_NBINS; i++)
    if (expect[i] >= size && expect[i] % align == 0) return expect[i];
  return 0;
}

static void check_sa2u(size_t size, size_t align) {
  size_t u = sz_sa2u(size, align);
  size_t s = size == 0 ? 1 : size;
  if (u == 0) {
    fprintf(stderr, "sz_sa2u(%zu, %zu) = 0\n", size, align);
    fail();
  }
  assert_true(u >= s);
  assert_int_equal(sz_s2u(u), u); /* a class */
  if (u <= SZ_SMALL_MAX) {
    /* Regions sit at multiples of the class inside page-aligned runs. */
    assert_true(align <= PAGE);
    assert_int_equal(u % align, 0);
  } else if (u <= sz_large_max) {
    /* A page run placed at the alignment must fit in one chunk. */
    assert_int_equal(u & PAGE_MASK, 0);
    assert_true(u + (align > PAGE ? align : PAGE) - PAGE <= sz_chunksize);
  } else {
    assert_true(u >= sz_chunksize);
  }
  /* Nothing wasted: the smallest class that works. */
  size_t want;
  if (align <= QUANTUM) {
    want = sz_s2u(s);
    if (want <= SZ_SMALL_MAX) want = small_aligned_class(s, align);
  } else if (align <= PAGE && s <= SZ_SMALL_MAX && small_aligned_class(s, align) != 0) {
    want = small_aligned_class(s, align);
  } else {
    want = sz_s2u(s <= SZ_SMALL_MAX ? SZ_SMALL_MAX + 1 : s);
    /* A large run whose alignment slack would crowd the chunk may go huge
     * instead; only the plainly fitting cases must stay in their class. */
    if (want <= sz_large_max && want + (align > PAGE ? align : PAGE) - PAGE > sz_large_max) want = 0;
  }
  if (want != 0) assert_int_equal(u, want);
}

static void test_sa2u(void **state) {
  (void)state;
  static const size_t sizes[] = {0, 1, 7, 8, 9, 16, 17, 24, 48, 100, 255, 256, 257, 1000, 2048, 4095, 4096,
                                 4097, 8192, 12288, 14335, 14336, 14337, 16384, 65536, 100000,
                                 1 << 20, (1 << 20) + 1, 3 << 19};
  for (size_t align = 1; align <= ((size_t)1 << 30); align <<= 1) {
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) check_sa2u(sizes[i], align);
    for (unsigned i = 0; i < SZ_NCLASSES && expect[i] <= ((size_t)1 << 40); i++) {
      check_sa2u(expect[i], align);
      check_sa2u(expect[i] + 1, align);
      check_sa2u(expect[i] - 1, align);
    }
    check_sa2u(sz_large_max, align);
    check_sa2u(sz_large_max + 1, align);
    check_sa2u(sz_chunksize - PAGE, align);
  }
  uint64_t seed = 42;
  for (int k = 0; k < 100000; k++) {
    size_t align = (size_t)1 << (xtest_rand(&seed) % 31);
    size_t size = (size_t)(xtest_rand(&seed) % ((size_t)8 << 20));
    if (k % 2) size %= 20000;
    check_sa2u(size, align);
  }
}

static void test_sa2u_impossible(void **state) {
  (void)state;
  /* Sizes (with their alignment) beyond the largest class: 0. */
  assert_int_equal(sz_sa2u(SZ_MAX + 1, 8), 0);
  assert_int_equal(sz_sa2u(SIZE_MAX, 8), 0);
  assert_int_equal(sz_sa2u(SIZE_MAX, 4096), 0);
  assert_int_equal(sz_sa2u(SZ_MAX, (size_t)1 << 20), 0);
  assert_int_equal(sz_sa2u(SZ_MAX - 4096, (size_t)1 << 21), 0);
  assert_int_equal(sz_sa2u(1, SZ_MAX), 0);
  assert_int_equal(sz_sa2u(SZ_MAX, SZ_MAX), 0);
  /* An alignment larger than the largest class cannot be met either. */
  assert_int_equal(sz_sa2u(1, (size_t)1 << 63), 0);
  assert_int_equal(sz_sa2u(4096, (size_t)1 << 63), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_class_table),     cmocka_unit_test(test_index_roundtrip),
      cmocka_unit_test(test_s2u_exhaustive),  cmocka_unit_test(test_boundaries),
      cmocka_unit_test(test_other_chunk_sizes), cmocka_unit_test(test_bin_info),
      cmocka_unit_test(test_sa2u),            cmocka_unit_test(test_sa2u_impossible),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
