/*
 * fork() while remote frees are in flight (doc/DESIGN.md, Remote frees): a
 * producer thread on one explicit arena allocates, a consumer thread on
 * another frees, so the consumer's flushes keep pushing onto the
 * producer arena's remote stacks, with no lock, while the main thread
 * forks. Each child finds the stacks consistent: the heap check passes on
 * every arena (it takes the stacks pushed before the fork), the producer
 * arena still serves allocations that are all distinct, a purge takes
 * what is left, the check passes again, and it exits 0. A batch the
 * consumer was linking at the fork is lost with that thread in the child
 * and stays allocated: the check passes all the same. The parent's threads
 * go on after every fork; at the end everything the consumer freed came
 * back and the heap check passes. Public API only.
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#include "xalloc/xalloc.h"

#define NFORKS 100
#define QCAP 1024
#define CHILD_ALARM 20 /* seconds: a deadlock becomes a failure */

static unsigned arena_prod, arena_cons;
static bool stop;

static pthread_mutex_t qmtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static void *queue[QCAP];
static unsigned qhead, qn;
static uint64_t nconsumed;

static unsigned new_arena(void) {
  unsigned ind;
  size_t sz = sizeof(ind);
  assert_int_equal(mallctl("arenas.create", &ind, &sz, NULL, 0), 0);
  return ind;
}

static int bind_arena(unsigned ind) { return mallctl("thread.arena", NULL, NULL, &ind, sizeof(ind)); }

static bool check_all(void) {
  bool ok = false;
  size_t len = sizeof(ok);
  char name[64];
  snprintf(name, sizeof(name), "arena.%d.check", MALLCTL_ARENAS_ALL);
  return mallctl(name, &ok, &len, NULL, 0) == 0 && ok;
}

static size_t size_of(uint64_t r) { return 16 + (size_t)(r % 600); }

static void *producer(void *arg) {
  (void)arg;
  if (bind_arena(arena_prod) != 0) abort();
  uint64_t rng = 7;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    size_t size = size_of(xtest_rand(&rng));
    unsigned char *p = malloc(size);
    if (p == NULL) abort();
    memset(p, (int)(size & 0xff), size);
    pthread_mutex_lock(&qmtx);
    while (qn == QCAP && !__atomic_load_n(&stop, __ATOMIC_RELAXED)) pthread_cond_wait(&qcond, &qmtx);
    if (qn == QCAP) {
      pthread_mutex_unlock(&qmtx);
      free(p);
      break;
    }
    queue[(qhead + qn++) % QCAP] = p;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qmtx);
  }
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  if (bind_arena(arena_cons) != 0) abort();
  for (;;) {
    void *batch[64];
    unsigned k = 0;
    pthread_mutex_lock(&qmtx);
    while (qn == 0 && !__atomic_load_n(&stop, __ATOMIC_RELAXED)) pthread_cond_wait(&qcond, &qmtx);
    while (qn > 0 && k < 64) {
      batch[k++] = queue[qhead];
      qhead = (qhead + 1) % QCAP;
      qn--;
    }
    bool done = k == 0;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qmtx);
    if (done) break;
    for (unsigned i = 0; i < k; i++) {
      unsigned char *p = batch[i];
      if (malloc_usable_size(p) < 16) abort();
      free(p);
    }
    __atomic_fetch_add(&nconsumed, k, __ATOMIC_RELAXED);
  }
  return NULL;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* In the child: only this thread is left. */
static int child(void) {
  alarm(CHILD_ALARM);
  if (!check_all()) return 10;
  enum { N = 3000 };
  static void *p[N];
  uint64_t rng = 11;
  for (int i = 0; i < N; i++) {
    size_t size = size_of(xtest_rand(&rng));
    p[i] = mallocx(size, MALLOCX_ARENA(arena_prod));
    if (p[i] == NULL) return 11;
    memset(p[i], 0x6b, size);
  }
  qsort(p, N, sizeof(void *), cmp_ptr);
  for (int i = 1; i < N; i++)
    if (p[i - 1] == p[i]) return 12;
  for (int i = 0; i < N; i++) free(p[i]);
  if (mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) != 0) return 13;
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.purge", arena_prod);
  if (mallctl(name, NULL, NULL, NULL, 0) != 0) return 14;
  if (!check_all()) return 15;
  return 0;
}

static void test_fork_during_remote_frees(void **state) {
  (void)state;
  arena_prod = new_arena();
  arena_cons = new_arena();
  pthread_t tp, tc;
  assert_int_equal(pthread_create(&tc, NULL, consumer, NULL), 0);
  assert_int_equal(pthread_create(&tp, NULL, producer, NULL), 0);
  for (int f = 0; f < NFORKS; f++) {
    /* Let the pair run a little between forks. */
    uint64_t before = __atomic_load_n(&nconsumed, __ATOMIC_RELAXED);
    while (__atomic_load_n(&nconsumed, __ATOMIC_RELAXED) < before + 5000) sched_yield();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child());
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("fork %d: child failed (status %x)", f, st);
  }
  __atomic_store_n(&stop, true, __ATOMIC_RELAXED);
  pthread_mutex_lock(&qmtx);
  pthread_cond_broadcast(&qcond);
  pthread_mutex_unlock(&qmtx);
  assert_int_equal(pthread_join(tp, NULL), 0);
  assert_int_equal(pthread_join(tc, NULL), 0);
  /* What the producer left in the queue. */
  while (qn > 0) {
    free(queue[qhead]);
    qhead = (qhead + 1) % QCAP;
    qn--;
  }
  assert_int_equal(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0), 0);
  /* The exited threads' caches, parked for new threads (tcache_park). */
  malloc_trim(0);
  assert_true(check_all());
  /* Everything came back: nothing small allocated in the producer arena. */
  uint64_t epoch = 1;
  assert_int_equal(mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)), 0);
  char name[96];
  snprintf(name, sizeof(name), "stats.arenas.%u.small.allocated", arena_prod);
  size_t allocated = 1, sz = sizeof(allocated);
  assert_int_equal(mallctl(name, &allocated, &sz, NULL, 0), 0);
  assert_int_equal(allocated, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_during_remote_frees),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
