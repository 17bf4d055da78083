/*
 * fork() while other threads allocate and free as hard as they can. Each
 * child must find a working allocator: it checks and frees blocks inherited
 * from the parent, allocates, reallocates and frees many sizes (small, large
 * and huge), starts a thread that does the same, sometimes forks again, and
 * exits 0. A watchdog alarm turns a deadlock into a failure. The parent and
 * its threads must keep working after every fork.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "xalloc/xalloc.h"

#define NFORKS 50
#define NWORKERS 3
#define NSLOTS 64
#define CHILD_ALARM 20 /* seconds */

/* ---- blocks with a pattern ---- */

typedef struct {
  unsigned char *p;
  size_t size;   /* bytes holding the pattern */
  size_t req;    /* size requested from malloc/calloc/realloc */
  bool plain;    /* from malloc/calloc/realloc: free_sized(p, req) is valid */
  size_t align;  /* else from posix_memalign(align, req) */
  unsigned char pat;
} blk_t;

static size_t pick_size(uint64_t *rng) {
  uint64_t r = xtest_rand(rng) % 1000;
  if (r < 700) return (size_t)(xtest_rand(rng) % 512);
  if (r < 950) return 512 + (size_t)(xtest_rand(rng) % 16384);
  if (r < 998) return 16384 + (size_t)(xtest_rand(rng) % (256 << 10));
  return ((size_t)2 << 20) + (size_t)(xtest_rand(rng) % (3 << 20)); /* huge */
}

static bool blk_ok(const blk_t *b) {
  if (b->size == 0) return true;
  if (b->p[0] != b->pat) return false;
  return memcmp(b->p, b->p + 1, b->size - 1) == 0;
}

/* Allocate with a random entry point and fill; false on NULL or misalignment. */
static bool blk_alloc(blk_t *b, uint64_t *rng) {
  size_t size = pick_size(rng);
  void *p = NULL;
  size_t align = size >= 16 ? 16 : 8;
  switch (xtest_rand(rng) % 4) {
  case 0:
    p = malloc(size);
    break;
  case 1:
    p = calloc(1, size);
    if (p != NULL) {
      for (size_t i = 0; i < size; i += 512)
        if (((unsigned char *)p)[i] != 0) return false;
      if (size > 0 && ((unsigned char *)p)[size - 1] != 0) return false;
    }
    break;
  case 2:
    align = (size_t)64 << (xtest_rand(rng) % 10);
    if (posix_memalign(&p, align, size) != 0) p = NULL;
    break;
  default:
    p = realloc(NULL, size);
    break;
  }
  if (p == NULL || ((uintptr_t)p & (align - 1)) != 0 || malloc_usable_size(p) < size) return false;
  b->p = p;
  b->size = b->req = size;
  b->plain = align <= 16;
  b->align = align;
  b->pat = (unsigned char)(xtest_rand(rng) % 255 + 1);
  memset(p, b->pat, size);
  return true;
}

/* Verify, then free or realloc (then free) the block. */
static bool blk_release(blk_t *b, uint64_t *rng) {
  if (!blk_ok(b)) return false;
  uint64_t r = xtest_rand(rng) % 4;
  if (r == 0) {
    size_t nsize = pick_size(rng) + 1;
    unsigned char *q = realloc(b->p, nsize);
    if (q == NULL) return false;
    size_t keep = nsize < b->size ? nsize : b->size;
    b->p = q;
    b->size = keep;
    b->req = nsize;
    b->plain = true;
    if (!blk_ok(b) || malloc_usable_size(q) < nsize) return false;
  }
  if (r == 1 && b->plain)
    free_sized(b->p, b->req);
  else if (r == 1)
    free_aligned_sized(b->p, b->align, b->req);
  else
    free(b->p);
  b->p = NULL;
  return true;
}

/* A burst of random work on a set of slots; false on the first error. */
static bool churn(blk_t *slots, int nslots, long iters, uint64_t *rng) {
  for (long i = 0; i < iters; i++) {
    blk_t *b = &slots[xtest_rand(rng) % (uint64_t)nslots];
    if (b->p != NULL) {
      if (!blk_release(b, rng)) return false;
    } else {
      if (!blk_alloc(b, rng)) return false;
    }
  }
  return true;
}

static bool release_all(blk_t *slots, int nslots, uint64_t *rng) {
  for (int i = 0; i < nslots; i++)
    if (slots[i].p != NULL && !blk_release(&slots[i], rng)) return false;
  return true;
}

/* ---- parent worker threads ---- */

/* Flags and counters shared between the main thread and the workers are
 * read and written with relaxed atomics (they order nothing else). */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
static int stop_workers;

typedef struct {
  pthread_t tid;
  uint64_t rng;
  long iters;
  bool failed;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  blk_t slots[NSLOTS];
  memset(slots, 0, sizeof(slots));
  while (!LOAD(stop_workers) && !LOAD(w->failed)) {
    if (!churn(slots, NSLOTS, 64, &w->rng)) STORE(w->failed, true);
    STORE(w->iters, w->iters + 64);
  }
  if (!release_all(slots, NSLOTS, &w->rng)) STORE(w->failed, true);
  return NULL;
}

/* ---- the child ---- */

static void child_fail(const char *msg) {
  char buf[200];
  int n = snprintf(buf, sizeof(buf), "child %d: %s\n", (int)getpid(), msg);
  if (n > 0) (void)!write(2, buf, (size_t)n);
  _exit(1);
}

static void *child_thread(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
  blk_t slots[32];
  memset(slots, 0, sizeof(slots));
  if (!churn(slots, 32, 1500, &rng) || !release_all(slots, 32, &rng)) return (void *)1;
  return NULL;
}

static void child_main(blk_t *inherited, int ninherited, unsigned seed, bool nest) {
  alarm(CHILD_ALARM);
  uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 3;
  /* What the parent allocated is intact, and can be freed and reallocated here. */
  for (int i = 0; i < ninherited; i++)
    if (!blk_ok(&inherited[i])) child_fail("inherited block corrupt");
  for (int i = 0; i < ninherited; i++)
    if (!blk_release(&inherited[i], &rng)) child_fail("inherited block: free/realloc failed");
  /* Every size class range, in order, then at random. */
  for (size_t size = 1; size <= ((size_t)4 << 20); size = size + size / 2 + 1) {
    blk_t b = {malloc(size), size, size, true, 0, (unsigned char)(size % 251 + 1)};
    if (b.p == NULL || malloc_usable_size(b.p) < size) child_fail("malloc failed");
    memset(b.p, b.pat, size);
    unsigned char *q = realloc(b.p, size * 2);
    if (q == NULL) child_fail("realloc grow failed");
    b.p = q;
    if (!blk_ok(&b)) child_fail("realloc grow lost data");
    q = realloc(b.p, size / 2 + 1);
    if (q == NULL) child_fail("realloc shrink failed");
    b.p = q;
    b.size = size / 2 + 1;
    if (!blk_ok(&b)) child_fail("realloc shrink lost data");
    free(b.p);
  }
  blk_t slots[NSLOTS];
  memset(slots, 0, sizeof(slots));
  if (!churn(slots, NSLOTS, 3000, &rng)) child_fail("churn failed");
  /* A thread in the child. */
  pthread_t t;
  void *ret = (void *)1;
  if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)seed) != 0)
    child_fail("pthread_create failed");
  if (!churn(slots, NSLOTS, 1000, &rng)) child_fail("churn with a thread failed");
  if (pthread_join(t, &ret) != 0 || ret != NULL) child_fail("child thread failed");
  if (nest) {
    /* Fork again from the child, with a block in flight. */
    pid_t pid = fork();
    if (pid < 0) child_fail("nested fork failed");
    if (pid == 0) {
      alarm(CHILD_ALARM);
      if (!churn(slots, NSLOTS, 2000, &rng) || !release_all(slots, NSLOTS, &rng))
        child_fail("grandchild churn failed");
      _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      child_fail("grandchild failed");
  }
  if (!release_all(slots, NSLOTS, &rng)) child_fail("final release failed");
  void *p = malloc(100);
  if (p == NULL) child_fail("last malloc failed");
  free(p);
  _exit(0);
}

/* ---- the test ---- */

typedef struct {
  unsigned seed;
  bool nest;
  int status;
  blk_t inherited[16];
} fork_job_t;

/* Fork once; in the parent, wait for the child and record its status. */
static void fork_once(fork_job_t *job) {
  uint64_t rng = job->seed * 7919ULL + 11;
  for (int i = 0; i < 16; i++) {
    if (!blk_alloc(&job->inherited[i], &rng)) {
      job->status = -2;
      return;
    }
  }
  pid_t pid = fork();
  if (pid == 0) child_main(job->inherited, 16, job->seed, job->nest);
  if (pid < 0) {
    job->status = -1;
    return;
  }
  /* The parent keeps working while the child runs. */
  blk_t slots[16];
  memset(slots, 0, sizeof(slots));
  if (!churn(slots, 16, 500, &rng) || !release_all(slots, 16, &rng)) {
    job->status = -3;
  } else {
    int st = 0;
    job->status = waitpid(pid, &st, 0) == pid ? st : -1;
  }
  /* The parent's own copies are untouched by whatever the child did. */
  for (int i = 0; i < 16; i++)
    if (!blk_release(&job->inherited[i], &rng) && job->status == 0) job->status = -4;
}

static void *fork_thread(void *arg) {
  fork_once(arg);
  return NULL;
}

static void test_fork_while_allocating(void **state) {
  (void)state;
  worker_t w[NWORKERS];
  memset(w, 0, sizeof(w));
  STORE(stop_workers, 0);
  for (int i = 0; i < NWORKERS; i++) {
    w[i].rng = (uint64_t)(i + 1) * 0x2545F4914F6CDD1DULL;
    assert_int_equal(pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);
  }
  struct timespec ts = {0, 0};
  for (unsigned k = 0; k < NFORKS; k++) {
    alarm(60); /* a hang in the parent fails too (killed by SIGALRM) */
    /* Let the workers get going (and land somewhere random). */
    long before = LOAD(w[0].iters) + LOAD(w[1].iters) + LOAD(w[2].iters);
    while (LOAD(w[0].iters) + LOAD(w[1].iters) + LOAD(w[2].iters) < before + 200 && !LOAD(w[0].failed) &&
           !LOAD(w[1].failed) && !LOAD(w[2].failed))
      sched_yield();
    ts.tv_nsec = (long)(k % 7) * 300000;
    nanosleep(&ts, NULL);
    fork_job_t job;
    memset(&job, 0, sizeof(job));
    job.seed = k + 1;
    job.nest = k % 10 == 3;
    if (k % 5 == 4) {
      /* Fork from a short-lived thread rather than from main. */
      pthread_t t;
      assert_int_equal(pthread_create(&t, NULL, fork_thread, &job), 0);
      assert_int_equal(pthread_join(t, NULL), 0);
    } else {
      fork_once(&job);
    }
    if (job.status < 0) fail_msg("fork %u: parent-side failure %d", k, job.status);
    if (WIFSIGNALED(job.status))
      fail_msg("fork %u: child killed by signal %d%s", k, WTERMSIG(job.status),
               WTERMSIG(job.status) == SIGALRM ? " (deadlocked)" : "");
    if (!WIFEXITED(job.status) || WEXITSTATUS(job.status) != 0)
      fail_msg("fork %u: child exit status %d", k, WEXITSTATUS(job.status));
    for (int i = 0; i < NWORKERS; i++)
      if (LOAD(w[i].failed)) fail_msg("worker %d failed after fork %u", i, k);
  }
  /* The parent's threads are still going after the last fork. */
  long before[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) before[i] = LOAD(w[i].iters);
  for (int i = 0; i < NWORKERS; i++)
    while (LOAD(w[i].iters) < before[i] + 1000 && !LOAD(w[i].failed)) sched_yield();
  STORE(stop_workers, 1);
  for (int i = 0; i < NWORKERS; i++) assert_int_equal(pthread_join(w[i].tid, NULL), 0);
  for (int i = 0; i < NWORKERS; i++) assert_false(w[i].failed);
  alarm(0);
  /* And the main thread still allocates everything. */
  uint64_t rng = 99;
  blk_t slots[NSLOTS];
  memset(slots, 0, sizeof(slots));
  assert_true(churn(slots, NSLOTS, 5000, &rng));
  assert_true(release_all(slots, NSLOTS, &rng));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_while_allocating),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
