/*
 * The lifecycle of an explicit arena against concurrent purgers (issue 9,
 * item 1): arena.<i>.reset and arena.<i>.destroy must wait for a purge in
 * flight (run level and chunk level), and no purger may touch an arena
 * while it is reset or destroyed, or after.
 *
 * - reset vs malloc_trim: an explicit arena; loop { 24 mallocx of 64..432
 *   KiB (MALLOCX_ARENA | MALLOCX_TCACHE_NONE), filled and checked, dallocx
 *   all, arena.<i>.reset } while another thread loops malloc_trim(0). Also
 *   with huge allocations, and with small ones (bin runs).
 * - reset vs the background thread: the same loop, no second thread, in a
 *   child process run with background_thread:true,dirty_decay_ms:0.
 * - destroy vs malloc_trim: arenas with user extent hooks that record every
 *   range they hand out are created, used and destroyed while another
 *   thread loops malloc_trim(0); after each destroy every range must be
 *   back (a range out for purging when the arena is destroyed is not
 *   leaked), and no hook call may name a range already given back.
 *
 * Every test runs under alarm(): a deadlock fails instead of blocking.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <time.h>

#include "xalloc/xalloc.h"

#define ALARM_S 60
#define RUN_NS (1000ull * 1000 * 1000) /* each loop runs this long */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s) { return xtest_rand(s); }

static unsigned arena_create(extent_hooks_t *h) {
  unsigned ind;
  size_t sz = sizeof(ind);
  if (h != NULL)
    assert_int_equal(mallctl("arenas.create", &ind, &sz, &h, sizeof(h)), 0);
  else
    assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  return ind;
}

static int arena_op(unsigned ind, const char *leaf) {
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.%s", ind, leaf);
  return mallctl(name, NULL, NULL, NULL, 0);
}

static bool arena_check_ok(unsigned ind) {
  char name[64];
  bool ok = false;
  size_t sz = sizeof(ok);
  snprintf(name, sizeof(name), "arena.%u.check", ind);
  return mallctl(name, &ok, &sz, NULL, 0) == 0 && ok;
}

/* The byte block k of round r is filled with. */
static unsigned char pat(unsigned r, unsigned k) { return (unsigned char)(0x11 + r * 7 + k * 13); }

/* Whether every byte of p[0..size) is c (a word at a time). */
static bool all_bytes(const unsigned char *p, size_t size, unsigned char c) {
  uint64_t w = 0x0101010101010101ull * c;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    if (v != w) return false;
  }
  for (; i < size; i++)
    if (p[i] != c) return false;
  return true;
}

typedef enum { SIZES_LARGE, SIZES_HUGE, SIZES_SMALL } sizes_t;

static size_t pick(uint64_t *s, sizes_t kind) {
  switch (kind) {
  case SIZES_LARGE:
    return ((size_t)64 << 10) + (size_t)(rnd(s) % ((size_t)(432 - 64) << 10)); /* 64..432 KiB */
  case SIZES_HUGE:
    return ((size_t)2 << 20) + (size_t)(rnd(s) % ((size_t)6 << 20)); /* 2..8 MiB */
  default:
    return 8 + (size_t)(rnd(s) % 14000);
  }
}

#define NBLOCKS 24

/* One round: NBLOCKS allocations from the arena, filled, checked, freed,
 * then arena.<i>.reset. Fails the test on a wrong byte. */
static void round_trip(unsigned ind, unsigned r, uint64_t *seed, sizes_t kind, bool reset) {
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  unsigned char *p[NBLOCKS];
  size_t sz[NBLOCKS];
  unsigned n = kind == SIZES_HUGE ? 4 : NBLOCKS;
  for (unsigned k = 0; k < n; k++) {
    sz[k] = pick(seed, kind);
    p[k] = mallocx(sz[k], fl);
    if (p[k] == NULL) fail_msg("mallocx(%zu) from arena %u: NULL (errno %d)", sz[k], ind, errno);
    memset(p[k], pat(r, k), sz[k]);
  }
  for (unsigned k = 0; k < n; k++)
    if (!all_bytes(p[k], sz[k], pat(r, k)))
      fail_msg("round %u: block %u (%p, %zu bytes) overwritten", r, k, (void *)p[k], sz[k]);
  for (unsigned k = 0; k < n; k++) dallocx(p[k], fl);
  if (reset) assert_int_equal(arena_op(ind, "reset"), 0);
}

static volatile bool trim_stop;
static unsigned long trim_passes;
static void *trimmer(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&trim_stop, __ATOMIC_ACQUIRE)) {
    malloc_trim(0);
    __atomic_fetch_add(&trim_passes, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static pthread_t trimmer_start(void) {
  pthread_t th;
  __atomic_store_n(&trim_stop, false, __ATOMIC_RELEASE);
  trim_passes = 0;
  assert_int_equal(pthread_create(&th, NULL, trimmer, NULL), 0);
  return th;
}

static void trimmer_stop(pthread_t th) {
  __atomic_store_n(&trim_stop, true, __ATOMIC_RELEASE);
  pthread_join(th, NULL);
}

/* The reset loop for RUN_NS (at least min_rounds rounds). */
static unsigned reset_loop(unsigned ind, sizes_t kind, unsigned min_rounds) {
  uint64_t seed = 0x9e3779b97f4a7c15ull ^ ind;
  uint64_t end = now_ns() + RUN_NS;
  unsigned r = 0;
  while (r < min_rounds || now_ns() < end) round_trip(ind, r++, &seed, kind, true);
  return r;
}

static void reset_vs_trim(sizes_t kind) {
  alarm(ALARM_S);
  unsigned ind = arena_create(NULL);
  pthread_t th = trimmer_start();
  unsigned rounds = reset_loop(ind, kind, 20);
  trimmer_stop(th);
  printf("# %u rounds, %lu malloc_trim passes\n", rounds, trim_passes);
  assert_true(arena_check_ok(ind));
  /* The arena still serves, and is destroyed cleanly. */
  uint64_t seed = 1;
  round_trip(ind, 0, &seed, kind, false);
  assert_int_equal(arena_op(ind, "destroy"), 0);
  alarm(0);
}

static void test_reset_vs_trim_large(void **state) {
  (void)state;
  reset_vs_trim(SIZES_LARGE);
}
static void test_reset_vs_trim_small(void **state) {
  (void)state;
  reset_vs_trim(SIZES_SMALL);
}
static void test_reset_vs_trim_huge(void **state) {
  (void)state;
  reset_vs_trim(SIZES_HUGE);
}

static extent_hooks_t rec_hooks;

/* Child: the reset loop with the background thread as the only purger, on
 * an arena of the pages layer and on one with hooks (whose purge hook
 * takes a little while, so that the thread's purges are often in flight). */
static void test_reset_vs_background_child(void **state) {
  (void)state;
  alarm(ALARM_S);
  unsigned ind = arena_create(NULL);
  unsigned rounds = reset_loop(ind, SIZES_LARGE, 20);
  rounds += reset_loop(ind, SIZES_HUGE, 5);
  assert_true(arena_check_ok(ind));
  assert_int_equal(arena_op(ind, "destroy"), 0);
  ind = arena_create(&rec_hooks);
  rounds += reset_loop(ind, SIZES_LARGE, 20);
  rounds += reset_loop(ind, SIZES_SMALL, 20);
  bool running = false;
  size_t sz = sizeof(running);
  assert_int_equal(mallctl("opt.background_thread", &running, &sz, NULL, 0), 0);
  assert_true(running);
  printf("# %u rounds with the background thread purging\n", rounds);
  assert_true(arena_check_ok(ind));
  assert_int_equal(arena_op(ind, "destroy"), 0);
  alarm(0);
}

static void test_reset_vs_background(void **state) {
  (void)state;
  alarm(ALARM_S + 10);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("XALLOC_CONF", "background_thread:true,dirty_decay_ms:0", 1);
    setenv("XALLOC_LIFECYCLE_CHILD", "1", 1);
    execl("/proc/self/exe", "arena_lifecycle", (char *)NULL);
    _exit(127);
  }
  assert_true(pid > 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  alarm(0);
  if (WIFSIGNALED(status)) fail_msg("child killed by signal %d", WTERMSIG(status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- destroy vs purgers, with hooks that keep a record ---- */

#define MAXREC 4096
typedef struct {
  char *addr;
  size_t size;
  unsigned ind;
} rec_t;
static pthread_mutex_t hk_mtx = PTHREAD_MUTEX_INITIALIZER;
static rec_t hk_live[MAXREC];
static size_t hk_nlive;
static char hk_err[256];

static void hk_fail(const char *what, void *addr, size_t size, unsigned ind) {
  if (hk_err[0] == '\0')
    snprintf(hk_err, sizeof(hk_err), "%s(%p, %zu) for arena %u: not a live range of that arena", what, addr,
             size, ind);
}

/* The live record exactly [addr, addr+size) of arena ind, or -1 (under hk_mtx). */
static long hk_find(void *addr, size_t size, unsigned ind) {
  for (size_t i = 0; i < hk_nlive; i++)
    if (hk_live[i].addr == addr && hk_live[i].size == size && hk_live[i].ind == ind) return (long)i;
  return -1;
}

static void *hk_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero, bool *commit,
                      unsigned ind) {
  (void)h;
  if (new_addr != NULL) return NULL;
  size_t total = size + alignment;
  char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  char *ret = (char *)(((uintptr_t)p + alignment - 1) & ~(uintptr_t)(alignment - 1));
  if (ret > p) munmap(p, (size_t)(ret - p));
  if (p + total > ret + size) munmap(ret + size, (size_t)(p + total - (ret + size)));
  pthread_mutex_lock(&hk_mtx);
  if (hk_nlive < MAXREC) hk_live[hk_nlive++] = (rec_t){ret, size, ind};
  pthread_mutex_unlock(&hk_mtx);
  *zero = *commit = true;
  return ret;
}

static bool hk_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
  (void)h, (void)committed;
  pthread_mutex_lock(&hk_mtx);
  long i = hk_find(addr, size, ind);
  if (i < 0) {
    hk_fail("dalloc", addr, size, ind);
  } else {
    munmap(addr, size);
    hk_live[i] = hk_live[--hk_nlive];
  }
  pthread_mutex_unlock(&hk_mtx);
  return i < 0;
}

static void hk_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
  hk_dalloc(h, addr, size, committed, ind);
}

static bool hk_purge(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind) {
  (void)h;
  pthread_mutex_lock(&hk_mtx);
  long i = hk_find(addr, size, ind);
  if (i < 0) hk_fail("purge", addr, size, ind);
  pthread_mutex_unlock(&hk_mtx);
  /* Widen the window a purge is in flight for. */
  struct timespec ts = {0, 200000};
  nanosleep(&ts, NULL);
  return i < 0 || madvise((char *)addr + off, len, MADV_DONTNEED) != 0;
}

static bool hk_split(extent_hooks_t *h, void *addr, size_t size, size_t a, size_t b, bool c, unsigned ind) {
  (void)h, (void)c;
  pthread_mutex_lock(&hk_mtx);
  long i = hk_find(addr, size, ind);
  if (i < 0) {
    hk_fail("split", addr, size, ind);
  } else if (hk_nlive < MAXREC) {
    hk_live[i].size = a;
    hk_live[hk_nlive++] = (rec_t){(char *)addr + a, b, ind};
  } else {
    i = -1;
  }
  pthread_mutex_unlock(&hk_mtx);
  return i < 0;
}

static bool hk_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned ind) {
  (void)h, (void)c;
  pthread_mutex_lock(&hk_mtx);
  long i = hk_find(a, sa, ind), j = hk_find(b, sb, ind);
  if (i < 0 || j < 0) {
    hk_fail("merge", i < 0 ? a : b, i < 0 ? sa : sb, ind);
  } else {
    hk_live[i].size = sa + sb;
    hk_live[j] = hk_live[--hk_nlive];
  }
  pthread_mutex_unlock(&hk_mtx);
  return i < 0 || j < 0;
}

static extent_hooks_t rec_hooks = {hk_alloc, hk_dalloc, hk_destroy, NULL,    NULL,
                                   hk_purge, hk_purge,  hk_split,   hk_merge};

/* Ranges the hooks have out for arena ind. */
static size_t hk_live_of(unsigned ind) {
  pthread_mutex_lock(&hk_mtx);
  size_t n = 0;
  for (size_t i = 0; i < hk_nlive; i++) n += hk_live[i].ind == ind;
  pthread_mutex_unlock(&hk_mtx);
  return n;
}

static size_t stats_mapped(void) {
  uint64_t epoch = 1;
  size_t sz = sizeof(epoch), mapped;
  assert_int_equal(mallctl("epoch", &epoch, &sz, &epoch, sizeof(epoch)), 0);
  sz = sizeof(mapped);
  assert_int_equal(mallctl("stats.mapped", &mapped, &sz, NULL, 0), 0);
  return mapped;
}

static void destroy_vs_trim(extent_hooks_t *h) {
  alarm(ALARM_S);
  size_t mapped_before = stats_mapped();
  pthread_t th = trimmer_start();
  uint64_t seed = 42, end = now_ns() + RUN_NS;
  unsigned rounds = 0;
  while (rounds < 20 || now_ns() < end) {
    unsigned ind = arena_create(h);
    round_trip(ind, rounds, &seed, SIZES_LARGE, false);
    round_trip(ind, rounds, &seed, SIZES_HUGE, rounds % 2 == 0);
    round_trip(ind, rounds, &seed, SIZES_SMALL, false);
    assert_int_equal(arena_op(ind, "destroy"), 0);
    if (h != NULL) {
      size_t left = hk_live_of(ind);
      if (left != 0) {
        trimmer_stop(th);
        fail_msg("round %u: %zu ranges of arena %u not given back by arena.%u.destroy", rounds, left, ind, ind);
      }
    }
    /* The index is retired: as in jemalloc, a purge of an index with no
     * arena purges nothing, and the index is not initialized. */
    assert_int_equal(arena_op(ind, "purge"), 0);
    assert_int_equal(arena_op(ind, "reset"), EFAULT);
    {
      char name[64];
      bool init = true;
      size_t isz = sizeof(init);
      snprintf(name, sizeof(name), "arena.%u.initialized", ind);
      assert_int_equal(mallctl(name, &init, &isz, NULL, 0), 0);
      assert_false(init);
    }
    rounds++;
  }
  trimmer_stop(th);
  size_t mapped_after = stats_mapped();
  printf("# %u arenas destroyed, %lu malloc_trim passes; mapped %zu -> %zu\n", rounds, trim_passes, mapped_before,
         mapped_after);
  /* Destroyed arenas give back all their memory (metadata may grow a
   * little): what a purge had out at destroy time is not leaked. */
  if (mapped_after > mapped_before + ((size_t)8 << 20))
    fail_msg("%zu bytes more mapped after destroying %u arenas", mapped_after - mapped_before, rounds);
  pthread_mutex_lock(&hk_mtx);
  char err[sizeof(hk_err)];
  memcpy(err, hk_err, sizeof(err));
  pthread_mutex_unlock(&hk_mtx);
  if (err[0] != '\0') fail_msg("hook violation: %s", err);
  alarm(0);
}

static void test_destroy_vs_trim(void **state) {
  (void)state;
  destroy_vs_trim(NULL);
}
static void test_destroy_vs_trim_hooks(void **state) {
  (void)state;
  destroy_vs_trim(&rec_hooks);
}

int main(void) {
  if (getenv("XALLOC_LIFECYCLE_CHILD") != NULL) {
    const struct CMUnitTest child[] = {cmocka_unit_test(test_reset_vs_background_child)};
    return _cmocka_run_group_tests("arena_lifecycle background", child, 1, NULL, NULL);
  }
  /* ARENA_LIFECYCLE_FILTER=pattern runs only the matching tests. */
  if (getenv("ARENA_LIFECYCLE_FILTER") != NULL) cmocka_set_test_filter(getenv("ARENA_LIFECYCLE_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reset_vs_trim_large), cmocka_unit_test(test_reset_vs_trim_small),
      cmocka_unit_test(test_reset_vs_trim_huge),  cmocka_unit_test(test_reset_vs_background),
      cmocka_unit_test(test_destroy_vs_trim),     cmocka_unit_test(test_destroy_vs_trim_hooks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
