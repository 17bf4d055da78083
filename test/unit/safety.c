/*
 * Heap safety: every bad call of issue 6 is reported in one line, then
 * aborts (abort:true) or is ignored (abort:false) with the heap still
 * consistent (arena_check on every arena) and usable. Each case runs in a
 * child process, once per mode. Also: overruns into neighbouring regions
 * leave the metadata intact, and the heap check reports what it finds.
 */
#include "xtest.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"
#include "xchild.h"

#define CHUNK ((size_t)2 << 20)

static void *volatile sink;

/* After an ignored bad call: every arena passes the heap check, and the
 * heap hands out distinct, writable blocks of every kind. */
static void child_heap_ok(void) {
  enum { N = 300 };
  void *p[N];
  for (int i = 0; i < N; i++) {
    size_t sz = i % 50 == 0 ? (3u << 20) : i % 10 == 0 ? 40000 : (size_t)(16 + (i * 37) % 3000);
    p[i] = malloc(sz);
    EXPECT(p[i] != NULL);
    memset(p[i], 0x77, sz);
    for (int j = 0; j < i; j++) EXPECT(p[j] != p[i]);
  }
  for (int i = 0; i < N; i++) free(p[i]);
  tcache_flush_all(tsd_fetch());
  for (unsigned i = 0; i < narenas; i++) EXPECT(arenas[i] == NULL || arena_check(arenas[i], true));
}

typedef struct {
  const char *name;
  void (*fn)(void);
  const char *want;  /* substring of the report line */
  const char *want2; /* another, or NULL */
} bad_case_t;

/* Cases caught by the free tags (./configure --disable-heap-checks has
 * none: they are skipped there), whose report may depend on the cache. */
enum { TAGS_ALWAYS = 1, TAGS_WITH_CACHE };
typedef struct {
  bad_case_t c;
  const char *want_nocache; /* instead of c.want with the thread cache off, or NULL */
  int tags;                 /* TAGS_*: when the case needs the tags */
} tag_case_t;


/* With abort:false: some report named ptr. */
static void expect_reported(const void *ptr) {
  if (opt_abort) return;
  char s[40];
  snprintf(s, sizeof(s), "of %p ", ptr);
  EXPECT(strstr(reports, s) != NULL);
}

static void tflush(void) { EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0); }



/* With abort:false, the heap check of every arena, the public way. */
static void expect_check_ok(void) {
  bool ok = false;
  size_t len = sizeof(ok);
  char name[64];
  snprintf(name, sizeof(name), "arena.%d.check", MALLCTL_ARENAS_ALL);
  EXPECT(mallctl(name, &ok, &len, NULL, 0) == 0 && ok);
}

/* ---- double frees ---- */

static void df_small_cached(void) {
  char *keep = malloc(224), *p = malloc(224);
  free(p);
  free(p); /* tcache on: the tag in the cache; off: the run bitmap */
  free(keep);
}
static void df_small_after_flush(void) {
  char *keep = malloc(224), *p = malloc(224);
  free(p);
  tcache_flush_all(tsd_fetch()); /* p left the cache: the run is authoritative */
  free(p);
  free(keep);
}
static void df_small_run_gone(void) {
  char *p = malloc(3000);
  free(p);
  tcache_flush_all(tsd_fetch()); /* the run may be wholly free now */
  free(p);
}
/* The tag was overwritten between the frees: caught when the object leaves
 * the cache (or at once without a cache). */
static void df_small_leaving_cache(void) {
  char *keep = malloc(96), *p = malloc(96);
  free(p);
  memset(p, 0, 8);
  free(p);
  tcache_flush_all(tsd_fetch());
  free(keep);
}
/* Same, caught when malloc would hand it out: never returned twice. */
static void df_small_at_malloc(void) {
  char *keep = malloc(96), *p = malloc(96);
  free(p);
  memset(p, 0, 8);
  free(p);
  char *a = malloc(96), *b = malloc(96);
  EXPECT(a != b);
  free(a);
  free(b);
  free(keep);
}
/*
 * Issue 9, item 2: a double free after the object went back to its run and
 * its tag was overwritten. The second free pushes it into the cache (the
 * fast path sees no tag), malloc hands it out as a, and the region is
 * still free in its run: the refill that meets it there must not hand out
 * a again. With the cache off the run bitmap catches the second free.
 */
static void df_after_flush_reused(void) {
  char *p = malloc(64), *keep = malloc(64);
  free(p);
  tflush();
  p[0] = 0;
  free(p);
  char *a = malloc(64);
  tflush();
  expect_never_handed_out(a, 64);
  expect_reported(p);
  expect_check_ok();
  free(a);
  free(keep);
}
/*
 * A double free through a stale pointer whose memory became a new run of
 * its class: the region is free in the new run and was never handed out,
 * in a page of the run not used yet (no tag written there: runs tag their
 * pages as they first use them). The free fast path must not take it
 * (that page's word is 0): reported, and the region handed out once only.
 */
static void df_stale_fresh_run(void) {
  unsigned ind;
  size_t sz = sizeof(ind);
  EXPECT(mallctl("arenas.create", &ind, &sz, NULL, 0) == 0);
  int fl = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  char *p = mallocx(48, fl); /* region 0 of the arena's first 48-byte run (3 pages, 256 regions) */
  char *q = p + 200 * 48;    /* region 200: in the run's third page */
  free(q);
  expect_reported(q);
  /* Every region of the run handed out once: q at most once. */
  enum { N = 300 };
  static char *r[N];
  int nq = 0;
  for (int i = 0; i < N; i++) {
    r[i] = mallocx(48, fl);
    EXPECT(r[i] != NULL);
    nq += r[i] == q;
    memset(r[i], 0x5a, 48);
    for (int j = 0; j < i; j++) EXPECT(r[j] != r[i]);
  }
  EXPECT(nq <= 1);
  for (int i = 0; i < N; i++) dallocx(r[i], fl);
  dallocx(p, fl);
  expect_check_ok();
}
/*
 * Issue 9, item 3: a write after free into a region that is back in its
 * run. The refill (or, with the cache off, the allocation from the run)
 * finds the region's tag gone: reported, and the region never handed out.
 */
static void waf_in_run(void) {
  char *p = malloc(64), *keep = malloc(64);
  free(p);
  tflush();
  memset(p, 0x41, 16);
  expect_never_handed_out(p, 64);
  expect_reported(p);
  expect_check_ok();
  free(keep);
}
/*
 * The same double free while the object is still cached: the second free
 * pushes it a second time (the fast path sees no tag), malloc hands out
 * the top copy, and the copy below has lost its tag when the flush meets
 * it. It is live: the flush reports it and must not give it back to its
 * run, or a refill would hand it out again. With the cache off the run
 * bitmap catches the second free.
 */
static void df_flushed_copy_live(void) {
  char *keep = malloc(96), *p = malloc(96);
  free(p);
  memset(p, 0, 8);
  free(p);
  char *a = malloc(96);
  tflush();
  expect_never_handed_out(a, 96);
  expect_reported(p);
  expect_check_ok();
  free(a);
  free(keep);
}
static void *free_arg(void *arg) {
  free(arg);
  return NULL;
}
/*
 * A double free that reaches a flush batch right after a live neighbour
 * from the same run: the flush looks the neighbour's run up and frees the
 * next object through that run without a lookup (arena_dalloc_small_batch_locked),
 * but still checks its bit in the run bitmap, which says it is already
 * free. With the cache off the second free meets the bitmap at once.
 */
static void df_in_batch_after_neighbour(void) {
  char *n1 = malloc(64), *p = malloc(64), *keep = malloc(64);
  free(p);
  tflush(); /* p back in its run, tagged */
  p[0] = 0; /* the tag written over: the fast path takes the second free */
  free(n1);
  free(p);
  tflush(); /* one batch: n1, then p */
  expect_reported(p);
  if (tcache_active) {
    expect_check_ok(); /* the second free tagged p again */
  } else {
    /* The second free met the bitmap at once, and p's tag, written over
     * while p was free in its run, is still gone: the heap check says so. */
    bool ok = true;
    size_t len = sizeof(ok);
    char name[64];
    snprintf(name, sizeof(name), "arena.%d.check", MALLCTL_ARENAS_ALL);
    EXPECT(mallctl(name, &ok, &len, NULL, 0) == 0 && !ok);
  }
  free(keep);
}
static void df_other_thread(void) {
  char *keep = malloc(224), *p = malloc(224);
  free(p); /* in this thread's cache */
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, free_arg, p) == 0);
  EXPECT(pthread_join(th, NULL) == 0);
  free(keep);
}
static void *free_and_hold(void *arg) {
  free(arg); /* in this thread's cache, which stays alive until joined */
  return NULL;
}
static void df_two_threads(void) {
  char *keep = malloc(48), *p = malloc(48);
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, free_and_hold, p) == 0);
  EXPECT(pthread_join(th, NULL) == 0);
  free(p); /* the other thread's exit flushed p back to its run */
  free(keep);
}
static void df_large_cached(void) {
  char *p = malloc(20000);
  free(p);
  free(p);
}
static void df_large(void) {
  char *keep = malloc(100000), *p = malloc(100000);
  free(p);
  free(p);
  free(keep);
}
static void df_huge(void) {
  char *p = malloc(3u << 20);
  free(p);
  free(p);
}

/* ---- pointers xalloc does not own ---- */

static char static_buf[64];
static void nf_stack(void) {
  char buf[64];
  sink = buf;
  free(sink);
}
static void nf_static(void) { free(static_buf + 16); }
static void nf_glibc(void) {
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  EXPECT(libc != NULL);
  void *(*glibc_malloc)(size_t) = (void *(*)(size_t))dlsym(libc, "malloc");
  void (*glibc_free)(void *) = (void (*)(void *))dlsym(libc, "free");
  EXPECT(glibc_malloc != NULL && glibc_malloc != malloc && glibc_free != free);
  void *g = glibc_malloc(100), *big = glibc_malloc(1 << 20);
  EXPECT(g != NULL && big != NULL);
  free(g);
  free(big);
  glibc_free(g);
  glibc_free(big);
}
static void nf_wild(void) {
  free((void *)0x1000);
  free((void *)(uintptr_t)0x7f1edc7a1380ULL);
  free((void *)~(uintptr_t)15);
}

/* ---- interior pointers, free runs, free chunks ---- */

static void if_small(void) {
  char *p = malloc(224);
  free(p + 16);
  free(p + 1);
  free(p);
}
static void if_large(void) {
  char *p = malloc(100000);
  free(p + 4096);
  free(p);
}
/* A large class the caches hold: its first page carries the class in the
 * page map (the free fast path serves it), so a pointer inside that page
 * must be refused there too. */
static void if_large_cached(void) {
  char *p = malloc(20000);
  free(p + 16);
  free(p + 2048);
  free(p);
}
static void sf_small_other_class(void) {
  char *p = malloc(100);
  free_sized(p, 48); /* a class the table knows, not p's */
  free_sized(p, 100);
}
static void sd_wrong_size(void) {
  char *p = malloc(100);
  sdallocx(p, 40, 0);
  sdallocx(p, 100, 0);
}
static void if_huge(void) {
  char *p = malloc(5u << 20);
  free(p + CHUNK);
  free(p + 4096);
  free(p);
}
static void fr_free_run(void) {
  char *keep = malloc(16), *p = malloc(200000);
  free(p);
  free(p + 8192);
  free(keep);
}
static void fr_free_chunk(void) {
  char *p = malloc(7u << 20);
  free(p);
  free(p + 2 * CHUNK);
}

/* ---- sized frees ---- */

static void sf_wrong_size(void) {
  char *p = malloc(100);
  free_sized(p, 1000);
  free_sized(p, 100);
}
static void sf_large_wrong_size(void) {
  char *p = malloc(50000);
  free_sized(p, 70000);
  free_sized(p, 50000);
}
static void sf_wrong_alignment(void) {
  char *p = aligned_alloc(64, 192);
  free_aligned_sized(p, 3, 192);
  free_aligned_sized(p, 64, 192);
}
static void sf_aligned_wrong_size(void) {
  char *p = aligned_alloc(4096, 8192);
  free_aligned_sized(p, 4096, 100000);
  free_aligned_sized(p, 4096, 8192);
}
static void sf_double(void) {
  char *keep = malloc(100), *p = malloc(100);
  free_sized(p, 100);
  free_sized(p, 100);
  free(keep);
}

/* ---- realloc and malloc_usable_size ---- */

static void ra_freed(void) {
  char *keep = malloc(224), *p = malloc(224);
  free(p);
  errno = 0;
  void *r = realloc(p, 500);
  EXPECT(r == NULL && errno == EINVAL);
  free(keep);
}
static void ra_interior(void) {
  char *p = malloc(224);
  errno = 0;
  EXPECT(realloc(p + 32, 500) == NULL && errno == EINVAL);
  free(p);
}
static void ra_stack(void) {
  char buf[32];
  sink = buf;
  errno = 0;
  EXPECT(realloc(sink, 64) == NULL && errno == EINVAL);
}
static void ra_huge_freed(void) {
  char *p = malloc(3u << 20);
  free(p);
  EXPECT(realloc(p, 4u << 20) == NULL);
}
static void us_freed(void) {
  char *keep = malloc(224), *p = malloc(224);
  free(p);
  EXPECT(malloc_usable_size(p) == 0);
  free(keep);
}
static void us_interior(void) {
  char *p = malloc(100000);
  EXPECT(malloc_usable_size(p + 8) == 0);
  free(p);
}
static void us_wild(void) { EXPECT(malloc_usable_size(static_buf) == 0); }

static const bad_case_t cases[] = {
    {"double free, small, in the cache", df_small_cached, "double free of 0x", "(size class 224, arena "},
    {"double free, small, after leaving the cache", df_small_after_flush, "double free of 0x",
     "(size class 224, arena "},
    {"double free, small, run gone", df_small_run_gone, "double free of 0x", NULL},
    {"double free, small, caught leaving the cache", df_small_leaving_cache, "double free of 0x",
     "size class 96"},
    {"double free, small, caught at malloc", df_small_at_malloc, "double free", "size class 96"},
    {"double free, second thread", df_other_thread, "double free of 0x", "size class 224"},
    {"double free, after the first thread exited", df_two_threads, "double free of 0x", "size class 48"},
    {"double free, large, cached", df_large_cached, "double free of 0x", "size class 20480"},
    {"double free, large", df_large, "double free of 0x", "(size class 114688, arena "},
    {"double free, huge", df_huge, "double free of 0x", "(size class 3145728, arena "},
    {"free of a stack pointer", nf_stack, "invalid free (pointer not allocated by xalloc) of 0x", NULL},
    {"free of a static pointer", nf_static, "invalid free (pointer not allocated by xalloc) of 0x", NULL},
    {"free of glibc's blocks", nf_glibc, "invalid free (pointer not allocated by xalloc) of 0x", NULL},
    {"free of wild pointers", nf_wild, "invalid free (pointer not allocated by xalloc) of 0x1000", NULL},
    {"free of interior pointers, small", if_small, "invalid free (interior pointer) of 0x",
     "(size class 224, arena "},
    {"free of interior pointers, large", if_large, "invalid free (interior pointer) of 0x",
     "size class 114688"},
    {"free of interior pointers, large and cached", if_large_cached, "invalid free (interior pointer) of 0x",
     "size class 20480"},
    {"free_sized with the size of another small class", sf_small_other_class, "mis-sized free of 0x",
     "(size class 112, arena 0): free_sized with size 48"},
    {"sdallocx with the wrong size", sd_wrong_size, "mis-sized free of 0x", "(size class 112, arena 0)"},
    {"free of interior pointers, huge", if_huge, "invalid free (interior pointer) of 0x",
     "size class 5242880"},
    {"free of a pointer into a free run", fr_free_run, "invalid free (pointer into a free run) of 0x", NULL},
    {"free of a pointer into free chunk memory", fr_free_chunk,
     "invalid free (pointer into free chunk memory) of 0x", NULL},
    {"free_sized with the wrong size", sf_wrong_size, "mis-sized free of 0x",
     "(size class 112, arena 0): free_sized with size 1000"},
    {"free_sized with the wrong size, large", sf_large_wrong_size, "mis-sized free of 0x",
     "free_sized with size 70000"},
    {"free_aligned_sized with a bad alignment", sf_wrong_alignment, "mis-aligned free of 0x",
     "free_aligned_sized with alignment 3 and size 192"},
    {"free_aligned_sized with the wrong size", sf_aligned_wrong_size, "mis-sized free of 0x",
     "alignment 4096 and size 100000"},
    {"free_sized twice", sf_double, "double free of 0x", "size class 112"},
    {"realloc of a freed pointer", ra_freed, "invalid realloc (already freed) of 0x", "size class 224"},
    {"realloc of an interior pointer", ra_interior, "invalid realloc (interior pointer) of 0x", NULL},
    {"realloc of a stack pointer", ra_stack, "invalid realloc (pointer not allocated by xalloc)", NULL},
    {"realloc of a freed huge pointer", ra_huge_freed, "invalid realloc (already freed) of 0x",
     "size class 3145728"},
    {"malloc_usable_size of a freed pointer", us_freed, "invalid malloc_usable_size (already freed) of 0x",
     NULL},
    {"malloc_usable_size of an interior pointer", us_interior,
     "invalid malloc_usable_size (interior pointer) of 0x", NULL},
    {"malloc_usable_size of a static pointer", us_wild,
     "invalid malloc_usable_size (pointer not allocated by xalloc)", NULL},
};

static const tag_case_t tag_cases[] = {
    {{"double free after leaving the cache, tag overwritten, reused", df_after_flush_reused,
      "write after free (or double free) detected at malloc of 0x", "(size class 64, arena "},
     "double free of 0x", TAGS_WITH_CACHE},
    {{"double free through a stale pointer into a new run, never handed out", df_stale_fresh_run,
      "double free of 0x", "(size class 48, arena "},
     NULL, TAGS_ALWAYS},
    {{"write after free into a region back in its run", waf_in_run,
      "write after free (or double free) detected at malloc of 0x", "(size class 64, arena "},
     NULL, TAGS_ALWAYS},
    {{"double free in a flush batch after a neighbour from its run", df_in_batch_after_neighbour,
      "double free of 0x", "(size class 64, arena "},
     NULL, TAGS_WITH_CACHE},
    {{"double free in the cache, tag overwritten, one copy live at the flush", df_flushed_copy_live,
      "write after free (or double free) detected leaving the thread cache of 0x", "(size class 96, arena "},
     "double free of 0x", TAGS_WITH_CACHE},
};

static bool tag_case_runs(const tag_case_t *t) {
  return config_heap_checks || (t->tags == TAGS_WITH_CACHE && !tcache_active);
}
static const char *tag_case_want(const tag_case_t *t) {
  return t->want_nocache != NULL && !tcache_active ? t->want_nocache : t->c.want;
}

static void run_abort(void *arg) {
  const bad_case_t *c = arg;
  opt_abort = true;
  c->fn();
  _exit(3); /* not reached: the report aborts */
}

static void run_ignore(void *arg) {
  const bad_case_t *c = arg;
  opt_abort = false;
  report_hook = collect_report;
  uint64_t before = report_count;
  c->fn();
  EXPECT(report_count > before);
  child_heap_ok();
  EXPECT(report_count > before);
}

static void check_report(const bad_case_t *c, const char *want, const char *err) {
  if (strstr(err, want) == NULL || (c->want2 != NULL && strstr(err, c->want2) == NULL))
    fail_msg("%s: expected \"%s\"%s%s in:\n%s", c->name, want, c->want2 ? " and " : "",
             c->want2 ? c->want2 : "", err);
  /* One line per report, each starting with "xalloc: ". */
  for (const char *l = err; *l != '\0';) {
    const char *e = strchr(l, '\n');
    if (e == NULL) fail_msg("%s: unterminated line in:\n%s", c->name, err);
    if (strncmp(l, "xalloc: ", 8) != 0) fail_msg("%s: unexpected line in:\n%s", c->name, err);
    l = e + 1;
  }
}

static void bad_call_abort(const bad_case_t *c, const char *want) {
  char err[4096];
  int st = xtest_run_child(run_abort, (void *)c, err, sizeof(err));
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT))
    fail_msg("%s: child did not abort (status %x):\n%s", c->name, st, err);
  check_report(c, want, err);
  /* Exactly one line: the process stops at the first report. */
  if (strchr(err, '\n') != strrchr(err, '\n')) fail_msg("%s: more than one line:\n%s", c->name, err);
}

static void bad_call_ignored(const bad_case_t *c, const char *want) {
  char err[8192];
  int st = xtest_run_child(run_ignore, (void *)c, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("%s: child failed with abort:false (status %x):\n%s", c->name, st, err);
  check_report(c, want, err);
}

static void test_bad_calls_abort(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) bad_call_abort(&cases[i], cases[i].want);
  for (size_t i = 0; i < sizeof(tag_cases) / sizeof(tag_cases[0]); i++)
    if (tag_case_runs(&tag_cases[i])) bad_call_abort(&tag_cases[i].c, tag_case_want(&tag_cases[i]));
}

static void test_bad_calls_ignored(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) bad_call_ignored(&cases[i], cases[i].want);
  for (size_t i = 0; i < sizeof(tag_cases) / sizeof(tag_cases[0]); i++)
    if (tag_case_runs(&tag_cases[i])) bad_call_ignored(&tag_cases[i].c, tag_case_want(&tag_cases[i]));
}

/* ---- overruns ---- */

/* Write past the end of blocks into their neighbours (live or free), as
 * far as the next block's end, never past the chunk. */
static void overrun_child(void *arg) {
  (void)arg;
  opt_abort = false;
  static const size_t sizes[] = {16, 48, 224, 1024, 3000, 14336, 20480, 65536};
  enum { N = 64 };
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    size_t sz = sizes[s];
    char *p[N];
    for (int i = 0; i < N; i++) p[i] = malloc(sz);
    for (int i = 0; i < N; i += 3) free(p[i]), p[i] = NULL;
    for (int i = 0; i < N; i++) {
      if (p[i] == NULL) continue;
      arena_chunk_t *chunk = rtree_get((uintptr_t)p[i]);
      EXPECT(chunk != NULL);
      size_t u = malloc_usable_size(p[i]);
      size_t room = (size_t)(chunk->addr + CHUNK - (p[i] + u));
      memset(p[i] + u, 0xEE, room < u ? room : u);
    }
    for (unsigned a = 0; a < narenas; a++) EXPECT(arena_validate(arenas[a]));
    for (unsigned a = 0; a < narenas; a++) arena_check(arenas[a], true);
    for (int i = 0; i < N; i++) free(p[i]);
  }
  /* The metadata is intact; the overwritten free tags are reported (at
   * malloc or when leaving the cache, or by the heap check) and allocation
   * goes on. */
  tcache_flush_all(tsd_fetch());
  for (unsigned a = 0; a < narenas; a++) EXPECT(arena_validate(arenas[a]));
  for (unsigned a = 0; a < narenas; a++) arena_check(arenas[a], true);
  for (int round = 0; round < 3; round++) {
    void *q[500];
    for (int i = 0; i < 500; i++) {
      size_t sz = sizes[i % 8];
      q[i] = malloc(sz);
      EXPECT(q[i] != NULL);
      memset(q[i], 0x11, sz);
    }
    for (int i = 0; i < 500; i++) free(q[i]);
  }
  tcache_flush_all(tsd_fetch());
  for (unsigned a = 0; a < narenas; a++) EXPECT(arena_validate(arenas[a]));
  fprintf(stderr, "OVERRUN DONE\n");
}

static void test_overrun_keeps_metadata(void **state) {
  (void)state;
  static char err[1 << 16];
  int st = xtest_run_child(overrun_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("overrun child failed (%x):\n%s", st, err);
  assert_non_null(strstr(err, "OVERRUN DONE"));
  /* Some overwritten tag was noticed. */
  assert_true(strstr(err, "lost its free tag") != NULL || strstr(err, "write after free") != NULL ||
              strstr(err, "double free") != NULL);
}

/* ---- the heap check ---- */

static void check_child(void *arg) {
  (void)arg;
  opt_abort = false;
  char *keep = malloc(224), *p = malloc(224);
  free(p);
  tcache_flush_all(tsd_fetch());
  EXPECT(arena_check(arenas[0], true));
  memset(p, 0x41, 16); /* write after free into a region free in its run */
  EXPECT(!arena_check(arenas[0], true));
  EXPECT(arena_validate(arenas[0])); /* the structure itself is fine */
  /* Break the metadata on purpose: nfree of the run disagrees. */
  arena_chunk_t *chunk = rtree_get((uintptr_t)keep);
  arena_run_t *run = chunk->map[(size_t)(keep - chunk->addr) >> LG_PAGE];
  run->nfree++;
  EXPECT(!arena_validate(arenas[0]));
  EXPECT(!arena_check(arenas[0], true));
  run->nfree--;
  memcpy(p, &(uintptr_t){tag_of(p)}, sizeof(uintptr_t));
  EXPECT(arena_check(arenas[0], true));
  /* The public way: malloc_info runs the check on every arena. */
  FILE *f = tmpfile();
  EXPECT(malloc_info(0, f) == 0);
  rewind(f);
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  EXPECT(strstr(buf, "<check arenas=\"") != NULL && strstr(buf, "failed=\"0\"") != NULL);
  free(keep);
}

static void test_heap_check(void **state) {
  (void)state;
  char err[8192];
  int st = xtest_run_child(check_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("check child failed (%x):\n%s", st, err);
  assert_non_null(strstr(err, "xalloc: arena 0 check: free region 0x"));
  assert_non_null(strstr(err, "(size class 224) lost its free tag"));
  assert_non_null(strstr(err, "xalloc: arena 0 check: small run at 0x"));
  assert_non_null(strstr(err, "bitmap has"));
}

int main(void) {
  free(malloc(1));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_calls_abort),
      cmocka_unit_test(test_bad_calls_ignored),
      cmocka_unit_test(test_overrun_keeps_metadata),
      cmocka_unit_test(test_heap_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
