/*
 * Many short-lived threads: 2000 threads, created in batches so that at
 * most 64 are alive at once. Each allocates, reallocates and frees blocks of
 * many sizes, frees blocks that threads of the previous batch (now exited)
 * left behind, and leaves some of its own blocks: half for the next batch's
 * threads, half for the main thread, all freed after their allocating thread
 * has exited. At the end the allocated byte count is back where it started
 * (a thread's exit must not leak what it held).
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>

#include "xalloc/xalloc.h"

#define NTHREADS_TOTAL 2000
#define BATCH 64
#define LEFT 6 /* blocks each thread leaves behind */

typedef struct {
  unsigned char *p;
  size_t size;
  unsigned char pat;
  bool aligned; /* from posix_memalign(256, size), else malloc/calloc/realloc */
} blk_t;

typedef struct {
  pthread_t tid;
  unsigned id;
  blk_t left[LEFT];   /* left by this thread */
  blk_t *inherit;     /* blocks of a thread of the previous batch, to free */
  int ninherit;
  char err[160];
} job_t;

static bool blk_ok(const blk_t *b) {
  if (b->p[0] != b->pat || b->p[b->size - 1] != b->pat) return false;
  return b->size == 1 || memcmp(b->p, b->p + 1, b->size - 1) == 0;
}

static size_t pick_size(uint64_t *rng) {
  uint64_t r = xtest_rand(rng) % 1000;
  if (r < 750) return 1 + (size_t)(xtest_rand(rng) % 1024);
  if (r < 950) return 1025 + (size_t)(xtest_rand(rng) % 16384);
  if (r < 998) return 16384 + (size_t)(xtest_rand(rng) % (300 << 10));
  return ((size_t)2 << 20) + (size_t)(xtest_rand(rng) % (1 << 20));
}

#define JFAIL(...)                                   \
  do {                                               \
    snprintf(job->err, sizeof(job->err), __VA_ARGS__); \
    return NULL;                                     \
  } while (0)

static bool blk_new(blk_t *b, uint64_t *rng) {
  b->size = pick_size(rng);
  b->pat = (unsigned char)(xtest_rand(rng) % 255 + 1);
  b->aligned = false;
  switch (xtest_rand(rng) % 3) {
  case 0:
    b->p = malloc(b->size);
    break;
  case 1:
    b->p = calloc(b->size, 1);
    if (b->p != NULL && (b->p[0] != 0 || b->p[b->size - 1] != 0)) return false;
    break;
  default: {
    void *p = NULL;
    b->p = posix_memalign(&p, 256, b->size) == 0 ? p : NULL;
    b->aligned = true;
    if (((uintptr_t)b->p & 255) != 0) return false;
    break;
  }
  }
  if (b->p == NULL || malloc_usable_size(b->p) < b->size) return false;
  if (((uintptr_t)b->p & (b->size >= 16 ? 15 : 7)) != 0) return false;
  memset(b->p, b->pat, b->size);
  return true;
}

static void *thread_main(void *arg) {
  job_t *job = arg;
  uint64_t rng = job->id * 0x9E3779B97F4A7C15ULL + 1;
  /* Free what an exited thread of the previous batch left for us. */
  for (int i = 0; i < job->ninherit; i++) {
    if (!blk_ok(&job->inherit[i])) JFAIL("thread %u: inherited block %d corrupt", job->id, i);
    blk_t *b = &job->inherit[i];
    if (i % 2)
      free(b->p);
    else if (b->aligned)
      free_aligned_sized(b->p, 256, b->size);
    else
      free_sized(b->p, b->size);
  }
  /* Work: a small pool of blocks, churned. */
  blk_t pool[24];
  int n = 0;
  for (int it = 0; it < 150; it++) {
    uint64_t r = xtest_rand(&rng) % 10;
    if (n < 24 && (n == 0 || r < 5)) {
      if (!blk_new(&pool[n], &rng)) JFAIL("thread %u: allocation %d failed", job->id, it);
      n++;
    } else {
      int i = (int)(xtest_rand(&rng) % (uint64_t)n);
      if (!blk_ok(&pool[i])) JFAIL("thread %u: block corrupt", job->id);
      if (r < 8) {
        free(pool[i].p);
        pool[i] = pool[--n];
      } else {
        size_t nsize = pick_size(&rng);
        unsigned char *q = realloc(pool[i].p, nsize);
        if (q == NULL) JFAIL("thread %u: realloc failed", job->id);
        size_t keep = nsize < pool[i].size ? nsize : pool[i].size;
        pool[i].p = q;
        pool[i].size = keep;
        if (!blk_ok(&pool[i])) JFAIL("thread %u: realloc lost data", job->id);
        memset(q, pool[i].pat, nsize);
        pool[i].size = nsize;
        pool[i].aligned = false;
      }
    }
  }
  /* Leave LEFT blocks behind, free the rest. */
  for (int i = 0; i < LEFT; i++) {
    if (i < n) {
      job->left[i] = pool[i];
    } else if (!blk_new(&job->left[i], &rng)) {
      JFAIL("thread %u: allocation failed", job->id);
    }
  }
  for (int i = LEFT; i < n; i++) {
    if (!blk_ok(&pool[i])) JFAIL("thread %u: block corrupt", job->id);
    free(pool[i].p);
  }
  return NULL;
}

static void test_short_lived_threads(void **state) {
  (void)state;
  /* Warm up, so that the baseline includes the allocator's own start-up. */
  free(malloc(1));
  size_t base = mallinfo2().uordblks;
  static job_t jobs[2][BATCH];
  job_t *prev = NULL;
  int nprev = 0;
  unsigned id = 0, nfreed_main = 0;
  while (id < NTHREADS_TOTAL) {
    job_t *cur = jobs[(id / BATCH) % 2];
    int ncur = 0;
    memset(cur, 0, sizeof(jobs[0]));
    for (; ncur < BATCH && id < NTHREADS_TOTAL; ncur++, id++) {
      cur[ncur].id = id;
      /* Half of what thread j of the previous batch left goes to thread j of this one. */
      if (prev != NULL && ncur < nprev) {
        cur[ncur].inherit = prev[ncur].left;
        cur[ncur].ninherit = LEFT / 2;
      }
      int rc = pthread_create(&cur[ncur].tid, NULL, thread_main, &cur[ncur]);
      if (rc != 0) fail_msg("pthread_create %u: %d", id, rc);
    }
    for (int j = 0; j < ncur; j++) {
      assert_int_equal(pthread_join(cur[j].tid, NULL), 0);
      if (cur[j].err[0]) fail_msg("%s", cur[j].err);
    }
    /* The main thread frees the other half of what the previous batch left, */
    for (int j = 0; prev != NULL && j < nprev; j++) {
      int from = j < ncur ? LEFT / 2 : 0; /* no successor thread: all of it */
      for (int i = from; i < LEFT; i++) {
        blk_t *b = &prev[j].left[i];
        assert_true(blk_ok(b));
        assert_true(malloc_usable_size(b->p) >= b->size);
        free(b->p);
        nfreed_main++;
      }
    }
    prev = cur;
    nprev = ncur;
  }
  /* and everything the last batch left. */
  for (int j = 0; j < nprev; j++) {
    for (int i = 0; i < LEFT; i++) {
      assert_true(blk_ok(&prev[j].left[i]));
      free(prev[j].left[i].p);
      nfreed_main++;
    }
  }
  assert_true(nfreed_main >= NTHREADS_TOTAL * (LEFT / 2));
  /*
   * Nothing is left allocated. The slack allows for objects a correct
   * thread cache may keep for the main thread; threads that exit without
   * returning what they cached would exceed it many times over. The caches
   * of exited threads kept for new ones (tcache_park, at most 8 MiB) are
   * flushed by malloc_trim first.
   */
  malloc_trim(0);
  size_t after = mallinfo2().uordblks;
  if (after > base + ((size_t)2 << 20))
    fail_msg("allocated bytes grew from %zu to %zu after %d threads", base, after, NTHREADS_TOTAL);
}

/* Blocks allocated by threads that have all exited, freed by the main thread in one go. */
#define NORPHAN_THREADS 64
#define NORPHAN 200

static void *orphan_maker(void *arg) {
  blk_t *out = arg;
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < NORPHAN; i++)
    if (!blk_new(&out[i], &rng)) out[i].p = NULL;
  return NULL;
}

static void test_free_after_thread_exit(void **state) {
  (void)state;
  static blk_t blocks[NORPHAN_THREADS][NORPHAN];
  pthread_t t[NORPHAN_THREADS];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < NORPHAN_THREADS; i++)
      assert_int_equal(pthread_create(&t[i], NULL, orphan_maker, blocks[i]), 0);
    for (int i = 0; i < NORPHAN_THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    /* Every thread has exited; its blocks are intact and distinct. */
    for (int i = 0; i < NORPHAN_THREADS; i++)
      for (int j = 0; j < NORPHAN; j++) {
        assert_non_null(blocks[i][j].p);
        assert_true(blk_ok(&blocks[i][j]));
      }
    /* Free in an order unrelated to the allocating thread; reallocate some first. */
    for (int j = 0; j < NORPHAN; j++)
      for (int i = 0; i < NORPHAN_THREADS; i++) {
        blk_t *b = &blocks[(i * 7 + j) % NORPHAN_THREADS][j];
        if ((i + j) % 5 == 0) {
          unsigned char *q = realloc(b->p, b->size * 2);
          assert_non_null(q);
          b->p = q;
          assert_true(blk_ok(b));
        }
        free(b->p);
        b->p = NULL;
      }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_short_lived_threads),
      cmocka_unit_test(test_free_after_thread_exit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
