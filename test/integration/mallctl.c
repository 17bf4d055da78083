/*
 * The jemalloc-compatible API through the public header only: every
 * mallctl name and error code, the MALLOCX_* flags, explicit caches and
 * arenas (reset, destroy), thread counters, and malloc_stats_print.
 * With an argument it is a helper for test/integration/stats_json.sh:
 * "json OPTS" prints the JSON report to stdout, "zero" checks zero:true.
 */
#include "xtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "xalloc/xalloc.h"

#define RD(name, var) rd_(name, &(var), sizeof(var))
static void rd_(const char *name, void *v, size_t size) {
  size_t sz = size;
  int err = mallctl(name, v, &sz, NULL, 0);
  if (err != 0) fail_msg("mallctl(\"%s\") = %d", name, err);
  assert_int_equal(sz, size);
}

static void epoch(void) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  assert_int_equal(mallctl("epoch", &e, &sz, &e, sizeof(e)), 0);
}

static size_t stat_z(const char *name) {
  size_t v;
  RD(name, v);
  return v;
}

static void test_read_every_name(void **state) {
  (void)state;
  const char *s;
  bool b;
  unsigned u;
  size_t z;
  uint64_t q;
  uint32_t u32;
  ssize_t ss;
  RD("version", s);
  assert_string_equal(s, XALLOC_VERSION);
  RD("epoch", q);
  static const char *const bools[] = {"config.debug", "config.fill", "config.prof", "config.stats",
                                      "config.utrace", "config.xmalloc", "opt.abort", "opt.abort_conf",
                                      "opt.tcache", "opt.retain", "opt.background_thread",
                                      "opt.zero", "opt.stats_print", "thread.tcache.enabled"};
  for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) RD(bools[i], b);
  RD("opt.abort", b);
  assert_true(b);
  RD("config.malloc_conf", s);
  static const char *const uints[] = {"opt.lg_chunk", "opt.narenas", "opt.retain_grow_k",
                                      "thread.arena", "arenas.narenas", "arenas.nbins", "arenas.nhbins",
                                      "arenas.nlextents"};
  for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++) RD(uints[i], u);
  RD("opt.lg_chunk", u);
  assert_int_equal(u, 21);
  RD("opt.dirty_decay_ms", ss);
  RD("opt.muzzy_decay_ms", ss);
  assert_int_equal(ss, 10000);
  RD("opt.thp", s);
  assert_string_equal(s, "default");
  RD("opt.stats_print_opts", s);
  RD("opt.junk", s);
  RD("opt.tcache_max", z);
  assert_non_null(s);
  RD("thread.allocated", q);
  RD("thread.deallocated", q);
  static const char *const sizes[] = {
      "arenas.page", "arenas.quantum", "arenas.chunk_size", "arenas.tcache_max", "arenas.bin.0.size",
      "arenas.bin.0.slab_size", "arenas.lextent.0.size", "stats.allocated", "stats.active", "stats.metadata",
      "stats.resident", "stats.mapped", "stats.retained", "stats.dirty", "stats.arenas.0.pactive",
      "stats.arenas.0.pdirty", "stats.arenas.0.mapped", "stats.arenas.0.retained",
      "stats.arenas.0.small.allocated", "stats.arenas.0.large.allocated", "stats.arenas.0.huge.allocated",
      "stats.arenas.0.huge.curhuge", "stats.arenas.0.bins.3.size", "stats.arenas.0.bins.3.slab_size",
      "stats.arenas.0.bins.3.curregs", "stats.arenas.0.bins.3.curslabs", "stats.arenas.4096.pactive"};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) RD(sizes[i], z);
  RD("arenas.bin.2.size", z);
  assert_int_equal(z, 32);
  RD("arenas.bin.2.nregs", u32);
  assert_int_equal(u32, 4096 / 32);
  RD("arenas.lextent.0.size", z);
  assert_true(z > 14336);
  static const char *const u64s[] = {"stats.arenas.0.npurged", "stats.arenas.0.small.nmalloc",
                                     "stats.arenas.0.small.ndalloc", "stats.arenas.0.large.nmalloc",
                                     "stats.arenas.0.large.ndalloc", "stats.arenas.0.huge.nmalloc",
                                     "stats.arenas.0.huge.ndalloc", "stats.arenas.0.bins.3.nmalloc",
                                     "stats.arenas.0.bins.3.ndalloc", "stats.arenas.0.bins.3.nslabs"};
  for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++) RD(u64s[i], q);
  RD("stats.arenas.0.nthreads", u);
  RD("stats.arenas.0.bins.3.nregs", u32);
  /* Neither-read-nor-write names. */
  assert_int_equal(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("arena.0.purge", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("arena.0.decay", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("arena.4096.purge", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("arena.4096.decay", NULL, NULL, NULL, 0), 0);
}

static void test_stats_follow_epoch(void **state) {
  (void)state;
  epoch();
  size_t before = stat_z("stats.allocated");
  void *p = malloc(8 << 20);
  assert_int_equal(stat_z("stats.allocated"), before); /* a snapshot */
  epoch();
  size_t during = stat_z("stats.allocated");
  assert_true(during >= before + (8 << 20));
  assert_true(stat_z("stats.active") >= 8 << 20);
  assert_true(stat_z("stats.mapped") >= stat_z("stats.active"));
  assert_true(stat_z("stats.resident") <= stat_z("stats.mapped"));
  assert_true(stat_z("stats.metadata") > 0);
  assert_true(stat_z("stats.arenas.4096.huge.allocated") >= 8 << 20);
  free(p);
  epoch();
  assert_true(stat_z("stats.allocated") <= during - (8 << 20));
}

static void test_error_codes(void **state) {
  (void)state;
  unsigned u;
  size_t sz = sizeof(u);
  static const char *const missing[] = {"", "nope", "version.x", "opt", "opt.nope", "arenas.bin",
                                        "arenas.bin.36.size", "arenas.bin.01.size", "arenas.bin.x.size",
                                        "arena.99999.purge", "arena.0.nope", "stats.arenas.4095.pactive",
                                        "stats.arenas.0.bins.36.nmalloc", "thread..arena", "thread.arena.",
                                        "arena.0.extent_hooks.x"};
  for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
    sz = sizeof(u);
    if (mallctl(missing[i], &u, &sz, NULL, 0) != ENOENT) fail_msg("\"%s\" is not ENOENT", missing[i]);
  }
  assert_int_equal(mallctl(NULL, NULL, NULL, NULL, 0), ENOENT);
  /* Wrong lengths: what fits is copied, EINVAL. */
  uint64_t big = 0;
  sz = sizeof(big);
  assert_int_equal(mallctl("arenas.narenas", &big, &sz, NULL, 0), EINVAL);
  assert_int_equal(sz, sizeof(unsigned));
  sz = 1;
  assert_int_equal(mallctl("thread.allocated", &big, &sz, NULL, 0), EINVAL);
  uint32_t small = 1;
  assert_int_equal(mallctl("epoch", NULL, NULL, &small, sizeof(small)), EINVAL);
  bool b = true;
  assert_int_equal(mallctl("thread.tcache.enabled", NULL, NULL, &b, sizeof(b) + 1), EINVAL);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &b, sizeof(b)), EINVAL);
  sz = 1;
  assert_int_equal(mallctl("arenas.create", &u, &sz, NULL, 0), EINVAL);
  assert_int_equal(mallctl("arenas.create", NULL, NULL, NULL, 0), EINVAL);
  /* Read-only names refuse writes, write-only ones reads: EPERM. */
  u = 1;
  static const char *const ro[] = {"version", "opt.abort", "opt.narenas", "stats.allocated", "arenas.narenas",
                                   "thread.allocated", "config.debug", "arenas.bin.0.size", "tcache.create"};
  for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
    if (mallctl(ro[i], NULL, NULL, &u, sizeof(u)) != EPERM) fail_msg("\"%s\" is writable", ro[i]);
  sz = sizeof(u);
  assert_int_equal(mallctl("tcache.flush", &u, &sz, NULL, 0), EPERM);
  assert_int_equal(mallctl("tcache.destroy", &u, &sz, NULL, 0), EPERM);
  assert_int_equal(mallctl("thread.tcache.flush", &u, &sz, NULL, 0), EPERM);
  assert_int_equal(mallctl("arena.0.purge", NULL, NULL, &u, sizeof(u)), EPERM);
  /* Operations that cannot be done: EFAULT. */
  assert_int_equal(mallctl("arena.0.reset", NULL, NULL, NULL, 0), EFAULT);   /* automatic arena */
  assert_int_equal(mallctl("arena.0.destroy", NULL, NULL, NULL, 0), EFAULT); /* automatic arena */
  u = 4000;
  assert_int_equal(mallctl("tcache.flush", NULL, NULL, &u, sizeof(u)), EFAULT);
  assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &u, sizeof(u)), EFAULT);
  assert_int_equal(mallctl("tcache.flush", NULL, NULL, NULL, 0), EFAULT);
  u = 4095;
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &u, sizeof(u)), EFAULT);
  /* The thread's arena is unchanged by the failed write. */
  unsigned cur;
  RD("thread.arena", cur);
  assert_true(cur < 4095);
  /* arenas.create with a hooks pointer: wrong length EINVAL; a table
   * without alloc EINVAL (nothing is made). */
  extent_hooks_t empty = {0}, *hooks = &empty;
  sz = sizeof(u);
  assert_int_equal(mallctl("arenas.create", &u, &sz, &hooks, sizeof(hooks) - 1), EINVAL);
  sz = sizeof(u);
  assert_int_equal(mallctl("arenas.create", &u, &sz, &hooks, sizeof(hooks)), EINVAL);
  /* arena.<i>.extent_hooks: arena 0 has the default table, which may be
   * written back; a user table there is EPERM, a NULL one EINVAL; an arena
   * that does not exist EFAULT. */
  extent_hooks_t *def = NULL, *h2;
  sz = sizeof(def);
  assert_int_equal(mallctl("arena.0.extent_hooks", &def, &sz, NULL, 0), 0);
  assert_non_null(def);
  assert_non_null(def->alloc);
  assert_int_equal(mallctl("arena.0.extent_hooks", NULL, NULL, &def, sizeof(def)), 0);
  assert_int_equal(mallctl("arena.0.extent_hooks", NULL, NULL, &def, 1), EINVAL);
  empty.alloc = def->alloc;
  assert_int_equal(mallctl("arena.0.extent_hooks", NULL, NULL, &hooks, sizeof(hooks)), EPERM);
  h2 = NULL;
  assert_int_equal(mallctl("arena.0.extent_hooks", NULL, NULL, &h2, sizeof(h2)), EINVAL);
  sz = sizeof(h2);
  assert_int_equal(mallctl("arena.4000.extent_hooks", &h2, &sz, NULL, 0), ENOENT);
  sz = sizeof(h2);
  assert_int_equal(mallctl("arena.0.extent_hooks", &h2, &sz, NULL, 0), 0);
  assert_ptr_equal(h2, def);
}

static void test_mib(void **state) {
  (void)state;
  size_t mib[8], miblen = 8;
  assert_int_equal(mallctlnametomib("arenas.bin.0.size", mib, &miblen), 0);
  assert_int_equal(miblen, 4);
  unsigned nbins;
  RD("arenas.nbins", nbins);
  for (unsigned i = 0; i < nbins; i++) {
    mib[2] = i;
    size_t size, sz = sizeof(size);
    assert_int_equal(mallctlbymib(mib, miblen, &size, &sz, NULL, 0), 0);
    char name[64];
    snprintf(name, sizeof(name), "arenas.bin.%u.size", i);
    size_t byname;
    RD(name, byname);
    assert_int_equal(size, byname);
    assert_int_equal(nallocx(size, 0), size);
  }
  mib[2] = nbins;
  size_t size, sz = sizeof(size);
  assert_int_equal(mallctlbymib(mib, miblen, &size, &sz, NULL, 0), ENOENT);
  /* A partial name gives a partial MIB; a short miblen gives ENOENT. */
  miblen = 8;
  assert_int_equal(mallctlnametomib("stats.arenas", mib, &miblen), 0);
  assert_int_equal(miblen, 2);
  assert_int_equal(mallctlbymib(mib, miblen, &size, &sz, NULL, 0), ENOENT);
  miblen = 2; /* a partial MIB: see mallctl_compat.c */
  assert_int_equal(mallctlnametomib("arenas.bin.0.size", mib, &miblen), 0);
  assert_int_equal(miblen, 2);
  assert_int_equal(mallctlbymib(mib, 0, &size, &sz, NULL, 0), ENOENT);
  miblen = 8;
  assert_int_equal(mallctlnametomib("opt.zero", mib, &miblen), 0);
  bool z = true;
  sz = sizeof(z);
  assert_int_equal(mallctlbymib(mib, miblen, &z, &sz, NULL, 0), 0);
  assert_false(z);
}

static bool all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

static void test_flags(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 8, 24, 100, 1000, 5000, 20000, 100000, 3 << 20};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    for (int la = 0; la <= 22; la += 2) {
      unsigned char *p = mallocx(n, MALLOCX_LG_ALIGN(la));
      assert_non_null(p);
      assert_int_equal((uintptr_t)p & (((size_t)1 << la) - 1), 0);
      assert_int_equal(sallocx(p, 0), nallocx(n, MALLOCX_LG_ALIGN(la)));
      memset(p, 0xee, n);
      sdallocx(p, n, MALLOCX_LG_ALIGN(la));
    }
    unsigned char *z = mallocx(n, MALLOCX_ZERO | MALLOCX_ALIGN(64));
    assert_true(all_zero(z, n));
    assert_int_equal((uintptr_t)z & 63, 0);
    memset(z, 1, n);
    dallocx(z, 0);
    z = mallocx(n, MALLOCX_ZERO);
    assert_true(all_zero(z, n));
    dallocx(z, 0);
    void *t = mallocx(n, MALLOCX_TCACHE_NONE);
    assert_non_null(t);
    dallocx(t, MALLOCX_TCACHE_NONE);
  }
  assert_int_equal(nallocx((size_t)1 << 63, 0), 0);
  errno = 0;
  assert_null(mallocx((size_t)1 << 63, 0));
  assert_int_equal(errno, ENOMEM);
  assert_null(mallocx(16, MALLOCX_ARENA(4000)));
  assert_int_equal(errno, EINVAL);
  assert_null(mallocx(16, MALLOCX_TCACHE(4000)));
  /* rallocx keeps contents, zeroes what it adds with MALLOCX_ZERO. */
  char *r = mallocx(100, 0);
  memset(r, 'x', 100);
  for (size_t n = 200; n <= (4 << 20); n *= 3) {
    size_t old = sallocx(r, 0);
    r = rallocx(r, n, MALLOCX_ZERO);
    assert_non_null(r);
    assert_true(sallocx(r, 0) >= n);
    for (size_t i = 0; i < 100; i++) assert_int_equal(r[i], 'x');
    assert_true(all_zero((unsigned char *)r + old, n - old));
    memset(r + 100, 0x77, n - 100);
  }
  r = rallocx(r, 50, 0);
  for (size_t i = 0; i < 50; i++) assert_int_equal(r[i], 'x');
  dallocx(r, 0);
  /* xallocx: in place or not at all. */
  char *l = mallocx(5 * 4096, 0);
  size_t u = sallocx(l, 0);
  assert_int_equal(xallocx(l, u, 0, 0), u);
  size_t shrunk = xallocx(l, 4 * 4096, 0, 0);
  assert_int_equal(shrunk, 4 * 4096);
  assert_int_equal(sallocx(l, 0), 4 * 4096);
  size_t grown = xallocx(l, 4 * 4096, 4096, 0);
  assert_true(grown >= 4 * 4096 && grown <= 5 * 4096);
  assert_int_equal(sallocx(l, 0), grown);
  dallocx(l, 0);
  char *s = mallocx(32, 0);
  assert_int_equal(xallocx(s, 10000, 0, 0), 32); /* a small object cannot grow in place */
  dallocx(s, 0);
}

static void test_explicit_tcache(void **state) {
  (void)state;
  unsigned tc[3];
  for (int i = 0; i < 3; i++) RD("tcache.create", tc[i]);
  assert_true(tc[0] != tc[1] && tc[1] != tc[2]);
  void *p[100];
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < 100; i++) {
      p[i] = mallocx(16 + (size_t)(i % 5) * 1000, MALLOCX_TCACHE(tc[k]));
      assert_non_null(p[i]);
      memset(p[i], i, 16);
    }
    for (int i = 0; i < 100; i++) dallocx(p[i], MALLOCX_TCACHE(tc[k]));
    /* Served again from the cache (LIFO). */
    void *again = mallocx(16 + (size_t)(99 % 5) * 1000, MALLOCX_TCACHE(tc[k]));
    assert_ptr_equal(again, p[99]);
    dallocx(again, MALLOCX_TCACHE(tc[k]));
    assert_int_equal(mallctl("tcache.flush", NULL, NULL, &tc[k], sizeof(tc[k])), 0);
  }
  for (int i = 0; i < 3; i++) assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &tc[i], sizeof(tc[i])), 0);
  assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &tc[0], sizeof(tc[0])), EFAULT);
  /* The index is reused. */
  unsigned again;
  RD("tcache.create", again);
  assert_true(again <= tc[2]);
  assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &again, sizeof(again)), 0);
}

static size_t arena_stat(unsigned ind, const char *what) {
  char name[96];
  snprintf(name, sizeof(name), "stats.arenas.%u.%s", ind, what);
  return stat_z(name);
}

static void test_arena_reset_destroy(void **state) {
  (void)state;
  unsigned ai, narenas;
  RD("arenas.create", ai);
  RD("arenas.narenas", narenas);
  assert_int_equal(narenas, ai + 1);
  epoch();
  size_t mapped0 = stat_z("stats.mapped");
  enum { N = 300 };
  void *p[N];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++) {
      size_t n = i % 30 == 0 ? (size_t)(3 << 20) : i % 3 == 0 ? 40000 : 24 + (size_t)i * 8;
      p[i] = mallocx(n, MALLOCX_ARENA(ai) | (i % 2 ? MALLOCX_TCACHE_NONE : 0));
      assert_non_null(p[i]);
      memset(p[i], 0x5c, n);
    }
    /* Some freed through the thread's own cache: reset must cope. */
    for (int i = 0; i < N; i += 7) free(p[i]);
    epoch();
    assert_true(arena_stat(ai, "small.allocated") > 0);
    assert_true(arena_stat(ai, "large.allocated") > 0);
    assert_true(arena_stat(ai, "huge.allocated") >= 8 * (size_t)(3 << 20)); /* 10, 2 freed */
    assert_int_equal(arena_stat(0, "huge.curhuge") < 1000, 1);
    assert_true(stat_z("stats.mapped") >= mapped0 + 8 * (size_t)(3 << 20));
    assert_int_equal(mallctl("arena.0.reset", NULL, NULL, NULL, 0), EFAULT);
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.reset", ai);
    assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
    epoch();
    assert_int_equal(arena_stat(ai, "small.allocated"), 0);
    assert_int_equal(arena_stat(ai, "large.allocated"), 0);
    assert_int_equal(arena_stat(ai, "huge.allocated"), 0);
    assert_int_equal(arena_stat(ai, "huge.curhuge"), 0);
    assert_int_equal(arena_stat(ai, "pactive"), 0);
  }
  /* Still usable after reset. */
  void *q = mallocx(100, MALLOCX_ARENA(ai));
  assert_non_null(q);
  dallocx(q, 0);
  /* Bound to a thread: destroy refuses. */
  unsigned old;
  RD("thread.arena", old);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &ai, sizeof(ai)), 0);
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.destroy", ai);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), EFAULT);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &old, sizeof(old)), 0);
  epoch();
  size_t before = stat_z("stats.mapped");
  assert_true(arena_stat(ai, "mapped") > 0);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  epoch();
  size_t after = stat_z("stats.mapped");
  assert_true(after + 9 * (size_t)(3 << 20) <= before); /* memory really returned */
  snprintf(name, sizeof(name), "stats.arenas.%u.pactive", ai);
  size_t z, sz = sizeof(z);
  assert_int_equal(mallctl(name, &z, &sz, NULL, 0), ENOENT);
  /* Nothing to purge at a destroyed index: 0, as jemalloc. */
  snprintf(name, sizeof(name), "arena.%u.purge", ai);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
  snprintf(name, sizeof(name), "arena.%u.destroy", ai);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), EFAULT);
  errno = 0;
  assert_null(mallocx(16, MALLOCX_ARENA(ai)));
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &ai, sizeof(ai)), EFAULT);
  /* The index is recycled by the next arenas.create (as jemalloc). */
  unsigned next;
  RD("arenas.create", next);
  assert_int_equal(next, ai);
}

static void test_thread_arena(void **state) {
  (void)state;
  unsigned ai, old, cur;
  RD("arenas.create", ai);
  RD("thread.arena", old);
  size_t sz = sizeof(cur);
  assert_int_equal(mallctl("thread.arena", &cur, &sz, &ai, sizeof(ai)), 0);
  assert_int_equal(cur, old);
  RD("thread.arena", cur);
  assert_int_equal(cur, ai);
  void *p = mallocx(200000, 0);
  void *s = mallocx(3 << 20, 0);
  epoch();
  assert_true(arena_stat(ai, "large.allocated") >= 200000);
  assert_true(arena_stat(ai, "huge.allocated") >= 3 << 20);
  unsigned nt;
  char name[64];
  snprintf(name, sizeof(name), "stats.arenas.%u.nthreads", ai);
  RD(name, nt);
  assert_int_equal(nt, 1);
  dallocx(p, 0);
  dallocx(s, 0);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &old, sizeof(old)), 0);
}

static void *thread_counts(void *arg) {
  (void)arg;
  uint64_t a0, d0, a1, d1;
  RD("thread.allocated", a0);
  RD("thread.deallocated", d0);
  void *p[10];
  for (int i = 0; i < 10; i++) p[i] = malloc(1000);
  void *big = mallocx(1 << 20, MALLOCX_TCACHE_NONE);
  RD("thread.allocated", a1);
  assert_true(a1 - a0 >= 10 * 1000 + (1 << 20));
  assert_true(a1 - a0 <= 10 * 1024 + (1 << 20) + 4096);
  for (int i = 0; i < 10; i++) free(p[i]);
  dallocx(big, MALLOCX_TCACHE_NONE);
  RD("thread.deallocated", d1);
  assert_int_equal(d1 - d0, a1 - a0);
  return NULL;
}

static void test_thread_counters(void **state) {
  (void)state;
  uint64_t a;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, thread_counts, NULL), 0);
  pthread_join(th, NULL);
  thread_counts(NULL);
  RD("thread.allocated", a);
  assert_true(a > 0);
}

static void test_thread_tcache_enabled(void **state) {
  (void)state;
  bool old, b = false, now;
  size_t sz = sizeof(old);
  assert_int_equal(mallctl("thread.tcache.enabled", &old, &sz, &b, sizeof(b)), 0);
  RD("thread.tcache.enabled", now);
  assert_false(now);
  /* With the cache off, a freed object goes straight back to its run. */
  void *p = malloc(64);
  free(p);
  epoch();
  void *x[50];
  for (int i = 0; i < 50; i++) x[i] = malloc(64);
  for (int i = 0; i < 50; i++) free(x[i]);
  assert_int_equal(mallctl("thread.tcache.enabled", NULL, NULL, &old, sizeof(old)), 0);
  RD("thread.tcache.enabled", now);
  assert_int_equal(now, old);
}

/* stats_print into a buffer. */
typedef struct {
  char buf[1 << 20];
  size_t len;
} sink_t;
static sink_t sink;
static void sink_write(void *opaque, const char *s) {
  sink_t *k = opaque;
  size_t n = strlen(s);
  assert_true(k->len + n < sizeof(k->buf));
  memcpy(k->buf + k->len, s, n + 1);
  k->len += n;
}

static void test_stats_print(void **state) {
  (void)state;
  void *p = malloc(100);
  sink.len = 0;
  malloc_stats_print(sink_write, &sink, NULL);
  assert_non_null(strstr(sink.buf, "___ Begin xalloc statistics ___"));
  assert_non_null(strstr(sink.buf, "___ End xalloc statistics ___"));
  assert_non_null(strstr(sink.buf, "stats_print_opts"));
  assert_non_null(strstr(sink.buf, "Option table (name, value, meaning):"));
  assert_non_null(strstr(sink.buf, "Allocation calls: "));
  assert_non_null(strstr(sink.buf, "Merged arenas:"));
  assert_non_null(strstr(sink.buf, "Arena 0 (automatic):"));
  assert_non_null(strstr(sink.buf, "regs/run"));
  assert_non_null(strstr(sink.buf, "huge:"));
  size_t full = sink.len;
  sink.len = 0;
  malloc_stats_print(sink_write, &sink, "gmbl");
  assert_true(sink.len < full);
  assert_null(strstr(sink.buf, "Option table"));
  assert_null(strstr(sink.buf, "Merged arenas:"));
  assert_null(strstr(sink.buf, "regs/run"));
  assert_null(strstr(sink.buf, "huge:"));
  assert_non_null(strstr(sink.buf, "Arena 0"));
  sink.len = 0;
  malloc_stats_print(sink_write, &sink, "a");
  assert_null(strstr(sink.buf, "Arena 0"));
  assert_non_null(strstr(sink.buf, "Merged arenas:"));
  sink.len = 0;
  malloc_stats_print(sink_write, &sink, "J");
  assert_int_equal(sink.buf[0], '{');
  assert_non_null(strstr(sink.buf, "\"xalloc\": {"));
  assert_non_null(strstr(sink.buf, "\"curslabs\""));
  free(p);
}

static void missized(void *arg) {
  (void)arg;
  void *p = mallocx(100, 0);
  sdallocx(p, 5000, 0);
}

static void test_sdallocx_wrong_size(void **state) {
  (void)state;
  char err[512];
  int st = xtest_run_child(missized, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "mis-sized free"));
}

static void stdout_write(void *opaque, const char *s) {
  (void)opaque;
  fputs(s, stdout);
}

static int helper(int argc, char **argv) {
  if (strcmp(argv[1], "json") == 0) {
    void *p = malloc(100), *q = malloc(3 << 20);
    malloc_stats_print(stdout_write, NULL, argc > 2 ? argv[2] : "J");
    free(p);
    free(q);
    return 0;
  }
  if (strcmp(argv[1], "zero") == 0) {
    bool z;
    RD("opt.zero", z);
    if (!z) return 2;
    for (size_t n = 8; n < (1 << 21); n = n * 2 + 8) {
      for (int i = 0; i < 20; i++) {
        unsigned char *p = malloc(n);
        if (!all_zero(p, n)) return 3;
        memset(p, 0xa5, n);
        unsigned char *r = realloc(p, n * 2);
        if (!all_zero(r + n, n)) return 4;
        memset(r, 0xa5, n * 2);
        free(r);
        p = mallocx(n, MALLOCX_LG_ALIGN(6));
        if (!all_zero(p, n)) return 5;
        memset(p, 0xa5, n);
        free(p);
      }
    }
    printf("zero: all new memory read as zero\n");
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc > 1) return helper(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_every_name),   cmocka_unit_test(test_stats_follow_epoch),
      cmocka_unit_test(test_error_codes),       cmocka_unit_test(test_mib),
      cmocka_unit_test(test_flags),             cmocka_unit_test(test_explicit_tcache),
      cmocka_unit_test(test_arena_reset_destroy), cmocka_unit_test(test_thread_arena),
      cmocka_unit_test(test_thread_counters),   cmocka_unit_test(test_thread_tcache_enabled),
      cmocka_unit_test(test_stats_print),       cmocka_unit_test(test_sdallocx_wrong_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
