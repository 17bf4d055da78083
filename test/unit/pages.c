/*
 * pages: exact aligned mappings (the third seed story), exact byte
 * accounting checked against /proc/self/maps, failure handling, purging.
 */
#include "xtest.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "wrap.h"
#include "xalloc/internal/pages.h"

/* ---- /proc/self/maps ---- */

/* ---- the mmap log of one call ---- */

typedef struct {
  uintptr_t a, b; /* [a, b) */
} iv_t;

static void log_clear(void) { memset(wrap_mmap_log, 0, sizeof(wrap_mmap_log)); }

/* The ranges mapped since log_clear(), merged into disjoint intervals
 * (sorted); returns their number. */
static unsigned log_union(iv_t *out) {
  iv_t v[WRAP_LOG];
  unsigned n = 0;
  for (unsigned i = 0; i < WRAP_LOG; i++)
    if (wrap_mmap_log[i].addr != NULL)
      v[n++] = (iv_t){(uintptr_t)wrap_mmap_log[i].addr, (uintptr_t)wrap_mmap_log[i].addr + wrap_mmap_log[i].size};
  for (unsigned i = 1; i < n; i++)
    for (unsigned j = i; j > 0 && v[j].a < v[j - 1].a; j--) {
      iv_t t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  unsigned m = 0;
  for (unsigned i = 0; i < n; i++) {
    if (m > 0 && v[i].a <= out[m - 1].b) {
      if (v[i].b > out[m - 1].b) out[m - 1].b = v[i].b;
    } else {
      out[m++] = v[i];
    }
  }
  return m;
}

static size_t union_covered(void) {
  iv_t u[WRAP_LOG];
  unsigned m = log_union(u);
  size_t total = 0;
  for (unsigned i = 0; i < m; i++) total += maps_covered(u[i].a, u[i].b - u[i].a);
  return total;
}

/* The logged mapping of exactly size bytes that contains [r, r+rsize). */
static const wrap_range_t *log_find(size_t size, uintptr_t r, size_t rsize) {
  for (unsigned i = 0; i < WRAP_LOG; i++) {
    const wrap_range_t *e = &wrap_mmap_log[i];
    if (e->addr != NULL && e->size == size && (uintptr_t)e->addr <= r && r + rsize <= (uintptr_t)e->addr + e->size)
      return e;
  }
  return NULL;
}

/* ---- steering where the next mmap(size) lands ---- */

/* The test's own mmap/munmap calls (probes, fillers), not counted as the
 * library's. */
static unsigned long own_mmaps, own_munmaps;

/* Where mmap(NULL, size) would place a mapping now. */
static uintptr_t probe(size_t size) {
  own_mmaps++;
  own_munmaps++;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  assert_true(p != MAP_FAILED);
  assert_int_equal(munmap(p, size), 0);
  return (uintptr_t)p;
}

#define MAXFILL 64
static iv_t fillers[MAXFILL];
static unsigned nfillers;

static void fillers_release(void) {
  own_munmaps += nfillers;
  for (unsigned i = 0; i < nfillers; i++) assert_int_equal(munmap((void *)fillers[i].a, fillers[i].b - fillers[i].a), 0);
  nfillers = 0;
}

static bool filler_at(uintptr_t a, size_t len) {
  own_mmaps++;
  void *f = mmap((void *)a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (f == MAP_FAILED) return false;
  if ((uintptr_t)f != a) {
    own_munmaps++;
    munmap(f, len);
    return false;
  }
  fillers[nfillers++] = (iv_t){a, a + len};
  return true;
}

/* The free gap [*lo, *hi) around [p, p+size), from the maps. */
static void gap_around(uintptr_t p, size_t size, uintptr_t *lo, uintptr_t *hi) {
  *lo = 0;
  *hi = (uintptr_t)1 << 47;
  for (const char *line = maps_read(); *line;) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx", &a, &b) == 2) {
      if (b <= p && b > *lo) *lo = b;
      if (a >= p + size && a < *hi) *hi = a;
    }
    const char *nl = strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
}

/*
 * Arrange (with PROT_NONE fillers in the gaps the kernel picks) that the
 * next mmap(size) lands at an address with offset want_off modulo align:
 * the kernel places a mapping at the top of the highest gap that fits, so
 * a filler of d bytes at the top of that gap moves it down by d; a gap too
 * small for that is filled up. Returns the address, or 0 if it cannot be
 * arranged. The fillers stay until fillers_release().
 */
static uintptr_t arrange(size_t size, size_t align, size_t want_off) {
  while (nfillers < MAXFILL) {
    uintptr_t p = probe(size);
    if ((p & (align - 1)) == want_off) {
      if (probe(size) == p) return p; /* stable */
      continue;
    }
    size_t d = ((p & (align - 1)) - want_off) & (align - 1);
    uintptr_t lo, hi;
    gap_around(p, size, &lo, &hi);
    if (getenv("PAGES_DEBUG"))
      fprintf(stderr, "probe %zu: %#lx d %#zx gap %#lx-%#lx\n", size, (unsigned long)p, d, (unsigned long)lo, (unsigned long)hi);
    bool ok;
    if (p + size - d >= lo + size && p + size - d > lo)
      ok = filler_at(p + size - d, d);
    else
      ok = filler_at(lo, hi - lo);
    if (!ok) break;
  }
  fillers_release();
  return 0;
}

/* ---- the main check ---- */

typedef struct {
  size_t mapped, stranded;
  pages_stats_t st;
  unsigned long nmmap, nmunmap;
} snap_t;

static void snap(snap_t *s) {
  s->mapped = pages_mapped();
  pages_stats_get(&s->st);
  s->stranded = s->st.stranded;
  s->nmmap = wrap_nmmap - own_mmaps;
  s->nmunmap = wrap_nmunmap - own_munmaps;
  assert_int_equal(s->st.mapped, s->mapped);
}

/*
 * After r = pages_map_aligned(size, align) with no injected failure: r is
 * exactly aligned and mapped, the over-mapping was trimmed to exactly
 * [r, r+size), and the counters grew by exactly size. Returns the number
 * of mmap calls the function made. Unmaps r.
 */
static unsigned check_aligned_result(void *rp, size_t size, size_t align, const snap_t *before) {
  snap_t after;
  snap(&after);
  uintptr_t r = (uintptr_t)rp;
  if (rp == NULL) fprintf(stderr, "pages_map_aligned(%zu, %zu) failed\n", size, align);
  assert_non_null(rp);
  assert_int_equal(r % align, 0);
  unsigned nmaps = (unsigned)(after.nmmap - before->nmmap);
  assert_true(nmaps == 1 || nmaps == 2);
  assert_int_equal(after.st.nmaps - before->st.nmaps, nmaps);
  assert_int_equal(after.st.nfailed, before->st.nfailed);
  assert_int_equal(after.stranded, before->stranded);
  assert_int_equal(after.mapped - before->mapped, size);
  /* The whole result is mapped, and exactly it: the bytes of every mapping
   * the call made, outside [r, r+size), are gone. */
  assert_int_equal(maps_covered(r, size), size);
  assert_int_equal(union_covered(), size);
  if (nmaps == 1) {
    assert_non_null(log_find(size, r, size));
    assert_ptr_equal(log_find(size, r, size)->addr, rp);
    assert_int_equal(after.nmunmap, before->nmunmap);
  } else {
    const wrap_range_t *raw = log_find(size + align - PAGE, r, size);
    assert_non_null(raw);
    uintptr_t ra = (uintptr_t)raw->addr, rb = ra + raw->size;
    assert_int_equal(maps_covered(ra, r - ra), 0);
    assert_int_equal(maps_covered(r + size, rb - r - size), 0);
    /* The first (unaligned) mapping was released, lead and trail trimmed. */
    unsigned expect_unmaps = 1 + (r != ra) + (r + size != rb);
    assert_int_equal(after.nmunmap - before->nmunmap, expect_unmaps);
    assert_int_equal(after.st.nunmaps - before->st.nunmaps, expect_unmaps);
  }
  /* Usable: first and last bytes (and a few in between) read zero and
   * keep what is written. */
  volatile unsigned char *c = (volatile unsigned char *)rp;
  for (size_t off = 0; off < size; off += size / 4 + PAGE) {
    assert_int_equal(c[off], 0);
    c[off] = 0xA5;
    assert_int_equal(c[off], 0xA5);
  }
  assert_int_equal(c[size - 1], 0);
  c[size - 1] = 0x5A;
  assert_int_equal(c[size - 1], 0x5A);
  /* Unmapping gives back exactly size, and nothing of it stays. */
  assert_false(pages_unmap(rp, size));
  assert_int_equal(pages_mapped(), before->mapped);
  assert_int_equal(maps_covered(r, size), 0);
  return nmaps;
}

static const size_t test_sizes[] = {1, 3, 5, 17, 255, 257, 1023, 4097, 4096 + 1025, 16383, 16384};
static const size_t test_aligns[] = {1, 2, 16, 512, 1024, 8192, 65536}; /* in pages */
#define NSIZES (sizeof(test_sizes) / sizeof(test_sizes[0]))
#define NALIGNS (sizeof(test_aligns) / sizeof(test_aligns[0]))

static void test_map_aligned_natural(void **state) {
  (void)state;
  wrap_reset();
  for (int rep = 0; rep < 2; rep++) {
    for (size_t i = 0; i < NSIZES; i++) {
      for (size_t j = 0; j < NALIGNS; j++) {
        size_t size = test_sizes[i] * PAGE, align = test_aligns[j] * PAGE;
        snap_t before;
        log_clear();
        snap(&before);
        void *r = pages_map_aligned(size, align);
        check_aligned_result(r, size, align, &before);
      }
    }
  }
}

static void test_map_aligned_forced_paths(void **state) {
  (void)state;
  wrap_reset();
  unsigned aligned_first = 0, overmapped = 0;
  for (size_t i = 0; i < NSIZES; i++) {
    for (size_t j = 0; j < NALIGNS; j++) {
      size_t size = test_sizes[i] * PAGE, align = test_aligns[j] * PAGE;
      if (align == PAGE) continue;
      /* First mmap aligned: kept as it is. */
      uintptr_t at = arrange(size, align, 0);
      if (at == 0) fprintf(stderr, "could not steer mmap(%zu) to a %zu-aligned address\n", size, align);
      assert_true(at != 0);
      snap_t before;
      log_clear();
      snap(&before);
      void *r = pages_map_aligned(size, align);
      fillers_release();
      assert_ptr_equal(r, (void *)at);
      assert_int_equal(check_aligned_result(r, size, align, &before), 1);
      aligned_first++;
      /* First mmap misaligned (by a page, else by 2 MiB, which the kernel
       * may impose on huge-page-sized mappings): over-map and trim. */
      static const size_t offs[] = {PAGE, (size_t)2 << 20, PAGE * 3};
      at = 0;
      for (size_t k = 0; k < 3 && at == 0; k++)
        if (offs[k] < align) at = arrange(size, align, offs[k]);
      if (at == 0) {
        /* Only possible when the kernel aligns every mapping of this size
         * at least as strictly as align asks. */
        assert_true(align <= ((size_t)2 << 20) && size % ((size_t)2 << 20) == 0);
        continue;
      }
      log_clear();
      snap(&before);
      r = pages_map_aligned(size, align);
      fillers_release();
      assert_int_equal(check_aligned_result(r, size, align, &before), 2);
      /* The first, misaligned mapping is not left behind. */
      overmapped++;
    }
  }
  if (getenv("PAGES_DEBUG")) fprintf(stderr, "aligned first %u, over-mapped %u\n", aligned_first, overmapped);
  assert_true(aligned_first > 0);
  assert_true(overmapped > NSIZES);
}

/*
 * Injected munmap failures during the trim. The munmap calls made by the
 * over-mapping path are, in order: the first mapping (size bytes), the
 * lead, the trail (each only if non-empty). Calls [fail_after, fail_after
 * + nfail) fail. Whatever fails, the result is exactly aligned and usable,
 * failed pieces are counted as stranded and stay mapped, and the mapped
 * counter equals what the maps show.
 */
static void trim_failure_case(size_t size, size_t align, unsigned long fail_after, unsigned long nfail) {
  uintptr_t first = arrange(size, align, PAGE);
  if (first == 0) first = arrange(size, align, (size_t)2 << 20);
  assert_true(first != 0);
  snap_t before, after;
  log_clear();
  snap(&before);
  wrap_fail_munmap_after = fail_after;
  wrap_fail_munmap = nfail;
  void *rp = pages_map_aligned(size, align);
  wrap_reset();
  fillers_release();
  snap(&after);
  uintptr_t r = (uintptr_t)rp;
  assert_non_null(rp);
  assert_int_equal(r % align, 0);
  assert_int_equal(after.nmmap - before.nmmap, 2);
  const wrap_range_t *raw = log_find(size + align - PAGE, r, size);
  assert_non_null(raw);
  uintptr_t ra = (uintptr_t)raw->addr, rb = ra + raw->size;
  iv_t calls[3];
  unsigned ncalls = 0;
  calls[ncalls++] = (iv_t){first, first + size};
  if (r != ra) calls[ncalls++] = (iv_t){ra, r};
  if (r + size != rb) calls[ncalls++] = (iv_t){r + size, rb};
  assert_int_equal(after.nmunmap - before.nmunmap, ncalls);
  size_t stranded = 0;
  unsigned nfailed = 0;
  for (unsigned i = 0; i < ncalls; i++) {
    size_t len = calls[i].b - calls[i].a;
    if (i >= fail_after && i < fail_after + nfail) {
      stranded += len;
      nfailed++;
      assert_int_equal(maps_covered(calls[i].a, len), len); /* kept */
      /* Purged and never written: reads zero. */
      assert_int_equal(((volatile char *)calls[i].a)[0], 0);
      assert_int_equal(((volatile char *)calls[i].a)[len - 1], 0);
    } else if (i > 0) {
      assert_int_equal(maps_covered(calls[i].a, len), 0); /* trimmed */
    }
  }
  assert_true(nfailed > 0);
  assert_int_equal(after.stranded - before.stranded, stranded);
  assert_int_equal(after.st.nfailed - before.st.nfailed, nfailed);
  assert_int_equal(after.mapped - before.mapped, size + stranded);
  assert_int_equal(maps_covered(r, size), size);
  /* The counter matches the maps over every range the call touched. */
  assert_int_equal(union_covered(), size + stranded);
  /* Usable, every byte. */
  memset(rp, 0x3C, size);
  for (size_t off = 0; off < size; off += 511) assert_int_equal(((unsigned char *)rp)[off], 0x3C);
  assert_false(pages_unmap(rp, size));
  assert_int_equal(pages_mapped(), before.mapped + stranded);
  assert_int_equal(maps_covered(r, size), 0);
}

static void test_trim_failure(void **state) {
  (void)state;
  static const size_t cases[][2] = {{1, 2}, {3, 16}, {17, 512}, {257, 8192}, {4097, 65536}, {1023, 1024}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    size_t size = cases[c][0] * PAGE, align = cases[c][1] * PAGE;
    trim_failure_case(size, align, 1, 1); /* the first trim (lead, or trail if no lead) */
    trim_failure_case(size, align, 1, 2); /* both trims */
    trim_failure_case(size, align, 0, 1); /* releasing the misaligned first mapping */
    trim_failure_case(size, align, 0, 3); /* everything */
  }
}

static void test_map_failure(void **state) {
  (void)state;
  snap_t before, after;
  static const size_t aligns[] = {1, 16, 512, 65536};
  for (size_t i = 0; i < 4; i++) {
    size_t size = 5 * PAGE, align = aligns[i] * PAGE;
    /* The first mmap fails. */
    snap(&before);
    wrap_fail_mmap = 1;
    errno = 0;
    assert_null(pages_map_aligned(size, align));
    assert_int_equal(errno, ENOMEM);
    wrap_reset();
    snap(&after);
    assert_int_equal(after.mapped, before.mapped);
    assert_int_equal(after.stranded, before.stranded);
    assert_int_equal(after.st.nmaps, before.st.nmaps);
    assert_int_equal(after.st.nunmaps, before.st.nunmaps);
    assert_int_equal(after.st.nfailed, before.st.nfailed + 1);
    if (align == PAGE) continue;
    /* The over-mapping fails after a misaligned first mapping: that one is
     * released, nothing is left. */
    uintptr_t first = arrange(size, align, PAGE);
    assert_true(first != 0);
    log_clear();
    snap(&before);
    wrap_fail_mmap_after = 1;
    wrap_fail_mmap = 1;
    errno = 0;
    assert_null(pages_map_aligned(size, align));
    assert_int_equal(errno, ENOMEM);
    wrap_reset();
    fillers_release();
    snap(&after);
    assert_int_equal(after.nmmap - before.nmmap, 2);
    assert_int_equal(after.mapped, before.mapped);
    assert_int_equal(after.stranded, before.stranded);
    assert_int_equal(maps_covered(first, size), 0);
    assert_int_equal(union_covered(), 0);
  }
  /* pages_map too. */
  snap(&before);
  wrap_fail_mmap = 1;
  errno = 0;
  assert_null(pages_map(3 * PAGE));
  assert_int_equal(errno, ENOMEM);
  wrap_reset();
  snap(&after);
  assert_int_equal(after.mapped, before.mapped);
  /* And the next request works. */
  void *p = pages_map(3 * PAGE);
  assert_non_null(p);
  assert_int_equal(pages_mapped(), before.mapped + 3 * PAGE);
  assert_false(pages_unmap(p, 3 * PAGE));
  assert_int_equal(pages_mapped(), before.mapped);
}

static void test_unmap_failure(void **state) {
  (void)state;
  snap_t before, after;
  size_t size = 7 * PAGE;
  snap(&before);
  unsigned char *p = pages_map(size);
  assert_non_null(p);
  assert_int_equal(pages_mapped(), before.mapped + size);
  assert_int_equal(maps_covered((uintptr_t)p, size), size);
  memset(p, 0xEE, size);
  wrap_fail_munmap = 1;
  errno = 0;
  assert_true(pages_unmap(p, size));
  assert_int_equal(errno, ENOMEM);
  wrap_reset();
  snap(&after);
  /* Kept, purged, counted as mapped and stranded. */
  assert_int_equal(maps_covered((uintptr_t)p, size), size);
  for (size_t i = 0; i < size; i++) assert_int_equal(p[i], 0);
  assert_int_equal(after.mapped, before.mapped + size);
  assert_int_equal(after.stranded, before.stranded + size);
  assert_int_equal(after.st.nfailed, before.st.nfailed + 1);
  assert_int_equal(after.st.nunmaps, before.st.nunmaps);
  /* Unmapping nothing is fine. */
  assert_false(pages_unmap(p, 0));
}

static size_t resident_pages(void *p, size_t size) {
  unsigned char vec[256];
  size_t n = size / PAGE, res = 0;
  assert_true(n <= sizeof(vec));
  assert_int_equal(mincore(p, size, vec), 0);
  for (size_t i = 0; i < n; i++) res += vec[i] & 1;
  return res;
}

static void test_purge(void **state) {
  (void)state;
  size_t size = 64 * PAGE;
  unsigned char *p = pages_map(size);
  assert_non_null(p);
  pages_stats_t st0, st1;
  /* Forced: reads as zero, pages given back. */
  memset(p, 0xAB, size);
  assert_int_equal(resident_pages(p, size), 64);
  assert_false(pages_purge_forced(p, size));
  assert_int_equal(resident_pages(p, size), 0);
  for (size_t i = 0; i < size; i++) assert_int_equal(p[i], 0);
  /* A part of the range only. */
  memset(p, 0xCD, size);
  assert_false(pages_purge_forced(p + 8 * PAGE, 16 * PAGE));
  for (size_t i = 0; i < size; i++) assert_int_equal(p[i], (i >= 8 * PAGE && i < 24 * PAGE) ? 0 : 0xCD);
  /* Lazy: succeeds, the range stays usable. */
  memset(p, 0x11, size);
  assert_false(pages_purge_lazy(p, size));
  memset(p, 0x22, size);
  for (size_t i = 0; i < size; i += 97) assert_int_equal(p[i], 0x22);
  assert_int_equal(maps_covered((uintptr_t)p, size), size);
  /* Failures are reported and counted; a failed forced purge leaves the
   * contents alone. */
  pages_stats_get(&st0);
  wrap_fail_madvise = 1;
  assert_true(pages_purge_forced(p, size));
  wrap_reset();
  pages_stats_get(&st1);
  assert_int_equal(st1.nfailed, st0.nfailed + 1);
  for (size_t i = 0; i < size; i += 97) assert_int_equal(p[i], 0x22);
  /* Lazy falls back to forced when MADV_FREE fails. */
  wrap_fail_madvise = 1;
  assert_false(pages_purge_lazy(p, size));
  wrap_reset();
  for (size_t i = 0; i < size; i++) assert_int_equal(p[i], 0);
  memset(p, 0x33, size);
  wrap_fail_madvise = 2;
  assert_true(pages_purge_lazy(p, size));
  wrap_reset();
  for (size_t i = 0; i < size; i += 97) assert_int_equal(p[i], 0x33);
  size_t m = pages_mapped();
  assert_false(pages_unmap(p, size));
  assert_int_equal(pages_mapped(), m - size);
}

static void test_huge_hints(void **state) {
  (void)state;
  size_t size = (size_t)4 << 20;
  void *p = pages_map_aligned(size, (size_t)2 << 20);
  assert_non_null(p);
  void *q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(q != MAP_FAILED);
  own_mmaps++;
  /* Same answer as the system call itself gives. */
  assert_int_equal(pages_huge(p, size), madvise(q, size, MADV_HUGEPAGE) != 0);
  assert_int_equal(pages_nohuge(p, size), madvise(q, size, MADV_NOHUGEPAGE) != 0);
  /* A failing madvise is reported. */
  wrap_fail_madvise = 1;
  assert_true(pages_huge(p, size));
  wrap_fail_madvise = 1;
  assert_true(pages_nohuge(p, size));
  wrap_reset();
  munmap(q, size);
  assert_false(pages_unmap(p, size));
}

int main(void) {
  void *boot = malloc(1); /* let the library start before any counting */
  free(boot);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_aligned_natural), cmocka_unit_test(test_map_aligned_forced_paths),
      cmocka_unit_test(test_trim_failure),        cmocka_unit_test(test_map_failure),
      cmocka_unit_test(test_unmap_failure),       cmocka_unit_test(test_purge),
      cmocka_unit_test(test_huge_hints),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
