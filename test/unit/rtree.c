/*
 * rtree: pointer -> metadata map. The tests use addresses in [2^47, 2^48):
 * valid keys for the tree but above the x86-64 user address space, so
 * they never collide with chunks the library itself registers.
 */
#include "xtest.h"

#include <pthread.h>

#include "xalloc/internal/chunk.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/sz.h"

#define HI_BASE ((uintptr_t)1 << 47)
#define VA_END ((uintptr_t)1 << RTREE_LG_VA)

static size_t chunk;
static unsigned leaf_bits;

static int setup(void **state) {
  (void)state;
  void *p = malloc(1); /* boots the library, rtree included */
  if (p == NULL) return -1;
  free(p);
  chunk = (size_t)1 << RTREE_LG_GRAIN; /* the tree's key granularity */
  leaf_bits = RTREE_LEAF_BITS;
  return 0;
}

/* Base address of region r (each region spans whole leaves). */
static uintptr_t region_base(unsigned r) {
  return HI_BASE + ((uintptr_t)r << (leaf_bits + RTREE_LG_GRAIN));
}

static void *val_for(uintptr_t key, unsigned gen) { return (void *)((key << 8) | (gen & 0xff) | 1); }

static void test_geometry_and_library_chunks(void **state) {
  (void)state;
  assert_true(sz_lg_chunk >= RTREE_LG_GRAIN);
  assert_int_equal(RTREE_LEAF_BITS + RTREE_ROOT_BITS + RTREE_LG_GRAIN, RTREE_LG_VA);
  assert_false(rtree_boot(RTREE_LG_GRAIN));
  assert_true(rtree_boot(RTREE_LG_GRAIN - 1)); /* chunks smaller than a key */
  /* The library's own allocations are found, for every byte of them. */
  char *small = malloc(100), *large = malloc(100000), *huge = malloc(3 * chunk);
  assert_non_null(small);
  assert_non_null(large);
  assert_non_null(huge);
  uint8_t *m = rtree_get((uintptr_t)small);
  assert_non_null(m);
  assert_int_equal(*m, META_ARENA_CHUNK);
  assert_ptr_equal(rtree_get((uintptr_t)small + 99), m);
  m = rtree_get((uintptr_t)large + 99999);
  assert_non_null(m);
  assert_int_equal(*m, META_ARENA_CHUNK);
  m = rtree_get((uintptr_t)huge);
  assert_non_null(m);
  assert_int_equal(*m, META_HUGE);
  for (size_t off = 0; off < 3 * chunk; off += chunk / 2) assert_ptr_equal(rtree_get((uintptr_t)huge + off), m);
  free(huge);
  assert_null(rtree_get((uintptr_t)huge));
  free(large);
  free(small);
  /* Stack, static data and the NULL page are not ours. */
  int local;
  assert_null(rtree_get((uintptr_t)&local));
  assert_null(rtree_get((uintptr_t)&chunk));
  assert_null(rtree_get(0));
}

static void test_unset_and_out_of_range(void **state) {
  (void)state;
  uint64_t seed = 99;
  for (int i = 0; i < 100000; i++) {
    uintptr_t a = HI_BASE + (uintptr_t)(xtest_rand(&seed) % (VA_END - HI_BASE));
    assert_null(rtree_get(a));
  }
  /* >= 2^48: never mapped, and refused for writing. */
  const uintptr_t bad[] = {VA_END, VA_END + 1, VA_END + chunk, (uintptr_t)1 << 56, UINTPTR_MAX - chunk,
                           (uintptr_t)1 << 63};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_null(rtree_get(bad[i]));
    assert_true(rtree_set(bad[i], (void *)0x1234));
    assert_null(rtree_get(bad[i]));
    if (!rtree_set_range(bad[i], chunk, (void *)0x1234))
      fprintf(stderr, "rtree_set_range(%#lx, chunk) accepted an address >= 2^48\n", (unsigned long)bad[i]);
    assert_true(rtree_set_range(bad[i], chunk, (void *)0x1234));
  }
  /* A value set just below 2^48 does not alias anything above it. */
  assert_false(rtree_set(VA_END - 1, (void *)0x77));
  assert_ptr_equal(rtree_get(VA_END - chunk), (void *)0x77);
  assert_null(rtree_get(VA_END));
  assert_null(rtree_get(VA_END + (VA_END - 1)));
  assert_null(rtree_get((uintptr_t)1 << 63 | (VA_END - 1)));
  assert_false(rtree_set(VA_END - 1, NULL));
  assert_null(rtree_get(VA_END - 1));
}

static void test_set_range_wrapping(void **state) {
  (void)state;
  /* A range whose end wraps past the top of the address space is out of
   * range too: refused, like every other range beyond 2^48. */
  const uintptr_t bad[] = {UINTPTR_MAX, UINTPTR_MAX - chunk / 2, UINTPTR_MAX - chunk + 1};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (!rtree_set_range(bad[i], chunk, (void *)0x1234))
      fprintf(stderr, "rtree_set_range(%#lx, chunk) accepted an address >= 2^48\n", (unsigned long)bad[i]);
    assert_true(rtree_set_range(bad[i], chunk, (void *)0x1234));
    assert_null(rtree_get(bad[i]));
  }
}

/* Model: region 1 .. 1+NREG leaves' worth of keys. */
#define NREG 8
#define NKEYS_MODEL (NREG << 10)
static void *model[NKEYS_MODEL]; /* key index -> value */

/* Key index i -> chunk address: spread over NREG leaves, 1024 keys each,
 * with strides so that neighbouring chunks are both set and unset. */
static uintptr_t model_addr(unsigned i) {
  unsigned r = i >> 10, k = i & 1023;
  return region_base(1 + r) + (uintptr_t)(k * 3) * chunk;
}

static void check_model(uint64_t *seed) {
  for (unsigned i = 0; i < NKEYS_MODEL; i++) {
    uintptr_t a = model_addr(i);
    uintptr_t off = (uintptr_t)(xtest_rand(seed) % chunk);
    assert_ptr_equal(rtree_get(a), model[i]);
    assert_ptr_equal(rtree_get(a + off), model[i]);
    assert_ptr_equal(rtree_get(a + chunk - 1), model[i]);
    /* The chunks in the stride gaps are never set. */
    assert_null(rtree_get(a + chunk));
    assert_null(rtree_get(a + 2 * chunk));
  }
}

static void test_set_get_many(void **state) {
  (void)state;
  uint64_t seed = 12345;
  memset(model, 0, sizeof(model));
  check_model(&seed);
  for (int round = 0; round < 6; round++) {
    for (int op = 0; op < 20000; op++) {
      unsigned i = (unsigned)(xtest_rand(&seed) % NKEYS_MODEL);
      uintptr_t a = model_addr(i) + (uintptr_t)(xtest_rand(&seed) % chunk); /* any byte of the chunk */
      void *v = (xtest_rand(&seed) % 3 == 0) ? NULL : val_for(a >> RTREE_LG_GRAIN, (unsigned)op);
      assert_false(rtree_set(a, v));
      model[i] = v;
      assert_ptr_equal(rtree_get(a), v);
    }
    check_model(&seed);
  }
  for (unsigned i = 0; i < NKEYS_MODEL; i++) {
    assert_false(rtree_set(model_addr(i), NULL));
    model[i] = NULL;
  }
  check_model(&seed);
}

static void test_set_range(void **state) {
  (void)state;
  uint64_t seed = 777;
  uintptr_t base = region_base(20);
  /* Ranges of 1..40 chunks, some crossing leaf boundaries. */
  size_t leaf_span = (size_t)chunk << leaf_bits;
  for (int i = 0; i < 2000; i++) {
    size_t n = 1 + (size_t)(xtest_rand(&seed) % 40);
    uintptr_t a = base + (uintptr_t)(xtest_rand(&seed) % (4 * (leaf_span / chunk))) * chunk;
    void *v = (void *)(uintptr_t)(0x1000 + 16 * (uintptr_t)i);
    void *before = rtree_get(a - chunk), *after = rtree_get(a + n * chunk);
    assert_false(rtree_set_range(a, n * chunk, v));
    for (size_t k = 0; k < n; k++) {
      assert_ptr_equal(rtree_get(a + k * chunk), v);
      assert_ptr_equal(rtree_get(a + k * chunk + chunk - 1), v);
    }
    assert_ptr_equal(rtree_get(a - chunk), before);
    assert_ptr_equal(rtree_get(a + n * chunk), after);
    assert_false(rtree_set_range(a, n * chunk, NULL));
    for (size_t k = 0; k < n; k++) assert_null(rtree_get(a + k * chunk));
  }
  /* Partial last chunk: the chunk holding the last byte is mapped too. */
  assert_false(rtree_set_range(base, 2 * chunk + 1, (void *)0x55));
  assert_ptr_equal(rtree_get(base + 2 * chunk), (void *)0x55);
  assert_null(rtree_get(base + 3 * chunk));
  assert_false(rtree_set_range(base, 3 * chunk, NULL));
  /* A range crossing 2^48 is refused as a whole: nothing below changes. */
  uintptr_t top = VA_END - 2 * chunk;
  assert_false(rtree_set(top, (void *)0x99));
  assert_false(rtree_set(top + chunk, (void *)0x98));
  assert_true(rtree_set_range(top, 3 * chunk, (void *)0x42));
  assert_ptr_equal(rtree_get(top), (void *)0x99);
  assert_ptr_equal(rtree_get(top + chunk), (void *)0x98);
  assert_false(rtree_set_range(top, 2 * chunk, NULL));
  assert_null(rtree_get(top));
  assert_null(rtree_get(top + chunk));
}

static void test_set_range_unaligned(void **state) {
  (void)state;
  /* rtree.h: "Map every chunk of [addr, addr+size) to val". A range that
   * starts inside a chunk touches every chunk up to the one holding its
   * last byte. */
  uintptr_t base = region_base(30);
  for (size_t n = 1; n <= 4; n++) {
    uintptr_t a = base + chunk / 2;
    assert_false(rtree_set_range(a, n * chunk, (void *)0x66));
    for (size_t k = 0; k <= n; k++) {
      if (rtree_get(base + k * chunk) != (void *)0x66)
        fprintf(stderr, "rtree_set_range(base + chunk/2, %zu chunks): chunk %zu of the range not mapped\n", n, k);
      assert_ptr_equal(rtree_get(base + k * chunk), (void *)0x66);
    }
    assert_null(rtree_get(base + (n + 1) * chunk));
    for (size_t k = 0; k <= n; k++) rtree_set(base + k * chunk, NULL);
  }
}

/* ---- concurrency: writers own disjoint keys in shared leaves, readers
 * check that every value they see is one a writer stored for that key. */
#define NWRITERS 3
#define NREADERS 2
#define CKEYS 6000
static volatile int stop_readers;
static unsigned long reader_errors, reader_nonnull;

static uintptr_t conc_addr(unsigned i) {
  /* Interleaved: consecutive keys belong to different writers, and keys
   * are spread over many fresh leaves so that leaf creation races. */
  unsigned leaf = i % 40, slot = i / 40;
  return region_base(100 + leaf) + (uintptr_t)slot * 5 * chunk;
}

static void *writer(void *arg) {
  unsigned w = (unsigned)(uintptr_t)arg;
  for (unsigned gen = 1; gen <= 6; gen++) {
    for (unsigned i = w; i < CKEYS; i += NWRITERS) {
      uintptr_t a = conc_addr(i);
      void *v = gen % 3 == 0 ? NULL : val_for(a >> RTREE_LG_GRAIN, gen);
      if (rtree_set(a + (i % 7) * 4096, v)) __atomic_fetch_add(&reader_errors, 1000000, __ATOMIC_RELAXED);
    }
  }
  return NULL;
}

static void *reader(void *arg) {
  uint64_t seed = 1000 + (uintptr_t)arg;
  unsigned long errors = 0, nonnull = 0;
  while (!__atomic_load_n(&stop_readers, __ATOMIC_ACQUIRE)) {
    for (int k = 0; k < 1000; k++) {
      unsigned i = (unsigned)(xtest_rand(&seed) % CKEYS);
      uintptr_t a = conc_addr(i);
      uintptr_t v = (uintptr_t)rtree_get(a + (uintptr_t)(xtest_rand(&seed) % chunk));
      if (v != 0) {
        nonnull++;
        if ((v >> 8) != (a >> RTREE_LG_GRAIN) || (v & 1) == 0) errors++;
      }
      /* Gap chunks are never written. */
      if (rtree_get(a + chunk) != NULL) errors++;
    }
  }
  __atomic_fetch_add(&reader_errors, errors, __ATOMIC_RELAXED);
  __atomic_fetch_add(&reader_nonnull, nonnull, __ATOMIC_RELAXED);
  return NULL;
}

static void test_concurrent(void **state) {
  (void)state;
  for (int round = 0; round < 3; round++) {
    pthread_t w[NWRITERS], r[NREADERS];
    stop_readers = 0;
    reader_errors = reader_nonnull = 0;
    for (uintptr_t i = 0; i < NREADERS; i++) assert_int_equal(pthread_create(&r[i], NULL, reader, (void *)i), 0);
    for (uintptr_t i = 0; i < NWRITERS; i++) assert_int_equal(pthread_create(&w[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < NWRITERS; i++) pthread_join(w[i], NULL);
    __atomic_store_n(&stop_readers, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < NREADERS; i++) pthread_join(r[i], NULL);
    assert_int_equal(reader_errors, 0);
    /* After the writers are done: the last generation (6, cleared) for all
     * keys; then set everything once more and check every key. */
    for (unsigned i = 0; i < CKEYS; i++) assert_null(rtree_get(conc_addr(i)));
    for (unsigned i = 0; i < CKEYS; i++) assert_false(rtree_set(conc_addr(i), val_for(conc_addr(i) >> RTREE_LG_GRAIN, 7)));
    for (unsigned i = 0; i < CKEYS; i++) assert_ptr_equal(rtree_get(conc_addr(i)), val_for(conc_addr(i) >> RTREE_LG_GRAIN, 7));
    for (unsigned i = 0; i < CKEYS; i++) rtree_set(conc_addr(i), NULL);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_geometry_and_library_chunks),
      cmocka_unit_test(test_unset_and_out_of_range),
      cmocka_unit_test(test_set_get_many),
      cmocka_unit_test(test_set_range),
      cmocka_unit_test(test_set_range_unaligned),
      cmocka_unit_test(test_set_range_wrapping),
      cmocka_unit_test(test_concurrent),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
