/*
 * mallctl as jemalloc 5.3 programs use it (project issue 10): both
 * spellings of "every arena", the indices arenas.narenas counts, partial
 * MIBs, arguments checked before anything is done, jemalloc's value types,
 * the destroyed arenas' figures, index recycling, the background thread and
 * the names jemalloc documents. Public API only.
 */
#include "xtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "xalloc/xalloc.h"

#define RD(name, var) rd_(name, &(var), sizeof(var))
static void rd_(const char *name, void *v, size_t size) {
  size_t sz = size;
  int err = mallctl(name, v, &sz, NULL, 0);
  if (err != 0) fail_msg("mallctl(\"%s\") = %d", name, err);
  assert_int_equal(sz, size);
}

/* mallctl on a name built with printf. */
static int ctlf(void *oldp, size_t *oldlenp, void *newp, size_t newlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int ctlf(void *oldp, size_t *oldlenp, void *newp, size_t newlen, const char *fmt, ...) {
  char name[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof(name), fmt, ap);
  va_end(ap);
  return mallctl(name, oldp, oldlenp, newp, newlen);
}

static void epoch(void) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  assert_int_equal(mallctl("epoch", &e, &sz, &e, sizeof(e)), 0);
}

static size_t sa_z(unsigned i, const char *what) {
  size_t v = 0, sz = sizeof(v);
  int err = ctlf(&v, &sz, NULL, 0, "stats.arenas.%u.%s", i, what);
  if (err != 0) fail_msg("stats.arenas.%u.%s = %d", i, what, err);
  return v;
}

static unsigned narenas_now(void) {
  unsigned n;
  RD("arenas.narenas", n);
  return n;
}

/* Dirty pages in the calling thread's arena: large runs freed past the
 * thread cache. */
static void make_dirty(void) {
  void *p[32];
  for (int i = 0; i < 32; i++) {
    p[i] = mallocx(200000, MALLOCX_TCACHE_NONE);
    assert_non_null(p[i]);
    memset(p[i], 0x11, 200000);
  }
  for (int i = 0; i < 32; i++) dallocx(p[i], MALLOCX_TCACHE_NONE);
}

/* Item 1 and 5: arena.<arenas.narenas>.* and arena.4096.* both mean every
 * arena (redis's MEMORY PURGE uses the first); arenas.narenas counts the
 * automatic indices whether made or not. */
static void test_all_arenas_spellings(void **state) {
  (void)state;
  unsigned n = narenas_now(), nauto;
  RD("opt.narenas", nauto);
  assert_true(nauto >= 1);
  assert_true(n >= nauto);
  for (int kind = 0; kind < 2; kind++) {
    unsigned all = kind == 0 ? n : MALLCTL_ARENAS_ALL;
    make_dirty();
    epoch();
    assert_true(sa_z(all, "pdirty") >= 32 * 200000 / 4096);
    assert_int_equal(sa_z(all, "pdirty"), sa_z(MALLCTL_ARENAS_ALL, "pdirty"));
    assert_int_equal(sa_z(all, "pactive"), sa_z(MALLCTL_ARENAS_ALL, "pactive"));
    assert_int_equal(sa_z(all, "mapped"), sa_z(MALLCTL_ARENAS_ALL, "mapped"));
    assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", all), 0);
    epoch();
    assert_int_equal(sa_z(all, "pdirty"), 0);
    assert_int_equal(sa_z(MALLCTL_ARENAS_ALL, "pdirty"), 0);
    make_dirty();
    assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.decay", all), 0);
    bool b = false;
    size_t sz = sizeof(b);
    assert_int_equal(ctlf(&b, &sz, NULL, 0, "arena.%u.initialized", all), 0);
    assert_true(b);
    sz = sizeof(b);
    b = false;
    assert_int_equal(ctlf(&b, &sz, NULL, 0, "arena.%u.check", all), 0);
    assert_true(b);
    /* Operations on one arena refuse "all". */
    assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.reset", all), EFAULT);
    assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", all), EFAULT);
    extent_hooks_t *h;
    sz = sizeof(h);
    assert_int_equal(ctlf(&h, &sz, NULL, 0, "arena.%u.extent_hooks", all), EFAULT);
  }
  /* One past: no such index. */
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", n + 1), ENOENT);
  size_t z, sz = sizeof(z);
  assert_int_equal(ctlf(&z, &sz, NULL, 0, "stats.arenas.%u.pactive", n + 1), ENOENT);
  /* By MIB, the index completed by the caller. */
  size_t mib[3], miblen = 3;
  assert_int_equal(mallctlnametomib("arena.0.purge", mib, &miblen), 0);
  assert_int_equal(miblen, 3);
  mib[1] = n;
  make_dirty();
  assert_int_equal(mallctlbymib(mib, miblen, NULL, NULL, NULL, 0), 0);
  epoch();
  assert_int_equal(sa_z(MALLCTL_ARENAS_ALL, "pdirty"), 0);
  mib[1] = n + 1;
  assert_int_equal(mallctlbymib(mib, miblen, NULL, NULL, NULL, 0), ENOENT);
}

/* Indices below arenas.narenas with no arena yet: nothing to purge (0), not
 * initialized, no statistics; thread.arena makes the arena. */
static void *uninit_thread(void *arg) {
  unsigned i = *(unsigned *)arg;
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &i, sizeof(i)), 0);
  unsigned cur;
  RD("thread.arena", cur);
  assert_int_equal(cur, i);
  free(malloc(100));
  return NULL;
}

static void test_uninitialized_indices(void **state) {
  (void)state;
  unsigned n = narenas_now(), i;
  bool b = true;
  size_t sz;
  for (i = 0; i < n; i++) {
    sz = sizeof(b);
    assert_int_equal(ctlf(&b, &sz, NULL, 0, "arena.%u.initialized", i), 0);
    if (!b) break;
  }
  if (i == n) {
    /* Every automatic arena exists already (one CPU and many threads). */
    sz = sizeof(b);
    assert_int_equal(mallctl("arena.0.initialized", &b, &sz, NULL, 0), 0);
    assert_true(b);
    return;
  }
  unsigned nauto;
  RD("opt.narenas", nauto);
  assert_true(i < nauto);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", i), 0);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.decay", i), 0);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.reset", i), EFAULT);
  epoch();
  size_t z;
  sz = sizeof(z);
  assert_int_equal(ctlf(&z, &sz, NULL, 0, "stats.arenas.%u.pactive", i), ENOENT);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, uninit_thread, &i), 0);
  pthread_join(th, NULL);
  sz = sizeof(b);
  assert_int_equal(ctlf(&b, &sz, NULL, 0, "arena.%u.initialized", i), 0);
  assert_true(b);
  epoch();
  sz = sizeof(z);
  assert_int_equal(ctlf(&z, &sz, NULL, 0, "stats.arenas.%u.pactive", i), 0);
  assert_int_equal(narenas_now(), n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_arenas_spellings),
      cmocka_unit_test(test_uninitialized_indices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
