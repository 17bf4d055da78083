/*
 * fork() when the program registered pthread_atfork handlers that allocate
 * before xalloc's first allocation (issue 9, A). The handlers are
 * registered from a constructor, before anything else allocates, and
 * malloc and free small, large (beyond tcache_max: the arena's lock) and
 * huge (the huge lock) blocks in prepare, parent and child. Then main forks
 * repeatedly while other threads allocate; each child allocates, starts a
 * thread that allocates, and exits 0. prepare handlers run in reverse
 * registration order and parent/child handlers in registration order, so
 * if xalloc's handlers were registered after these, prepare would allocate
 * with every xalloc lock held and child/parent before they are released:
 * a deadlock. Watchdogs (alarm in the parent and in each child, a bounded
 * wait for each child) turn a deadlock into a failure.
 *
 * Plain C with libc and pthreads only: test/integration/atfork_preload.sh
 * compiles this same file without -lxalloc and runs it under LD_PRELOAD.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NFORKS 20
#define NWORKERS 3
#define PARENT_ALARM 30 /* seconds, for the whole program */
#define CHILD_ALARM 10
#define CHILD_WAIT_MS 15000

static int handler_errors;
static int nprepare, nparent;
static volatile int nchild; /* in the child: child handler ran */

/* Allocate, touch and free a few sizes: small (thread cache), large past
 * tcache_max (arena lock) and huge (huge lock). */
static int exercise(unsigned char pat) {
  static const size_t sizes[] = {24, 100, 3000, 40000, 300000, (size_t)3 << 20};
  void *p[sizeof(sizes) / sizeof(sizes[0])];
  int bad = 0;
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    p[i] = malloc(sizes[i]);
    if (p[i] == NULL) {
      bad++;
      continue;
    }
    memset(p[i], pat, sizes[i] < 64 ? sizes[i] : 64);
    ((unsigned char *)p[i])[sizes[i] - 1] = pat;
  }
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    if (p[i] == NULL) continue;
    if (((unsigned char *)p[i])[0] != pat || ((unsigned char *)p[i])[sizes[i] - 1] != pat) bad++;
    free(p[i]);
  }
  void *c = calloc(10, 1000);
  if (c == NULL) bad++;
  c = realloc(c, 100000);
  if (c == NULL) bad++;
  free(c);
  return bad;
}

static void on_prepare(void) {
  handler_errors += exercise(0x11);
  nprepare++;
}
static void on_parent(void) {
  handler_errors += exercise(0x22);
  nparent++;
}
static void on_child(void) {
  handler_errors += exercise(0x33);
  nchild = 1;
}

/* Before anything allocates: the earliest constructor priority. */
__attribute__((constructor(101))) static void register_early(void) {
  if (pthread_atfork(on_prepare, on_parent, on_child) != 0) handler_errors++;
}

static volatile int stop;

static void *worker(void *arg) {
  uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  void *keep[32] = {0};
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    unsigned k = (unsigned)(s % 32);
    free(keep[k]);
    size_t size = (s >> 8) % 8 == 0 ? 40000 + (size_t)(s >> 16) % 100000 : (size_t)(s >> 16) % 2000;
    keep[k] = malloc(size);
    if (keep[k] != NULL && size > 0) ((unsigned char *)keep[k])[0] = 1;
  }
  for (unsigned k = 0; k < 32; k++) free(keep[k]);
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  return (void *)(intptr_t)exercise(0x44);
}

static void child_main(void) {
  alarm(CHILD_ALARM); /* alarms are not inherited */
  if (!nchild) _exit(3);
  if (handler_errors != 0) _exit(4);
  if (exercise(0x55) != 0) _exit(5);
  pthread_t t;
  void *r;
  if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &r) != 0 || r != NULL) _exit(6);
  exit(0); /* through the library destructors */
}

/* Wait for pid at most CHILD_WAIT_MS; -1 (child killed) on timeout. */
static int wait_bounded(pid_t pid, int *status) {
  for (int ms = 0; ms < CHILD_WAIT_MS; ms += 5) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return 0;
    if (r < 0 && errno != EINTR) return -1;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, status, 0);
  return -1;
}

/* argv[1]: the usable size malloc(100) must have (default 112, xalloc's
 * class; glibc's is 104); 0: any allocator. */
int main(int argc, char **argv) {
  alarm(PARENT_ALARM);
  int failures = 0;
  size_t want = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 112;
  void *probe = malloc(100);
  size_t usable = malloc_usable_size(probe);
  free(probe);
  printf("malloc(100) usable size %zu\n", usable);
  if (want != 0 && usable != want) {
    printf("FAIL: expected usable size %zu: is xalloc in use?\n", want);
    failures++;
  }

  pthread_t tid[NWORKERS];
  for (uintptr_t i = 0; i < NWORKERS; i++)
    if (pthread_create(&tid[i], NULL, worker, (void *)(i + 1)) != 0) {
      printf("FAIL: pthread_create\n");
      return 1;
    }
  for (int f = 0; f < NFORKS; f++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      printf("FAIL: fork: %s\n", strerror(errno));
      failures++;
      break;
    }
    if (pid == 0) child_main();
    int status = 0;
    if (wait_bounded(pid, &status) != 0) {
      printf("FAIL: fork %d: the child did not exit within %d ms (deadlock?)\n", f, CHILD_WAIT_MS);
      failures++;
      break;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("FAIL: fork %d: child status %#x (exit %d, signal %d)\n", f, status,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
      failures++;
    }
    if (exercise(0x66) != 0) {
      printf("FAIL: fork %d: the parent cannot allocate after fork\n", f);
      failures++;
    }
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < NWORKERS; i++) pthread_join(tid[i], NULL);
  if (nprepare != NFORKS || nparent != NFORKS) {
    printf("FAIL: prepare ran %d times, parent %d, expected %d\n", nprepare, nparent, NFORKS);
    failures++;
  }
  if (handler_errors != 0) {
    printf("FAIL: %d allocation(s) in the atfork handlers failed\n", handler_errors);
    failures++;
  }
  printf("%s: %d forks, %d failure(s)\n", failures ? "FAIL" : "ok", NFORKS, failures);
  return failures != 0;
}
