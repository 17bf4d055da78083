/*
 * retain, accounting and fault injection, process-wide (each scenario runs
 * in a child of its own, with its options set there):
 *  - the RethinkDB pattern: thousands of coroutine stacks with an mprotect
 *    guard page each, interleaved with huge allocations freed and
 *    reallocated: the /proc/self/maps entries xalloc accounts for stay
 *    within a small multiple of log2 of the bytes it reserved;
 *  - accounting: after long random workloads, with and without retain,
 *    stats mapped equals to the byte the ranges xalloc owns (all present
 *    in /proc/self/maps), retained equals its clean free chunk ranges
 *    (none of them resident), and mincore never sees more resident pages
 *    than stats resident allows;
 *  - fault injection: failing mmap, munmap and madvise calls: allocations
 *    fail cleanly with ENOMEM, retained memory is reused, counters stay
 *    exact, nothing aborts.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>
#include <sys/mman.h>

#include "owned.h"
#include "wrap.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/stats.h"

#define CHECK(c)                                                                  \
  do {                                                                            \
    if (!(c)) {                                                                   \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);       \
      fflush(stderr);                                                             \
      _exit(1);                                                                   \
    }                                                                             \
  } while (0)

static void run(void (*fn)(void *), void *arg) {
  static char err[1 << 16];
  int st = xtest_run_child(fn, arg, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "child failed (status %d):\n%s\n", st, err);
  else if (err[0]) fprintf(stderr, "%s", err);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* Every byte accounted for: stats, the owned ranges and /proc/self/maps. */
static void check_accounting(const char *when) {
  size_t total = owned_collect();
  stats_totals_t t;
  stats_totals(&t);
  pages_stats_t ps;
  pages_stats_get(&ps);
  if (total + ps.stranded != t.mapped)
    fprintf(stderr, "%s: owned %zu + stranded %zu != mapped %zu\n", when, total, ps.stranded, t.mapped);
  CHECK(total + ps.stranded == t.mapped);
  CHECK(owned_bytes_in_maps() == total);
  size_t clean = 0, resident = 0;
  for (size_t i = 0; i < nowned; i++) {
    size_t r = mincore_pages(owned[i].lo, owned[i].hi);
    CHECK(r != (size_t)-1);
    resident += r;
    if (owned[i].kind == 1 && owned[i].clean) {
      clean += owned[i].hi - owned[i].lo;
      CHECK(r == 0); /* retained memory is not resident */
    }
  }
  CHECK(clean == t.retained);
  if (resident * PAGE > t.resident) fprintf(stderr, "%s: mincore %zu > resident %zu\n", when, resident * PAGE, t.resident);
  CHECK(resident * PAGE <= t.resident);
}

/* ---- accounting ---- */

typedef struct {
  char *p;
  size_t size;
} obj_t;

static size_t rand_size(uint64_t *s) {
  uint64_t r = xtest_rand(s) % 1000;
  if (r < 700) return 8 + xtest_rand(s) % 2000;
  if (r < 950) return 16384 + xtest_rand(s) % (1 << 20);
  if (r < 990) return (2 << 20) + xtest_rand(s) % (8 << 20);
  return (8 << 20) + xtest_rand(s) % (24 << 20);
}

static void accounting_child(void *arg) {
  opt_retain = arg != NULL;
  enum { NOBJ = 1500, NOPS = 30000 };
  static obj_t objs[NOBJ];
  uint64_t seed = opt_retain ? 12345 : 54321;
  check_accounting("start");
  for (int op = 0; op < NOPS; op++) {
    size_t i = (size_t)(xtest_rand(&seed) % NOBJ);
    obj_t *o = &objs[i];
    if (o->p != NULL) {
      CHECK(o->p[0] == (char)i && o->p[o->size - 1] == (char)i);
      if (xtest_rand(&seed) % 4 == 0) {
        size_t ns = rand_size(&seed);
        char *q = realloc(o->p, ns);
        CHECK(q != NULL);
        o->p = q;
        o->size = ns;
        q[0] = q[ns - 1] = (char)i;
        continue;
      }
      free(o->p);
      o->p = NULL;
    } else {
      size_t size = rand_size(&seed);
      if (xtest_rand(&seed) % 5 == 0) {
        CHECK(posix_memalign((void **)&o->p, (size_t)4096 << (xtest_rand(&seed) % 4), size) == 0);
      } else {
        o->p = xtest_rand(&seed) % 3 ? malloc(size) : calloc(1, size);
      }
      CHECK(o->p != NULL);
      o->size = size;
      o->p[0] = o->p[size - 1] = (char)i;
    }
    if (op % 5000 == 4999) {
      if (op % 10000 == 9999)
        malloc_trim(0);
      else
        arena_decay(arenas[0]);
      check_accounting("workload");
    }
  }
  for (size_t i = 0; i < NOBJ; i++) free(objs[i].p);
  check_accounting("all freed");
  malloc_trim(0);
  check_accounting("trimmed");
  stats_totals_t t;
  stats_totals(&t);
  CHECK(t.dirty == 0 && t.muzzy == 0);
  _exit(0);
}

static void test_accounting_retain(void **state) {
  (void)state;
  run(accounting_child, (void *)1);
}
static void test_accounting_no_retain(void **state) {
  (void)state;
  run(accounting_child, NULL);
}

/* ---- the RethinkDB pattern ---- */

#define NSTACKS 4000
#define STACK_SIZE ((size_t)68 << 10)
static char *stacks[NSTACKS];

static unsigned lg2(size_t x) { return (unsigned)(63 - __builtin_clzll(x)); }

static void check_entries(const char *when, size_t *maxratio) {
  owned_collect();
  size_t entries = owned_maps_entries();
  size_t reserved = 0;
  for (unsigned i = 0; i < narenas; i++) reserved += arenas[i]->chunks.reserved;
  base_stats_t bs;
  base_stats_get(&bs);
  reserved += bs.mapped;
  size_t bound = 4 * (size_t)lg2(reserved);
  /* And the mappings xalloc made and still has, merged by the kernel or not
   * (an aligned mapping is one mmap, or two and a trim). */
  pages_stats_t ps;
  pages_stats_get(&ps);
  size_t live = (size_t)(ps.nmaps - ps.nunmaps);
  fprintf(stderr, "%s: %zu maps entries, %zu live mmaps for %zu MiB reserved (bound %zu)\n", when, entries, live,
          reserved >> 20, bound);
  CHECK(entries <= bound);
  CHECK(live <= bound);
  if (entries * 100 / lg2(reserved) > *maxratio) *maxratio = entries * 100 / lg2(reserved);
}

static void stack_new(size_t i) {
  CHECK(posix_memalign((void **)&stacks[i], PAGE, STACK_SIZE) == 0);
  CHECK(mprotect(stacks[i], PAGE, PROT_NONE) == 0); /* guard page */
  stacks[i][PAGE] = 1;
  stacks[i][STACK_SIZE - 1] = 1;
}

static void stack_free(size_t i) {
  CHECK(mprotect(stacks[i], PAGE, PROT_READ | PROT_WRITE) == 0);
  free(stacks[i]);
  stacks[i] = NULL;
}

static void rethinkdb_child(void *arg) {
  (void)arg;
  uint64_t seed = 7;
  char *huge[4] = {0};
  size_t maxratio = 0;
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < NSTACKS; i++) {
      if (stacks[i] != NULL) {
        if (xtest_rand(&seed) % 2) stack_free(i);
        continue;
      }
      stack_new(i);
      if (i % 200 == 0) {
        size_t h = (size_t)(xtest_rand(&seed) % 4);
        free(huge[h]);
        huge[h] = malloc(((size_t)4 << 20) + (xtest_rand(&seed) % 28) * ((size_t)1 << 20));
        CHECK(huge[h] != NULL);
        huge[h][0] = 1;
      }
    }
    check_entries("round", &maxratio);
    arena_decay(arenas[0]);
    check_entries("after decay", &maxratio);
  }
  for (size_t i = 0; i < NSTACKS; i++)
    if (stacks[i] != NULL) stack_free(i);
  for (int h = 0; h < 4; h++) free(huge[h]);
  malloc_trim(0);
  check_entries("all freed and trimmed", &maxratio);
  check_accounting("rethinkdb");
  _exit(0);
}

static void test_rethinkdb_pattern(void **state) {
  (void)state;
  run(rethinkdb_child, NULL);
}

/* ---- fault injection ---- */

static void faults_child(void *arg) {
  opt_retain = arg != NULL;
  stats_totals_t t0, t1;
  /* Warm the metadata pools, so only chunk memory needs new mappings. */
  void *warm[64];
  for (int i = 0; i < 64; i++) warm[i] = malloc((size_t)(i + 1) * 4096);
  for (int i = 0; i < 64; i++) free(warm[i]);
  check_accounting("faults start");
  stats_totals(&t0);
  /* mmap fails: huge, large and aligned allocations that need new memory
   * return NULL with ENOMEM; nothing changes. */
  wrap_fail_mmap = 1000000;
  errno = 0;
  CHECK(malloc((size_t)1 << 30) == NULL && errno == ENOMEM);
  void *p = NULL;
  CHECK(posix_memalign(&p, (size_t)64 << 20, (size_t)256 << 20) == ENOMEM && p == NULL);
  errno = 0;
  CHECK(calloc(1, (size_t)512 << 20) == NULL && errno == ENOMEM);
  wrap_reset();
  stats_totals(&t1);
  CHECK(t1.mapped == t0.mapped && t1.allocated == t0.allocated);
  check_accounting("after failed mmaps");
  /* The next allocation that fits succeeds. */
  char *big = malloc((size_t)64 << 20);
  CHECK(big != NULL);
  memset(big, 0x5a, (size_t)64 << 20);
  free(big);
  malloc_trim(0);
  check_accounting("after trim");
  /* Retained (or cached) memory is reused while mmap fails. */
  stats_totals(&t0);
  wrap_fail_mmap = 1000000;
  char *again = opt_retain ? calloc(1, (size_t)64 << 20) : calloc(1, (size_t)4 << 20);
  wrap_reset();
  if (opt_retain) {
    CHECK(again != NULL);
    for (size_t off = 0; off < ((size_t)64 << 20); off += PAGE) CHECK(again[off] == 0);
    free(again);
  } else {
    free(again); /* may be NULL if nothing was cached */
  }
  stats_totals(&t1);
  CHECK(t1.mapped == t0.mapped);
  /* madvise fails: freed memory stays dirty and counted; no abort. */
  char *q = malloc((size_t)32 << 20);
  CHECK(q != NULL);
  memset(q, 1, (size_t)32 << 20);
  free(q);
  stats_totals(&t0);
  wrap_fail_madvise = 1000000;
  if (!opt_retain) wrap_fail_munmap = 1000000; /* (retain:false unmaps what it purges for good) */
  malloc_trim(0);
  wrap_reset();
  stats_totals(&t1);
  CHECK(t1.dirty == t0.dirty && t1.dirty != 0);
  check_accounting("after failed madvise");
  malloc_trim(0);
  stats_totals(&t1);
  CHECK(t1.dirty == 0 && t1.muzzy == 0);
  check_accounting("after trim");
  /* munmap fails (retain:false): ranges kept, counted, reused. */
  char *h[8];
  for (int i = 0; i < 8; i++) {
    h[i] = malloc((size_t)8 << 20);
    CHECK(h[i] != NULL);
    h[i][0] = 1;
  }
  pages_stats_t ps0, ps1;
  pages_stats_get(&ps0);
  wrap_fail_munmap = 1000000;
  for (int i = 0; i < 8; i++) free(h[i]);
  malloc_trim(0); /* purged for good: retain:false unmaps them (and fails) */
  wrap_reset();
  pages_stats_get(&ps1);
  if (!opt_retain) CHECK(ps1.nunmap_kept > ps0.nunmap_kept);
  CHECK(ps1.stranded == ps0.stranded);
  check_accounting("after failed munmaps");
  size_t mapped = ps1.mapped;
  for (int i = 0; i < 8; i++) {
    h[i] = malloc((size_t)8 << 20);
    CHECK(h[i] != NULL);
  }
  pages_stats_get(&ps1);
  CHECK(ps1.mapped == mapped); /* all reused: nothing new mapped */
  for (int i = 0; i < 8; i++) free(h[i]);
  check_accounting("faults end");
  _exit(0);
}

static void test_faults_retain(void **state) {
  (void)state;
  run(faults_child, (void *)1);
}

static void test_faults_no_retain(void **state) {
  (void)state;
  run(faults_child, NULL);
}

static int setup(void **state) {
  (void)state;
  free(malloc(1));
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rethinkdb_pattern), cmocka_unit_test(test_accounting_retain),
      cmocka_unit_test(test_accounting_no_retain), cmocka_unit_test(test_faults_retain),
      cmocka_unit_test(test_faults_no_retain),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
