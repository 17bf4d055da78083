/* The heap profiler under threads (prof.h): 8 threads allocate and free,
 * most samples freed by another thread than their allocator, while the
 * main thread dumps and resets; then nothing may be left (no sample
 * record leaks). Also fork with profiling on, the mallctl names and their
 * bad input. Linked with -lxalloc; prof:true comes from malloc_conf. */
#include "xtest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "xalloc/xalloc.h"

const char *malloc_conf = "prof:true,lg_prof_sample:12";

enum { NTHREADS = 8, RING = 4096, ROUNDS = 60000 };

/* Objects handed from thread i to thread (i + 1) % NTHREADS. */
static void *ring[NTHREADS][RING];
static pthread_mutex_t ring_lock[NTHREADS];
static bool stop_dumping; /* atomic */

static void *worker(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg, next = (me + 1) % NTHREADS;
  char name[32];
  snprintf(name, sizeof(name), "worker-%u", me);
  const char *n = name;
  assert_int_equal(mallctl("thread.prof.name", NULL, NULL, &n, sizeof(n)), 0);
  uint64_t x = 88172645463325252ULL ^ me;
  for (int r = 0; r < ROUNDS; r++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t size = 16 + (size_t)(x % 2000);
    if (x % 64 == 0) size = 20000 + (size_t)(x % 100000); /* some large ones */
    void *p = malloc(size);
    assert_non_null(p);
    memset(p, (int)me, size < 64 ? size : 64);
    /* Hand it over; free what the ring held (allocated by the previous
     * thread, usually). */
    unsigned slot = (unsigned)(x >> 20) % RING;
    pthread_mutex_lock(&ring_lock[next]);
    void *old = ring[next][slot];
    ring[next][slot] = p;
    pthread_mutex_unlock(&ring_lock[next]);
    free(old);
    if (r % 1000 == 0) {
      void *q = realloc(malloc(30000), 90000); /* large resizes */
      free(q);
    }
  }
  return NULL;
}

/* The header line of a dump, and its total live samples ("t*: N: B"). */
static bool read_dump(const char *path, unsigned long long *objs, unsigned long long *bytes, char *all,
                      size_t allsize) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return false;
  size_t n = fread(all, 1, allsize - 1, f);
  all[n] = '\0';
  fclose(f);
  unsigned long long rate;
  return sscanf(all, "heap_v2/%llu\n  t*: %llu: %llu", &rate, objs, bytes) == 3 && rate == 4096;
}

static char dumpbuf[1 << 22];

static void *dumper(void *arg) {
  const char *dir = arg;
  int i = 0;
  while (!__atomic_load_n(&stop_dumping, __ATOMIC_ACQUIRE)) {
    char path[256];
    snprintf(path, sizeof(path), "%s/t%d.heap", dir, i % 4);
    const char *p = path;
    assert_int_equal(mallctl("prof.dump", NULL, NULL, &p, sizeof(p)), 0);
    unsigned long long o, b;
    assert_true(read_dump(path, &o, &b, dumpbuf, sizeof(dumpbuf)));
    if (i % 5 == 4) assert_int_equal(mallctl("prof.reset", NULL, NULL, NULL, 0), 0);
    i++;
    usleep(2000);
  }
  return NULL;
}

static void test_threads_dump_reset(void **state) {
  (void)state;
  char dir[] = "/tmp/xalloc-prof-XXXXXX";
  assert_non_null(mkdtemp(dir));
  for (int i = 0; i < NTHREADS; i++) pthread_mutex_init(&ring_lock[i], NULL);
  pthread_t th[NTHREADS], d;
  __atomic_store_n(&stop_dumping, false, __ATOMIC_RELEASE);
  assert_int_equal(pthread_create(&d, NULL, dumper, dir), 0);
  for (unsigned i = 0; i < NTHREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i), 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  /* A dump while the rings hold objects names the threads. */
  char path[300];
  snprintf(path, sizeof(path), "%s/live.heap", dir);
  const char *p = path;
  __atomic_store_n(&stop_dumping, true, __ATOMIC_RELEASE);
  pthread_join(d, NULL);
  /* (The dumper's last reset may have forgotten the rings' samples.) */
  void *mine[1000];
  for (int i = 0; i < 1000; i++) mine[i] = malloc(5000);
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &p, sizeof(p)), 0);
  unsigned long long objs, bytes;
  assert_true(read_dump(path, &objs, &bytes, dumpbuf, sizeof(dumpbuf)));
  assert_true(objs > 0);
  assert_non_null(strstr(dumpbuf, " worker-3\n"));
  assert_non_null(strstr(dumpbuf, "\nMAPPED_LIBRARIES:\n"));
  for (int i = 0; i < 1000; i++) free(mine[i]);
  /* Free everything: no sample may be left. */
  for (int i = 0; i < NTHREADS; i++)
    for (int j = 0; j < RING; j++) {
      free(ring[i][j]);
      ring[i][j] = NULL;
    }
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &p, sizeof(p)), 0);
  assert_true(read_dump(path, &objs, &bytes, dumpbuf, sizeof(dumpbuf)));
  if (objs != 0) fail_msg("%llu samples (%llu bytes) left after every object was freed", objs, bytes);
  assert_null(strstr(dumpbuf, "\n@ "));
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* fork while other threads allocate (and sample): the child's profiler
 * works (its locks were not left held) and dumps its own heap. */
static bool stop_churn; /* atomic */
static void *churn(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop_churn, __ATOMIC_ACQUIRE)) {
    void *v[64];
    for (int i = 0; i < 64; i++) v[i] = malloc(100 + (size_t)i * 97);
    for (int i = 0; i < 64; i++) free(v[i]);
  }
  return NULL;
}

static void test_fork(void **state) {
  (void)state;
  pthread_t th[2];
  __atomic_store_n(&stop_churn, false, __ATOMIC_RELEASE);
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, churn, NULL), 0);
  char path[] = "/tmp/xalloc-prof-fork-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  for (int k = 0; k < 20; k++) {
    alarm(30);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      void *keep[2000];
      for (int i = 0; i < 2000; i++) keep[i] = malloc(4000);
      const char *p = path;
      int err = mallctl("prof.dump", NULL, NULL, &p, sizeof(p));
      unsigned long long o, b;
      static char buf[1 << 20];
      bool ok = err == 0 && read_dump(path, &o, &b, buf, sizeof(buf)) && o > 0;
      for (int i = 0; i < 2000; i++) free(keep[i]);
      _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    alarm(0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  __atomic_store_n(&stop_churn, true, __ATOMIC_RELEASE);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  unlink(path);
}

/* The mallctl names: values, and bad input refused with the program going
 * on. */
static void test_mallctl(void **state) {
  (void)state;
  bool b;
  size_t sz = sizeof(b);
  assert_int_equal(mallctl("opt.prof", &b, &sz, NULL, 0), 0);
  assert_true(b);
  size_t lg;
  sz = sizeof(lg);
  assert_int_equal(mallctl("opt.lg_prof_sample", &lg, &sz, NULL, 0), 0);
  assert_int_equal(lg, 12);
  assert_int_equal(mallctl("prof.lg_sample", &lg, &sz, NULL, 0), 0);
  assert_int_equal(lg, 12);
  uint64_t iv;
  sz = sizeof(iv);
  assert_int_equal(mallctl("prof.interval", &iv, &sz, NULL, 0), 0);
  assert_int_equal(iv, 0);
  const char *s;
  sz = sizeof(s);
  assert_int_equal(mallctl("opt.prof_prefix", &s, &sz, NULL, 0), 0);
  assert_string_equal(s, "jeprof");
  /* prof.active off: no new samples. */
  bool off = false, on = true;
  assert_int_equal(mallctl("prof.active", &b, &(size_t){sizeof(b)}, &off, sizeof(off)), 0);
  assert_true(b);
  assert_int_equal(mallctl("prof.reset", NULL, NULL, NULL, 0), 0);
  void *v[1000];
  for (int i = 0; i < 1000; i++) v[i] = malloc(5000);
  char path[] = "/tmp/xalloc-prof-ctl-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  const char *p = path;
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &p, sizeof(p)), 0);
  unsigned long long o, bb;
  assert_true(read_dump(path, &o, &bb, dumpbuf, sizeof(dumpbuf)));
  assert_int_equal(o, 0);
  assert_int_equal(mallctl("prof.active", NULL, NULL, &on, sizeof(on)), 0);
  for (int i = 0; i < 1000; i++) free(v[i]);
  for (int i = 0; i < 1000; i++) v[i] = malloc(5000);
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &p, sizeof(p)), 0);
  assert_true(read_dump(path, &o, &bb, dumpbuf, sizeof(dumpbuf)));
  assert_true(o > 100); /* 1000 x 5120 B at 1 in 4 KiB: ~715 */
  /* thread.prof.active off for this thread only. */
  assert_int_equal(mallctl("thread.prof.active", NULL, NULL, &off, sizeof(off)), 0);
  assert_int_equal(mallctl("prof.reset", NULL, NULL, NULL, 0), 0);
  for (int i = 0; i < 1000; i++) free(v[i]);
  for (int i = 0; i < 1000; i++) v[i] = malloc(5000);
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &p, sizeof(p)), 0);
  assert_true(read_dump(path, &o, &bb, dumpbuf, sizeof(dumpbuf)));
  assert_int_equal(o, 0);
  assert_int_equal(mallctl("thread.prof.active", NULL, NULL, &on, sizeof(on)), 0);
  for (int i = 0; i < 1000; i++) free(v[i]);
  /* Bad input. */
  const char *bad = "/nonexistent-dir/x.heap";
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &bad, sizeof(bad)), EFAULT);
  assert_int_equal(mallctl("prof.dump", NULL, NULL, &bad, 3), EINVAL);
  size_t big = 63;
  assert_int_equal(mallctl("prof.reset", NULL, NULL, &big, sizeof(big)), EINVAL);
  assert_int_equal(mallctl("prof.lg_sample", &lg, &(size_t){sizeof(lg)}, NULL, 0), 0);
  assert_int_equal(lg, 12);
  char longname[100];
  memset(longname, 'n', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  const char *ln = longname;
  assert_int_equal(mallctl("thread.prof.name", NULL, NULL, &ln, sizeof(ln)), EINVAL);
  const char *ctrl = "two\nlines";
  assert_int_equal(mallctl("thread.prof.name", NULL, NULL, &ctrl, sizeof(ctrl)), EFAULT);
  const char *good = "main thread";
  assert_int_equal(mallctl("thread.prof.name", NULL, NULL, &good, sizeof(good)), 0);
  assert_int_equal(mallctl("thread.prof.name", &s, &(size_t){sizeof(s)}, NULL, 0), 0);
  assert_string_equal(s, "main thread");
  /* Still working. */
  void *q = malloc(100);
  assert_non_null(q);
  free(q);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mallctl),
      cmocka_unit_test(test_threads_dump_reset),
      cmocka_unit_test(test_fork),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
