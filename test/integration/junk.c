/* junk:true fills new memory with 0xa5 and freed memory with 0x5a (the
 * first word of a freed block keeps its free tag), for small, large and
 * huge blocks, through malloc, realloc and aligned allocation; calloc still
 * zeroes; bad frees are still caught. The test re-executes itself with
 * junk:true appended to XALLOC_CONF (keeping the tcache setting given). */
#include "xtest.h"

#include <malloc.h>

static int all_are(const unsigned char *p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return 0;
  return 1;
}

static void test_junk_fills(void **state) {
  (void)state;
  static const size_t sizes[] = {8, 24, 100, 224, 3000, 14336, 20000, 100000, 3u << 20};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    unsigned char *p = malloc(n);
    assert_non_null(p);
    assert_true(all_are(p, malloc_usable_size(p), 0xa5));
    memset(p, 1, n);
    free(p);
    /* Reading freed memory on purpose: it stays mapped in xalloc. */
    assert_true(all_are(p + sizeof(void *), n - sizeof(void *), 0x5a));
    unsigned char *z = calloc(1, n);
    assert_true(all_are(z, n, 0));
    free(z);
  }
  unsigned char *a = aligned_alloc(4096, 50000);
  assert_true(all_are(a, 50000, 0xa5));
  free(a);
  /* realloc: the old contents move, the rest is new junk. */
  unsigned char *r = malloc(100);
  memset(r, 7, 100);
  r = realloc(r, 70000);
  assert_true(all_are(r, 100, 7));
  assert_true(all_are(r + 100, 70000 - 100, 0xa5));
  free(r);
}

static void double_free(void *arg) {
  (void)arg;
  char *p = malloc(224), *keep = malloc(224);
  free(p);
  free(p);
  free(keep);
}

static void test_junk_still_checks(void **state) {
  (void)state;
  char err[1024];
  int st = xtest_run_child(double_free, NULL, err, sizeof(err));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  assert_non_null(strstr(err, "xalloc: double free of 0x"));
  assert_non_null(strstr(err, "(size class 224, arena 0)"));
}

int main(int argc, char **argv) {
  (void)argc;
  if (getenv("XALLOC_JUNK_TEST") == NULL) {
    const char *c = getenv("XALLOC_CONF");
    char conf[512];
    snprintf(conf, sizeof(conf), "%s%sjunk:true", c ? c : "", c && *c ? "," : "");
    setenv("XALLOC_CONF", conf, 1);
    setenv("XALLOC_JUNK_TEST", "1", 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_junk_fills),
      cmocka_unit_test(test_junk_still_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
