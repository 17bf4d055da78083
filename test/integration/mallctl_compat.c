/*
 * mallctl as jemalloc 5.3 programs use it (project issue 10): both
 * spellings of "every arena", the indices arenas.narenas counts, partial
 * MIBs, arguments checked before anything is done, jemalloc's value types,
 * the destroyed arenas' figures, index recycling, the background thread and
 * the names jemalloc documents. Public API only.
 */
#include "xtest.h"

#include <dlfcn.h>

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

/* Item 9 and 10: a wrong *oldlenp or newlen is refused before anything is
 * done, and no caller variable is ever half written. */
static void test_bad_sizes_change_nothing(void **state) {
  (void)state;
  /* thread.arena: the thread stays where it was. */
  unsigned ai, cur, old;
  size_t sz = sizeof(ai);
  assert_int_equal(mallctl("arenas.create", &ai, &sz, NULL, 0), 0);
  RD("thread.arena", old);
  uint64_t wide = 0x5555555555555555ULL;
  sz = sizeof(wide);
  assert_int_equal(mallctl("thread.arena", &wide, &sz, &ai, sizeof(ai)), EINVAL);
  assert_int_equal(sz, sizeof(unsigned));
  assert_true(wide == 0x5555555555555555ULL);
  RD("thread.arena", cur);
  assert_int_equal(cur, old);
  sz = 1;
  assert_int_equal(mallctl("thread.arena", &cur, &sz, &ai, sizeof(ai)), EINVAL);
  RD("thread.arena", cur);
  assert_int_equal(cur, old);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &ai, sizeof(ai) + 1), EINVAL);
  RD("thread.arena", cur);
  assert_int_equal(cur, old);
  /* thread.tcache.enabled: unchanged. */
  bool en, en2, flip;
  RD("thread.tcache.enabled", en);
  flip = !en;
  sz = sizeof(wide);
  assert_int_equal(mallctl("thread.tcache.enabled", &wide, &sz, &flip, sizeof(flip)), EINVAL);
  RD("thread.tcache.enabled", en2);
  assert_int_equal(en2, en);
  /* epoch: no refresh. */
  uint64_t e0, e1, one = 1;
  RD("epoch", e0);
  uint32_t e32 = 7;
  sz = sizeof(e32);
  assert_int_equal(mallctl("epoch", &e32, &sz, &one, sizeof(one)), EINVAL);
  assert_int_equal(e32, 7);
  RD("epoch", e1);
  assert_true(e1 == e0);
  /* tcache.create: no cache is made, *oldlenp is 0 (jemalloc's words). */
  unsigned tc, tc2;
  RD("tcache.create", tc);
  assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc)), 0);
  sz = 1;
  assert_int_equal(mallctl("tcache.create", &wide, &sz, NULL, 0), EINVAL);
  assert_int_equal(sz, 0);
  assert_int_equal(mallctl("tcache.create", NULL, NULL, NULL, 0), EINVAL);
  RD("tcache.create", tc2);
  assert_int_equal(tc2, tc); /* the lowest free index: nothing took it */
  assert_int_equal(mallctl("tcache.destroy", NULL, NULL, &tc2, sizeof(tc2)), 0);
  /* arenas.create: no arena is made. */
  unsigned n0 = narenas_now();
  sz = sizeof(wide);
  assert_int_equal(mallctl("arenas.create", &wide, &sz, NULL, 0), EINVAL);
  assert_int_equal(narenas_now(), n0);
  /* Reads of every type: nothing copied on a wrong length, *oldlenp says
   * the right one. */
  static const struct {
    const char *name;
    size_t size;
  } names[] = {{"arenas.narenas", sizeof(unsigned)}, {"opt.abort", sizeof(bool)},
               {"version", sizeof(const char *)},     {"stats.allocated", sizeof(size_t)},
               {"epoch", sizeof(uint64_t)},           {"thread.allocated", sizeof(uint64_t)},
               {"arena.0.extent_hooks", sizeof(void *)}, {"arena.0.check", sizeof(bool)},
               {"arenas.bin.0.nregs", sizeof(uint32_t)}, {"opt.dirty_decay_ms", sizeof(ssize_t)}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    for (size_t len = 1; len <= 16; len++) {
      if (len == names[i].size) continue;
      unsigned char buf[16];
      memset(buf, 0xa5, sizeof(buf));
      sz = len;
      if (mallctl(names[i].name, buf, &sz, NULL, 0) != EINVAL) fail_msg("%s, len %zu: not EINVAL", names[i].name, len);
      for (size_t k = 0; k < sizeof(buf); k++)
        if (buf[k] != 0xa5) fail_msg("%s, len %zu: byte %zu written", names[i].name, len, k);
      assert_int_equal(sz, names[i].size);
    }
  }
}

/* Item 3 and 10: opt.* in jemalloc's types; writing any opt.* is EPERM. */
static void test_opt_types(void **state) {
  (void)state;
  size_t z;
  unsigned u;
  const char *s;
  bool b;
  size_t sz = sizeof(u);
  assert_int_equal(mallctl("opt.tcache_max", &u, &sz, NULL, 0), EINVAL);
  RD("opt.tcache_max", z);
  const char *conf = getenv("XALLOC_CONF");
  if (conf == NULL || strstr(conf, "tcache_max") == NULL) assert_int_equal(z, 32768);
  sz = sizeof(b);
  assert_int_equal(mallctl("opt.junk", &b, &sz, NULL, 0), EINVAL);
  RD("opt.junk", s);
  assert_true(strcmp(s, "false") == 0 || strcmp(s, "true") == 0);
  if (conf == NULL || strstr(conf, "junk") == NULL) assert_string_equal(s, "false");
  RD("opt.narenas", u);
  assert_true(u >= 1);
  unsigned n;
  RD("arenas.narenas", n);
  assert_true(n >= u);
  /* What xalloc does one way only, in jemalloc's words. */
  RD("opt.dss", s);
  assert_string_equal(s, "disabled");
  RD("opt.percpu_arena", s);
  assert_string_equal(s, "disabled");
  RD("opt.metadata_thp", s);
  assert_string_equal(s, "disabled");
  RD("opt.zero_realloc", s);
  assert_string_equal(s, "free");
  void *p = malloc(10), *r = realloc(p, 0); /* "free": frees and returns NULL */
  assert_null(r);
  RD("opt.max_background_threads", z);
  assert_int_equal(z, 1);
  int64_t i64;
  RD("opt.stats_interval", i64);
  assert_true(i64 == -1);
  RD("opt.stats_interval_opts", s);
  assert_string_equal(s, "");
  RD("opt.confirm_conf", b);
  assert_false(b);
  RD("opt.cache_oblivious", b);
  assert_false(b);
  RD("opt.oversize_threshold", z);
  assert_int_equal(z, 0);
  static const char *const cfg[] = {"config.cache_oblivious", "config.lazy_lock", "config.prof_libunwind",
                                    "config.utrace", "config.xmalloc"};
  for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
    b = true;
    RD(cfg[i], b);
    assert_false(b);
  }
  /* The heap profiler is built in; its stacks through xalloc's own
   * unwinder on x86-64 with glibc's _dl_find_object, else libgcc's. */
  b = false;
  RD("config.prof", b);
  assert_true(b);
  b = true;
  RD("config.prof_libgcc", b);
#if defined(__x86_64__) && defined(DLFO_STRUCT_HAS_EH_DBASE)
  assert_false(b);
#else
  assert_true(b);
#endif
  /* Every opt.* refuses writes, whatever the length. */
  size_t mib[2], miblen = 2;
  assert_int_equal(mallctlnametomib("opt.abort", mib, &miblen), 0);
  unsigned nopts = 0;
  uint64_t v = 0;
  for (mib[1] = 0;; mib[1]++) {
    unsigned char buf[16];
    sz = sizeof(buf);
    int err = mallctlbymib(mib, 2, buf, &sz, NULL, 0);
    if (err == ENOENT) break;
    assert_int_equal(err, EINVAL); /* no type is 16 bytes */
    for (size_t len = 0; len <= 8; len++)
      if (mallctlbymib(mib, 2, NULL, NULL, &v, len) != EPERM) fail_msg("opt #%zu writable", mib[1]);
    nopts++;
  }
  assert_true(nopts >= 25);
  /* Names xalloc has no concept for, as jemalloc built without them. */
  /* ... and those doc/API.md lists as not honoured. */
  static const char *const none[] = {"opt.utrace", "opt.xmalloc", "opt.lg_extent_max_active_fit",
                                     "experimental.hooks.install",
                                     "thread.peak.read", "thread.peak.reset", "stats.zero_reallocs",
                                     "arena.0.retain_grow_limit", "opt.trust_madvise", "stats.mutexes.ctl.num_ops",
                                     "stats.arenas.0.mutexes.large.num_ops", "stats.arenas.0.bins.0.mutex.num_ops",
                                     "stats.arenas.0.base", "stats.arenas.0.internal", "stats.arenas.0.extent_avail",
                                     "stats.arenas.0.dirty_npurge", "stats.arenas.0.muzzy_purged",
                                     "stats.arenas.0.small.nrequests", "stats.arenas.0.large.nfills",
                                     "stats.arenas.0.bins.0.nfills", "stats.arenas.0.bins.0.nreslabs",
                                     "stats.arenas.0.lextents.0.nmalloc", "stats.arenas.0.extents.0.ndirty"};
  for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
    sz = sizeof(v);
    if (mallctl(none[i], &v, &sz, NULL, 0) != ENOENT) fail_msg("%s exists", none[i]);
  }
}

/* Item 6: a *miblenp shorter than the name gives a partial MIB (jemalloc:
 * the lesser of the two), which the caller completes. */
static void test_partial_mib(void **state) {
  (void)state;
  size_t full[4], fulllen = 4;
  assert_int_equal(mallctlnametomib("arenas.bin.0.size", full, &fulllen), 0);
  assert_int_equal(fulllen, 4);
  size_t mib[4] = {99, 99, 99, 99}, miblen = 2;
  assert_int_equal(mallctlnametomib("arenas.bin.0.size", mib, &miblen), 0);
  assert_int_equal(miblen, 2);
  assert_int_equal(mib[0], full[0]);
  assert_int_equal(mib[1], full[1]);
  assert_int_equal(mib[2], 99); /* untouched */
  unsigned nbins;
  RD("arenas.nbins", nbins);
  for (unsigned i = 0; i < nbins; i++) {
    mib[2] = i;
    mib[3] = full[3];
    size_t size, sz = sizeof(size), byname;
    assert_int_equal(mallctlbymib(mib, 4, &size, &sz, NULL, 0), 0);
    sz = sizeof(byname);
    assert_int_equal(ctlf(&byname, &sz, NULL, 0, "arenas.bin.%u.size", i), 0);
    assert_int_equal(size, byname);
  }
  /* The partial MIB itself is not a leaf. */
  size_t z, sz = sizeof(z);
  assert_int_equal(mallctlbymib(mib, 2, &z, &sz, NULL, 0), ENOENT);
  /* Components past *miblenp are not looked at; those before are. */
  miblen = 2;
  assert_int_equal(mallctlnametomib("arenas.bin.99999.size", mib, &miblen), 0);
  miblen = 3;
  assert_int_equal(mallctlnametomib("arenas.bin.99999.size", mib, &miblen), ENOENT);
  miblen = 1;
  assert_int_equal(mallctlnametomib("version.x", mib, &miblen), ENOENT);
  miblen = 2;
  assert_int_equal(mallctlnametomib("nope.x", mib, &miblen), ENOENT);
  miblen = 0;
  assert_int_equal(mallctlnametomib("arenas.bin.0.size", mib, &miblen), 0);
  assert_int_equal(miblen, 0);
  /* stats.arenas.<i>.bins.<j>.nmalloc from a 3-component prefix. */
  size_t smib[6], smiblen = 6;
  assert_int_equal(mallctlnametomib("stats.arenas.0.bins.0.nmalloc", smib, &smiblen), 0);
  assert_int_equal(smiblen, 6);
  size_t leaf = smib[5];
  smiblen = 3;
  assert_int_equal(mallctlnametomib("stats.arenas.0.bins.0.nmalloc", smib, &smiblen), 0);
  assert_int_equal(smiblen, 3);
  epoch();
  smib[2] = MALLCTL_ARENAS_ALL;
  size_t bmib[6];
  size_t bl = 6;
  assert_int_equal(mallctlnametomib("stats.arenas.0.bins", bmib, &bl), 0);
  assert_int_equal(bl, 4);
  smib[3] = bmib[3];
  smib[4] = 2;
  smib[5] = leaf;
  uint64_t nm, nm2;
  sz = sizeof(nm);
  assert_int_equal(mallctlbymib(smib, 6, &nm, &sz, NULL, 0), 0);
  sz = sizeof(nm2);
  assert_int_equal(ctlf(&nm2, &sz, NULL, 0, "stats.arenas.%u.bins.2.nmalloc", MALLCTL_ARENAS_ALL), 0);
  assert_true(nm == nm2);
}

static uint64_t sa_u64(unsigned i, const char *what) {
  uint64_t v = 0;
  size_t sz = sizeof(v);
  int err = ctlf(&v, &sz, NULL, 0, "stats.arenas.%u.%s", i, what);
  if (err != 0) fail_msg("stats.arenas.%u.%s = %d", i, what, err);
  return v;
}

/* Item 2: stats.arenas.<MALLCTL_ARENAS_DESTROYED>.* are the merged figures
 * of the destroyed arenas (what they did; nothing is live). */
static void test_destroyed_arena_stats(void **state) {
  (void)state;
  assert_int_equal(MALLCTL_ARENAS_DESTROYED, 4097);
  static const char *const counts[] = {"small.nmalloc", "small.ndalloc", "large.nmalloc", "large.ndalloc",
                                       "bins.3.nmalloc", "bins.3.ndalloc", "bins.3.nslabs"};
  enum { NC = sizeof(counts) / sizeof(counts[0]) };
  uint64_t base[NC] = {0}, live[NC];
  bool b;
  size_t sz = sizeof(b);
  epoch();
  assert_int_equal(mallctl("arena.4097.initialized", &b, &sz, NULL, 0), 0);
  if (b)
    for (int k = 0; k < NC; k++) base[k] = sa_u64(MALLCTL_ARENAS_DESTROYED, counts[k]);
  unsigned ai;
  RD("arenas.create", ai);
  size_t bin3;
  RD("arenas.bin.3.size", bin3);
  void *p[100];
  for (int i = 0; i < 100; i++) {
    p[i] = mallocx(i < 80 ? bin3 : i < 95 ? 100000 : (size_t)3 << 20, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    assert_non_null(p[i]);
  }
  for (int i = 0; i < 100; i += 2) dallocx(p[i], MALLOCX_TCACHE_NONE);
  epoch();
  for (int k = 0; k < NC; k++) live[k] = sa_u64(ai, counts[k]);
  assert_true(live[0] >= 80 && live[2] >= 20 && live[4] == 80);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai), 0);
  sz = sizeof(b);
  assert_int_equal(mallctl("arena.4097.initialized", &b, &sz, NULL, 0), 0);
  assert_true(b);
  epoch();
  /* What it allocated; everything freed by the destroy. */
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "small.nmalloc") == base[0] + live[0]);
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "small.ndalloc") == base[1] + live[0]);
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "large.nmalloc") == base[2] + live[2]);
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "large.ndalloc") == base[3] + live[2]);
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "bins.3.nmalloc") == base[4] + 80);
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "bins.3.ndalloc") == base[5] + 80);
  assert_true(sa_u64(MALLCTL_ARENAS_DESTROYED, "bins.3.nslabs") == base[6] + live[6]);
  assert_int_equal(sa_z(MALLCTL_ARENAS_DESTROYED, "pactive"), 0);
  assert_int_equal(sa_z(MALLCTL_ARENAS_DESTROYED, "small.allocated"), 0);
  assert_int_equal(sa_z(MALLCTL_ARENAS_DESTROYED, "large.allocated"), 0);
  assert_int_equal(sa_z(MALLCTL_ARENAS_DESTROYED, "mapped"), 0);
  assert_int_equal(sa_z(MALLCTL_ARENAS_DESTROYED, "bins.3.curregs"), 0);
  /* The destroyed index has no statistics of its own any more. */
  size_t z;
  sz = sizeof(z);
  assert_int_equal(ctlf(&z, &sz, NULL, 0, "stats.arenas.%u.pactive", ai), ENOENT);
  /* Nothing to do there, and nothing it refuses. */
  assert_int_equal(mallctl("arena.4097.purge", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("arena.4097.reset", NULL, NULL, NULL, 0), EFAULT);
  assert_int_equal(mallctl("arena.4097.destroy", NULL, NULL, NULL, 0), EFAULT);
}

/* Items 7 and 8, in a child (it makes every index there is): explicit
 * arenas go up to 4094 (MALLOCX_ARENA's 12 bits), then EAGAIN; a destroyed
 * index is recycled, with its metadata, so a per-job arena can be made and
 * destroyed for ever. */
static void recycle_child(void *arg) {
  (void)arg;
  size_t sz, meta0 = 0, meta1 = 0;
  unsigned first = 0;
  uint64_t e = 1;
  for (int cycle = 0; cycle < 6000; cycle++) {
    unsigned ai;
    sz = sizeof(ai);
    if (mallctl("arenas.create", &ai, &sz, NULL, 0) != 0) _exit(10);
    if (cycle == 0) first = ai;
    if (ai != first) _exit(11); /* recycled */
    void *p = mallocx(1000, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    void *q = mallocx(300000, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    if (p == NULL || q == NULL) _exit(12);
    dallocx(q, MALLOCX_TCACHE_NONE);
    if (ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai) != 0) _exit(13);
    if (cycle == 100 || cycle == 5999) {
      sz = sizeof(e);
      mallctl("epoch", &e, &sz, &e, sizeof(e));
      size_t *m = cycle == 100 ? &meta0 : &meta1;
      sz = sizeof(*m);
      if (mallctl("stats.metadata", m, &sz, NULL, 0) != 0) _exit(14);
    }
  }
  /* No growth per cycle (8 KiB a cycle would be 46 MiB here). */
  if (meta1 > meta0 + (256 << 10)) _exit(15);
  /* Every index up to 4094, then EAGAIN. */
  unsigned last = 0, count = 0, ai;
  for (;;) {
    sz = sizeof(ai);
    int err = mallctl("arenas.create", &ai, &sz, NULL, 0);
    if (err == EAGAIN) break;
    if (err != 0 || ai > 4094) _exit(16);
    last = ai;
    count++;
  }
  if (last != 4094 || count < 4000) _exit(17);
  sz = sizeof(ai);
  if (mallctl("arenas.create", &ai, &sz, NULL, 0) != EAGAIN) _exit(18);
  void *p = mallocx(64, MALLOCX_ARENA(4094) | MALLOCX_TCACHE_NONE);
  if (p == NULL) _exit(19);
  unsigned owner = 0;
  sz = sizeof(owner);
  if (mallctl("arenas.lookup", &owner, &sz, &p, sizeof(p)) == 0 && owner != 4094) _exit(20);
  dallocx(p, MALLOCX_TCACHE_NONE);
  /* A destroyed index in the middle comes back. */
  if (mallctl("arena.4000.destroy", NULL, NULL, NULL, 0) != 0) _exit(21);
  sz = sizeof(ai);
  if (mallctl("arenas.create", &ai, &sz, NULL, 0) != 0 || ai != 4000) _exit(22);
  unsigned n;
  sz = sizeof(n);
  if (mallctl("arenas.narenas", &n, &sz, NULL, 0) != 0 || n != 4095) _exit(23);
  _exit(0);
}

static void test_arena_recycling_and_limit(void **state) {
  (void)state;
  char err[2048];
  int st = xtest_run_child(recycle_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("child: status %d (exit %d), stderr: %s", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1, err);
}

static unsigned ntasks(void) {
  unsigned n = 0;
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "Threads: %u", &n) == 1) break;
  if (f != NULL) fclose(f);
  return n;
}

static void bg_set(bool on) { assert_int_equal(mallctl("background_thread", NULL, NULL, &on, sizeof(on)), 0); }

/* Item 4: background_thread starts and stops the purging thread at run
 * time; max_background_threads is 1 (xalloc has one). */
static void test_background_thread_switch(void **state) {
  (void)state;
  bool b0, b;
  RD("background_thread", b0);
  if (b0) bg_set(false);
  RD("background_thread", b);
  assert_false(b);
  unsigned t0 = ntasks();
  assert_true(t0 >= 1);
  /* As redis writes it: one byte, no old value. */
  char val = 1;
  assert_int_equal(mallctl("background_thread", NULL, 0, &val, 1), 0);
  RD("background_thread", b);
  assert_true(b);
  assert_int_equal(ntasks(), t0 + 1);
  size_t z;
  uint64_t runs = 0, interval;
  for (int i = 0; i < 200 && runs == 0; i++) {
    usleep(10000);
    epoch();
    RD("stats.background_thread.num_runs", runs);
  }
  assert_true(runs >= 1);
  RD("stats.background_thread.num_threads", z);
  assert_int_equal(z, 1);
  RD("stats.background_thread.run_interval", interval);
  /* Writing the same value again changes nothing; the old value is read. */
  bool old = false, on = true;
  size_t sz = sizeof(old);
  assert_int_equal(mallctl("background_thread", &old, &sz, &on, sizeof(on)), 0);
  assert_true(old);
  assert_int_equal(ntasks(), t0 + 1);
  /* Wrong lengths: refused, nothing switched. */
  int wide = 0;
  assert_int_equal(mallctl("background_thread", NULL, NULL, &wide, sizeof(wide)), EINVAL);
  RD("background_thread", b);
  assert_true(b);
  sz = sizeof(wide);
  bool off = false;
  assert_int_equal(mallctl("background_thread", &wide, &sz, &off, sizeof(off)), EINVAL);
  RD("background_thread", b);
  assert_true(b);
  /* Off: the thread is joined, no more passes. */
  sz = sizeof(old);
  assert_int_equal(mallctl("background_thread", &old, &sz, &off, sizeof(off)), 0);
  assert_true(old);
  RD("background_thread", b);
  assert_false(b);
  assert_int_equal(ntasks(), t0);
  epoch();
  RD("stats.background_thread.num_threads", z);
  assert_int_equal(z, 0);
  RD("stats.background_thread.num_runs", runs);
  for (int i = 0; i < 50; i++) free(mallocx(100000, MALLOCX_TCACHE_NONE)); /* ticks: no restart */
  usleep(300000);
  uint64_t runs2;
  epoch();
  RD("stats.background_thread.num_runs", runs2);
  assert_true(runs2 == runs);
  assert_int_equal(ntasks(), t0);
  /* And on again. */
  bg_set(true);
  assert_int_equal(ntasks(), t0 + 1);
  /* A child keeps the setting; the thread is made again there on first use. */
  pid_t pid = fork();
  if (pid == 0) {
    bool c = false;
    size_t csz = sizeof(c);
    if (mallctl("background_thread", &c, &csz, NULL, 0) != 0 || !c) _exit(2);
    for (int i = 0; i < 200 && ntasks() < 2; i++) {
      free(mallocx(100000, MALLOCX_TCACHE_NONE));
      usleep(1000);
    }
    _exit(ntasks() == 2 ? 0 : 3);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  bg_set(false);
  assert_int_equal(ntasks(), t0);
  /* max_background_threads: 1. */
  size_t m;
  RD("max_background_threads", m);
  assert_int_equal(m, 1);
  m = 1;
  assert_int_equal(mallctl("max_background_threads", NULL, NULL, &m, sizeof(m)), 0);
  m = 0;
  assert_int_equal(mallctl("max_background_threads", NULL, NULL, &m, sizeof(m)), EINVAL);
  m = 4;
  assert_int_equal(mallctl("max_background_threads", NULL, NULL, &m, sizeof(m)), EINVAL);
  unsigned mu = 1;
  assert_int_equal(mallctl("max_background_threads", NULL, NULL, &mu, sizeof(mu)), EINVAL);
  RD("max_background_threads", m);
  assert_int_equal(m, 1);
  uint64_t q;
  sz = 4;
  assert_int_equal(mallctl("stats.background_thread.num_threads", &q, &sz, NULL, 0), EINVAL);
  assert_int_equal(mallctl("stats.background_thread.num_runs", NULL, NULL, &q, sizeof(q)), EPERM);
  if (b0) bg_set(true);
}

/* Switching from several threads while others allocate: no deadlock, no
 * thread left behind. */
static volatile bool churn_stop;
static void *bg_churn(void *arg) {
  (void)arg;
  while (!churn_stop) {
    void *p[16];
    for (int i = 0; i < 16; i++) p[i] = mallocx(1000 + (size_t)i * 5000, MALLOCX_TCACHE_NONE);
    for (int i = 0; i < 16; i++) dallocx(p[i], MALLOCX_TCACHE_NONE);
  }
  return NULL;
}
static void *bg_toggler(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) {
    bool on = (i & 1) == 0;
    if (mallctl("background_thread", NULL, NULL, &on, sizeof(on)) != 0) return (void *)1;
  }
  return NULL;
}

static void test_background_thread_races(void **state) {
  (void)state;
  bool b0;
  RD("background_thread", b0);
  unsigned t0 = ntasks() - (b0 ? 1 : 0);
  pthread_t c[2], t[2];
  churn_stop = false;
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&c[i], NULL, bg_churn, NULL), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, bg_toggler, NULL), 0);
  for (int i = 0; i < 2; i++) {
    void *r;
    pthread_join(t[i], &r);
    assert_null(r);
  }
  churn_stop = true;
  for (int i = 0; i < 2; i++) pthread_join(c[i], NULL);
  bg_set(false);
  assert_int_equal(ntasks(), t0);
  bg_set(true);
  assert_int_equal(ntasks(), t0 + 1);
  bg_set(b0);
}

static ssize_t rd_ss(const char *fmt, unsigned i) {
  ssize_t v = -5;
  size_t sz = sizeof(v);
  int err = ctlf(&v, &sz, NULL, 0, fmt, i);
  if (err != 0) fail_msg("%s (%u) = %d", fmt, i, err);
  return v;
}
static int wr_ss(const char *fmt, unsigned i, ssize_t v) { return ctlf(NULL, NULL, &v, sizeof(v), fmt, i); }

/* Dirty pages in arena ai: large runs freed past the thread cache. */
static void make_dirty_in(unsigned ai) {
  void *p[16];
  for (int i = 0; i < 16; i++) {
    p[i] = mallocx(200000, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    assert_non_null(p[i]);
    memset(p[i], 0x22, 200000);
  }
  for (int i = 0; i < 16; i++) dallocx(p[i], MALLOCX_TCACHE_NONE);
}

/* Item 11: decay times, per arena (arena.<i>.*_decay_ms) and the defaults
 * for new arenas (arenas.*_decay_ms). */
static void test_decay_ms(void **state) {
  (void)state;
  ssize_t opt_d, opt_m, d0, m0;
  RD("opt.dirty_decay_ms", opt_d);
  RD("opt.muzzy_decay_ms", opt_m);
  RD("arenas.dirty_decay_ms", d0);
  RD("arenas.muzzy_decay_ms", m0);
  assert_true(d0 == opt_d && m0 == opt_m);
  assert_true(rd_ss("arena.%u.dirty_decay_ms", 0) == opt_d);
  /* New arenas start with the defaults as they are when made. */
  ssize_t v = 7000;
  assert_int_equal(mallctl("arenas.dirty_decay_ms", NULL, NULL, &v, sizeof(v)), 0);
  v = 8000;
  assert_int_equal(mallctl("arenas.muzzy_decay_ms", NULL, NULL, &v, sizeof(v)), 0);
  unsigned ai;
  RD("arenas.create", ai);
  assert_true(rd_ss("arena.%u.dirty_decay_ms", ai) == 7000);
  assert_true(rd_ss("arena.%u.muzzy_decay_ms", ai) == 8000);
  assert_true(rd_ss("arena.%u.dirty_decay_ms", 0) == opt_d); /* existing ones keep theirs */
  ssize_t old = 0;
  size_t sz = sizeof(old);
  assert_int_equal(mallctl("arenas.dirty_decay_ms", &old, &sz, &d0, sizeof(d0)), 0);
  assert_true(old == 7000);
  assert_int_equal(mallctl("arenas.muzzy_decay_ms", NULL, NULL, &m0, sizeof(m0)), 0);
  epoch();
  assert_true(rd_ss("stats.arenas.%u.dirty_decay_ms", ai) == 7000);
  assert_true(rd_ss("stats.arenas.%u.muzzy_decay_ms", ai) == 8000);
  assert_true(rd_ss("stats.arenas.%u.dirty_decay_ms", MALLCTL_ARENAS_ALL) == -1);
  /* Setting a time makes the pages of that kind fully decayed: dirty pages
   * are purged lazily at once (they become muzzy), then muzzy ones. */
  make_dirty_in(ai);
  epoch();
  size_t dirty = sa_z(ai, "pdirty");
  assert_true(dirty >= 16 * 200000 / 4096);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, 5000), 0);
  assert_true(rd_ss("arena.%u.dirty_decay_ms", ai) == 5000);
  epoch();
  assert_int_equal(sa_z(ai, "pdirty"), 0);
  size_t muzzy = sa_z(ai, "pmuzzy");
  assert_true(muzzy >= dirty);
  assert_int_equal(wr_ss("arena.%u.muzzy_decay_ms", ai, 5000), 0);
  epoch();
  assert_int_equal(sa_z(ai, "pmuzzy"), 0);
  /* muzzy 0: dirty pages go straight to clean. */
  assert_int_equal(wr_ss("arena.%u.muzzy_decay_ms", ai, 0), 0);
  make_dirty_in(ai);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, 5000), 0);
  epoch();
  assert_int_equal(sa_z(ai, "pdirty"), 0);
  assert_int_equal(sa_z(ai, "pmuzzy"), 0);
  /* -1: never, not even on arena.<i>.decay; purge still purges. */
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, -1), 0);
  make_dirty_in(ai);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.decay", ai), 0);
  epoch();
  assert_true(sa_z(ai, "pdirty") >= 16 * 200000 / 4096);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, -1), 0); /* -1 again: nothing purged */
  epoch();
  assert_true(sa_z(ai, "pdirty") >= 16 * 200000 / 4096);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", ai), 0);
  epoch();
  assert_int_equal(sa_z(ai, "pdirty"), 0);
  /* 0: purged as they are freed (at the next slow-path call at most). */
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, 0), 0);
  make_dirty_in(ai);
  free(mallocx(100, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE));
  epoch();
  assert_int_equal(sa_z(ai, "pdirty"), 0);
  /* Refusals: all arenas, no arena, out of range (EFAULT); sizes (EINVAL). */
  sz = sizeof(old);
  assert_int_equal(ctlf(&old, &sz, NULL, 0, "arena.%u.dirty_decay_ms", MALLCTL_ARENAS_ALL), EFAULT);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", MALLCTL_ARENAS_ALL, 100), EFAULT);
  assert_int_equal(wr_ss("arena.%u.muzzy_decay_ms", narenas_now(), 100), EFAULT);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", MALLCTL_ARENAS_DESTROYED, 100), EFAULT);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, -2), EFAULT);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, (ssize_t)1 << 62), EFAULT);
  assert_int_equal(wr_ss("arenas.dirty_decay_ms", 0, -2), EFAULT);
  assert_int_equal(wr_ss("arenas.muzzy_decay_ms", 0, (ssize_t)1 << 62), EFAULT);
  assert_true(rd_ss("arena.%u.dirty_decay_ms", ai) == 0); /* unchanged by the refusals */
  int small = 100;
  assert_int_equal(ctlf(NULL, NULL, &small, sizeof(small), "arena.%u.dirty_decay_ms", ai), EINVAL);
  assert_int_equal(mallctl("arenas.muzzy_decay_ms", NULL, NULL, &small, sizeof(small)), EINVAL);
  RD("arenas.muzzy_decay_ms", old);
  assert_true(old == m0);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai), 0);
  assert_int_equal(wr_ss("arena.%u.dirty_decay_ms", ai, 100), EFAULT); /* destroyed */
}

/* thread.allocatedp / deallocatedp: live counters of the calling thread. */
static void *counterp_thread(void *arg) {
  uint64_t *p;
  size_t sz = sizeof(p);
  assert_int_equal(mallctl("thread.allocatedp", &p, &sz, NULL, 0), 0);
  *(uint64_t **)arg = p;
  free(malloc(10));
  return NULL;
}

static void test_thread_counter_pointers(void **state) {
  (void)state;
  uint64_t *ap = NULL, *dp = NULL, a, d;
  RD("thread.allocatedp", ap);
  RD("thread.deallocatedp", dp);
  assert_non_null(ap);
  assert_non_null(dp);
  RD("thread.allocated", a);
  RD("thread.deallocated", d);
  assert_true(*ap == a && *dp == d);
  uint64_t a0 = *ap, d0 = *dp;
  /* Calls outside the cache are counted at once. */
  void *big = mallocx(1 << 20, MALLOCX_TCACHE_NONE);
  assert_true(*ap - a0 >= (1 << 20));
  dallocx(big, MALLOCX_TCACHE_NONE);
  assert_true(*dp - d0 >= (1 << 20));
  /* Cached calls by the next slow path or cache step (every 256). */
  a0 = *ap;
  void *p[1000];
  for (int i = 0; i < 1000; i++) p[i] = malloc(64);
  assert_true(*ap - a0 >= 64 * (1000 - 256 - 200));
  d0 = *dp;
  for (int i = 0; i < 1000; i++) free(p[i]);
  free(mallocx(100000, MALLOCX_TCACHE_NONE));
  assert_true(*dp - d0 >= 100000);
  RD("thread.allocated", a);
  RD("thread.deallocated", d);
  assert_true(*ap == a && *dp == d);
  /* Another thread has counters of its own. */
  uint64_t *other = NULL;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, counterp_thread, &other), 0);
  pthread_join(th, NULL);
  assert_non_null(other);
  assert_ptr_not_equal(other, ap);
  size_t sz = sizeof(ap);
  assert_int_equal(mallctl("thread.allocatedp", NULL, NULL, &ap, sizeof(ap)), EPERM);
  sz = 4;
  assert_int_equal(mallctl("thread.deallocatedp", &dp, &sz, NULL, 0), EINVAL);
}

/* thread.idle: the thread's cache goes back to its arena. */
static void test_thread_idle(void **state) {
  (void)state;
  unsigned ai, old;
  RD("arenas.create", ai);
  RD("thread.arena", old);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &ai, sizeof(ai)), 0);
  assert_int_equal(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0), 0); /* refill from ai */
  void *p[100];
  for (int i = 0; i < 100; i++) p[i] = malloc(64);
  for (int i = 0; i < 100; i++) free(p[i]);
  bool cached;
  RD("thread.tcache.enabled", cached);
  epoch();
  size_t curregs = sa_z(ai, "small.allocated");
  if (cached) assert_true(curregs >= 64 * 50); /* in the cache, allocated for the arena */
  assert_int_equal(mallctl("thread.idle", NULL, NULL, NULL, 0), 0);
  epoch();
  assert_int_equal(sa_z(ai, "small.allocated"), 0);
  unsigned u = 1;
  size_t sz = sizeof(u);
  assert_int_equal(mallctl("thread.idle", NULL, NULL, &u, sizeof(u)), EPERM);
  assert_int_equal(mallctl("thread.idle", &u, &sz, NULL, 0), EPERM);
  assert_int_equal(mallctl("thread.arena", NULL, NULL, &old, sizeof(old)), 0);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai), 0);
}

/* arenas.lookup: which arena a pointer belongs to. */
static unsigned lookup(void *ptr, int *err) {
  unsigned ind = 99999;
  size_t sz = sizeof(ind);
  *err = mallctl("arenas.lookup", &ind, &sz, &ptr, sizeof(ptr));
  return ind;
}

static void test_arenas_lookup(void **state) {
  (void)state;
  unsigned ai, cur;
  int err;
  RD("arenas.create", ai);
  RD("thread.arena", cur);
  static const size_t sizes[] = {8, 3000, 100000, (size_t)5 << 20};
  for (size_t k = 0; k < 4; k++) {
    char *a = mallocx(sizes[k], MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE), *b = malloc(sizes[k]);
    assert_int_equal(lookup(a, &err), ai);
    assert_int_equal(err, 0);
    assert_int_equal(lookup(a + sizes[k] - 1, &err), ai); /* interior */
    assert_int_equal(lookup(b, &err), cur);
    assert_int_equal(err, 0);
    dallocx(a, MALLOCX_TCACHE_NONE);
    free(b);
  }
  int local;
  lookup(&local, &err);
  assert_int_equal(err, EINVAL);
  lookup(NULL, &err);
  assert_int_equal(err, EINVAL);
  unsigned ind;
  size_t sz = sizeof(ind);
  void *p = malloc(10);
  assert_int_equal(mallctl("arenas.lookup", &ind, &sz, NULL, 0), EINVAL);
  assert_int_equal(mallctl("arenas.lookup", &ind, &sz, &p, sizeof(p) - 1), EINVAL);
  sz = 2;
  assert_int_equal(mallctl("arenas.lookup", &ind, &sz, &p, sizeof(p)), EINVAL);
  free(p);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai), 0);
}

/* dss: xalloc never uses sbrk, and says so as jemalloc would. */
static void test_dss(void **state) {
  (void)state;
  const char *s;
  RD("arena.0.dss", s);
  assert_string_equal(s, "disabled");
  epoch();
  RD("stats.arenas.0.dss", s);
  assert_string_equal(s, "disabled");
  const char *dis = "disabled", *prim = "primary", *sec = "secondary", *bogus = "bogus";
  assert_int_equal(mallctl("arena.0.dss", NULL, NULL, &dis, sizeof(dis)), 0);
  assert_int_equal(mallctl("arena.4096.dss", NULL, NULL, &dis, sizeof(dis)), 0);
  assert_int_equal(mallctl("arena.0.dss", NULL, NULL, &prim, sizeof(prim)), EFAULT);
  assert_int_equal(mallctl("arena.0.dss", NULL, NULL, &sec, sizeof(sec)), EFAULT);
  assert_int_equal(mallctl("arena.0.dss", NULL, NULL, &bogus, sizeof(bogus)), EINVAL);
  assert_int_equal(mallctl("arena.0.dss", NULL, NULL, &dis, 1), EINVAL);
}

/* The other statistics jemalloc documents and xalloc has. */
static void test_more_stats(void **state) {
  (void)state;
  size_t z;
  uint64_t up0, upall, up1, upn;
  epoch();
  RD("stats.metadata_thp", z);
  assert_int_equal(z, 0);
  RD("stats.arenas.0.metadata_thp", z);
  assert_int_equal(z, 0);
  RD("stats.arenas.0.uptime", up0);
  RD("stats.arenas.4096.uptime", upall);
  assert_true(up0 > 0 && upall >= up0);
  unsigned ai;
  RD("arenas.create", ai);
  size_t b3;
  RD("arenas.bin.3.size", b3);
  void *p[3];
  for (int i = 0; i < 3; i++) p[i] = mallocx(b3, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
  usleep(20000);
  epoch();
  RD("stats.arenas.0.uptime", up1);
  assert_true(up1 >= up0 + 20000000);
  uint64_t q;
  size_t sz = sizeof(q);
  assert_int_equal(ctlf(&q, &sz, NULL, 0, "stats.arenas.%u.uptime", ai), 0);
  upn = q;
  assert_true(upn >= 20000000 && upn < up1);
  /* One run of class 3 with free regions left. */
  sz = sizeof(z);
  assert_int_equal(ctlf(&z, &sz, NULL, 0, "stats.arenas.%u.bins.3.nonfull_slabs", ai), 0);
  assert_int_equal(z, 1);
  assert_int_equal(sa_z(ai, "bins.3.curslabs"), 1);
  for (int i = 0; i < 3; i++) dallocx(p[i], MALLOCX_TCACHE_NONE);
  assert_int_equal(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai), 0);
}

/* Every name xalloc answers, by its access and type: readable names read
 * with their size and refuse others (EINVAL); read-only ones refuse
 * writes (EPERM); write-only and void ones refuse reads (EPERM). */
enum { ACC_R, ACC_RW, ACC_W, ACC_VOID };
static const struct {
  const char *name;
  size_t size;
  int acc;
} every[] = {
    {"version", sizeof(char *), ACC_R},
    {"epoch", 8, ACC_RW},
    {"background_thread", 1, ACC_RW},
    {"max_background_threads", sizeof(size_t), ACC_RW},
    {"config.cache_oblivious", 1, ACC_R},
    {"config.debug", 1, ACC_R},
    {"config.fill", 1, ACC_R},
    {"config.lazy_lock", 1, ACC_R},
    {"config.malloc_conf", sizeof(char *), ACC_R},
    {"config.prof", 1, ACC_R},
    {"config.prof_libgcc", 1, ACC_R},
    {"config.prof_libunwind", 1, ACC_R},
    {"config.stats", 1, ACC_R},
    {"config.utrace", 1, ACC_R},
    {"config.xmalloc", 1, ACC_R},
    {"opt.abort", 1, ACC_R},
    {"opt.abort_conf", 1, ACC_R},
    {"opt.narenas", sizeof(unsigned), ACC_R},
    {"opt.tcache", 1, ACC_R},
    {"opt.tcache_max", sizeof(size_t), ACC_R},
    {"opt.dirty_decay_ms", sizeof(ssize_t), ACC_R},
    {"opt.muzzy_decay_ms", sizeof(ssize_t), ACC_R},
    {"opt.retain", 1, ACC_R},
    {"opt.background_thread", 1, ACC_R},
    {"opt.thp", sizeof(char *), ACC_R},
    {"opt.junk", sizeof(char *), ACC_R},
    {"opt.zero", 1, ACC_R},
    {"opt.stats_print", 1, ACC_R},
    {"opt.stats_print_opts", sizeof(char *), ACC_R},
    {"opt.dss", sizeof(char *), ACC_R},
    {"opt.percpu_arena", sizeof(char *), ACC_R},
    {"opt.metadata_thp", sizeof(char *), ACC_R},
    {"opt.zero_realloc", sizeof(char *), ACC_R},
    {"opt.max_background_threads", sizeof(size_t), ACC_R},
    {"opt.stats_interval", 8, ACC_R},
    {"opt.stats_interval_opts", sizeof(char *), ACC_R},
    {"opt.confirm_conf", 1, ACC_R},
    {"opt.cache_oblivious", 1, ACC_R},
    {"opt.oversize_threshold", sizeof(size_t), ACC_R},
    {"thread.arena", sizeof(unsigned), ACC_RW},
    {"thread.allocated", 8, ACC_R},
    {"thread.allocatedp", sizeof(void *), ACC_R},
    {"thread.deallocated", 8, ACC_R},
    {"thread.deallocatedp", sizeof(void *), ACC_R},
    {"thread.tcache.enabled", 1, ACC_RW},
    {"thread.tcache.flush", 0, ACC_VOID},
    {"thread.idle", 0, ACC_VOID},
    {"tcache.flush", sizeof(unsigned), ACC_W},
    {"tcache.destroy", sizeof(unsigned), ACC_W},
    {"arena.0.initialized", 1, ACC_R},
    {"arena.0.decay", 0, ACC_VOID},
    {"arena.0.purge", 0, ACC_VOID},
    {"arena.0.dss", sizeof(char *), ACC_RW},
    {"arena.0.dirty_decay_ms", sizeof(ssize_t), ACC_RW},
    {"arena.0.muzzy_decay_ms", sizeof(ssize_t), ACC_RW},
    {"arena.0.extent_hooks", sizeof(void *), ACC_RW},
    {"arena.0.check", 1, ACC_R},
    {"arenas.narenas", sizeof(unsigned), ACC_R},
    {"arenas.dirty_decay_ms", sizeof(ssize_t), ACC_RW},
    {"arenas.muzzy_decay_ms", sizeof(ssize_t), ACC_RW},
    {"arenas.quantum", sizeof(size_t), ACC_R},
    {"arenas.page", sizeof(size_t), ACC_R},
    {"arenas.chunk_size", sizeof(size_t), ACC_R},
    {"arenas.tcache_max", sizeof(size_t), ACC_R},
    {"arenas.nbins", sizeof(unsigned), ACC_R},
    {"arenas.nhbins", sizeof(unsigned), ACC_R},
    {"arenas.bin.0.size", sizeof(size_t), ACC_R},
    {"arenas.bin.0.nregs", 4, ACC_R},
    {"arenas.bin.0.slab_size", sizeof(size_t), ACC_R},
    {"arenas.nlextents", sizeof(unsigned), ACC_R},
    {"arenas.lextent.0.size", sizeof(size_t), ACC_R},
    {"stats.allocated", sizeof(size_t), ACC_R},
    {"stats.active", sizeof(size_t), ACC_R},
    {"stats.metadata", sizeof(size_t), ACC_R},
    {"stats.metadata_thp", sizeof(size_t), ACC_R},
    {"stats.resident", sizeof(size_t), ACC_R},
    {"stats.mapped", sizeof(size_t), ACC_R},
    {"stats.retained", sizeof(size_t), ACC_R},
    {"stats.dirty", sizeof(size_t), ACC_R},
    {"stats.muzzy", sizeof(size_t), ACC_R},
    {"stats.background_thread.num_threads", sizeof(size_t), ACC_R},
    {"stats.background_thread.num_runs", 8, ACC_R},
    {"stats.background_thread.run_interval", 8, ACC_R},
    {"stats.arenas.0.nthreads", sizeof(unsigned), ACC_R},
    {"stats.arenas.0.dss", sizeof(char *), ACC_R},
    {"stats.arenas.0.dirty_decay_ms", sizeof(ssize_t), ACC_R},
    {"stats.arenas.0.muzzy_decay_ms", sizeof(ssize_t), ACC_R},
    {"stats.arenas.0.uptime", 8, ACC_R},
    {"stats.arenas.0.pactive", sizeof(size_t), ACC_R},
    {"stats.arenas.0.pdirty", sizeof(size_t), ACC_R},
    {"stats.arenas.0.pmuzzy", sizeof(size_t), ACC_R},
    {"stats.arenas.0.mapped", sizeof(size_t), ACC_R},
    {"stats.arenas.0.retained", sizeof(size_t), ACC_R},
    {"stats.arenas.0.resident", sizeof(size_t), ACC_R},
    {"stats.arenas.0.metadata_thp", sizeof(size_t), ACC_R},
    {"stats.arenas.0.npurged", 8, ACC_R},
    {"stats.arenas.0.small.allocated", sizeof(size_t), ACC_R},
    {"stats.arenas.0.small.nmalloc", 8, ACC_R},
    {"stats.arenas.0.small.ndalloc", 8, ACC_R},
    {"stats.arenas.0.large.allocated", sizeof(size_t), ACC_R},
    {"stats.arenas.0.large.nmalloc", 8, ACC_R},
    {"stats.arenas.0.large.ndalloc", 8, ACC_R},
    {"stats.arenas.0.huge.allocated", sizeof(size_t), ACC_R},
    {"stats.arenas.0.huge.nmalloc", 8, ACC_R},
    {"stats.arenas.0.huge.ndalloc", 8, ACC_R},
    {"stats.arenas.0.huge.curhuge", sizeof(size_t), ACC_R},
    {"stats.arenas.0.bins.0.size", sizeof(size_t), ACC_R},
    {"stats.arenas.0.bins.0.nregs", 4, ACC_R},
    {"stats.arenas.0.bins.0.slab_size", sizeof(size_t), ACC_R},
    {"stats.arenas.0.bins.0.nmalloc", 8, ACC_R},
    {"stats.arenas.0.bins.0.ndalloc", 8, ACC_R},
    {"stats.arenas.0.bins.0.curregs", sizeof(size_t), ACC_R},
    {"stats.arenas.0.bins.0.curslabs", sizeof(size_t), ACC_R},
    {"stats.arenas.0.bins.0.nslabs", 8, ACC_R},
    {"stats.arenas.0.bins.0.nonfull_slabs", sizeof(size_t), ACC_R},
};

static void test_every_name(void **state) {
  (void)state;
  epoch();
  unsigned char buf[32], nv[32];
  memset(nv, 0, sizeof(nv));
  for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
    const char *n = every[i].name;
    size_t sz;
    int err;
    if (every[i].acc == ACC_R || every[i].acc == ACC_RW) {
      sz = every[i].size;
      err = mallctl(n, buf, &sz, NULL, 0);
      if (err != 0 || sz != every[i].size) fail_msg("%s: read = %d", n, err);
      sz = every[i].size + 1;
      if ((err = mallctl(n, buf, &sz, NULL, 0)) != EINVAL) fail_msg("%s: read, wrong size = %d", n, err);
      if (every[i].size > 1) {
        sz = every[i].size - 1;
        if ((err = mallctl(n, buf, &sz, NULL, 0)) != EINVAL) fail_msg("%s: read, short = %d", n, err);
      }
    } else {
      sz = sizeof(buf);
      if ((err = mallctl(n, buf, &sz, NULL, 0)) != EPERM) fail_msg("%s: read = %d, not EPERM", n, err);
    }
    if (every[i].acc == ACC_R || every[i].acc == ACC_VOID) {
      if ((err = mallctl(n, NULL, NULL, nv, 8)) != EPERM) fail_msg("%s: write = %d, not EPERM", n, err);
    } else {
      /* A write of the wrong size changes nothing and is EINVAL. */
      if ((err = mallctl(n, NULL, NULL, nv, every[i].size + 1)) != EINVAL) fail_msg("%s: write, wrong size = %d", n, err);
    }
    if (every[i].acc == ACC_VOID && (err = mallctl(n, NULL, NULL, NULL, 0)) != 0) fail_msg("%s = %d", n, err);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_arenas_spellings),
      cmocka_unit_test(test_uninitialized_indices),
      cmocka_unit_test(test_bad_sizes_change_nothing),
      cmocka_unit_test(test_opt_types),
      cmocka_unit_test(test_partial_mib),
      cmocka_unit_test(test_destroyed_arena_stats),
      cmocka_unit_test(test_arena_recycling_and_limit),
      cmocka_unit_test(test_background_thread_switch),
      cmocka_unit_test(test_background_thread_races),
      cmocka_unit_test(test_decay_ms),
      cmocka_unit_test(test_thread_counter_pointers),
      cmocka_unit_test(test_thread_idle),
      cmocka_unit_test(test_arenas_lookup),
      cmocka_unit_test(test_dss),
      cmocka_unit_test(test_more_stats),
      cmocka_unit_test(test_every_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
