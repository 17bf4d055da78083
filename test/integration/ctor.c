/*
 * Allocation before main: constructors (the earliest priority, and a
 * default one) call every allocation function, and one starts a thread that
 * allocates too. main checks and frees what they kept, and checks that
 * xalloc, not the C library's allocator, served all of it: xalloc's size
 * classes (8, 16, 32, 48, 64, 80, 96, 112, 128, 160, ...) give usable sizes
 * that glibc's malloc (request + 8 rounded up to 16, minus 8, at least 24)
 * never does. A destructor allocates after main has returned.
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>

#include "xalloc/xalloc.h"

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_MEMALIGN_BIG, C_ALIGNED, C_MEMALIGN, C_VALLOC, C_PVALLOC,
       C_REALLOCARRAY, C_LARGE, C_HUGE, C_STRDUP, C_THREAD, C_N };

typedef struct {
  unsigned char *p;
  size_t size;
  size_t align;
  unsigned char pat;
} kept_t;

static kept_t early[C_N];  /* from the priority-101 constructor */
static kept_t late[C_N];   /* from the default-priority constructor */
static int ctor_errors;    /* failed checks inside the constructors */
static int ctor_ran;

static void fill(kept_t *k, void *p, size_t size, size_t align, unsigned char pat) {
  k->p = p;
  k->size = size;
  k->align = align;
  k->pat = pat;
  if (p == NULL) {
    ctor_errors++;
    return;
  }
  if (((uintptr_t)p & (align - 1)) != 0) ctor_errors++;
  memset(p, pat, size);
}

static void *ctor_thread(void *arg) {
  kept_t *k = arg;
  /* The thread frees some of its own allocations and keeps one. */
  for (int i = 0; i < 100; i++) free(malloc((size_t)i * 40));
  fill(k, malloc(333), 333, 16, 0x5c);
  return NULL;
}

static void allocate_all(kept_t *kept, unsigned char base) {
  fill(&kept[C_MALLOC], malloc(100), 100, 16, base);
  unsigned char *c = calloc(50, 4);
  if (c != NULL)
    for (int i = 0; i < 200; i++)
      if (c[i] != 0) ctor_errors++;
  fill(&kept[C_CALLOC], c, 200, 16, (unsigned char)(base + 1));
  /* realloc through small, large and back, checking contents on the way */
  unsigned char *r = malloc(10);
  if (r == NULL) {
    ctor_errors++;
  } else {
    memset(r, 0xab, 10);
    r = realloc(r, 50000);
    if (r == NULL || r[0] != 0xab || r[9] != 0xab) ctor_errors++;
    if (r != NULL) r = realloc(r, 3000);
    if (r == NULL || r[0] != 0xab || r[9] != 0xab) ctor_errors++;
  }
  fill(&kept[C_REALLOC], r, 3000, 16, (unsigned char)(base + 2));
  void *pm = NULL;
  if (posix_memalign(&pm, (size_t)1 << 20, 1000) != 0) pm = NULL;
  fill(&kept[C_MEMALIGN_BIG], pm, 1000, (size_t)1 << 20, (unsigned char)(base + 3));
  fill(&kept[C_ALIGNED], aligned_alloc(64, 640), 640, 64, (unsigned char)(base + 4));
  fill(&kept[C_MEMALIGN], memalign(4096, 20), 20, 4096, (unsigned char)(base + 5));
  fill(&kept[C_VALLOC], valloc(5000), 5000, 4096, (unsigned char)(base + 6));
  fill(&kept[C_PVALLOC], pvalloc(5000), 8192, 4096, (unsigned char)(base + 7));
  fill(&kept[C_REALLOCARRAY], reallocarray(NULL, 30, 7), 210, 16, (unsigned char)(base + 8));
  fill(&kept[C_LARGE], malloc(200000), 200000, 16, (unsigned char)(base + 9));
  fill(&kept[C_HUGE], malloc(5 << 20), 5 << 20, 16, (unsigned char)(base + 10));
  /* The C library's own allocations go through xalloc too. */
  char *s = strdup("constructor");
  if (s == NULL || strcmp(s, "constructor") != 0) ctor_errors++;
  kept[C_STRDUP].p = (unsigned char *)s;
  kept[C_STRDUP].size = 0; /* checked separately */
  pthread_t t;
  if (pthread_create(&t, NULL, ctor_thread, &kept[C_THREAD]) != 0 || pthread_join(t, NULL) != 0)
    ctor_errors++;
}

__attribute__((constructor(101))) static void early_ctor(void) {
  /* Free in a constructor, before anything else has run. */
  free(malloc(1));
  allocate_all(early, 0x10);
  ctor_ran |= 1;
}

__attribute__((constructor)) static void late_ctor(void) {
  allocate_all(late, 0x40);
  /* Free one of the early ones here, before main. */
  free(early[C_LARGE].p);
  early[C_LARGE].p = NULL;
  ctor_ran |= 2;
}

static bool intact(const kept_t *k) {
  if (k->p == NULL) return false;
  if (k->size == 0) return true;
  if (k->p[0] != k->pat) return false;
  return memcmp(k->p, k->p + 1, k->size - 1) == 0;
}

static void check_and_free(kept_t *kept, const char *which) {
  for (int i = 0; i < C_N; i++) {
    kept_t *k = &kept[i];
    if (i == C_LARGE && kept == early) {
      assert_null(k->p); /* freed by the later constructor */
      continue;
    }
    if (!intact(k)) fail_msg("%s constructor block %d (%p) lost or corrupt", which, i, (void *)k->p);
    if (i != C_STRDUP) {
      assert_int_equal((uintptr_t)k->p % k->align, 0);
      assert_true(malloc_usable_size(k->p) >= k->size);
    }
    /* Some are resized first: realloc of memory from before main. */
    if (i % 3 == 0 && k->size > 0) {
      unsigned char *q = realloc(k->p, k->size * 2 + 1);
      assert_non_null(q);
      k->p = q;
      assert_true(intact(k));
    }
    if (i == C_CALLOC || i == C_REALLOCARRAY)
      free_sized(k->p, k->size);
    else
      free(k->p);
    k->p = NULL;
  }
}

static void test_constructor_allocations(void **state) {
  (void)state;
  assert_int_equal(ctor_ran, 3);
  assert_int_equal(ctor_errors, 0);
  /* The strdup'd strings (allocated inside the C library) are intact and ours. */
  assert_string_equal((char *)early[C_STRDUP].p, "constructor");
  assert_string_equal((char *)late[C_STRDUP].p, "constructor");
  assert_int_equal(malloc_usable_size(early[C_STRDUP].p), 16); /* 12 bytes: class 16; glibc: 24 */
  check_and_free(early, "early");
  check_and_free(late, "late");
}

static void test_xalloc_is_the_allocator(void **state) {
  (void)state;
  /*
   * Request -> xalloc size class; glibc's malloc_usable_size would give
   * max(24, (request + 8 + 15) & ~15) - 8: 24, 24, 24, 104, 136, 200, 1000,
   * 14344 -- none of them equal to these.
   */
  static const size_t req[] = {1, 9, 17, 100, 129, 200, 1000, 14336};
  static const size_t cls[] = {8, 16, 32, 112, 160, 224, 1024, 14336};
  for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
    void *p = malloc(req[i]);
    assert_non_null(p);
    size_t u = malloc_usable_size(p);
    size_t glibc = ((req[i] + 8 + 15) & ~(size_t)15) - 8;
    if (glibc < 24) glibc = 24;
    if (u != cls[i])
      fail_msg("malloc(%zu): usable size %zu, want xalloc's class %zu (glibc would give %zu)", req[i],
               u, cls[i], glibc);
    assert_int_not_equal(u, glibc);
    free(p);
  }
  /* The headline case: malloc(100) is 112 in xalloc, 104 in glibc. */
  void *p = malloc(100);
  assert_int_equal(malloc_usable_size(p), 112);
  free(p);
  /* The library exports the xalloc-only entry points to this program. */
  p = malloc(48);
  free_sized(p, 48);
  p = aligned_alloc(32, 96);
  free_aligned_sized(p, 32, 96);
  /* The C library's internal allocations are served by xalloc as well. */
  char buf[101];
  memset(buf, 'x', 100);
  buf[100] = '\0';
  char *s = strdup(buf); /* 101 bytes with the NUL: class 112 */
  assert_non_null(s);
  assert_int_equal(strlen(s) + 1, 101);
  assert_int_equal(malloc_usable_size(s), 112);
  free(s);
}

/* After main: allocating in a destructor still works. A failure here makes
 * the program exit non-zero even though cmocka has already reported. */
__attribute__((destructor)) static void late_dtor(void) {
  for (size_t size = 1; size < ((size_t)4 << 20); size = size * 3 + 1) {
    unsigned char *p = malloc(size);
    if (p == NULL) _exit(3);
    memset(p, 0x77, size);
    p = realloc(p, size + 100);
    if (p == NULL || p[0] != 0x77 || p[size - 1] != 0x77) _exit(3);
    free(p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constructor_allocations),
      cmocka_unit_test(test_xalloc_is_the_allocator),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
