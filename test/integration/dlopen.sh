#!/bin/sh
# A program that neither links nor preloads xalloc can dlopen()
# lib/libxalloc.so.0 at run time (its initial-exec TLS must fit in glibc's
# static TLS surplus: no "cannot allocate memory in static TLS block"), and
# call the library's malloc, free and malloc_usable_size through dlsym,
# from the main thread and from threads that existed before the dlopen.
set -eu

: "${XALLOC_BUILDDIR:?XALLOC_BUILDDIR must name the build directory}"
lib=$XALLOC_BUILDDIR/lib/libxalloc.so.0
[ -f "$lib" ] || { echo "FAIL: $lib is missing"; exit 1; }
unset XALLOC_CONF MALLOC_CONF LD_PRELOAD 2>/dev/null || true
CC=${CC:-cc}
command -v "$CC" > /dev/null 2>&1 || CC=gcc

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-dlopen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

cat > "$tmp/dl.c" <<'EOF'
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef size_t (*usable_fn)(void *);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);

static malloc_fn x_malloc;
static free_fn x_free;
static usable_fn x_usable;
static calloc_fn x_calloc;
static realloc_fn x_realloc;

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go;

/* Threads started before the dlopen, then allocate through the library. */
static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  pthread_mutex_lock(&mtx);
  while (!go) pthread_cond_wait(&cond, &mtx);
  pthread_mutex_unlock(&mtx);
  void *keep[64] = {0};
  for (unsigned i = 0; i < 20000; i++) {
    unsigned k = (i * 7 + (unsigned)id) % 64;
    if (keep[k] != NULL) {
      if (((unsigned char *)keep[k])[0] != (unsigned char)k) return (void *)1;
      x_free(keep[k]);
    }
    size_t sz = 1 + (i * 37 + id * 101) % 3000;
    keep[k] = x_malloc(sz);
    if (keep[k] == NULL || x_usable(keep[k]) < sz) return (void *)1;
    memset(keep[k], (int)k, sz);
  }
  for (unsigned k = 0; k < 64; k++) x_free(keep[k]);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int threads = atoi(argv[2]);
  pthread_t tid[8];
  if (threads > 8) threads = 8;
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t) != 0) return 2;

  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    printf("dlopen failed: %s\n", dlerror());
    return 1;
  }
  x_malloc = (malloc_fn)dlsym(h, "malloc");
  x_free = (free_fn)dlsym(h, "free");
  x_usable = (usable_fn)dlsym(h, "malloc_usable_size");
  x_calloc = (calloc_fn)dlsym(h, "calloc");
  x_realloc = (realloc_fn)dlsym(h, "realloc");
  if (!x_malloc || !x_free || !x_usable || !x_calloc || !x_realloc) {
    printf("dlsym failed: %s\n", dlerror());
    return 1;
  }
  /* dlsym must give the library's own functions, not glibc's. */
  if ((void *)x_malloc == (void *)malloc || (void *)x_free == (void *)free) {
    printf("dlsym returned the global malloc/free, not the library's\n");
    return 1;
  }
  Dl_info info;
  if (dladdr((void *)x_malloc, &info) == 0 || info.dli_fname == NULL ||
      strstr(info.dli_fname, "libxalloc.so.0") == NULL) {
    printf("malloc from dlsym is not in libxalloc.so.0 (%s)\n", info.dli_fname ? info.dli_fname : "?");
    return 1;
  }

  char *p = x_malloc(100);
  if (p == NULL) { printf("malloc(100) returned NULL\n"); return 1; }
  memset(p, 'a', 100);
  printf("usable %zu\n", x_usable(p));
  unsigned *z = x_calloc(1000, sizeof(unsigned));
  if (z == NULL) { printf("calloc returned NULL\n"); return 1; }
  for (int i = 0; i < 1000; i++)
    if (z[i] != 0) { printf("calloc memory not zeroed\n"); return 1; }
  p = x_realloc(p, 1 << 20);
  if (p == NULL || p[0] != 'a' || p[99] != 'a') { printf("realloc lost data\n"); return 1; }
  x_free(z);
  x_free(p);
  /* glibc's malloc still serves the program itself. */
  void *g = malloc(100);
  printf("program malloc usable %zu\n", malloc_usable_size(g));
  free(g);

  pthread_mutex_lock(&mtx);
  go = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mtx);
  for (int t = 0; t < threads; t++) {
    void *r;
    pthread_join(tid[t], &r);
    if (r != NULL) { printf("thread %d: bad allocation through the library\n", t); return 1; }
  }
  printf("threads %d ok\n", threads);
  return 0;
}
EOF

echo "checking: compile a program that does not link libxalloc"
"$CC" -std=gnu11 -D_GNU_SOURCE -O1 -Wall -o "$tmp/dl" "$tmp/dl.c" -ldl -lpthread
if command -v ldd > /dev/null 2>&1 && ldd "$tmp/dl" | grep -q libxalloc; then
  fail "the test program links libxalloc; it must only dlopen it"
fi

for threads in 0 4; do
  echo "checking: dlopen($lib) with $threads threads started before it"
  set +e
  XALLOC_CONF=stats_print:true "$tmp/dl" "$lib" "$threads" > "$tmp/out" 2> "$tmp/err"
  rc=$?
  set -e
  sed 's/^/    /' "$tmp/out"
  if grep -q 'static TLS' "$tmp/out" "$tmp/err"; then
    fail "dlopen hit 'cannot allocate memory in static TLS block'"
  fi
  if [ "$rc" -ne 0 ]; then
    fail "the dlopen program exited $rc"
    grep -v '^ ' "$tmp/err" | head -n 5 | sed 's/^/    stderr: /'
    continue
  fi
  grep -qx 'usable 112' "$tmp/out" && pass "the library's malloc(100) has usable size 112 (xalloc)" ||
    fail "expected 'usable 112' from the library's malloc_usable_size"
  grep -qx 'program malloc usable 104' "$tmp/out" && pass "the program's own malloc is still glibc's" ||
    fail "expected the program's own malloc to be glibc's (usable 104)"
  grep -qx "threads $threads ok" "$tmp/out" && pass "$threads threads allocated through the library" ||
    fail "threads did not finish"
  # The dlopened copy initialized itself and reports at exit.
  calls=$(sed -n 's/^Allocation calls: \([0-9][0-9]*\), .*/\1/p' "$tmp/err" | tail -n 1)
  min=$((1 + threads * 10000))
  if [ -n "$calls" ] && [ "$calls" -ge "$min" ]; then
    pass "the library's statistics count $calls allocation calls (>= $min)"
  else
    fail "the library's statistics report ${calls:-no} allocation calls, expected >= $min"
  fi
done

[ "$failures" -eq 0 ] || { echo "dlopen: $failures check(s) failed"; exit 1; }
echo "dlopen: all checks passed"
