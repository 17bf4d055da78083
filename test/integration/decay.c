/*
 * decay, through the public API: memory freed goes back to the kernel over
 * time (mincore on the freed ranges, which xalloc keeps mapped), at once
 * with dirty_decay_ms:0,muzzy_decay_ms:0, never with -1, and from the
 * background thread in a process that makes no allocator call at all; and
 * the reuse window: with the default (long) decay times, freed memory the
 * program does not reuse goes within about the window, while a working set
 * it keeps reusing stays resident.
 * Each case re-executes this program with its options appended to
 * XALLOC_CONF (so it also runs under the test suite's configurations).
 */
#include "xtest.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "xalloc/xalloc.h"

#define NBLK 48
#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);   \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

static char *blk[NBLK];
static size_t blksz[NBLK];

static size_t resident_pages(void) {
  static unsigned char vec[1 << 14];
  size_t n = 0;
  for (int i = 0; i < NBLK; i++) {
    size_t np = blksz[i] / 4096;
    CHECK(mincore(blk[i], blksz[i], vec) == 0);
    for (size_t k = 0; k < np; k++) n += vec[k] & 1;
  }
  return n;
}

static size_t total_pages(void) {
  size_t n = 0;
  for (int i = 0; i < NBLK; i++) n += blksz[i] / 4096;
  return n;
}

/* Large and huge blocks (bigger than what the thread cache keeps). */
static void fill_and_free(void) {
  for (int i = 0; i < NBLK; i++) {
    blksz[i] = i % 8 == 7 ? (size_t)4 << 20 : (size_t)(64 + 32 * (i % 8)) << 10;
    blk[i] = malloc(blksz[i]);
    CHECK(blk[i] != NULL);
    memset(blk[i], 0x33, blksz[i]);
  }
  CHECK(resident_pages() == total_pages());
  for (int i = 0; i < NBLK; i++) free(blk[i]);
}

static long minor_faults(void) {
  struct rusage ru;
  CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
  return ru.ru_minflt;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Slow-path activity that does not reuse the freed blocks' pages much. */
static void tick(void) {
  for (int k = 0; k < 80; k++) free(malloc((size_t)40 << 10));
}

/* Activity between two looks at residency: slow-path allocations, small
 * allocations from the thread cache only, or none at all. */
enum { ACT_TICK, ACT_CACHE, ACT_NONE };
static void activity(int act) {
  if (act == ACT_TICK) {
    tick();
  } else if (act == ACT_CACHE) {
    void *q[64];
    for (int k = 0; k < 20; k++) {
      for (int i = 0; i < 64; i++) CHECK((q[i] = malloc(48)) != NULL);
      for (int i = 0; i < 64; i++) free(q[i]);
    }
  }
}

/* Wait (at most limit_ms, looking every step_ms, with act between) until
 * at most a tenth of the freed blocks' pages are resident; fails if not. */
static void expect_returned(const char *mode, size_t r0, size_t total, int act, int step_ms, int limit_ms) {
  size_t r = r0;
  int ms = 0;
  for (; ms < limit_ms && r > total / 10; ms += step_ms) {
    sleep_ms(step_ms);
    activity(act);
    r = resident_pages();
  }
  fprintf(stderr, "%s: %zu -> %zu of %zu pages resident after %d ms\n", mode, r0, r, total, ms);
  CHECK(r <= total / 10);
}

static void *fill_and_free_in_arena_1(void *arg) {
  (void)arg;
  unsigned one = 1;
  CHECK(mallctl("thread.arena", NULL, NULL, &one, sizeof(one)) == 0);
  fill_and_free();
  return NULL;
}

static int child(const char *mode) {
  if (strcmp(mode, "otherarena") == 0) {
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fill_and_free_in_arena_1, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
  } else {
    fill_and_free();
  }
  size_t total = total_pages(), r0 = resident_pages();
  if (strcmp(mode, "now") == 0) {
    fprintf(stderr, "now: %zu of %zu pages resident right after free\n", r0, total);
    CHECK(r0 <= total / 20);
  } else if (strcmp(mode, "never") == 0) {
    for (int k = 0; k < 20; k++) {
      sleep_ms(10);
      tick();
    }
    size_t r = resident_pages();
    fprintf(stderr, "never: %zu of %zu pages resident after 200 ms\n", r, total);
    CHECK(r >= total * 9 / 10);
  } else if (strcmp(mode, "decay") == 0) {
    /* Not a cliff: right after free most pages are still there. */
    CHECK(r0 >= total / 2);
    expect_returned(mode, r0, total, ACT_TICK, 10, 3000);
  } else if (strcmp(mode, "reuse") == 0) {
    /* Default decay times (10 s: at 3 s the curve would have purged a
     * fifth, lazily), reuse_window_ms:300. */
    CHECK(r0 >= total / 2);
    expect_returned(mode, r0, total, ACT_TICK, 10, 3000);
  } else if (strcmp(mode, "reused") == 0) {
    /* reuse_window_ms:1000: the same blocks asked for again every 10 ms
     * for 2.5 s. Kept as the working set, they are not purged: writing
     * them again faults (almost) nothing. Purged once a window, the whole
     * set would fault in again two or three times. Counted after the
     * first rounds (which may land on memory never touched: placement). */
    long faults0 = 0;
    for (int ms = 0; ms < 2500; ms += 10) {
      sleep_ms(10);
      if (ms == 100) faults0 = minor_faults();
      for (int i = 0; i < NBLK; i++) CHECK((blk[i] = malloc(blksz[i])) != NULL);
      for (int i = 0; i < NBLK; i++) {
        memset(blk[i], 0x44, blksz[i]);
        free(blk[i]);
      }
    }
    long faults = minor_faults() - faults0;
    fprintf(stderr, "reused: %ld page faults over 2.4 s of reusing a working set of %zu pages\n", faults, total);
    CHECK(faults < (long)total);
  } else if (strcmp(mode, "otherarena") == 0) {
    /* The blocks were freed into arena 1 by a thread that then went
     * quiet; only this thread (arena 2) keeps allocating, small objects
     * from its cache: its cache's GC steps check the other arenas too. */
    unsigned two = 2;
    CHECK(mallctl("thread.arena", NULL, NULL, &two, sizeof(two)) == 0);
    expect_returned(mode, r0, total, ACT_CACHE, 10, 4000);
  } else if (strcmp(mode, "background") == 0) {
    CHECK(r0 >= total / 2);
    expect_returned(mode, r0, total, ACT_NONE, 20, 3000); /* no allocator call at all */
  } else {
    return 2;
  }
  return 0;
}

static void run_mode(const char *mode, const char *conf) {
  char cmd[1024];
  const char *base = getenv("XALLOC_CONF");
  snprintf(cmd, sizeof(cmd), "XALLOC_CONF='%s%s%s' /proc/%d/exe %s 2>&1", base ? base : "", base ? "," : "", conf,
           (int)getpid(), mode);
  /* /proc/self/exe of the shell would be the shell: use our pid. */
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  char line[512];
  while (fgets(line, sizeof(line), f)) fputs(line, stderr);
  int st = pclose(f);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_now(void **s) {
  (void)s;
  run_mode("now", "dirty_decay_ms:0,muzzy_decay_ms:0");
}
static void test_never(void **s) {
  (void)s;
  run_mode("never", "dirty_decay_ms:-1,muzzy_decay_ms:-1");
}
static void test_decay(void **s) {
  (void)s;
  run_mode("decay", "dirty_decay_ms:40,muzzy_decay_ms:40");
}
static void test_reuse_window(void **s) {
  (void)s;
  run_mode("reuse", "dirty_decay_ms:10000,muzzy_decay_ms:10000,reuse_window_ms:300");
}
static void test_reused_kept(void **s) {
  (void)s;
  run_mode("reused", "dirty_decay_ms:10000,muzzy_decay_ms:10000,reuse_window_ms:1000");
}
static void test_other_arena(void **s) {
  (void)s;
  run_mode("otherarena", "dirty_decay_ms:10000,muzzy_decay_ms:10000,reuse_window_ms:300,narenas:4");
}
static void test_background(void **s) {
  (void)s;
  run_mode("background", "dirty_decay_ms:40,muzzy_decay_ms:40,background_thread:true");
}

int main(int argc, char **argv) {
  if (argc > 1) return child(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_now),
      cmocka_unit_test(test_never),
      cmocka_unit_test(test_decay),
      cmocka_unit_test(test_background),
      cmocka_unit_test(test_reuse_window),
      cmocka_unit_test(test_reused_kept),
      cmocka_unit_test(test_other_arena),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
