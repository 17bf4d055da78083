/*
 * Helpers for code that runs in a forked child or in a thread (where
 * cmocka's asserts do not work): EXPECT exits with status 5 naming the
 * line; the report lines of the child (abort:false) collected through
 * report_hook; and a check that a pointer is never handed out again.
 * Include after xtest.h, "xalloc/internal/report.h" and <xalloc/xalloc.h>.
 */
#ifndef XALLOC_TEST_XCHILD_H
#define XALLOC_TEST_XCHILD_H

#define EXPECT(c)                                                      \
  do {                                                                 \
    if (!(c)) {                                                        \
      fprintf(stderr, "EXPECT failed at line %d: %s\n", __LINE__, #c); \
      fflush(stderr);                                                  \
      _exit(5);                                                        \
    }                                                                  \
  } while (0)

/* stats.arenas.<ind>.<what> (a size_t), after an epoch refresh. */
static __attribute__((unused)) size_t arena_stat(unsigned ind, const char *what) {
  uint64_t epoch = 1;
  EXPECT(mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)) == 0);
  char name[96];
  snprintf(name, sizeof(name), "stats.arenas.%u.%s", ind, what);
  size_t v;
  size_t sz = sizeof(v);
  EXPECT(mallctl(name, &v, &sz, NULL, 0) == 0);
  return v;
}

/* Every report line, also written to stderr: set report_hook =
 * collect_report in the child. */
static char reports[8192];
static size_t reports_len;
static __attribute__((unused)) void collect_report(const char *line) {
  size_t n = strlen(line);
  if (reports_len + n < sizeof(reports)) {
    memcpy(reports + reports_len, line, n + 1);
    reports_len += n;
  }
  ssize_t w = write(2, line, n);
  (void)w;
}

static int xchild_cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* malloc(size) enough times to take every free region of its class out of
 * the runs of the thread's arena (refills, or one by one with the cache
 * off): none of them is ptr, all are distinct; then free them all. */
static __attribute__((unused)) void expect_never_handed_out(const void *ptr, size_t size) {
  enum { N = 4096 };
  static void *q[N], *sorted[N];
  for (int i = 0; i < N; i++) {
    q[i] = malloc(size);
    EXPECT(q[i] != NULL);
    EXPECT(q[i] != ptr);
    memset(q[i], 0x33, size);
  }
  memcpy(sorted, q, sizeof(q));
  qsort(sorted, N, sizeof(void *), xchild_cmp_ptr);
  for (int i = 1; i < N; i++) EXPECT(sorted[i - 1] != sorted[i]);
  for (int i = 0; i < N; i++) free(q[i]);
}
#endif
