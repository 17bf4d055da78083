/*
 * A program written against jemalloc's non-standard API. test/integration/
 * jemalloc_compat.sh builds it twice, unchanged: against
 * <jemalloc/jemalloc.h> with -ljemalloc, and against xalloc's header (through
 * a jemalloc/jemalloc.h that includes <xalloc/xalloc.h>) with -lxalloc. Both
 * builds must pass.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <jemalloc/jemalloc.h>

static int failures;
#define CHECK(c)                                                         \
  do {                                                                   \
    if (!(c)) {                                                          \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      failures++;                                                        \
    }                                                                    \
  } while (0)

static size_t printed;
static void write_cb(void *opaque, const char *s) {
  CHECK(opaque == &printed);
  printed += strlen(s);
}

static int all_zero(const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != 0) return 0;
  return 1;
}

/* Extent hooks as a NUMA runtime writes them (the third seed story, with
 * the alignment trim done right): mmap, trim to the alignment, mbind the
 * exact range to node 0. Live bytes are counted to see them all come back. */
static size_t hook_live, hook_nalloc, hook_mbind_failed;
static void *sa_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero,
                      bool *commit, unsigned arena_ind) {
  (void)h, (void)arena_ind;
  if (new_addr != NULL) return NULL;
  size_t total = size + alignment;
  char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  char *ret = (char *)(((uintptr_t)p + alignment - 1) & ~(uintptr_t)(alignment - 1));
  if (ret > p) munmap(p, (size_t)(ret - p));
  if (p + total > ret + size) munmap(ret + size, (size_t)(p + total - (ret + size)));
  unsigned long mask = 1;
  if (syscall(SYS_mbind, ret, size, 2 /* MPOL_BIND */, &mask, sizeof(mask) * 8, 2 /* MPOL_MF_MOVE */) != 0 &&
      errno != EPERM && errno != ENOSYS)
    __atomic_fetch_add(&hook_mbind_failed, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&hook_live, size, __ATOMIC_RELAXED);
  __atomic_fetch_add(&hook_nalloc, 1, __ATOMIC_RELAXED);
  *zero = *commit = true;
  return ret;
}
static bool sa_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned arena_ind) {
  (void)h, (void)committed, (void)arena_ind;
  munmap(addr, size);
  __atomic_fetch_sub(&hook_live, size, __ATOMIC_RELAXED);
  return false;
}
static void sa_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned arena_ind) {
  sa_dalloc(h, addr, size, committed, arena_ind);
}
static bool sa_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a, size_t size_b, bool committed,
                     unsigned arena_ind) {
  (void)h, (void)addr, (void)size, (void)size_a, (void)size_b, (void)committed, (void)arena_ind;
  return false;
}
static bool sa_merge(extent_hooks_t *h, void *addr_a, size_t size_a, void *addr_b, size_t size_b, bool committed,
                     unsigned arena_ind) {
  (void)h, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b, (void)committed, (void)arena_ind;
  return false;
}
static extent_hooks_t sa_hooks = {sa_alloc, sa_dalloc, sa_destroy, NULL, NULL, NULL, NULL, sa_split, sa_merge};

/* mallctl by a printf-built name. */
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

static void refresh(void) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  CHECK(mallctl("epoch", &e, &sz, &e, sizeof(e)) == 0);
}

static size_t sa_size(unsigned i, const char *what) {
  size_t v = 0, sz = sizeof(v);
  CHECK(ctlf(&v, &sz, NULL, 0, "stats.arenas.%u.%s", i, what) == 0);
  return v;
}

/* Large runs freed past the cache: dirty pages in arena ai. */
static void dirty_pages(unsigned ai) {
  void *p[16];
  for (int i = 0; i < 16; i++) {
    p[i] = mallocx(200000, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    CHECK(p[i] != NULL);
    if (p[i] != NULL) memset(p[i], 0x33, 200000);
  }
  for (int i = 0; i < 16; i++)
    if (p[i] != NULL) dallocx(p[i], MALLOCX_TCACHE_NONE);
}

/* The names and meanings of jemalloc 5.3 that programs use (redis, per-job
 * arenas, monitoring), as jemalloc's documentation gives them. */
static void jemalloc_names(void) {
  size_t sz, z;
  unsigned u, n, nauto;
  bool b;
  const char *s;
  /* All arenas, both spellings: MALLCTL_ARENAS_ALL and arenas.narenas. */
  sz = sizeof(n);
  CHECK(mallctl("arenas.narenas", &n, &sz, NULL, 0) == 0);
  sz = sizeof(nauto);
  CHECK(mallctl("opt.narenas", &nauto, &sz, NULL, 0) == 0 && nauto >= 1 && n >= nauto);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", n) == 0); /* what redis's MEMORY PURGE does */
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.decay", n) == 0);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", MALLCTL_ARENAS_ALL) == 0);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.decay", MALLCTL_ARENAS_ALL) == 0);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.purge", n + 1) == ENOENT);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.reset", n) == EFAULT);
  refresh();
  CHECK(sa_size(n, "pactive") == sa_size(MALLCTL_ARENAS_ALL, "pactive"));
  CHECK(sa_size(n, "mapped") == sa_size(MALLCTL_ARENAS_ALL, "mapped"));
  sz = sizeof(b);
  CHECK(mallctl("arena.0.initialized", &b, &sz, NULL, 0) == 0 && b);
  sz = sizeof(b);
  CHECK(ctlf(&b, &sz, NULL, 0, "arena.%u.initialized", MALLCTL_ARENAS_ALL) == 0 && b);
  /* Totals: small + large is everything; active is pactive pages. */
  size_t allocated, active, resident, mapped, metadata, retained, page;
  void *keep[3] = {mallocx(100, 0), mallocx(100000, 0), mallocx(5 << 20, 0)};
  refresh();
  sz = sizeof(size_t);
  CHECK(mallctl("stats.allocated", &allocated, &sz, NULL, 0) == 0);
  CHECK(mallctl("stats.active", &active, &sz, NULL, 0) == 0);
  CHECK(mallctl("stats.resident", &resident, &sz, NULL, 0) == 0);
  CHECK(mallctl("stats.mapped", &mapped, &sz, NULL, 0) == 0);
  CHECK(mallctl("stats.metadata", &metadata, &sz, NULL, 0) == 0);
  CHECK(mallctl("stats.retained", &retained, &sz, NULL, 0) == 0);
  CHECK(mallctl("arenas.page", &page, &sz, NULL, 0) == 0);
  CHECK(allocated >= (5 << 20) && allocated <= active && active <= resident && metadata > 0 && mapped > 0);
  CHECK(allocated == sa_size(MALLCTL_ARENAS_ALL, "small.allocated") + sa_size(MALLCTL_ARENAS_ALL, "large.allocated"));
  CHECK(active == sa_size(MALLCTL_ARENAS_ALL, "pactive") * page);
  (void)sa_size(MALLCTL_ARENAS_ALL, "pdirty");
  (void)sa_size(MALLCTL_ARENAS_ALL, "pmuzzy");
  (void)sa_size(MALLCTL_ARENAS_ALL, "resident");
  for (int i = 0; i < 3; i++) dallocx(keep[i], 0);
  /* opt.* in jemalloc's types, read-only. */
  sz = sizeof(z);
  CHECK(mallctl("opt.tcache_max", &z, &sz, NULL, 0) == 0 && z > 0);
  sz = sizeof(s);
  CHECK(mallctl("opt.junk", &s, &sz, NULL, 0) == 0 && s != NULL);
  sz = sizeof(s);
  CHECK(mallctl("opt.dss", &s, &sz, NULL, 0) == 0 && s != NULL);
  sz = sizeof(s);
  CHECK(mallctl("opt.zero_realloc", &s, &sz, NULL, 0) == 0 && s != NULL);
  b = true;
  CHECK(mallctl("opt.abort", NULL, NULL, &b, sizeof(b)) == EPERM);
  CHECK(mallctl("opt.narenas", NULL, NULL, &u, sizeof(u)) == EPERM);
  /* A partial MIB, completed by the caller (the man page's loop). */
  size_t mib[4], miblen = 2, full[4], fulllen = 4;
  CHECK(mallctlnametomib("arenas.bin.0.size", full, &fulllen) == 0 && fulllen == 4);
  CHECK(mallctlnametomib("arenas.bin.0.size", mib, &miblen) == 0 && miblen == 2);
  unsigned nbins;
  sz = sizeof(nbins);
  CHECK(mallctl("arenas.nbins", &nbins, &sz, NULL, 0) == 0 && nbins > 0);
  size_t prev = 0;
  for (unsigned i = 0; i < nbins; i++) {
    mib[2] = i;
    mib[3] = full[3];
    size_t bsize, slab;
    uint32_t nregs;
    sz = sizeof(bsize);
    CHECK(mallctlbymib(mib, 4, &bsize, &sz, NULL, 0) == 0 && bsize > prev);
    prev = bsize;
    sz = sizeof(nregs);
    CHECK(ctlf(&nregs, &sz, NULL, 0, "arenas.bin.%u.nregs", i) == 0);
    sz = sizeof(slab);
    CHECK(ctlf(&slab, &sz, NULL, 0, "arenas.bin.%u.slab_size", i) == 0 && slab >= (size_t)nregs * bsize);
  }
  sz = sizeof(z);
  CHECK(mallctl("arenas.lextent.0.size", &z, &sz, NULL, 0) == 0 && z > prev);
  /* thread.arena: a wrong *oldlenp is refused before the thread moves. */
  unsigned ai, cur, cur2;
  sz = sizeof(ai);
  CHECK(mallctl("arenas.create", &ai, &sz, NULL, 0) == 0);
  sz = sizeof(cur);
  CHECK(mallctl("thread.arena", &cur, &sz, NULL, 0) == 0);
  sz = 1;
  CHECK(mallctl("thread.arena", &cur2, &sz, &ai, sizeof(ai)) == EINVAL);
  sz = sizeof(cur2);
  CHECK(mallctl("thread.arena", &cur2, &sz, NULL, 0) == 0 && cur2 == cur);
  /* arenas.lookup. */
  void *lp = mallocx(3000, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
  sz = sizeof(u);
  CHECK(mallctl("arenas.lookup", &u, &sz, &lp, sizeof(lp)) == 0 && u == ai);
  dallocx(lp, MALLOCX_TCACHE_NONE);
  /* Decay times: per arena, and the defaults for new arenas. */
  ssize_t d0, d, v = 5000;
  sz = sizeof(d0);
  CHECK(mallctl("arenas.dirty_decay_ms", &d0, &sz, NULL, 0) == 0);
  CHECK(mallctl("arenas.dirty_decay_ms", NULL, NULL, &v, sizeof(v)) == 0);
  unsigned aj;
  sz = sizeof(aj);
  CHECK(mallctl("arenas.create", &aj, &sz, NULL, 0) == 0);
  sz = sizeof(d);
  CHECK(ctlf(&d, &sz, NULL, 0, "arena.%u.dirty_decay_ms", aj) == 0 && d == 5000);
  CHECK(mallctl("arenas.dirty_decay_ms", NULL, NULL, &d0, sizeof(d0)) == 0);
  dirty_pages(aj);
  refresh();
  CHECK(sa_size(aj, "pdirty") >= 16 * 200000 / page); /* kept for 5 s */
  v = 0; /* purged as they are freed */
  CHECK(ctlf(NULL, NULL, &v, sizeof(v), "arena.%u.dirty_decay_ms", aj) == 0);
  CHECK(ctlf(NULL, NULL, &v, sizeof(v), "arena.%u.muzzy_decay_ms", aj) == 0);
  dirty_pages(aj);
  refresh();
  CHECK(sa_size(aj, "pdirty") == 0);
  CHECK(sa_size(aj, "pmuzzy") == 0);
  sz = sizeof(d);
  CHECK(ctlf(&d, &sz, NULL, 0, "stats.arenas.%u.dirty_decay_ms", aj) == 0 && d == 0);
  v = -2;
  CHECK(ctlf(NULL, NULL, &v, sizeof(v), "arena.%u.dirty_decay_ms", aj) == EFAULT);
  sz = sizeof(d);
  CHECK(ctlf(&d, &sz, NULL, 0, "arena.%u.muzzy_decay_ms", MALLCTL_ARENAS_ALL) == EFAULT);
  /* Destroyed arenas: figures at MALLCTL_ARENAS_DESTROYED, index recycled. */
  void *dp[50];
  for (int i = 0; i < 50; i++) dp[i] = mallocx(64, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
  for (int i = 0; i < 50; i++) dallocx(dp[i], MALLOCX_TCACHE_NONE);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", ai) == 0);
  CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", aj) == 0);
  sz = sizeof(b);
  CHECK(ctlf(&b, &sz, NULL, 0, "arena.%u.initialized", ai) == 0 && !b);
  sz = sizeof(b);
  CHECK(ctlf(&b, &sz, NULL, 0, "arena.%u.initialized", MALLCTL_ARENAS_DESTROYED) == 0 && b);
  refresh();
  uint64_t nm = 0;
  sz = sizeof(nm);
  CHECK(ctlf(&nm, &sz, NULL, 0, "stats.arenas.%u.small.nmalloc", MALLCTL_ARENAS_DESTROYED) == 0 && nm >= 50);
  CHECK(sa_size(MALLCTL_ARENAS_DESTROYED, "pactive") == 0);
  sz = sizeof(z);
  CHECK(ctlf(&z, &sz, NULL, 0, "stats.arenas.%u.pactive", ai) == ENOENT);
  unsigned first = 0;
  for (int cycle = 0; cycle < 300; cycle++) {
    unsigned job;
    sz = sizeof(job);
    CHECK(mallctl("arenas.create", &job, &sz, NULL, 0) == 0);
    if (cycle == 0) first = job;
    CHECK(job == first);
    void *jp = mallocx(5000, MALLOCX_ARENA(job) | MALLOCX_TCACHE_NONE);
    CHECK(jp != NULL);
    dallocx(jp, MALLOCX_TCACHE_NONE);
    CHECK(ctlf(NULL, NULL, NULL, 0, "arena.%u.destroy", job) == 0);
  }
  /* Thread counters, also as pointers. */
  uint64_t *ap = NULL, *dpp = NULL, a;
  sz = sizeof(ap);
  CHECK(mallctl("thread.allocatedp", &ap, &sz, NULL, 0) == 0 && ap != NULL);
  sz = sizeof(dpp);
  CHECK(mallctl("thread.deallocatedp", &dpp, &sz, NULL, 0) == 0 && dpp != NULL);
  if (ap != NULL && dpp != NULL) {
    uint64_t a0 = *ap, d1 = *dpp;
    void *big = mallocx(1 << 20, MALLOCX_TCACHE_NONE);
    CHECK(*ap - a0 >= (1 << 20));
    dallocx(big, MALLOCX_TCACHE_NONE);
    CHECK(*dpp - d1 >= (1 << 20));
    sz = sizeof(a);
    CHECK(mallctl("thread.allocated", &a, &sz, NULL, 0) == 0 && a == *ap);
  }
  CHECK(mallctl("thread.idle", NULL, NULL, NULL, 0) == 0);
  /* The background thread, switched at run time. */
  bool on = true, off = false;
  CHECK(mallctl("background_thread", NULL, NULL, &on, sizeof(on)) == 0);
  sz = sizeof(b);
  CHECK(mallctl("background_thread", &b, &sz, NULL, 0) == 0 && b);
  refresh();
  sz = sizeof(z);
  CHECK(mallctl("stats.background_thread.num_threads", &z, &sz, NULL, 0) == 0 && z >= 1);
  uint64_t runs;
  sz = sizeof(runs);
  CHECK(mallctl("stats.background_thread.num_runs", &runs, &sz, NULL, 0) == 0);
  CHECK(mallctl("background_thread", NULL, NULL, &off, sizeof(off)) == 0);
  sz = sizeof(b);
  CHECK(mallctl("background_thread", &b, &sz, NULL, 0) == 0 && !b);
  refresh();
  sz = sizeof(z);
  CHECK(mallctl("stats.background_thread.num_threads", &z, &sz, NULL, 0) == 0 && z == 0);
  sz = sizeof(z);
  CHECK(mallctl("max_background_threads", &z, &sz, NULL, 0) == 0 && z >= 1);
  z = 1;
  CHECK(mallctl("max_background_threads", NULL, NULL, &z, sizeof(z)) == 0);
  /* dss: the one setting both can take. */
  const char *dis = "disabled";
  CHECK(mallctl("arena.0.dss", NULL, NULL, &dis, sizeof(dis)) == 0);
  sz = sizeof(s);
  CHECK(mallctl("stats.arenas.0.dss", &s, &sz, NULL, 0) == 0 && s != NULL);
}

int main(void) {
  /* mallocx with each flag. */
  void *p = mallocx(100, 0);
  CHECK(p != NULL && sallocx(p, 0) >= 100 && sallocx(p, 0) == nallocx(100, 0));
  memset(p, 0xab, 100);
  dallocx(p, 0);
  for (int la = 4; la <= 22; la += 3) {
    p = mallocx(1000, MALLOCX_LG_ALIGN(la));
    CHECK(p != NULL && ((uintptr_t)p & (((size_t)1 << la) - 1)) == 0);
    CHECK(sallocx(p, 0) >= 1000);
    dallocx(p, MALLOCX_LG_ALIGN(la));
  }
  p = mallocx(5000, MALLOCX_ALIGN(4096));
  CHECK(p != NULL && ((uintptr_t)p & 4095) == 0);
  sdallocx(p, 5000, MALLOCX_ALIGN(4096));
  for (size_t n = 16; n <= (1 << 22); n *= 4) {
    unsigned char *d = mallocx(n, 0);
    memset(d, 0xff, n);
    dallocx(d, 0);
    unsigned char *z = mallocx(n, MALLOCX_ZERO);
    CHECK(z != NULL && all_zero(z, n));
    dallocx(z, 0);
  }
  p = mallocx(64, MALLOCX_TCACHE_NONE);
  CHECK(p != NULL && sallocx(p, 0) == 64);
  dallocx(p, MALLOCX_TCACHE_NONE);

  /* Explicit thread cache. */
  unsigned tc;
  size_t sz = sizeof(tc);
  CHECK(mallctl("tcache.create", &tc, &sz, NULL, 0) == 0);
  p = mallocx(48, MALLOCX_TCACHE(tc));
  CHECK(p != NULL && sallocx(p, 0) == 48);
  dallocx(p, MALLOCX_TCACHE(tc));
  CHECK(mallctl("tcache.flush", NULL, NULL, &tc, sizeof(tc)) == 0);
  CHECK(mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc)) == 0);

  /* rallocx, xallocx, nallocx, sdallocx. */
  char *r = mallocx(10, 0);
  memcpy(r, "0123456789", 10);
  r = rallocx(r, 100000, 0);
  CHECK(r != NULL && memcmp(r, "0123456789", 10) == 0 && sallocx(r, 0) >= 100000);
  r = rallocx(r, 1 << 20, MALLOCX_ZERO);
  CHECK(r != NULL && memcmp(r, "0123456789", 10) == 0 && all_zero(r + 100000, (1 << 20) - 100000));
  r = rallocx(r, 1000, MALLOCX_LG_ALIGN(12));
  CHECK(r != NULL && ((uintptr_t)r & 4095) == 0 && memcmp(r, "0123456789", 10) == 0);
  size_t usize = sallocx(r, 0);
  CHECK(xallocx(r, usize, 0, 0) == usize);
  CHECK(xallocx(r, 1, 0, 0) >= 1);
  sdallocx(r, sallocx(r, 0), 0);
  CHECK(nallocx(1, 0) >= 1 && nallocx(4097, 0) >= 4097 && nallocx(100, MALLOCX_ALIGN(64)) % 64 == 0);
  void *big = mallocx(3 << 20, 0);
  size_t bigu = sallocx(big, 0);
  CHECK(xallocx(big, bigu, 0, 0) == bigu);
  dallocx(big, 0);

  /* mallctl reads. */
  const char *version;
  sz = sizeof(version);
  CHECK(mallctl("version", &version, &sz, NULL, 0) == 0 && version != NULL && version[0] != '\0');
  unsigned narenas;
  sz = sizeof(narenas);
  CHECK(mallctl("arenas.narenas", &narenas, &sz, NULL, 0) == 0 && narenas >= 1);
  void *keep = mallocx(1 << 20, 0);
  uint64_t epoch = 1;
  sz = sizeof(epoch);
  CHECK(mallctl("epoch", &epoch, &sz, &epoch, sizeof(epoch)) == 0);
  size_t allocated;
  sz = sizeof(allocated);
  CHECK(mallctl("stats.allocated", &allocated, &sz, NULL, 0) == 0 && allocated >= (1 << 20));
  dallocx(keep, 0);
  CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  CHECK(mallctl("no.such.name", NULL, NULL, NULL, 0) == ENOENT);
  sz = sizeof(narenas) + 1;
  CHECK(mallctl("arenas.narenas", &narenas, &sz, NULL, 0) == EINVAL);
  CHECK(mallctl("arenas.narenas", NULL, NULL, &narenas, sizeof(narenas)) == EPERM);
  size_t mib[4], miblen = 4;
  CHECK(mallctlnametomib("arenas.narenas", mib, &miblen) == 0 && miblen == 2);
  unsigned n2;
  sz = sizeof(n2);
  CHECK(mallctlbymib(mib, miblen, &n2, &sz, NULL, 0) == 0 && n2 == narenas);

  /* An explicit arena. */
  unsigned ai;
  sz = sizeof(ai);
  CHECK(mallctl("arenas.create", &ai, &sz, NULL, 0) == 0 && ai >= narenas);
  void *ptrs[64];
  for (int i = 0; i < 64; i++) {
    ptrs[i] = mallocx(100 + 1000 * (size_t)i, MALLOCX_ARENA(ai) | MALLOCX_TCACHE_NONE);
    CHECK(ptrs[i] != NULL);
  }
  for (int i = 0; i < 64; i++) dallocx(ptrs[i], MALLOCX_TCACHE_NONE);
  unsigned n3;
  sz = sizeof(n3);
  CHECK(mallctl("arenas.narenas", &n3, &sz, NULL, 0) == 0 && n3 == ai + 1);

  /* An arena with extent hooks; arena.<i>.destroy gives everything back. */
  extent_hooks_t *hp = &sa_hooks, *got = NULL;
  unsigned hi;
  sz = sizeof(hi);
  CHECK(mallctl("arenas.create", &hi, &sz, &hp, sizeof(hp)) == 0);
  char hname[64];
  snprintf(hname, sizeof(hname), "arena.%u.extent_hooks", hi);
  sz = sizeof(got);
  CHECK(mallctl(hname, &got, &sz, NULL, 0) == 0 && got == &sa_hooks);
  for (int i = 0; i < 64; i++) {
    size_t size = (size_t)1 << (3 + i % 20);
    ptrs[i] = mallocx(size, MALLOCX_ARENA(hi) | MALLOCX_TCACHE_NONE | (i % 3 == 0 ? MALLOCX_ALIGN(4096) : 0));
    CHECK(ptrs[i] != NULL);
    if (ptrs[i] != NULL) memset(ptrs[i], 1, size);
  }
  CHECK(hook_nalloc > 0 && hook_live > 0 && hook_mbind_failed == 0);
  for (int i = 0; i < 64; i++) dallocx(ptrs[i], MALLOCX_TCACHE_NONE);
  snprintf(hname, sizeof(hname), "arena.%u.destroy", hi);
  CHECK(mallctl(hname, NULL, NULL, NULL, 0) == 0);
  CHECK(hook_live == 0);

  jemalloc_names();

  /* Statistics to a callback. */
  malloc_stats_print(write_cb, &printed, NULL);
  CHECK(printed > 100);
  size_t text = printed;
  printed = 0;
  malloc_stats_print(write_cb, &printed, "J");
  CHECK(printed > 100 && printed != text);

  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("jemalloc API program: all checks passed\n");
  return 0;
}
