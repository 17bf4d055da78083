/*
 * Exit never waits for the background thread (issue 9, item 10). A child
 * process (this program run again with "child") has background_thread:true
 * and an explicit arena whose purge hooks block for a long time (30 s)
 * when the background thread calls them. The child frees pages of that
 * arena, waits until the background thread is stuck in the hook, and
 * returns from main. exit, and with it the library destructor, must not
 * wait for the thread: the parent requires the child to be gone within
 * EXIT_BOUND_MS of its last line, and with status 0. The child's own
 * purges (from the main thread) go through the hooks without blocking.
 */
#include "xtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <time.h>

#include "xalloc/xalloc.h"

/* With XALLOC_CONF as well (test/run.sh sets tcache:false). */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:20,muzzy_decay_ms:20";

#define HOOK_BLOCK_S 30
#define EXIT_BOUND_MS 5000
#define STUCK_WAIT_MS 20000

static extent_hooks_t *def;
static extent_hooks_t hooks;
static pthread_t main_thread;
static int stuck; /* the background thread is in a hook */

static bool block_if_background(void) {
  if (pthread_equal(pthread_self(), main_thread)) return false;
  __atomic_store_n(&stuck, 1, __ATOMIC_RELEASE);
  struct timespec ts = {HOOK_BLOCK_S, 0};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return true;
}

static bool purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind) {
  (void)h;
  if (block_if_background()) return true; /* not purged */
  return def->purge_lazy(def, addr, size, off, len, ind);
}

static bool purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind) {
  (void)h;
  if (block_if_background()) return true;
  return def->purge_forced(def, addr, size, off, len, ind);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int child(void) {
  main_thread = pthread_self();
  size_t sz = sizeof(def);
  if (mallctl("arena.0.extent_hooks", &def, &sz, NULL, 0) != 0) return 10;
  hooks = *def;
  hooks.purge_lazy = purge_lazy;
  hooks.purge_forced = purge_forced;
  extent_hooks_t *hp = &hooks;
  unsigned ind;
  sz = sizeof(ind);
  if (mallctl("arenas.create", &ind, &sz, &hp, sizeof(hp)) != 0) return 11;
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  /* Dirty pages in the arena, again and again, until the background
   * thread (started by these slow-path calls) comes to purge them. */
  uint64_t start = now_ms();
  while (!__atomic_load_n(&stuck, __ATOMIC_ACQUIRE)) {
    if (now_ms() - start > STUCK_WAIT_MS) {
      printf("the background thread never called the purge hook\n");
      return 12;
    }
    void *p[32];
    for (int i = 0; i < 32; i++) {
      p[i] = mallocx(64 << 10, fl);
      if (p[i] == NULL) return 13;
      memset(p[i], 1, 64 << 10);
    }
    for (int i = 0; i < 32; i++) dallocx(p[i], fl);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  printf("exiting\n");
  fflush(stdout);
  return 0;
}

static void test_exit_does_not_wait(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 1);
    execl("/proc/self/exe", "bg_exit", "child", (char *)NULL);
    _exit(127);
  }
  assert_true(pid > 0);
  close(fds[1]);
  /* Read the child's output until it closes stdout (at exit) or says it
   * is about to exit; time from that line. */
  char out[512];
  size_t n = 0;
  uint64_t t_exiting = 0;
  ssize_t r;
  while (n < sizeof(out) - 1 && (r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0) {
    n += (size_t)r;
    out[n] = '\0';
    if (strstr(out, "exiting\n") != NULL) {
      t_exiting = now_ms();
      break;
    }
  }
  out[n] = '\0';
  close(fds[0]);
  int status = 0;
  bool exited = false;
  uint64_t waited = 0;
  uint64_t t0 = t_exiting != 0 ? t_exiting : now_ms();
  while ((waited = now_ms() - t0) < EXIT_BOUND_MS) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
      break;
    }
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  fprintf(stderr, "child output: %s", out);
  fprintf(stderr, "child %s %llu ms after its last line\n", exited ? "exited" : "still running (killed)",
          (unsigned long long)waited);
  if (t_exiting == 0) fail_msg("the child did not get the background thread stuck (status %#x)", status);
  if (!exited) fail_msg("exit waited for the background thread: still running after %d ms", EXIT_BOUND_MS);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_does_not_wait),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
