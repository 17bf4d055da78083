/*
 * stats_interval_ms while threads allocate and the process forks (run
 * under ThreadSanitizer by make check-tsan): the logging thread reads
 * every figure every millisecond (stats_totals, /proc) while 4 threads
 * allocate and free small, large and huge blocks, and the main thread
 * forks children that allocate and exit. No race, no deadlock, every
 * child exits normally with no logging thread of its own, and the
 * logging thread runs alongside the workers.
 */
#include "xtest.h"

#include <dirent.h>
#include <pthread.h>
#include <time.h>

#include "xalloc/xalloc.h"

/* With XALLOC_CONF as well (test/run.sh sets tcache:false). */
const char *malloc_conf = "stats_interval_ms:1,stats_log:/dev/null";

#if defined(__SANITIZE_THREAD__)
#define XT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XT_TSAN 1
#endif
#endif
#ifndef XT_TSAN
#define XT_TSAN 0
#endif

#define NWORKERS 4
#define RUN_MS 1500
#define NFORKS 20

static int stop_flag;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int nthreads(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  struct dirent *e;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void *worker(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  void *slot[64] = {0};
  size_t n = 0;
  while (!__atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE)) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    unsigned i = (unsigned)(s % 64);
    free(slot[i]);
    size_t k = (s >> 8) % 100;
    size_t len = k < 80 ? 16 + (s >> 16) % 2000 : k < 98 ? 16384 + (s >> 16) % 200000 : (3u << 20);
    slot[i] = malloc(len);
    if (slot[i] != NULL) memset(slot[i], (int)i, len < 4096 ? len : 4096);
    n++;
  }
  for (unsigned i = 0; i < 64; i++) free(slot[i]);
  return (void *)n;
}

static void test_statlog_threads_fork(void **state) {
  (void)state;
  void *p = malloc(100); /* initialization: the logging thread starts */
  assert_non_null(p);
  free(p);
  int before = nthreads();
  pthread_t t[NWORKERS];
  for (uintptr_t i = 0; i < NWORKERS; i++) assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
  /* main, the workers, and the logging thread */
  assert_true(nthreads() >= NWORKERS + 2);
  assert_true(before >= 2);
  uint64_t start = now_ms();
  int forks = 0;
  while (now_ms() - start < RUN_MS) {
    if (forks < NFORKS) {
      pid_t pid = fork();
      assert_true(pid >= 0);
      if (pid == 0) {
        void *q = malloc(50000);
        free(q);
        q = malloc(3u << 20);
        free(q);
        /* No logging thread in the child: just this one (ThreadSanitizer
         * may have a thread of its own). */
        _exit(q == NULL ? 3 : (nthreads() == 1 || XT_TSAN) ? 0 : 4);
      }
      int st;
      assert_int_equal(waitpid(pid, &st, 0), pid);
      assert_true(WIFEXITED(st));
      assert_int_equal(WEXITSTATUS(st), 0);
      forks++;
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  __atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < NWORKERS; i++) {
    void *n;
    assert_int_equal(pthread_join(t[i], &n), 0);
    assert_true((uintptr_t)n > 0);
  }
  assert_int_equal(forks, NFORKS);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_statlog_threads_fork)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
