/*
 * Guarded sampling (guard_sample; doc/SAFETY.md). This program runs with
 * guard_sample:1 (every allocation of at most guard_max bytes is guarded).
 *
 * The fault tests run the program again as a child (exec of
 * /proc/self/exe with "--child MODE"), each time a fresh process, and
 * check the report on its stderr: kind, access, address, offset, size,
 * and the allocating and freeing functions (guard_test_alloc_site,
 * guard_test_free_site: exported, the program is linked with -rdynamic,
 * so that dladdr names them). The rest runs in-process.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include "xalloc/xalloc.h"

const char *malloc_conf = "guard_sample:1";

#define PAGE_SZ ((uintptr_t)4096)

/* ---- the allocating and freeing functions the reports must name ---- */

__attribute__((noinline, visibility("default"))) char *guard_test_alloc_site(size_t n) {
  char *p = malloc(n);
  __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: this frame stays */
  return p;
}

__attribute__((noinline, visibility("default"))) void guard_test_free_site(void *p) {
  free(p);
  __asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- helpers ---- */

static size_t guard_stat(const char *name) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  mallctl("epoch", &e, &sz, &e, sz);
  char full[64];
  snprintf(full, sizeof(full), "stats.guard.%s", name);
  size_t v = 0;
  sz = sizeof(v);
  if (strcmp(name, "nmalloc") == 0 || strcmp(name, "ndalloc") == 0 || strcmp(name, "exhausted") == 0 ||
      strcmp(name, "faults") == 0) {
    uint64_t u = 0;
    sz = sizeof(u);
    assert_int_equal(mallctl(full, &u, &sz, NULL, 0), 0);
    return (size_t)u;
  }
  assert_int_equal(mallctl(full, &v, &sz, NULL, 0), 0);
  return v;
}

/* p is a guarded block of exactly n bytes: the usable size is exact (no
 * size class has these sizes) and the pool counts one more live block. */
static void expect_guarded(void *p, size_t n, size_t in_use_before) {
  assert_non_null(p);
  assert_int_equal(malloc_usable_size(p), n);
  assert_int_equal(sallocx(p, 0), n);
  assert_int_equal(guard_stat("in_use"), in_use_before + 1);
}

/* Run this program as "--child mode" with extra options appended to
 * XALLOC_CONF; its stderr in out. Returns the wait status. */
static int run_child(const char *mode, const char *extra, char *out, size_t outsize) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    if (extra != NULL) {
      const char *old = getenv("XALLOC_CONF");
      char conf[512];
      snprintf(conf, sizeof(conf), "%s%s%s", old != NULL ? old : "", old != NULL && *old ? "," : "", extra);
      setenv("XALLOC_CONF", conf, 1);
    }
    execl("/proc/self/exe", "guard", "--child", mode, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n < outsize - 1 && (r = read(fds[0], out + n, outsize - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

static void *child_block(const char *out) {
  const char *b = strstr(out, "block=");
  void *p = NULL;
  if (b != NULL) sscanf(b, "block=%p", &p);
  return p;
}

static unsigned count_lines(const char *out, const char *prefix) {
  unsigned n = 0;
  for (const char *s = out; (s = strstr(s, prefix)) != NULL; s++) n++;
  return n;
}

/* ---- child modes ---- */

static void child_note(const char *what, void *p) {
  char buf[128];
  int n = snprintf(buf, sizeof(buf), "%s block=%p\n", what, p);
  ssize_t w = write(2, buf, (size_t)n);
  (void)w;
}

static void h_info(int sig, siginfo_t *info, void *ctx) {
  (void)sig, (void)ctx;
  char buf[64];
  int n = snprintf(buf, sizeof(buf), "program handler: si_addr=%p\n", info->si_addr);
  ssize_t w = write(2, buf, (size_t)n);
  (void)w;
  _exit(42);
}

static void h_plain(int sig) {
  (void)sig;
  ssize_t w = write(2, "plain program handler\n", 22);
  (void)w;
  _exit(43);
}

static int child_main(const char *mode) {
  volatile char *v;
  if (strcmp(mode, "overflow") == 0) {
    v = guard_test_alloc_site(32);
    child_note("overflow", (void *)v);
    v[32] = 1;
  } else if (strcmp(mode, "overflow_slack") == 0) {
    v = guard_test_alloc_site(24); /* 16-aligned: 8 bytes of slack before the guard page */
    child_note("overflow_slack", (void *)v);
    v[24] = 1;
    guard_test_free_site((void *)v);
  } else if (strcmp(mode, "uaf_read") == 0) {
    v = guard_test_alloc_site(96);
    guard_test_free_site((void *)v);
    child_note("uaf_read", (void *)v);
    char c = v[16];
    (void)c;
  } else if (strcmp(mode, "uaf_write") == 0) {
    v = guard_test_alloc_site(96);
    guard_test_free_site((void *)v);
    child_note("uaf_write", (void *)v);
    v[40] = 1;
  } else if (strcmp(mode, "underflow") == 0) {
    v = guard_test_alloc_site(24);
    child_note("underflow", (void *)v);
    v[-1] = 1;
  } else if (strcmp(mode, "chain_info") == 0 || strcmp(mode, "chain_plain") == 0 ||
             strcmp(mode, "outside_chain") == 0) {
    /* A handler installed before xalloc sets up the pool (the first
     * allocation of this process is the one below). */
    struct sigaction act, old;
    memset(&act, 0, sizeof(act));
    sigemptyset(&act.sa_mask);
    if (strcmp(mode, "chain_plain") == 0) {
      act.sa_handler = h_plain;
    } else {
      act.sa_sigaction = h_info;
      act.sa_flags = SA_SIGINFO;
    }
    sigaction(SIGSEGV, &act, &old);
    if (old.sa_handler != SIG_DFL) return 3; /* xalloc was set up already: not this test */
    v = guard_test_alloc_site(32);
    if (strcmp(mode, "outside_chain") == 0) {
      char *page = mmap(NULL, PAGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      child_note("outside", page);
      *(volatile char *)page = 1;
    } else {
      child_note("chain", (void *)v);
      v[32] = 1;
    }
  } else if (strcmp(mode, "outside") == 0) {
    v = guard_test_alloc_site(24);
    char *page = mmap(NULL, PAGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    child_note("outside", page);
    *(volatile char *)page = 1;
  } else if (strcmp(mode, "after") == 0) {
    /* A handler installed after xalloc's replaces it. */
    v = guard_test_alloc_site(32);
    struct sigaction act;
    memset(&act, 0, sizeof(act));
    sigemptyset(&act.sa_mask);
    act.sa_sigaction = h_info;
    act.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &act, NULL);
    child_note("after", (void *)v);
    v[32] = 1;
  } else if (strcmp(mode, "alternate") == 0) {
    unsigned left = 0, right = 0;
    for (int i = 0; i < 8; i++) {
      char *p = malloc(32);
      if (malloc_usable_size(p) != 32) return 7;
      if ((uintptr_t)p % PAGE_SZ == 0) left++;
      if (((uintptr_t)p + 32) % PAGE_SZ == 0) right++;
    }
    return left == 4 && right == 4 ? 0 : 8;
  } else if (strcmp(mode, "bad_frees") == 0) {
    /* abort:false: each bad call is one line, then ignored. */
    char *p = guard_test_alloc_site(24), *q = guard_test_alloc_site(40), *r = guard_test_alloc_site(100);
    child_note("p", p);
    child_note("q", q);
    child_note("r", r);
    free(p);
    free(p);                                 /* double free */
    free(q + 1);                             /* interior */
    if (realloc(p, 10) != NULL) return 4;    /* realloc of a freed block */
    if (malloc_usable_size(p) != 0) return 5; /* of a freed block */
    free_sized(r, 1000);                     /* mis-sized */
    sdallocx(r, 4000, 0);                    /* mis-sized */
    free(q - 8);                             /* slack before a right-aligned block: not a block */
    if (malloc_usable_size(q) != 40) return 6; /* q still live, untouched */
    free_sized(r, 100);
    free(q);
    fprintf(stderr, "done\n");
  } else if (strcmp(mode, "double_free_abort") == 0) {
    char *p = guard_test_alloc_site(24);
    child_note("p", p);
    free(p);
    free(p);
    fprintf(stderr, "not reached\n");
  } else {
    return 2;
  }
  return 0;
}

/* ---- the fault reports: 20 runs each ---- */

enum { RUNS = 20 };

static void expect_killed_by(int status, int sig, const char *out) {
  if (!WIFSIGNALED(status) || WTERMSIG(status) != sig) {
    fprintf(stderr, "child status %#x, expected signal %d; its stderr:\n%s\n", status, sig, out);
    fail();
  }
}

static void expect_in(const char *out, const char *what) {
  if (strstr(out, what) == NULL) {
    fprintf(stderr, "missing \"%s\" in:\n%s\n", what, out);
    fail();
  }
}

/* what appears after first in out */
static void expect_after(const char *out, const char *first, const char *what) {
  const char *s = strstr(out, first);
  expect_in(out, first);
  expect_in(s, what);
}

static void test_overflow_reported(void **state) {
  (void)state;
  static char out[16384];
  for (int i = 0; i < RUNS; i++) {
    int st = run_child("overflow", NULL, out, sizeof(out));
    expect_killed_by(st, SIGSEGV, out);
    char *p = child_block(out);
    assert_non_null(p);
    char want[256];
    snprintf(want, sizeof(want),
             "xalloc: heap-buffer-overflow: write of %p 0 bytes right of a 32-byte block at %p, allocated by thread ",
             (void *)(p + 32), (void *)p);
    expect_in(out, want);
    expect_after(out, want, "guard_test_alloc_site");
    assert_null(strstr(out, "freed by"));
  }
}

/* A size that is not a multiple of 16: the overflow lands in the
 * alignment's slack, and is reported when the block is freed. */
static void test_overflow_into_slack_reported(void **state) {
  (void)state;
  static char out[16384];
  for (int i = 0; i < RUNS; i++) {
    int st = run_child("overflow_slack", NULL, out, sizeof(out));
    expect_killed_by(st, SIGABRT, out);
    char *p = child_block(out);
    assert_non_null(p);
    char want[256];
    snprintf(want, sizeof(want),
             "xalloc: heap-buffer-overflow: write of %p 0 bytes right of a 24-byte block at %p, found at its free ",
             (void *)(p + 24), (void *)p);
    expect_in(out, want);
    expect_after(out, want, "guard_test_alloc_site");
    expect_after(out, "xalloc: the block was freed by thread ", "guard_test_free_site");
  }
}

static void test_read_after_free_reported(void **state) {
  (void)state;
  static char out[16384];
  for (int i = 0; i < RUNS; i++) {
    int st = run_child("uaf_read", NULL, out, sizeof(out));
    expect_killed_by(st, SIGSEGV, out);
    char *p = child_block(out);
    assert_non_null(p);
    char want[256];
    snprintf(want, sizeof(want),
             "xalloc: use-after-free: read of %p 16 bytes inside a freed 96-byte block at %p, allocated by thread ",
             (void *)(p + 16), (void *)p);
    expect_in(out, want);
    expect_after(out, want, "guard_test_alloc_site");
    expect_after(out, "xalloc: the block was freed by thread ", "guard_test_free_site");
  }
}

static void test_write_after_free_reported(void **state) {
  (void)state;
  static char out[16384];
  for (int i = 0; i < RUNS; i++) {
    int st = run_child("uaf_write", NULL, out, sizeof(out));
    expect_killed_by(st, SIGSEGV, out);
    char *p = child_block(out);
    assert_non_null(p);
    char want[256];
    snprintf(want, sizeof(want),
             "xalloc: use-after-free: write of %p 40 bytes inside a freed 96-byte block at %p, allocated by thread ",
             (void *)(p + 40), (void *)p);
    expect_in(out, want);
    expect_after(out, want, "guard_test_alloc_site");
    expect_after(out, "xalloc: the block was freed by thread ", "guard_test_free_site");
  }
}

static void test_underflow_reported(void **state) {
  (void)state;
  static char out[16384];
  for (int i = 0; i < 5; i++) {
    int st = run_child("underflow", "guard_underflow:always", out, sizeof(out));
    expect_killed_by(st, SIGSEGV, out);
    char *p = child_block(out);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % PAGE_SZ, 0); /* against the slot's start */
    char want[256];
    snprintf(want, sizeof(want),
             "xalloc: heap-buffer-underflow: write of %p 1 bytes left of a 24-byte block at %p, allocated by thread ",
             (void *)(p - 1), (void *)p);
    expect_in(out, want);
    expect_after(out, want, "guard_test_alloc_site");
  }
  /* alternate: every other block against the slot's start. */
  int st = run_child("alternate", "guard_underflow:alternate", out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_chain_to_previous_handler(void **state) {
  (void)state;
  static char out[16384];
  int st = run_child("chain_info", NULL, out, sizeof(out));
  if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
    fprintf(stderr, "xalloc was initialized before main: cannot install a handler first\n");
    fail();
  }
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 42);
  char *p = child_block(out);
  char want[128];
  snprintf(want, sizeof(want), "xalloc: heap-buffer-overflow: write of %p 0 bytes right of a 32-byte block", (void *)(p + 32));
  expect_in(out, want);
  snprintf(want, sizeof(want), "program handler: si_addr=%p", (void *)(p + 32));
  expect_after(out, "xalloc: heap-buffer-overflow", want);

  st = run_child("chain_plain", NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 43);
  expect_after(out, "xalloc: heap-buffer-overflow", "plain program handler");
}

static void test_fault_outside_untouched(void **state) {
  (void)state;
  static char out[16384];
  int st = run_child("outside", NULL, out, sizeof(out));
  expect_killed_by(st, SIGSEGV, out);
  assert_null(strstr(out, "xalloc:"));
  st = run_child("outside_chain", NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 42);
  char want[64];
  snprintf(want, sizeof(want), "program handler: si_addr=%p", child_block(out));
  expect_in(out, want);
  assert_null(strstr(out, "xalloc:"));
  /* A handler the program installs after xalloc's is the one that runs. */
  st = run_child("after", NULL, out, sizeof(out));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 42);
  assert_null(strstr(out, "xalloc:"));
}

static void test_bad_frees_reported(void **state) {
  (void)state;
  static char out[16384];
  int st = run_child("bad_frees", "abort:false", out, sizeof(out));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "status %#x:\n%s\n", st, out);
    fail();
  }
  expect_in(out, "done\n");
  char *p = NULL, *q = NULL, *r = NULL;
  sscanf(strstr(out, "p block="), "p block=%p", (void **)&p);
  sscanf(strstr(out, "q block="), "q block=%p", (void **)&q);
  sscanf(strstr(out, "r block="), "r block=%p", (void **)&r);
  char want[160];
  snprintf(want, sizeof(want), "xalloc: double free of %p (size class 32): a freed guarded 24-byte block at %p\n",
           (void *)p, (void *)p);
  expect_in(out, want);
  snprintf(want, sizeof(want), "xalloc: invalid free (interior pointer) of %p (size class 48): in a guarded 40-byte block at %p\n",
           (void *)(q + 1), (void *)q);
  expect_in(out, want);
  snprintf(want, sizeof(want), "xalloc: invalid realloc (already freed) of %p", (void *)p);
  expect_in(out, want);
  snprintf(want, sizeof(want), "xalloc: invalid malloc_usable_size (already freed) of %p", (void *)p);
  expect_in(out, want);
  snprintf(want, sizeof(want), "xalloc: mis-sized free of %p", (void *)r);
  assert_int_equal(count_lines(out, want), 2);
  snprintf(want, sizeof(want), "xalloc: invalid free (not an allocated block) of %p", (void *)(q - 8));
  expect_in(out, want);
  assert_int_equal(count_lines(out, "xalloc:"), 7);

  st = run_child("double_free_abort", NULL, out, sizeof(out));
  expect_killed_by(st, SIGABRT, out);
  expect_in(out, "xalloc: double free of ");
  assert_null(strstr(out, "not reached"));
}

/* ---- in-process ---- */

void *_Znwm(size_t);
void *_Znam(size_t);
void *_ZnwmSt11align_val_t(size_t, size_t);
void _ZdlPv(void *);
void _ZdaPv(void *);
void _ZdlPvm(void *, size_t);
void _ZdlPvSt11align_val_t(void *, size_t);

static void test_every_entry_point(void **state) {
  (void)state;
  size_t base = guard_stat("in_use"), n0 = guard_stat("nmalloc"), d0 = guard_stat("ndalloc");
  void *p;
  char *c;
  unsigned count = 0;
#define ONE(expr, n)                                \
  do {                                              \
    p = (expr);                                     \
    expect_guarded(p, (n), base);                   \
    count++;                                        \
  } while (0)
  ONE(malloc(32), 32);
  assert_int_equal(((uintptr_t)p + 32) % PAGE_SZ, 0); /* its end is the slot's end */
  free(p);
  for (size_t n = 1; n <= 4096; n = n * 3 + 1) { /* 1, 4, 13, 40, 121, 364, 1093, 3280 */
    ONE(malloc(n), n);
    /* malloc's alignment, and no more slack than it needs before the slot's end */
    size_t align = n > 8 ? 16 : 8;
    assert_int_equal((uintptr_t)p % align, 0);
    assert_true(PAGE_SZ - ((uintptr_t)p + n - 1) % PAGE_SZ - 1 < align);
    free(p);
  }
  ONE(calloc(3, 8), 24);
  c = p;
  for (int i = 0; i < 24; i++) assert_int_equal(c[i], 0);
  free(p);
  ONE(calloc(1, 300), 300);
  free(p);
  assert_int_equal(posix_memalign(&p, 64, 100), 0);
  expect_guarded(p, 100, base);
  count++;
  assert_int_equal((uintptr_t)p % 64, 0);
  /* The gap after an aligned block is the alignment's slack: 28 bytes here. */
  assert_int_equal(PAGE_SZ - ((uintptr_t)p + 100) % PAGE_SZ, 28);
  free_aligned_sized(p, 64, 100);
  ONE(aligned_alloc(32, 96), 96);
  assert_int_equal((uintptr_t)p % 32, 0);
  free(p);
  ONE(memalign(16, 200), 200);
  free(p);
  ONE(valloc(100), 100);
  assert_int_equal((uintptr_t)p % PAGE_SZ, 0);
  free(p);
  ONE(mallocx(24, 0), 24);
  dallocx(p, 0);
  ONE(mallocx(100, MALLOCX_ZERO), 100);
  c = p;
  for (int i = 0; i < 100; i++) assert_int_equal(c[i], 0);
  sdallocx(p, 100, MALLOCX_ZERO);
  ONE(mallocx(100, MALLOCX_ALIGN(64)), 100);
  assert_int_equal((uintptr_t)p % 64, 0);
  sdallocx(p, 100, MALLOCX_ALIGN(64));
  ONE(mallocx(100, MALLOCX_TCACHE_NONE), 100);
  dallocx(p, MALLOCX_TCACHE_NONE);
  ONE(realloc(NULL, 24), 24);
  free(p);
  ONE(reallocarray(NULL, 3, 8), 24);
  free_sized(p, 24);
  void *big = malloc(100000); /* not eligible */
  assert_true(malloc_usable_size(big) >= 100000);
  assert_int_equal(guard_stat("in_use"), base);
  ONE(realloc(big, 24), 24); /* realloc's new block */
  free(p);
  ONE(_Znwm(24), 24);
  _ZdlPv(p);
  ONE(_Znam(40), 40);
  _ZdaPv(p);
  ONE(_Znwm(56), 56);
  _ZdlPvm(p, 56);
  ONE(_ZnwmSt11align_val_t(100, 64), 100);
  assert_int_equal((uintptr_t)p % 64, 0);
  _ZdlPvSt11align_val_t(p, 64);
  /* malloc(0) is served normally (a 0-byte block would start on a guard page). */
  p = malloc(0);
  assert_non_null(p);
  assert_int_equal(guard_stat("in_use"), base);
  free(p);
  assert_int_equal(guard_stat("nmalloc") - n0, count);
  assert_int_equal(guard_stat("ndalloc") - d0, count);
#undef ONE
}

static void test_not_eligible(void **state) {
  (void)state;
  size_t base = guard_stat("in_use");
  void *p = malloc(4097); /* above guard_max */
  assert_int_equal(guard_stat("in_use"), base);
  assert_true(malloc_usable_size(p) > 4097);
  free(p);
  assert_int_equal(posix_memalign(&p, 8192, 64), 0); /* more than a page of alignment */
  assert_int_equal((uintptr_t)p % 8192, 0);
  assert_int_equal(guard_stat("in_use"), base);
  free(p);
}

static void test_realloc_in_and_out(void **state) {
  (void)state;
  size_t base = guard_stat("in_use");
  char *p = malloc(24);
  expect_guarded(p, 24, base);
  memset(p, 'a', 24);
  char *q = realloc(p, 100); /* fits: guarded again, in another slot */
  expect_guarded(q, 100, base);
  assert_ptr_not_equal(q, p);
  for (int i = 0; i < 24; i++) assert_int_equal(q[i], 'a');
  memset(q, 'b', 100);
  char *r = realloc(q, 10); /* shrinks: guarded */
  expect_guarded(r, 10, base);
  for (int i = 0; i < 10; i++) assert_int_equal(r[i], 'b');
  memset(r, 'c', 10);
  char *s = realloc(r, 20000); /* too large: moves out */
  assert_non_null(s);
  assert_int_equal(guard_stat("in_use"), base);
  assert_true(malloc_usable_size(s) >= 20000);
  for (int i = 0; i < 10; i++) assert_int_equal(s[i], 'c');
  free(s);
  /* rallocx and xallocx */
  p = mallocx(40, 0);
  expect_guarded(p, 40, base);
  memset(p, 'd', 40);
  assert_int_equal(xallocx(p, 80, 0, 0), 40); /* not resized in place */
  q = rallocx(p, 80, 0);
  expect_guarded(q, 80, base);
  for (int i = 0; i < 40; i++) assert_int_equal(q[i], 'd');
  r = rallocx(q, 100000, 0);
  assert_non_null(r);
  assert_int_equal(guard_stat("in_use"), base);
  for (int i = 0; i < 40; i++) assert_int_equal(r[i], 'd');
  dallocx(r, 0);
}

/* /proc/self/maps lines overlapping [lo, hi). */
static unsigned maps_in(uintptr_t lo, uintptr_t hi) {
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  char line[512];
  unsigned n = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned long s, e;
    if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < hi && e > lo) n++;
  }
  fclose(f);
  return n;
}

static unsigned maps_total(void) { return maps_in(0, UINTPTR_MAX); }

static void test_exhaustion_and_mappings(void **state) {
  (void)state;
  size_t slots = guard_stat("slots"), mapped = guard_stat("mapped"), base = guard_stat("in_use");
  assert_int_equal(slots, 256);
  size_t ex0 = guard_stat("exhausted");
  enum { N = 300 };
  static char *p[N];
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  size_t nguarded = 0;
  for (int i = 0; i < N; i++) {
    p[i] = malloc(24);
    assert_non_null(p[i]);
    memset(p[i], i, 24);
    if (malloc_usable_size(p[i]) == 24) {
      nguarded++;
      if ((uintptr_t)p[i] < lo) lo = (uintptr_t)p[i];
      if ((uintptr_t)p[i] > hi) hi = (uintptr_t)p[i];
    } else {
      assert_int_equal(malloc_usable_size(p[i]), 32); /* served normally */
    }
  }
  assert_int_equal(nguarded, slots - base);
  assert_int_equal(guard_stat("in_use"), slots);
  assert_true(guard_stat("exhausted") - ex0 >= N - nguarded);
  assert_true(hi - lo < mapped);
  /* The pool's mappings: at most two per live slot, and one more. */
  unsigned live_maps = maps_in(lo & ~(PAGE_SZ - 1), hi + PAGE_SZ);
  print_message("guard: %zu live slots, %u mappings in the pool\n", slots, live_maps);
  assert_true(live_maps <= 2 * slots + 1);
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < 24; k++) assert_int_equal((unsigned char)p[i][k], (unsigned char)i);
    free(p[i]);
  }
  assert_int_equal(guard_stat("in_use"), base);
  if (base == 0) assert_true(maps_in(lo & ~(PAGE_SZ - 1), hi + PAGE_SZ) <= 1); /* all inaccessible: one again */
  /* Many more allocations than slots: the mappings do not grow. */
  unsigned before = maps_total();
  for (int round = 0; round < 20000; round++) {
    char *a = malloc(24 + round % 1000), *b = malloc(8);
    a[0] = b[0] = 1;
    free(a);
    free(b);
  }
  unsigned after = maps_total();
  print_message("guard: %u mappings before, %u after 20000 rounds\n", before, after);
  assert_true(after <= before + 8);
  /* Slots came back: guarded again. */
  base = guard_stat("in_use");
  char *x = malloc(24);
  expect_guarded(x, 24, base);
  free(x);
}

static void write_buf(void *opaque, const char *str) { fputs(str, opaque); }

static void test_mallctl_and_stats(void **state) {
  (void)state;
  unsigned u;
  size_t sz = sizeof(u);
  assert_int_equal(mallctl("opt.guard_sample", &u, &sz, NULL, 0), 0);
  assert_int_equal(u, 1);
  assert_int_equal(mallctl("opt.guard_max", &u, &sz, NULL, 0), 0);
  assert_int_equal(u, 4096);
  assert_int_equal(mallctl("opt.guard_slots", &u, &sz, NULL, 0), 0);
  assert_int_equal(u, 256);
  const char *s;
  sz = sizeof(s);
  assert_int_equal(mallctl("opt.guard_underflow", &s, &sz, NULL, 0), 0);
  assert_string_equal(s, "off");
  assert_int_equal(guard_stat("slot_size"), 4096);
  assert_int_equal(guard_stat("mapped"), 4096 + 256 * 8192);
  size_t base = guard_stat("in_use"), alloc0 = guard_stat("allocated");
  void *p = malloc(100);
  assert_int_equal(guard_stat("allocated"), alloc0 + 100);
  assert_int_equal(guard_stat("resident"), (base + 1) * 4096);
  static char buf[65536];
  FILE *f = fmemopen(buf, sizeof(buf), "w");
  assert_non_null(f);
  malloc_stats_print(write_buf, f, "ab");
  fclose(f);
  assert_non_null(strstr(buf, "Guarded pool: 256 slots of 4096 bytes"));
  f = fmemopen(buf, sizeof(buf), "w");
  malloc_stats_print(write_buf, f, "Jab");
  fclose(f);
  assert_non_null(strstr(buf, "\"guard\": {"));
  assert_non_null(strstr(buf, "\"faults\": 0"));
  free(p);
}

/* ---- threads and fork ---- */

static void *thread_main(void *arg) {
  uint64_t seed = (uintptr_t)arg * 7919 + 1;
  enum { LIVE = 32 };
  char *live[LIVE] = {0};
  size_t size[LIVE] = {0};
  for (int i = 0; i < 20000; i++) {
    int k = (int)(xtest_rand(&seed) % LIVE);
    if (live[k] != NULL) {
      for (size_t j = 0; j < size[k]; j++)
        if (live[k][j] != (char)(k + 1)) return (void *)1;
      if (malloc_usable_size(live[k]) < size[k]) return (void *)2;
      free(live[k]);
    }
    size[k] = 1 + xtest_rand(&seed) % 600;
    live[k] = malloc(size[k]);
    if (live[k] == NULL) return (void *)3;
    memset(live[k], k + 1, size[k]);
  }
  for (int k = 0; k < LIVE; k++) free(live[k]);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  size_t base = guard_stat("in_use"), n0 = guard_stat("nmalloc"), after[2];
  for (int round = 0; round < 2; round++) {
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
      void *r;
      pthread_join(th[i], &r);
      assert_null(r);
    }
    after[round] = guard_stat("in_use");
  }
  /* What stays is the C library's, kept for the next threads (one block
   * per thread: the second round leaves no more). */
  assert_true(after[0] <= base + 4);
  assert_int_equal(after[1], after[0]);
  assert_true(guard_stat("nmalloc") - n0 > 1000); /* the pool (256 slots) was shared by 128 live blocks */
}

static volatile bool fork_stop;
static void *fork_spinner(void *arg) {
  (void)arg;
  while (!fork_stop) {
    void *p = malloc(48);
    free(p);
  }
  return NULL;
}

static struct sigaction xalloc_segv; /* xalloc's handler (cmocka installs its own for each test) */

static void fork_child(void *arg) {
  char *p = arg;
  sigaction(SIGSEGV, &xalloc_segv, NULL);
  /* The parent's guarded block is the child's too. */
  if (malloc_usable_size(p) != 24 || p[0] != 'x') _exit(10);
  free(p);
  for (int i = 0; i < 1000; i++) {
    char *q = malloc(24);
    if (malloc_usable_size(q) != 24 && malloc_usable_size(q) != 32) _exit(11);
    q[23] = 1;
    free(q);
  }
  /* A fault in the child is reported. */
  volatile char *v = guard_test_alloc_site(32);
  v[32] = 1;
  _exit(12);
}

static void test_fork(void **state) {
  (void)state;
  size_t base = guard_stat("in_use");
  char *p = malloc(24);
  expect_guarded(p, 24, base);
  p[0] = 'x';
  pthread_t th;
  fork_stop = false;
  assert_int_equal(pthread_create(&th, NULL, fork_spinner, NULL), 0);
  static char err[16384];
  for (int i = 0; i < 10; i++) {
    int st = xtest_run_child(fork_child, p, err, sizeof(err));
    expect_killed_by(st, SIGSEGV, err);
    expect_in(err, "xalloc: heap-buffer-overflow: write of ");
    expect_after(err, "xalloc: heap-buffer-overflow", "guard_test_alloc_site");
  }
  fork_stop = true;
  pthread_join(th, NULL);
  /* The parent's block is untouched by the children's frees. */
  assert_int_equal(malloc_usable_size(p), 24);
  assert_int_equal(p[0], 'x');
  free(p);
  assert_int_equal(guard_stat("in_use"), base);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child_main(argv[2]);
  free(malloc(1)); /* xalloc set up */
  sigaction(SIGSEGV, NULL, &xalloc_segv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_overflow_reported),
      cmocka_unit_test(test_overflow_into_slack_reported),
      cmocka_unit_test(test_read_after_free_reported),
      cmocka_unit_test(test_write_after_free_reported),
      cmocka_unit_test(test_underflow_reported),
      cmocka_unit_test(test_chain_to_previous_handler),
      cmocka_unit_test(test_fault_outside_untouched),
      cmocka_unit_test(test_bad_frees_reported),
      cmocka_unit_test(test_every_entry_point),
      cmocka_unit_test(test_not_eligible),
      cmocka_unit_test(test_realloc_in_and_out),
      cmocka_unit_test(test_exhaustion_and_mappings),
      cmocka_unit_test(test_mallctl_and_stats),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_fork),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
