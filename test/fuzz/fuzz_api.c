/*
 * libFuzzer target: the input bytes become a sequence of API calls --
 * malloc, calloc, realloc, aligned_alloc, free, free_sized,
 * free_aligned_sized, malloc_usable_size -- and bad calls (double frees,
 * frees of interior, stack, static and wild pointers, mis-sized frees,
 * realloc and malloc_usable_size of freed pointers), run with abort:false
 * against a model of the live blocks. Checked on every call: contents of
 * live blocks survive, no live block is handed out twice, every good call
 * makes no report, every bad call makes exactly one one-line report, and
 * at the end of each input every arena passes the heap check.
 *
 * Build and run: make fuzz (FUZZ_TIME=seconds, default 60); make check
 * runs it briefly. xalloc is compiled into the target, so it is also the
 * allocator of libFuzzer itself.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc/internal/arena.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"

const char *malloc_conf = "abort:false";

#define NSLOTS 64
#define NFREED 16

typedef struct {
  unsigned char *p;
  size_t size;
  unsigned char fill;
} slot_t;

static slot_t live[NSLOTS];
static void *freed[NFREED];
static unsigned nfreed_next;
static char last_line[512];

static void hook(const char *line) {
  size_t n = strlen(line);
  if (n >= sizeof(last_line)) n = sizeof(last_line) - 1;
  memcpy(last_line, line, n);
  last_line[n] = '\0';
}

#define FUZZ_ASSERT(c)                                                                     \
  do {                                                                                     \
    if (!(c)) {                                                                            \
      fprintf(stderr, "fuzz_api: check failed at line %d: %s (last report: %s)\n", __LINE__, #c, \
              last_line);                                                                  \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

typedef struct {
  const uint8_t *d;
  size_t n, i;
} input_t;

static unsigned take(input_t *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static unsigned take16(input_t *in) { return take(in) | (take(in) << 8); }

static size_t take_size(input_t *in) {
  unsigned k = take(in);
  if (k < 200) return take(in) + (k & 7) * 256;  /* up to 2 KiB: small */
  if (k < 250) return 2048 + take16(in) * 4;     /* up to ~260 KiB: small and large */
  return (size_t)(2 + (k & 3)) << 20;            /* 2..5 MiB: huge */
}

static bool is_live(const void *p) {
  for (int i = 0; i < NSLOTS; i++)
    if (live[i].p != NULL && (const void *)live[i].p <= p && p < (const void *)(live[i].p + live[i].size + 1))
      return true;
  return false;
}

static void check_contents(const slot_t *s) {
  size_t n = s->size < 64 ? s->size : 64;
  for (size_t i = 0; i < n; i++) FUZZ_ASSERT(s->p[i] == s->fill);
  if (s->size > 0) FUZZ_ASSERT(s->p[s->size - 1] == s->fill);
}

static void put(slot_t *s, void *p, size_t size, unsigned char fill) {
  FUZZ_ASSERT(p != NULL);
  for (int i = 0; i < NSLOTS; i++)
    if (live[i].p != NULL) FUZZ_ASSERT(!((unsigned char *)p < live[i].p + live[i].size && live[i].p < (unsigned char *)p + (size ? size : 1)));
  FUZZ_ASSERT(malloc_usable_size(p) >= size);
  s->p = p;
  s->size = size;
  s->fill = fill;
  memset(p, fill, size);
}

static void forget(slot_t *s) {
  freed[nfreed_next++ % NFREED] = s->p;
  s->p = NULL;
}

/* Expect exactly one report from a bad call. */
static uint64_t before;
static void bad_begin(void) {
  before = report_count;
  last_line[0] = '\0';
}
static void bad_end(void) {
  FUZZ_ASSERT(report_count == before + 1);
  FUZZ_ASSERT(strncmp(last_line, "xalloc: ", 8) == 0);
  FUZZ_ASSERT(strchr(last_line, '\n') == last_line + strlen(last_line) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int booted;
  if (!booted) {
    free(malloc(1));
    opt_abort = false;
    report_hook = hook;
    booted = 1;
  }
  input_t in = {data, size, 0};
  memset(live, 0, sizeof(live));
  memset(freed, 0, sizeof(freed));
  unsigned ops = 0;
  while (in.i < in.n && ops++ < 400) {
    unsigned op = take(&in) % 16;
    slot_t *s = &live[take(&in) % NSLOTS];
    uint64_t good = report_count;
    switch (op) {
    case 0: case 1: case 2: /* malloc */
      if (s->p != NULL) break;
      {
        size_t n = take_size(&in);
        put(s, malloc(n), n, (unsigned char)(take(&in) | 1));
      }
      break;
    case 3: /* calloc */
      if (s->p != NULL) break;
      {
        size_t n = take_size(&in);
        unsigned char *p = calloc(1, n);
        FUZZ_ASSERT(p != NULL);
        for (size_t i = 0; i < n && i < 256; i++) FUZZ_ASSERT(p[i] == 0);
        put(s, p, n, 0x33);
      }
      break;
    case 4: /* aligned_alloc */
      if (s->p != NULL) break;
      {
        size_t a = (size_t)1 << (take(&in) % 14), n = take_size(&in);
        void *p = aligned_alloc(a, n);
        FUZZ_ASSERT(((uintptr_t)p & (a - 1)) == 0);
        put(s, p, n, 0x44);
      }
      break;
    case 5: case 6: /* free */
      if (s->p == NULL) break;
      check_contents(s);
      if (op == 6 && s->fill != 0x44)
        free_sized(s->p, s->size);
      else
        free(s->p);
      forget(s);
      break;
    case 7: /* realloc */
      if (s->p == NULL) break;
      {
        check_contents(s);
        size_t n = take_size(&in) + 1, keep = n < s->size ? n : s->size;
        unsigned char fill = s->fill;
        unsigned char *old = s->p;
        s->p = NULL;
        unsigned char *p = realloc(old, n);
        FUZZ_ASSERT(p != NULL);
        for (size_t i = 0; i < keep && i < 64; i++) FUZZ_ASSERT(p[i] == fill);
        if (p != old) freed[nfreed_next++ % NFREED] = old;
        put(s, p, n, fill);
      }
      break;
    case 8: /* double free, or free of a pointer freed earlier */
    case 9: { /* realloc / malloc_usable_size of it */
      void *f = freed[take(&in) % NFREED];
      if (f == NULL || is_live(f)) break;
      bad_begin();
      if (op == 8) {
        free(f);
      } else if (take(&in) & 1) {
        errno = 0;
        FUZZ_ASSERT(realloc(f, 100) == NULL && errno == EINVAL);
      } else {
        FUZZ_ASSERT(malloc_usable_size(f) == 0);
      }
      bad_end();
      continue;
    }
    case 10: /* interior pointer */
      if (s->p == NULL || s->size < 2) break;
      {
        size_t off = 1 + take16(&in) % (s->size - 1);
        bad_begin();
        unsigned how = take(&in) % 3;
        if (how == 0) free(s->p + off);
        else if (how == 1) FUZZ_ASSERT(realloc(s->p + off, 10) == NULL);
        else FUZZ_ASSERT(malloc_usable_size(s->p + off) == 0);
        bad_end();
        check_contents(s);
      }
      continue;
    case 11: { /* pointers that are not xalloc's */
      static char static_buf[64];
      char stack_buf[64];
      void *wild[] = {static_buf + (take(&in) & 63), stack_buf, (void *)(uintptr_t)(take16(&in) << 4),
                      (void *)((uintptr_t)take16(&in) << 32)};
      void *w = wild[take(&in) % 4];
      if (w == NULL || is_live(w) || rtree_get((uintptr_t)w) != NULL) break;
      bad_begin();
      free(w);
      bad_end();
      continue;
    }
    case 12: /* mis-sized free */
      if (s->p == NULL || s->fill == 0x44) break;
      {
        size_t wrong = s->size * 2 + 4096;
        bad_begin();
        free_sized(s->p, wrong);
        bad_end();
        check_contents(s);
      }
      continue;
    case 13: /* free_aligned_sized, right or with a bad alignment */
      if (s->p == NULL || s->fill != 0x44) break;
      check_contents(s);
      {
        size_t a = 1;
        while (((uintptr_t)s->p & (a * 2 - 1)) == 0 && a < 8192) a *= 2;
        if (take(&in) & 1) {
          bad_begin();
          free_aligned_sized(s->p, 3, s->size);
          bad_end();
          continue;
        } else {
          /* The alignment the block was asked with is unknown here; the
           * one it has, capped, gives the same size class only when the
           * block is not larger for it, so use free() then. */
          free(s->p);
          forget(s);
        }
      }
      break;
    case 14: /* usable size of a live block */
      if (s->p != NULL) FUZZ_ASSERT(malloc_usable_size(s->p) >= s->size);
      break;
    case 15: /* leave the cache */
      tcache_flush_all(tsd_fetch());
      break;
    }
    FUZZ_ASSERT(report_count == good); /* good calls make no report */
  }
  for (int i = 0; i < NSLOTS; i++)
    if (live[i].p != NULL) {
      check_contents(&live[i]);
      free(live[i].p);
      live[i].p = NULL;
    }
  tcache_flush_all(tsd_fetch());
  for (unsigned i = 0; i < narenas; i++) FUZZ_ASSERT(arena_check(arenas[i], true));
  return 0;
}
