/* Stack captures (stack.h) through the frame-size cache (unwind.h): the
 * same frames as backtrace(3), through recursion, frames of varying size
 * (alloca), and threads; the cache must serve most captures. */
#include "xtest.h"

#include <alloca.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <ucontext.h>

#include "xalloc/internal/cfi.h"
#include "xalloc/internal/stack.h"
#include "xalloc/internal/unwind.h"

static unsigned nchecked;

/* Capture both ways from here and compare (the first frames are this
 * function's two call sites: compared from the caller on). */
__attribute__((noinline)) static void probe(void) {
  void *a[64], *b[64];
  unsigned n = stack_capture(a, 64, 0);
  int m = backtrace(b, 64);
  assert_true(n >= 3 && m >= 3);
  /* a[0] and b[0] are return addresses into probe: different. */
  if ((unsigned)m != n) {
    for (int i = 0; i < m || i < (int)n; i++) print_message("  %d: %p %p\n", i, i < (int)n ? a[i] : NULL, i < m ? b[i] : NULL);
    char **sym = backtrace_symbols(b, m);
    for (int i = 0; i < m; i++) print_message("  %s\n", sym[i]);
    fail_msg("stack_capture %u frames, backtrace %d", n, m);
  }
  for (unsigned i = 1; i < n; i++)
    if (a[i] != b[i]) fail_msg("frame %u: %p, backtrace %p (of %u)", i, a[i], b[i], n);
  __atomic_fetch_add(&nchecked, 1, __ATOMIC_RELAXED);
}

__attribute__((noinline)) static int recurse(int d) {
  if (d > 0) return recurse(d - 1) + 1;
  probe();
  return 0;
}

/* A frame whose size depends on n at the same call site. */
__attribute__((noinline)) static int with_alloca(size_t n, int d) {
  volatile char *p = alloca(n);
  p[0] = 1;
  p[n - 1] = 2;
  return recurse(d) + p[0];
}

/* The same, with the alloca'd bytes full of return addresses the cache
 * knows (a frame of another size than the cached one would find one
 * where it expects its caller's): the capture must not be fooled. */
static void *poison_frames[64];
static int npoison;
__attribute__((noinline)) static int with_poison(size_t n, int d) {
  void **p = alloca(n * sizeof(void *));
  for (size_t i = 0; i < n; i++) p[i] = poison_frames[i % (size_t)npoison];
  __asm__ volatile("" : : "r"(p) : "memory");
  return recurse(d) + (p[0] != NULL);
}

/* A coroutine on a stack of its own (swapcontext): captures there are
 * right too (and the fast walk, bounded by this thread's own stack, does
 * not run off it). */
static ucontext_t co_main, co_ctx;
static void co_body(void) {
  for (int r = 0; r < 200; r++) {
    recurse(r % 5);
    swapcontext(&co_ctx, &co_main);
  }
}

/* Captures in a signal handler (the signal frame's size varies with the
 * interrupted stack pointer). */
#include <signal.h>
static volatile int in_handler;
static void on_usr1(int sig) {
  (void)sig;
  in_handler++;
  recurse(in_handler % 4);
}
__attribute__((noinline)) static void raise_at_depth(int d, size_t pad) {
  volatile char *p = alloca(pad);
  p[0] = 0;
  if (d > 0) {
    raise_at_depth(d - 1, pad);
    return;
  }
  raise(SIGUSR1);
}

static void *worker(void *arg) {
  (void)arg;
  for (int r = 0; r < 300; r++) {
    recurse(r % 9);
    with_alloca(16 + (size_t)(r % 7) * 1000, r % 3);
  }
  return NULL;
}

static void test_same_as_backtrace(void **state) {
  (void)state;
  free(malloc(1));
  stack_boot();
  uint64_t fast0 = unwind_nfast, full0 = unwind_nfull;
  for (int r = 0; r < 2000; r++) recurse(r % 17);
  uint64_t fast = unwind_nfast - fast0, full = unwind_nfull - full0;
  print_message("%u captures checked: %llu by the cache, %llu full unwinds\n", nchecked, (unsigned long long)fast,
                (unsigned long long)full);
#if defined(__x86_64__)
  /* Most captures come from the cache (the first of each depth and one in
   * 64 are full unwinds). */
  assert_true(fast > 10 * full);
#endif
  for (int r = 0; r < 500; r++) with_alloca(16 + (size_t)(r % 13) * 512, r % 5);
  for (int r = 0; r < 1000; r++) {
    recurse(r % 11);
    with_alloca(16 + (size_t)(r % 29) * 48, r % 4);
  }
  pthread_t th[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, worker, NULL), 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  /* Return addresses the cache holds: a deep stack's. */
  npoison = backtrace(poison_frames, 64);
  for (int r = 0; r < 1000; r++) {
    recurse(r % 7);
    with_poison(2 + (size_t)(r % 37) * 3, r % 3);
  }
  signal(SIGUSR1, on_usr1);
  for (int r = 0; r < 300; r++) raise_at_depth(r % 5, 8 + (size_t)(r % 11) * 8);
  signal(SIGUSR1, SIG_DFL);
  size_t co_size = 256 * 1024;
  char *co_stack = malloc(co_size);
  assert_non_null(co_stack);
  assert_int_equal(getcontext(&co_ctx), 0);
  co_ctx.uc_stack.ss_sp = co_stack;
  co_ctx.uc_stack.ss_size = co_size;
  co_ctx.uc_link = &co_main;
  makecontext(&co_ctx, co_body, 0);
  for (int r = 0; r < 200; r++) {
    assert_int_equal(swapcontext(&co_main, &co_ctx), 0);
    recurse(r % 6); /* and on the thread's stack in between */
  }
  free(co_stack);
  print_message("%u captures checked in all\n", nchecked);
}

/* Captures load nothing: xalloc's own unwinder (cfi.h) reads the unwind
 * tables, and libgcc_s (which backtrace(3) would load, with the pages of
 * libc that load it) stays out of a program that does not link it. Runs
 * first: the next test calls backtrace(3). */
__attribute__((noinline)) static unsigned capture_deep(int d, void **a) {
  if (d > 0) return capture_deep(d - 1, a) + 0 * (unsigned)d;
  return stack_capture(a, 64, 0);
}

static void test_nothing_loaded(void **state) {
  (void)state;
  if (!cfi_available()) skip(); /* other machines: backtrace(3) is the unwinder */
  /* (A build that links libgcc_s, the sanitizers' runtime does, has it
   * from the start: then only the fallback count can show it.) */
  bool loaded = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD) != NULL;
  void *a[64];
  uint64_t full = unwind_nfull, bt = stack_nbacktrace;
  for (int i = 0; i < 4; i++) assert_true(capture_deep(3 + i, a) >= 7);
  assert_true(unwind_nfull > full);         /* full unwinds were made */
  assert_int_equal(stack_nbacktrace, bt);   /* by xalloc's unwinder */
  if (!loaded) assert_null(dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_nothing_loaded), cmocka_unit_test(test_same_as_backtrace)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
