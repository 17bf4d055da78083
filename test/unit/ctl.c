/* Explicit arenas inside: reset and destroy leave valid metadata and give
 * memory back; the mallctl tree and the option table agree. */
#include "xtest.h"

#include <errno.h>

#include "xalloc/internal/arena.h"
#include "xalloc/internal/conf.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"

static void test_reset_destroy_invariants(void **state) {
  (void)state;
  unsigned ai;
  size_t sz = sizeof(ai);
  assert_int_equal(mallctl("arenas.create", &ai, &sz, NULL, 0), 0);
  arena_t *a = arenas[ai];
  assert_non_null(a);
  assert_false(arena_is_auto(a));
  size_t mapped0 = pages_mapped();
  void *p[200];
  for (int i = 0; i < 200; i++) {
    size_t n = i % 50 == 0 ? (size_t)5 << 20 : i % 4 == 0 ? 70000 : 16 + (size_t)i * 24;
    p[i] = mallocx(n, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    assert_non_null(p[i]);
    assert_ptr_equal(((arena_chunk_t *)rtree_get((uintptr_t)p[i]))->kind == META_HUGE
                         ? ((extent_node_t *)rtree_get((uintptr_t)p[i]))->arena
                         : ((arena_chunk_t *)rtree_get((uintptr_t)p[i]))->arena,
                     a);
  }
  for (int i = 1; i < 200; i += 3) dallocx(p[i], MALLOCX_TCACHE_NONE);
  assert_true(arena_validate(a));
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.reset", ai);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  assert_true(arena_validate(a));
  assert_int_equal(a->nactive, 0);
  assert_int_equal(a->nchunks, 0);
  assert_int_equal(a->huge.n, 0);
  for (int i = 0; i < 200; i++) assert_null(rtree_get((uintptr_t)p[i]));
  size_t mapped1 = pages_mapped();
  assert_true(mapped1 > mapped0);
  snprintf(name, sizeof(name), "arena.%u.destroy", ai);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  assert_null(arenas[ai]);
  assert_int_equal(a->chunks.free_bytes, 0);
  assert_true(chunk_validate(&a->chunks));
  assert_true(pages_mapped() <= mapped0 + (1 << 20)); /* all but metadata growth */
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) assert_true(arena_validate(arenas[i]));
  /* The next arenas.create recycles the index and the arena_t itself, as
   * new: no figures, nothing mapped, default decay times. */
  unsigned ai2;
  sz = sizeof(ai2);
  assert_int_equal(mallctl("arenas.create", &ai2, &sz, NULL, 0), 0);
  assert_int_equal(ai2, ai);
  assert_ptr_equal(arenas[ai2], a);
  assert_true(arena_validate(a));
  assert_true(chunk_validate(&a->chunks));
  static const arena_stats_t zero_stats;
  assert_memory_equal(&a->stats, &zero_stats, sizeof(zero_stats));
  static const arena_bin_stats_t zero_bin;
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    assert_memory_equal(&a->bins[i].stats, &zero_bin, sizeof(zero_bin));
    assert_null(a->bins[i].runcur);
  }
  assert_int_equal(a->chunks.reserved, 0);
  assert_int_equal(a->chunks.npurged, 0);
  assert_int_equal(a->chunks.nmadvise, 0);
  assert_int_equal(a->chunks.grow_size, 2 * sz_chunksize);
  assert_null(a->chunks.hooks);
  assert_int_equal(a->dirty.decay[DIRTY_D].time_ms, opt_dirty_decay_ms);
  assert_int_equal(a->chunks.dirty.decay[DIRTY_M].time_ms, opt_muzzy_decay_ms);
  assert_int_equal(a->nthreads, 0);
  for (int i = 0; i < 200; i++) {
    size_t n = i % 50 == 0 ? (size_t)5 << 20 : i % 4 == 0 ? 70000 : 16 + (size_t)i * 24;
    p[i] = mallocx(n, MALLOCX_ARENA(ai2) | MALLOCX_TCACHE_NONE);
    assert_non_null(p[i]);
  }
  assert_true(arena_validate(a));
  for (int i = 0; i < 200; i++) dallocx(p[i], MALLOCX_TCACHE_NONE);
  assert_true(arena_validate(a));
  snprintf(name, sizeof(name), "arena.%u.destroy", ai2);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
}

static void test_opt_matches_table(void **state) {
  (void)state;
  for (unsigned i = 0; i < conf_nopts; i++) {
    char name[64], buf[64];
    snprintf(name, sizeof(name), "opt.%s", conf_table[i].name);
    size_t mib[4], miblen = 4;
    assert_int_equal(mallctlnametomib(name, mib, &miblen), 0);
    assert_int_equal(miblen, 2);
    assert_int_equal(mib[1], i);
    const char *want = conf_value_str(&conf_table[i], buf, sizeof(buf));
    /* opt.narenas and opt.narenas_large read the effective numbers. */
    if (conf_table[i].ptr == &opt_narenas) {
      snprintf(buf, sizeof(buf), "%u", narenas_auto);
      want = buf;
    }
    if (conf_table[i].ptr == &opt_narenas_large) {
      snprintf(buf, sizeof(buf), "%u", narenas_large);
      want = buf;
    }
    char got[64];
    /* jemalloc's types: tcache_max and lg_prof_sample size_t, junk a string. */
    if (conf_table[i].ptr == &opt_tcache_max || conf_table[i].ptr == &opt_lg_prof_sample) {
      size_t z;
      size_t sz = sizeof(z);
      assert_int_equal(mallctl(name, &z, &sz, NULL, 0), 0);
      snprintf(got, sizeof(got), "%zu", z);
    } else if (conf_table[i].ptr == &opt_junk) {
      const char *s;
      size_t sz = sizeof(s);
      assert_int_equal(mallctl(name, &s, &sz, NULL, 0), 0);
      snprintf(got, sizeof(got), "%s", s);
    } else if (conf_table[i].kind == CONF_BOOL) {
      bool b;
      size_t sz = sizeof(b);
      assert_int_equal(mallctl(name, &b, &sz, NULL, 0), 0);
      snprintf(got, sizeof(got), "%s", b ? "true" : "false");
    } else if (conf_table[i].kind == CONF_UINT) {
      unsigned u;
      size_t sz = sizeof(u);
      assert_int_equal(mallctl(name, &u, &sz, NULL, 0), 0);
      snprintf(got, sizeof(got), "%u", u);
    } else if (conf_table[i].kind == CONF_SSIZE) {
      ssize_t v;
      size_t sz = sizeof(v);
      assert_int_equal(mallctl(name, &v, &sz, NULL, 0), 0);
      snprintf(got, sizeof(got), "%zd", v);
    } else {
      const char *s;
      size_t sz = sizeof(s);
      assert_int_equal(mallctl(name, &s, &sz, NULL, 0), 0);
      snprintf(got, sizeof(got), "%s", s);
    }
    assert_string_equal(got, want);
  }
}

/* A free region whose tag was overwritten (written after free) is found by
 * arena.<i>.check, which reads false; a healthy heap reads true. */
static void corrupt_and_check(void *arg) {
  (void)arg;
  bool ok = false;
  size_t len = sizeof(ok);
  unsigned ind = tsd_fetch()->arena->ind;
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.check", ind);
  if (mallctl(name, &ok, &len, NULL, 0) != 0 || !ok) _exit(3);
  char *keep = malloc(224), *p = malloc(224);
  free(p);
  tcache_flush_all(tsd_fetch()); /* p is now free in its run */
  memset(p, 0x41, 8);            /* write after free */
  if (mallctl(name, &ok, &len, NULL, 0) != 0) _exit(4);
  _exit(ok ? 5 : (keep != NULL ? 0 : 6));
}

static void test_arena_check(void **state) {
  (void)state;
  char err[2048];
  int st = xtest_run_child(corrupt_and_check, NULL, err, sizeof(err));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_non_null(strstr(err, "check: free region"));
  assert_non_null(strstr(err, "lost its free tag"));
  bool ok = false;
  size_t len = sizeof(ok);
  assert_int_equal(mallctl("arena.0.check", &ok, &len, NULL, 0), 0);
  assert_true(ok);
  assert_int_equal(mallctl("arena.0.check", NULL, NULL, &ok, sizeof(ok)), EPERM);
  assert_int_equal(mallctl("arena.4095.check", &ok, &len, NULL, 0), ENOENT); /* no such arena */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reset_destroy_invariants),
      cmocka_unit_test(test_opt_matches_table),
      cmocka_unit_test(test_arena_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
