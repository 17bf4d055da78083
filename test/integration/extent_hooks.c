/*
 * Explicit arenas with user extent hooks (jemalloc 5's extent_hooks_t).
 *
 * The hooks here keep their own record of every range they handed out
 * (alloc) and have not had back (dalloc/destroy), updated by split and
 * merge, and check each call xalloc makes against it: the range passed to
 * dalloc, destroy, purge_*, split and merge must be exactly a live record
 * (merge: two adjacent ones), and (when maps checking is on) wholly mapped
 * according to /proc/self/maps. Any violation is recorded and fails the
 * test. The hooks never call malloc.
 *
 * - mbind: every range alloc returns is bound to NUMA node 0 with
 *   mbind(MPOL_BIND, MPOL_MF_MOVE) and the binding read back with
 *   get_mempolicy; 8 threads allocate 8 bytes .. 6 MiB at alignments up to
 *   the chunk size and every block must lie in a live hook range.
 * - checker: /proc/self/maps checks on every call, with all calls accepted,
 *   then with split/merge refused, then with dalloc refused (destroy).
 * - failing alloc: NULL with ENOMEM, other arenas unaffected, recovery.
 * - purge hooks NULL / refusing: ranges kept, heap check passes.
 * - arena.<i>.extent_hooks: read and write (new table used afterwards).
 * - arena.<i>.destroy: the live set is empty afterwards.
 */
#include "xtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>

#include "xalloc/xalloc.h"

#ifndef MPOL_BIND
#define MPOL_BIND 2
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif
#ifndef MPOL_F_ADDR
#define MPOL_F_ADDR (1 << 1)
#endif

#define MAXREC 65536

typedef struct {
  char *addr;
  size_t size;
} rec_t;

/* The hooks' state: one set for the whole process (tests run in turn). */
static pthread_mutex_t hk_mtx = PTHREAD_MUTEX_INITIALIZER;
static rec_t hk_live[MAXREC];
static size_t hk_nlive;
static size_t hk_live_bytes;
static bool hk_check_maps;   /* check every range against /proc/self/maps */
static bool hk_mbind;        /* bind every new range to node 0 */
static bool hk_fail_alloc;   /* alloc returns NULL */
static bool hk_misalign;     /* alloc returns a range off the alignment */
static bool hk_refuse_split, hk_refuse_merge, hk_refuse_dalloc, hk_refuse_purge;
static unsigned hk_arena = ~0u; /* the arena index xalloc must pass */
static uint64_t hk_nalloc, hk_ndalloc, hk_ndestroy, hk_nsplit, hk_nmerge, hk_npurge_lazy, hk_npurge_forced,
    hk_nmbind, hk_nrefused, hk_nother_table;
static char hk_err[256]; /* first violation */
static extent_hooks_t *hk_expect_table; /* the table xalloc must pass */

static void hk_fail(const char *fmt, ...) {
  if (hk_err[0] != '\0') return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(hk_err, sizeof(hk_err), fmt, ap);
  va_end(ap);
}

static void hk_reset(void) {
  hk_nlive = hk_live_bytes = 0;
  hk_check_maps = hk_mbind = hk_fail_alloc = hk_misalign = false;
  hk_refuse_split = hk_refuse_merge = hk_refuse_dalloc = hk_refuse_purge = false;
  hk_nalloc = hk_ndalloc = hk_ndestroy = hk_nsplit = hk_nmerge = hk_npurge_lazy = hk_npurge_forced = hk_nmbind =
      hk_nrefused = hk_nother_table = 0;
  hk_err[0] = '\0';
  hk_arena = ~0u;
}

/* Index of the live record exactly [addr, addr+size), or -1. Under hk_mtx. */
static long hk_find(const void *addr, size_t size) {
  for (size_t i = 0; i < hk_nlive; i++)
    if (hk_live[i].addr == addr && hk_live[i].size == size) return (long)i;
  return -1;
}

static void hk_remove(long i) {
  hk_live_bytes -= hk_live[i].size;
  hk_live[i] = hk_live[--hk_nlive];
}

static void hk_add(char *addr, size_t size) {
  if (hk_nlive == MAXREC) {
    hk_fail("too many ranges");
    return;
  }
  hk_live[hk_nlive].addr = addr;
  hk_live[hk_nlive].size = size;
  hk_nlive++;
  hk_live_bytes += size;
}

/* Whether [addr, addr+size) lies in one live record (an allocation check). */
static bool hk_covers(const void *addr, size_t size) {
  pthread_mutex_lock(&hk_mtx);
  bool ok = false;
  for (size_t i = 0; i < hk_nlive && !ok; i++)
    ok = (const char *)addr >= hk_live[i].addr && (const char *)addr + size <= hk_live[i].addr + hk_live[i].size;
  pthread_mutex_unlock(&hk_mtx);
  return ok;
}

/* Whether [addr, addr+size) is wholly mapped per /proc/self/maps (no
 * malloc: a static buffer, read under hk_mtx). */
static char maps_buf[1 << 20];
static bool maps_covered(const char *addr, size_t size) {
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return false;
  size_t n = 0;
  ssize_t r;
  while (n < sizeof(maps_buf) - 1 && (r = read(fd, maps_buf + n, sizeof(maps_buf) - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  maps_buf[n] = '\0';
  uintptr_t want = (uintptr_t)addr, end = (uintptr_t)addr + size;
  for (char *line = maps_buf; *line != '\0' && want < end;) {
    char *e;
    uintptr_t lo = (uintptr_t)strtoull(line, &e, 16);
    uintptr_t hi = (uintptr_t)strtoull(e + 1, &e, 16);
    /* Lines are in address order: a gap before want is a hole. */
    if (lo <= want && want < hi) want = hi;
    char *nl = strchr(line, '\n');
    if (nl == NULL) break;
    line = nl + 1;
  }
  return want >= end;
}

static void hk_check_table(extent_hooks_t *h, unsigned ind, const char *op) {
  if (h != hk_expect_table) hk_nother_table++;
  if (ind != hk_arena) hk_fail("%s: arena index %u, expected %u", op, ind, hk_arena);
}

/* Checks shared by the calls that name one live range. Under hk_mtx. */
static long hk_check_range(const char *op, void *addr, size_t size) {
  long i = hk_find(addr, size);
  if (i < 0) hk_fail("%s(%p, %zu): not a range the hook handed out", op, addr, size);
  else if (hk_check_maps && !maps_covered(addr, size))
    hk_fail("%s(%p, %zu): not wholly mapped per /proc/self/maps", op, addr, size);
  return i;
}

static void *hk_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero, bool *commit,
                      unsigned ind) {
  pthread_mutex_lock(&hk_mtx);
  hk_check_table(h, ind, "alloc");
  bool fail = hk_fail_alloc;
  pthread_mutex_unlock(&hk_mtx);
  if (fail) return NULL;
  if (new_addr != NULL || size == 0 || alignment == 0 || (alignment & (alignment - 1)) != 0) {
    hk_fail("alloc: bad arguments %p %zu %zu", new_addr, size, alignment);
    return NULL;
  }
  /* Over-map and trim, keeping exactly [ret, ret+size) (the seed story's
   * routine, done right). */
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t total = size + (alignment > page ? alignment - page : 0);
  char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  char *ret = (char *)(((uintptr_t)p + alignment - 1) & ~(uintptr_t)(alignment - 1));
  /* Breaks the contract: one page off (there is room on one side, as
   * alignment >= 2 pages here). */
  if (hk_misalign) ret = ret - p >= (ptrdiff_t)page ? ret - page : ret + page;
  if (ret > p) munmap(p, (size_t)(ret - p));
  if (p + total > ret + size) munmap(ret + size, (size_t)(p + total - (ret + size)));
  pthread_mutex_lock(&hk_mtx);
  if (hk_mbind) {
    unsigned long mask = 1; /* node 0 */
    if (syscall(SYS_mbind, ret, size, MPOL_BIND, &mask, sizeof(mask) * 8, MPOL_MF_MOVE) != 0)
      hk_fail("mbind(%p, %zu) failed: %s", (void *)ret, size, strerror(errno));
    int mode = -1;
    unsigned long got = 0;
    if (syscall(SYS_get_mempolicy, &mode, &got, sizeof(got) * 8, ret + size - 1, MPOL_F_ADDR) != 0 ||
        mode != MPOL_BIND || got != 1)
      hk_fail("get_mempolicy(%p): mode %d mask %lx, not bound to node 0", (void *)(ret + size - 1), mode, got);
    hk_nmbind++;
  }
  if (hk_check_maps && !maps_covered(ret, size)) hk_fail("alloc: own range not mapped");
  hk_add(ret, size);
  hk_nalloc++;
  pthread_mutex_unlock(&hk_mtx);
  *zero = true;
  *commit = true;
  return ret;
}

static bool hk_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
  (void)committed;
  pthread_mutex_lock(&hk_mtx);
  hk_check_table(h, ind, "dalloc");
  long i = hk_check_range("dalloc", addr, size);
  bool refuse = hk_refuse_dalloc;
  if (refuse) {
    hk_nrefused++;
  } else if (i >= 0) {
    munmap(addr, size);
    hk_remove(i);
    hk_ndalloc++;
  }
  pthread_mutex_unlock(&hk_mtx);
  return refuse || i < 0;
}

static void hk_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
  (void)committed;
  pthread_mutex_lock(&hk_mtx);
  hk_check_table(h, ind, "destroy");
  long i = hk_check_range("destroy", addr, size);
  if (i >= 0) {
    munmap(addr, size);
    hk_remove(i);
    hk_ndestroy++;
  }
  pthread_mutex_unlock(&hk_mtx);
}

static bool hk_purge(const char *op, int advice, uint64_t *count, extent_hooks_t *h, void *addr, size_t size,
                     size_t off, size_t len, unsigned ind) {
  pthread_mutex_lock(&hk_mtx);
  hk_check_table(h, ind, op);
  long i = hk_check_range(op, addr, size);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (len == 0 || off + len > size || off + len < off || (off | len) % page != 0)
    hk_fail("%s(%p, %zu, %zu, %zu): bad offset/length", op, addr, size, off, len);
  bool refuse = hk_refuse_purge || i < 0;
  if (refuse)
    hk_nrefused++;
  else if (madvise((char *)addr + off, len, advice) != 0)
    refuse = true;
  else
    (*count)++;
  pthread_mutex_unlock(&hk_mtx);
  return refuse;
}
static bool hk_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind) {
#ifdef MADV_FREE
  return hk_purge("purge_lazy", MADV_FREE, &hk_npurge_lazy, h, addr, size, off, len, ind);
#else
  (void)h, (void)addr, (void)size, (void)off, (void)len, (void)ind;
  return true;
#endif
}
static bool hk_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind) {
  return hk_purge("purge_forced", MADV_DONTNEED, &hk_npurge_forced, h, addr, size, off, len, ind);
}

static bool hk_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a, size_t size_b, bool committed,
                     unsigned ind) {
  (void)committed;
  pthread_mutex_lock(&hk_mtx);
  hk_check_table(h, ind, "split");
  long i = hk_check_range("split", addr, size);
  if (size_a == 0 || size_b == 0 || size_a + size_b != size) hk_fail("split(%p, %zu, %zu, %zu)", addr, size, size_a, size_b);
  bool refuse = hk_refuse_split || i < 0;
  if (refuse) {
    hk_nrefused++;
  } else {
    hk_remove(i);
    hk_add(addr, size_a);
    hk_add((char *)addr + size_a, size_b);
    hk_nsplit++;
  }
  pthread_mutex_unlock(&hk_mtx);
  return refuse;
}

static bool hk_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool committed, unsigned ind) {
  (void)committed;
  pthread_mutex_lock(&hk_mtx);
  hk_check_table(h, ind, "merge");
  long i = hk_check_range("merge", a, sa);
  long j = hk_check_range("merge", b, sb);
  if ((char *)a + sa != b) hk_fail("merge(%p, %zu, %p, %zu): not adjacent", a, sa, b, sb);
  bool refuse = hk_refuse_merge || i < 0 || j < 0;
  if (refuse) {
    hk_nrefused++;
  } else {
    hk_remove(i);
    j = hk_find(b, sb);
    hk_remove(j);
    hk_add(a, sa + sb);
    hk_nmerge++;
  }
  pthread_mutex_unlock(&hk_mtx);
  return refuse;
}

static extent_hooks_t hooks = {hk_alloc, hk_dalloc, hk_destroy, NULL, NULL, hk_purge_lazy, hk_purge_forced,
                               hk_split, hk_merge};
/* A second table with the same functions, for arena.<i>.extent_hooks writes. */
static extent_hooks_t hooks2 = {hk_alloc, hk_dalloc, hk_destroy, NULL, NULL, hk_purge_lazy, hk_purge_forced,
                                hk_split, hk_merge};

static size_t chunksize(void) {
  size_t cs, sz = sizeof(cs);
  assert_int_equal(mallctl("arenas.chunk_size", &cs, &sz, NULL, 0), 0);
  return cs;
}

static unsigned create_arena(extent_hooks_t *h) {
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, &h, sizeof(h)), 0);
  pthread_mutex_lock(&hk_mtx);
  hk_arena = ind;
  hk_expect_table = h;
  pthread_mutex_unlock(&hk_mtx);
  return ind;
}

static void arena_ctl(unsigned ind, const char *leaf) {
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.%s", ind, leaf);
  assert_int_equal(mallctl(name, NULL, NULL, NULL, 0), 0);
}

static void arena_check_ok(unsigned ind) {
  char name[64];
  bool ok = false;
  size_t sz = sizeof(ok);
  snprintf(name, sizeof(name), "arena.%u.check", ind);
  assert_int_equal(mallctl(name, &ok, &sz, NULL, 0), 0);
  assert_true(ok);
}

/* The arena's mapped bytes are exactly what the hook has out, and the
 * totals count them. */
static void stats_check(unsigned ind) {
  uint64_t epoch = 1;
  size_t sz = sizeof(epoch);
  assert_int_equal(mallctl("epoch", &epoch, &sz, &epoch, sizeof(epoch)), 0);
  char name[64];
  size_t mapped, total_mapped, resident;
  snprintf(name, sizeof(name), "stats.arenas.%u.mapped", ind);
  sz = sizeof(mapped);
  assert_int_equal(mallctl(name, &mapped, &sz, NULL, 0), 0);
  sz = sizeof(total_mapped);
  assert_int_equal(mallctl("stats.mapped", &total_mapped, &sz, NULL, 0), 0);
  sz = sizeof(resident);
  assert_int_equal(mallctl("stats.resident", &resident, &sz, NULL, 0), 0);
  pthread_mutex_lock(&hk_mtx);
  size_t live = hk_live_bytes;
  pthread_mutex_unlock(&hk_mtx);
  assert_int_equal(mapped, live);
  assert_true(total_mapped >= live);
  assert_true(resident <= total_mapped);
}

/* Destroy the arena; every range must be back (dalloc or destroy). */
static void destroy_and_check(unsigned ind) {
  arena_ctl(ind, "destroy");
  /* fail_msg jumps out: never with hk_mtx held. */
  pthread_mutex_lock(&hk_mtx);
  char err[sizeof(hk_err)];
  memcpy(err, hk_err, sizeof(err));
  size_t nlive = hk_nlive, live_bytes = hk_live_bytes;
  uint64_t nother = hk_nother_table;
  pthread_mutex_unlock(&hk_mtx);
  if (err[0] != '\0') fail_msg("hook violation: %s", err);
  if (nlive != 0) fail_msg("%zu ranges (%zu bytes) not given back after arena.%u.destroy", nlive, live_bytes, ind);
  if (nother != 0) fail_msg("%llu calls with another table", (unsigned long long)nother);
}

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A size from 8 bytes to 6 MiB, spread over the orders of magnitude. */
static size_t pick_size(uint64_t *r) {
  unsigned lg = 3 + (unsigned)(rng_next(r) % 20); /* 8 B .. 4 MiB */
  size_t s = ((size_t)1 << lg) + (size_t)(rng_next(r) % ((size_t)1 << lg));
  return s > ((size_t)6 << 20) ? ((size_t)6 << 20) : s;
}

typedef struct {
  unsigned arena;
  unsigned seed;
  unsigned iters;
  size_t cs;
  char err[200];
} worker_t;

#define WINDOW 48
static void *worker(void *arg) {
  worker_t *w = arg;
  uint64_t r = 0x9e3779b97f4a7c15ull * (w->seed + 1);
  struct {
    unsigned char *p;
    size_t size;
  } live[WINDOW] = {{0}};
  for (unsigned it = 0; it < w->iters && w->err[0] == '\0'; it++) {
    unsigned k = (unsigned)(rng_next(&r) % WINDOW);
    if (live[k].p != NULL) {
      if (live[k].p[0] != (unsigned char)k || live[k].p[live[k].size - 1] != (unsigned char)k)
        snprintf(w->err, sizeof(w->err), "block %p (%zu) overwritten", (void *)live[k].p, live[k].size);
      dallocx(live[k].p, MALLOCX_TCACHE_NONE);
      live[k].p = NULL;
    }
    size_t size = pick_size(&r);
    int flags = MALLOCX_ARENA(w->arena) | MALLOCX_TCACHE_NONE;
    size_t align = 0;
    if (rng_next(&r) % 4 == 0) {
      align = (size_t)1 << (3 + rng_next(&r) % 19); /* 8 B .. 2 MiB */
      if (align > w->cs) align = w->cs;
      flags |= MALLOCX_ALIGN(align);
    }
    unsigned char *p = mallocx(size, flags);
    if (p == NULL) {
      snprintf(w->err, sizeof(w->err), "mallocx(%zu, align %zu) failed: %s", size, align, strerror(errno));
      break;
    }
    if (align != 0 && ((uintptr_t)p & (align - 1)) != 0)
      snprintf(w->err, sizeof(w->err), "mallocx(%zu, align %zu) = %p misaligned", size, align, (void *)p);
    if (!hk_covers(p, size))
      snprintf(w->err, sizeof(w->err), "block %p (%zu) not in a range the hook handed out", (void *)p, size);
    p[0] = p[size - 1] = (unsigned char)k;
    live[k].p = p;
    live[k].size = size;
  }
  for (unsigned k = 0; k < WINDOW; k++)
    if (live[k].p != NULL) dallocx(live[k].p, MALLOCX_TCACHE_NONE);
  return NULL;
}

static void run_workers(unsigned ind, unsigned nthreads, unsigned iters) {
  pthread_t tid[16];
  worker_t w[16];
  size_t cs = chunksize();
  for (unsigned i = 0; i < nthreads; i++) {
    memset(&w[i], 0, sizeof(w[i]));
    w[i].arena = ind;
    w[i].seed = i;
    w[i].iters = iters;
    w[i].cs = cs;
    assert_int_equal(pthread_create(&tid[i], NULL, worker, &w[i]), 0);
  }
  for (unsigned i = 0; i < nthreads; i++) {
    pthread_join(tid[i], NULL);
    if (w[i].err[0] != '\0') fail_msg("thread %u: %s", i, w[i].err);
  }
}

/* Whether mbind to node 0 works here at all (EPERM/ENOSYS in some sandboxes). */
static int mbind_probe(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  unsigned long mask = 1;
  int err = syscall(SYS_mbind, p, page, MPOL_BIND, &mask, sizeof(mask) * 8, MPOL_MF_MOVE) == 0 ? 0 : errno;
  munmap(p, page);
  return err;
}

/* (1) The third seed story: every range bound to node 0, many threads. */
static void test_mbind_threads(void **state) {
  (void)state;
  hk_reset();
  int err = mbind_probe();
  if (err == EPERM || err == ENOSYS) {
    printf("# mbind is refused here (%s): checking the range bookkeeping only\n", strerror(err));
    hk_mbind = false;
  } else {
    assert_int_equal(err, 0);
    hk_mbind = true;
  }
  unsigned ind = create_arena(&hooks);
  run_workers(ind, 8, 1500);
  arena_check_ok(ind);
  arena_ctl(ind, "purge");
  arena_check_ok(ind);
  run_workers(ind, 8, 300);
  stats_check(ind);
  pthread_mutex_lock(&hk_mtx);
  uint64_t nalloc = hk_nalloc, nmbind = hk_nmbind;
  pthread_mutex_unlock(&hk_mtx);
  assert_true(nalloc > 0);
  if (hk_mbind) assert_int_equal(nmbind, nalloc);
  printf("# mbind: %llu ranges from the hook, %llu bound to node 0, %llu splits, %llu merges\n",
         (unsigned long long)nalloc, (unsigned long long)nmbind, (unsigned long long)hk_nsplit,
         (unsigned long long)hk_nmerge);
  destroy_and_check(ind);
}

/* A single-threaded mix: small, large, huge, aligned, shrinking and growing
 * huge reallocations, frees, purges. */
static void mixed_workload(unsigned ind) {
  size_t cs = chunksize();
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  void *p[64] = {0};
  uint64_t r = 12345;
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 64; i++) {
      size_t size = pick_size(&r);
      int f = fl;
      if (i % 5 == 0) f |= MALLOCX_ALIGN(cs);
      p[i] = mallocx(size, f);
      assert_non_null(p[i]);
      assert_true(hk_covers(p[i], size));
      memset(p[i], 0xa5, size < 4096 ? size : 4096);
    }
    /* Huge: shrink in place (a split of an allocated range), grow (moves). */
    void *h = mallocx(5 * cs, fl);
    assert_non_null(h);
    void *h2 = rallocx(h, 2 * cs, fl);
    assert_non_null(h2);
    assert_true(hk_covers(h2, 2 * cs));
    h2 = rallocx(h2, 4 * cs, fl);
    assert_non_null(h2);
    assert_true(hk_covers(h2, 4 * cs));
    dallocx(h2, fl);
    /* Alignment above the chunk size. */
    void *big = mallocx(cs + 1, fl | MALLOCX_ALIGN(4 * cs));
    assert_non_null(big);
    assert_true(((uintptr_t)big & (4 * cs - 1)) == 0);
    assert_true(hk_covers(big, cs + 1));
    dallocx(big, fl);
    for (int i = round % 2; i < 64; i += 2) {
      dallocx(p[i], fl);
      p[i] = NULL;
    }
    arena_ctl(ind, "decay");
    arena_ctl(ind, "purge");
    arena_check_ok(ind);
    for (int i = 0; i < 64; i++) {
      if (p[i] != NULL) dallocx(p[i], fl);
      p[i] = NULL;
    }
    arena_ctl(ind, "purge");
    arena_check_ok(ind);
    stats_check(ind);
  }
}

/* (2), (4) Every range xalloc hands back is one the hook gave (or a split
 * of one), checked against /proc/self/maps; destroy returns all. */
static void test_checker(void **state) {
  (void)state;
  hk_reset();
  hk_check_maps = true;
  unsigned ind = create_arena(&hooks);
  mixed_workload(ind);
  pthread_mutex_lock(&hk_mtx);
  uint64_t nsplit = hk_nsplit, nmerge = hk_nmerge, npurge = hk_npurge_lazy + hk_npurge_forced;
  pthread_mutex_unlock(&hk_mtx);
  /* The workload exercises every kind of call. */
  bool retain = true;
  size_t sz = sizeof(retain);
  assert_int_equal(mallctl("opt.retain", &retain, &sz, NULL, 0), 0);
  if (!retain) assert_true(hk_ndalloc > 0); /* retain:false gives ranges back as it goes */
  assert_true(nsplit > 0);
  /* (retain:false with dirty_decay_ms:0 gives a range back as soon as it
   * is free: it never waits to merge with its neighbours.) */
  if (retain) assert_true(nmerge > 0);
  assert_true(npurge > 0);
  destroy_and_check(ind);
  assert_true(hk_ndalloc > 0);
  assert_int_equal(hk_ndestroy, 0);
}

/* The same with split and merge refused: ranges are kept apart; exact
 * ranges only. */
static void test_checker_refusing(void **state) {
  (void)state;
  hk_reset();
  hk_check_maps = true;
  hk_refuse_split = hk_refuse_merge = true;
  unsigned ind = create_arena(&hooks);
  mixed_workload(ind);
  assert_int_equal(hk_nsplit, 0);
  assert_int_equal(hk_nmerge, 0);
  assert_true(hk_nrefused > 0);
  destroy_and_check(ind);
}

/* dalloc refused: arena.<i>.destroy gives every range to destroy. */
static void test_dalloc_refused(void **state) {
  (void)state;
  hk_reset();
  hk_check_maps = true;
  hk_refuse_dalloc = true;
  unsigned ind = create_arena(&hooks);
  mixed_workload(ind);
  destroy_and_check(ind);
  assert_int_equal(hk_ndalloc, 0);
  assert_true(hk_ndestroy > 0);
}

/* Purge hooks NULL or refusing: "not done", the ranges stay as they are and
 * the arena stays consistent and usable. */
static void test_purge_refused(void **state) {
  (void)state;
  hk_reset();
  hk_refuse_purge = true;
  unsigned ind = create_arena(&hooks);
  mixed_workload(ind);
  assert_int_equal(hk_npurge_lazy + hk_npurge_forced, 0);
  assert_true(hk_nrefused > 0);
  destroy_and_check(ind);

  hk_reset();
  extent_hooks_t nopurge = hooks;
  nopurge.purge_lazy = nopurge.purge_forced = NULL;
  nopurge.split = NULL; /* NULL split / merge: never split or merged */
  nopurge.merge = NULL;
  ind = create_arena(&nopurge);
  mixed_workload(ind);
  assert_int_equal(hk_nsplit + hk_nmerge + hk_npurge_lazy + hk_npurge_forced, 0);
  destroy_and_check(ind);
}

/* (3) alloc returns NULL: ENOMEM, nothing else breaks, and the arena
 * recovers when the hook succeeds again. */
static void test_alloc_fails(void **state) {
  (void)state;
  hk_reset();
  unsigned ind = create_arena(&hooks);
  size_t cs = chunksize();
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  hk_fail_alloc = true;
  static const size_t sizes[] = {8, 100, 4096, 100000, 1 << 20};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    errno = 0;
    assert_null(mallocx(sizes[i], fl));
    assert_int_equal(errno, ENOMEM);
  }
  errno = 0;
  assert_null(mallocx(3 * cs, fl));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(mallocx(cs, fl | MALLOCX_ALIGN(cs)));
  assert_int_equal(errno, ENOMEM);
  /* Other arenas keep working. */
  void *q = malloc(1000), *q2 = mallocx(3 * cs, 0);
  assert_non_null(q);
  assert_non_null(q2);
  free(q);
  dallocx(q2, 0);
  arena_check_ok(ind);
  /* Recovery. */
  hk_fail_alloc = false;
  void *a = mallocx(100, fl), *b = mallocx(3 * cs, fl);
  assert_non_null(a);
  assert_non_null(b);
  assert_true(hk_covers(a, 100));
  assert_true(hk_covers(b, 3 * cs));
  /* Failing again with memory in use: what the arena holds still serves. */
  hk_fail_alloc = true;
  void *c = mallocx(100, fl);
  assert_non_null(c);
  errno = 0;
  assert_null(mallocx(8 * cs, fl));
  assert_int_equal(errno, ENOMEM);
  dallocx(a, fl);
  dallocx(b, fl);
  dallocx(c, fl);
  hk_fail_alloc = false;
  arena_check_ok(ind);
  destroy_and_check(ind);
}

/* A hook that returns misaligned ranges: each is given back at once (the
 * exact range), the allocation fails with ENOMEM, nothing is used. */
static void test_misaligned_alloc(void **state) {
  (void)state;
  hk_reset();
  unsigned ind = create_arena(&hooks);
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  hk_misalign = true;
  size_t cs = chunksize();
  errno = 0;
  assert_null(mallocx(3 * cs, fl));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(mallocx(64, fl));
  assert_int_equal(errno, ENOMEM);
  pthread_mutex_lock(&hk_mtx);
  size_t nlive = hk_nlive;
  uint64_t nalloc = hk_nalloc, nback = hk_ndalloc + hk_ndestroy;
  pthread_mutex_unlock(&hk_mtx);
  assert_true(nalloc >= 2);
  assert_int_equal(nback, nalloc);
  assert_int_equal(nlive, 0);
  hk_misalign = false;
  void *p = mallocx(64, fl);
  assert_non_null(p);
  dallocx(p, fl);
  destroy_and_check(ind);
}

/* arena.<i>.extent_hooks: reads the table; a write installs a new one,
 * used for every later call. Bad writes get EINVAL / EPERM. */
static void test_hooks_ctl(void **state) {
  (void)state;
  hk_reset();
  unsigned ind = create_arena(&hooks);
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.extent_hooks", ind);
  extent_hooks_t *h = NULL;
  size_t sz = sizeof(h);
  assert_int_equal(mallctl(name, &h, &sz, NULL, 0), 0);
  assert_ptr_equal(h, &hooks);
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  void *a = mallocx(1000, fl);
  assert_non_null(a);
  uint64_t n1 = hk_nalloc;
  assert_true(n1 > 0);
  /* Install hooks2: later calls pass hooks2. */
  extent_hooks_t *nh = &hooks2, *old = NULL;
  pthread_mutex_lock(&hk_mtx);
  hk_expect_table = &hooks2;
  pthread_mutex_unlock(&hk_mtx);
  sz = sizeof(old);
  assert_int_equal(mallctl(name, &old, &sz, &nh, sizeof(nh)), 0);
  assert_ptr_equal(old, &hooks);
  sz = sizeof(h);
  assert_int_equal(mallctl(name, &h, &sz, NULL, 0), 0);
  assert_ptr_equal(h, &hooks2);
  void *b = mallocx(3 * chunksize(), fl);
  assert_non_null(b);
  assert_true(hk_nalloc > n1);
  /* Bad writes. */
  extent_hooks_t *bad = NULL;
  assert_int_equal(mallctl(name, NULL, NULL, &bad, sizeof(bad)), EINVAL);
  extent_hooks_t empty = {0};
  bad = &empty;
  assert_int_equal(mallctl(name, NULL, NULL, &bad, sizeof(bad)), EINVAL);
  assert_int_equal(mallctl(name, NULL, NULL, &nh, sizeof(nh) + 1), EINVAL);
  extent_hooks_t *def;
  sz = sizeof(def);
  assert_int_equal(mallctl("arena.0.extent_hooks", &def, &sz, NULL, 0), 0);
  assert_int_equal(mallctl(name, NULL, NULL, &def, sizeof(def)), EPERM);
  sz = sizeof(h);
  assert_int_equal(mallctl(name, &h, &sz, NULL, 0), 0);
  assert_ptr_equal(h, &hooks2);
  dallocx(a, fl);
  dallocx(b, fl);
  destroy_and_check(ind);
  /* The arena is gone. */
  sz = sizeof(h);
  assert_int_equal(mallctl(name, &h, &sz, NULL, 0), EFAULT);
}

/* The default table is usable from a user hook and by arenas.create. */
static void test_default_table(void **state) {
  (void)state;
  extent_hooks_t *def;
  size_t sz = sizeof(def);
  assert_int_equal(mallctl("arena.0.extent_hooks", &def, &sz, NULL, 0), 0);
  size_t cs = chunksize();
  bool zero = false, commit = false;
  char *p = def->alloc(def, NULL, 2 * cs, cs, &zero, &commit, 0);
  assert_non_null(p);
  assert_true(((uintptr_t)p & (cs - 1)) == 0);
  assert_true(zero && commit);
  p[0] = p[2 * cs - 1] = 1;
  assert_false(def->purge_forced(def, p, 2 * cs, 0, cs, 0));
  assert_int_equal(p[0], 0);
  assert_false(def->split(def, p, 2 * cs, cs, cs, true, 0));
  assert_false(def->dalloc(def, p, cs, true, 0));
  assert_false(def->dalloc(def, p + cs, cs, true, 0));
  /* arenas.create with the default table: an ordinary arena. */
  unsigned ind;
  sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, &def, sizeof(def)), 0);
  void *q = mallocx(100, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
  assert_non_null(q);
  dallocx(q, MALLOCX_TCACHE_NONE);
  arena_ctl(ind, "destroy");
}

/* All of the above again in a child process with retain:false (ranges go
 * back through dalloc as they are freed) and immediate purging. */
static void test_retain_false(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("XALLOC_CONF", "retain:false,dirty_decay_ms:0,muzzy_decay_ms:0", 1);
    setenv("XALLOC_EXTENT_HOOKS_CHILD", "1", 1);
    execl("/proc/self/exe", "extent_hooks", (char *)NULL);
    _exit(127);
  }
  assert_true(pid > 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
  bool child = getenv("XALLOC_EXTENT_HOOKS_CHILD") != NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retain_false),
      cmocka_unit_test(test_mbind_threads),  cmocka_unit_test(test_checker),
      cmocka_unit_test(test_checker_refusing), cmocka_unit_test(test_dalloc_refused),
      cmocka_unit_test(test_purge_refused),  cmocka_unit_test(test_alloc_fails),
      cmocka_unit_test(test_misaligned_alloc), cmocka_unit_test(test_hooks_ctl),      cmocka_unit_test(test_default_table),
  };
  size_t n = sizeof(tests) / sizeof(tests[0]);
  /* The child runs everything but the re-run itself. */
  return child ? _cmocka_run_group_tests("extent_hooks retain:false", tests + 1, n - 1, NULL, NULL)
               : cmocka_run_group_tests(tests, NULL, NULL);
}
