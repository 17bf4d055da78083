/* Shared test helpers: cmocka, and running code in a child process. */
#ifndef XALLOC_TEST_XTEST_H
#define XALLOC_TEST_XTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka must come after the headers above. */
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * In a prefixed build (configure --with-prefix: the ThreadSanitizer build,
 * whose process malloc is the race detector's) the tests call xalloc by
 * its prefixed names: the public header maps malloc, free, mallocx, ... to
 * them (XALLOC_MANGLE). Memory from the C library (strdup, getline, ...)
 * must then not be freed by a test.
 */
#include "xalloc/internal/config.h"
#if defined(XALLOC_PREFIXED) && XALLOC_PREFIXED
#define XALLOC_MANGLE
#include "xalloc/xalloc.h"
#endif

/*
 * Run fn(arg) in a forked child with stderr captured. Returns the wait
 * status; the child's stderr (up to errsize - 1 bytes) is put in err.
 */
static inline int xtest_run_child(void (*fn)(void *), void *arg, char *err, size_t errsize) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], err + n, errsize - 1 - n)) > 0) {
    n += (size_t)r;
    if (n == errsize - 1) break;
  }
  err[n] = '\0';
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

/* A simple, fast, seedable PRNG (xorshift64*). */
static inline uint64_t xtest_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}
#endif
