/*
 * A randomized model test of the whole standard API.
 *
 * Random sequences of every entry point (malloc, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * free, free_sized, free_aligned_sized, malloc_usable_size) run against a
 * model of the live blocks: pointer, requested size, alignment, usable size
 * and a fill pattern byte. After every call the result is checked (non-NULL,
 * aligned, usable size large enough and stable, calloc memory zero, realloc
 * contents kept, no overlap with any other live block, kept in an
 * address-sorted set) and a block's whole usable range must still hold its
 * pattern when it is freed. A second test runs four threads on one shared
 * model, handing blocks to each other through a queue so that many blocks
 * are freed or reallocated by a thread other than the one that allocated them.
 */
#include "xtest.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "xalloc/xalloc.h"

#define PAGE_SZ ((size_t)4096)
#define MIB ((size_t)1 << 20)

/* ---- address-sorted set of live ranges: the overlap check ---- */

typedef struct {
  uintptr_t addr;
  size_t len;
} range_t;

typedef struct {
  range_t *v;
  size_t n, cap;
  pthread_mutex_t *lock; /* NULL when used by one thread */
} rangeset_t;

/* Index of the first range with addr >= key. */
static size_t rs_lower(const rangeset_t *rs, uintptr_t key) {
  size_t lo = 0, hi = rs->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (rs->v[mid].addr < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Insert [addr, addr + len); false (and a description in why) if it overlaps a live range. */
static bool rs_insert(rangeset_t *rs, uintptr_t addr, size_t len, char *why, size_t whysize) {
  bool ok = true;
  if (len == 0) len = 1;
  if (rs->lock) pthread_mutex_lock(rs->lock);
  size_t i = rs_lower(rs, addr);
  if (i > 0 && rs->v[i - 1].addr + rs->v[i - 1].len > addr) {
    snprintf(why, whysize, "[%#lx,+%zu) overlaps live [%#lx,+%zu)", (unsigned long)addr, len,
             (unsigned long)rs->v[i - 1].addr, rs->v[i - 1].len);
    ok = false;
  } else if (i < rs->n && addr + len > rs->v[i].addr) {
    snprintf(why, whysize, "[%#lx,+%zu) overlaps live [%#lx,+%zu)", (unsigned long)addr, len,
             (unsigned long)rs->v[i].addr, rs->v[i].len);
    ok = false;
  } else {
    if (rs->n == rs->cap) {
      size_t ncap = rs->cap ? rs->cap * 2 : 1024;
      range_t *nv = realloc(rs->v, ncap * sizeof(*nv));
      if (nv == NULL) {
        snprintf(why, whysize, "model realloc failed");
        ok = false;
        goto out;
      }
      rs->v = nv;
      rs->cap = ncap;
    }
    memmove(&rs->v[i + 1], &rs->v[i], (rs->n - i) * sizeof(range_t));
    rs->v[i].addr = addr;
    rs->v[i].len = len;
    rs->n++;
  }
out:
  if (rs->lock) pthread_mutex_unlock(rs->lock);
  return ok;
}

/* Remove the range starting at addr; false if there is none. */
static bool rs_remove(rangeset_t *rs, uintptr_t addr) {
  bool ok = false;
  if (rs->lock) pthread_mutex_lock(rs->lock);
  size_t i = rs_lower(rs, addr);
  if (i < rs->n && rs->v[i].addr == addr) {
    memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof(range_t));
    rs->n--;
    ok = true;
  }
  if (rs->lock) pthread_mutex_unlock(rs->lock);
  return ok;
}

/* ---- live blocks ---- */

enum { K_PLAIN, K_ALIGNED, K_PVALLOC };

typedef struct {
  unsigned char *p;
  size_t size;   /* requested */
  size_t align;  /* requested alignment (K_ALIGNED) */
  size_t usable; /* malloc_usable_size at allocation */
  uint8_t pat;   /* every usable byte holds this */
  uint8_t kind;
} block_t;

#define QCAP 512
typedef struct {
  pthread_mutex_t lock;
  block_t q[QCAP];
  size_t head, n;
} queue_t;

typedef struct {
  uint64_t rng;
  unsigned long long seed;
  long op;
  rangeset_t *rs;
  queue_t *queue; /* NULL: no hand-off */
  block_t *blocks;
  size_t n, cap;
  size_t live_bytes;
  uint8_t next_pat;
  int mode; /* size mix: 0 default, 1 tiny, 2 large, 3 huge and big alignments */
  const char *opname;
  char err[512];
  volatile int *stop; /* set by any thread on failure */
  /* statistics, to show the test exercised what it claims */
  unsigned long nops[16];
  unsigned long handed_in, handed_out;
} ctx_t;

#define MAX_LIVE 256
#define MAX_LIVE_BYTES (48 * MIB)

#define CHECK(c, ...)                                                                      \
  do {                                                                                     \
    if (!(c)) {                                                                            \
      int k_ = snprintf(ctx->err, sizeof(ctx->err), "seed %llu op %ld (%s), line %d: %s: ", \
                        ctx->seed, ctx->op, ctx->opname, __LINE__, #c);                    \
      if (k_ > 0 && (size_t)k_ < sizeof(ctx->err))                                         \
        snprintf(ctx->err + k_, sizeof(ctx->err) - (size_t)k_, __VA_ARGS__);               \
      if (ctx->stop) *ctx->stop = 1;                                                       \
      return false;                                                                        \
    }                                                                                      \
  } while (0)

static inline uint64_t rnd(ctx_t *ctx) { return xtest_rand(&ctx->rng); }
static inline size_t rnd_below(ctx_t *ctx, size_t n) { return (size_t)(rnd(ctx) % n); }

/* Uniform in [lo, hi]. */
static size_t rnd_range(ctx_t *ctx, size_t lo, size_t hi) { return lo + rnd_below(ctx, hi - lo + 1); }

/* Mostly small, some large up to 1 MiB, a few huge 2-16 MiB. */
static size_t rnd_size(ctx_t *ctx) {
  unsigned r = (unsigned)rnd_below(ctx, 10000);
  if (ctx->mode == 1 && r < 9900) return rnd_range(ctx, 0, 128);
  if (ctx->mode == 2 && r < 8000) {
    unsigned lg = 12 + (unsigned)rnd_below(ctx, 8);
    return rnd_range(ctx, (size_t)1 << lg, (size_t)1 << (lg + 1));
  }
  if (ctx->mode == 3 && r < 5000) return rnd_range(ctx, MIB / 2, 8 * MIB);
  if (r < 300) return rnd_range(ctx, 0, 16);
  if (r < 6500) return rnd_range(ctx, 1, 256);
  if (r < 8500) return rnd_range(ctx, 257, 4096);
  if (r < 9500) return rnd_range(ctx, 4097, 16384);
  if (r < 9980) {
    /* log-uniform from 16 KiB to 1 MiB */
    unsigned lg = 14 + (unsigned)rnd_below(ctx, 6);
    return rnd_range(ctx, (size_t)1 << lg, (size_t)1 << (lg + 1));
  }
  if (r < 9994) return rnd_range(ctx, 1 * MIB, 2 * MIB); /* around the huge threshold */
  return rnd_range(ctx, 2 * MIB, 16 * MIB);
}

/* A power of two from 1 to 1 MiB, mostly small. */
static size_t rnd_align(ctx_t *ctx) {
  unsigned r = (unsigned)rnd_below(ctx, 100);
  if (ctx->mode == 3 && r < 50) return (size_t)1 << rnd_range(ctx, 16, 20);
  if (r < 60) return (size_t)1 << rnd_below(ctx, 7);   /* 1..64 */
  if (r < 90) return (size_t)1 << rnd_range(ctx, 7, 13); /* 128..8 KiB */
  return (size_t)1 << rnd_range(ctx, 14, 20);           /* 16 KiB..1 MiB */
}

/* Whether all n bytes at p equal c. */
static bool all_bytes(const unsigned char *p, unsigned char c, size_t n) {
  if (n == 0) return true;
  if (p[0] != c) return false;
  return memcmp(p, p + 1, n - 1) == 0;
}

/* First offset in [0, n) whose byte differs from c (n if none), for messages. */
static size_t first_diff(const unsigned char *p, unsigned char c, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != c) return i;
  return n;
}

static size_t default_align(size_t size) { return size >= 16 ? 16 : 8; }

static uint8_t new_pat(ctx_t *ctx) {
  ctx->next_pat = (uint8_t)(ctx->next_pat % 254 + 1); /* 1..254: never 0, never 0xff */
  return ctx->next_pat;
}

/* Checks common to every new block; records it in the model and fills it. */
static bool accept_block(ctx_t *ctx, void *vp, size_t size, size_t align, int kind, bool zeroed) {
  unsigned char *p = vp;
  CHECK(p != NULL, "size %zu align %zu errno %d", size, align, errno);
  size_t want = default_align(size);
  if (align > want) want = align;
  CHECK(((uintptr_t)p & (want - 1)) == 0, "%p size %zu not aligned to %zu", (void *)p, size, want);
  size_t usable = malloc_usable_size(p);
  CHECK(usable >= size, "%p usable %zu < size %zu", (void *)p, usable, size);
  CHECK(usable <= size + size / 4 + 2 * MIB + 64 + (align > 16 ? align : 0),
        "%p usable %zu absurd for size %zu", (void *)p, usable, size);
  if (kind == K_PVALLOC) {
    size_t rounded = size == 0 ? PAGE_SZ : (size + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
    CHECK(usable >= rounded, "pvalloc(%zu) usable %zu < %zu", size, usable, rounded);
  }
  if (zeroed)
    CHECK(all_bytes(p, 0, size), "calloc(%zu) at %p: byte %zu not zero", size, (void *)p,
          first_diff(p, 0, size));
  char why[200];
  CHECK(rs_insert(ctx->rs, (uintptr_t)p, usable, why, sizeof(why)), "new block %s", why);
  block_t b = {p, size, align, usable, new_pat(ctx), (uint8_t)kind};
  memset(p, b.pat, usable);
  if (ctx->n == ctx->cap) {
    ctx->cap = ctx->cap ? ctx->cap * 2 : 64;
    ctx->blocks = realloc(ctx->blocks, ctx->cap * sizeof(block_t));
    CHECK(ctx->blocks != NULL, "model out of memory");
  }
  ctx->blocks[ctx->n++] = b;
  ctx->live_bytes += usable;
  return true;
}

/* The block is intact: usable size unchanged, whole pattern there. */
static bool verify_block(ctx_t *ctx, const block_t *b) {
  size_t usable = malloc_usable_size(b->p);
  CHECK(usable == b->usable, "%p (size %zu) usable size changed from %zu to %zu", (void *)b->p,
        b->size, b->usable, usable);
  CHECK(all_bytes(b->p, b->pat, b->usable), "%p (size %zu, usable %zu, pattern %#x) corrupt at offset %zu",
        (void *)b->p, b->size, b->usable, b->pat, first_diff(b->p, b->pat, b->usable));
  return true;
}

/* Take block i out of the model (and the range set). */
static bool take_block(ctx_t *ctx, size_t i, block_t *out) {
  *out = ctx->blocks[i];
  ctx->blocks[i] = ctx->blocks[--ctx->n];
  ctx->live_bytes -= out->usable;
  CHECK(rs_remove(ctx->rs, (uintptr_t)out->p), "%p missing from the range set", (void *)out->p);
  return true;
}

/* Free a verified block (already out of the model) with a random free call. */
static bool free_block(ctx_t *ctx, const block_t *b) {
  ctx->opname = "verify before free";
  if (!verify_block(ctx, b)) return false;
  unsigned r = (unsigned)rnd_below(ctx, 3);
  if (r == 1 && b->kind == K_PLAIN) {
    ctx->opname = "free_sized";
    ctx->nops[10]++;
    free_sized(b->p, b->size);
  } else if (r == 2 && b->kind == K_ALIGNED) {
    ctx->opname = "free_aligned_sized";
    ctx->nops[11]++;
    free_aligned_sized(b->p, b->align, b->size);
  } else {
    ctx->opname = "free";
    ctx->nops[9]++;
    free(b->p);
  }
  return true;
}

static bool op_alloc(ctx_t *ctx) {
  size_t size = rnd_size(ctx), align = 0;
  void *p = NULL;
  int kind = K_PLAIN;
  bool zeroed = false;
  errno = 0;
  switch (rnd_below(ctx, 10)) {
  case 0:
  case 1:
  case 2:
    ctx->opname = "malloc";
    ctx->nops[0]++;
    p = malloc(size);
    break;
  case 3: {
    ctx->opname = "calloc";
    ctx->nops[1]++;
    /* split size into n * m where possible */
    size_t m = size >= 64 && size % 8 == 0 ? 8 : 1;
    if (rnd_below(ctx, 2)) {
      p = calloc(size / m, m);
    } else {
      p = calloc(m, size / m);
    }
    zeroed = true;
    break;
  }
  case 4:
    ctx->opname = "realloc(NULL)";
    ctx->nops[2]++;
    p = realloc(NULL, size);
    break;
  case 5: {
    ctx->opname = "reallocarray(NULL)";
    ctx->nops[3]++;
    size_t m = size % 3 == 0 ? 3 : 1;
    p = reallocarray(NULL, size / m, m);
    break;
  }
  case 6: {
    ctx->opname = "posix_memalign";
    ctx->nops[4]++;
    align = rnd_align(ctx);
    if (align < sizeof(void *)) align = sizeof(void *);
    void *q = (void *)0x1;
    int rc = posix_memalign(&q, align, size);
    CHECK(rc == 0, "posix_memalign(%zu, %zu) = %d", align, size, rc);
    p = q;
    kind = K_ALIGNED;
    break;
  }
  case 7:
    ctx->opname = "aligned_alloc";
    ctx->nops[5]++;
    align = rnd_align(ctx);
    p = aligned_alloc(align, size);
    kind = K_ALIGNED;
    break;
  case 8:
    ctx->opname = "memalign";
    ctx->nops[6]++;
    align = rnd_align(ctx);
    p = memalign(align, size);
    kind = K_ALIGNED;
    break;
  default:
    if (rnd_below(ctx, 2)) {
      ctx->opname = "valloc";
      ctx->nops[7]++;
      p = valloc(size);
      align = PAGE_SZ;
      kind = K_ALIGNED;
    } else {
      ctx->opname = "pvalloc";
      ctx->nops[8]++;
      p = pvalloc(size);
      align = PAGE_SZ;
      kind = K_PVALLOC;
    }
    break;
  }
  return accept_block(ctx, p, size, align, kind, zeroed);
}

/* realloc or reallocarray of block i to a new size (which may be 0). */
static bool op_realloc(ctx_t *ctx, size_t i) {
  block_t b;
  if (!take_block(ctx, i, &b)) return false;
  if (!verify_block(ctx, &b)) return false;
  size_t size;
  switch (rnd_below(ctx, 8)) {
  case 0:
  case 1: /* grow a little */
    size = b.size + rnd_range(ctx, 1, b.size / 2 + 64);
    break;
  case 2: /* grow to anything */
    size = b.size + rnd_size(ctx);
    break;
  case 3:
  case 4: /* shrink */
    size = b.size ? rnd_below(ctx, b.size) : 0;
    if (size == 0) size = 1;
    break;
  case 5: /* same size, or just inside the usable size */
    size = rnd_below(ctx, 2) ? b.size : b.usable;
    break;
  case 6:
    size = rnd_size(ctx);
    break;
  default:
    size = rnd_below(ctx, 4) == 0 ? 0 : rnd_size(ctx);
    break;
  }
  if (size > 24 * MIB) size = 24 * MIB;
  unsigned char *p;
  errno = 0;
  if (rnd_below(ctx, 4) == 0) {
    ctx->opname = "reallocarray";
    ctx->nops[12]++;
    size_t m = size % 5 == 0 && size != 0 ? 5 : 1;
    if (rnd_below(ctx, 16) == 0) {
      /* an overflowing count fails and leaves the block alone */
      errno = 0;
      void *q = reallocarray(b.p, SIZE_MAX / 2 + 1, 2 + size % 3);
      CHECK(q == NULL, "overflowing reallocarray returned %p", q);
      CHECK(errno == ENOMEM, "overflowing reallocarray: errno %d", errno);
      if (!verify_block(ctx, &b)) return false;
    }
    p = reallocarray(b.p, m == 5 ? size / 5 : size, m);
  } else {
    ctx->opname = "realloc";
    ctx->nops[13]++;
    p = realloc(b.p, size);
  }
  if (size == 0) {
    /* The block is freed; a non-NULL result is a new minimal block. */
    if (p == NULL) return true;
    return accept_block(ctx, p, 0, 0, K_PLAIN, false);
  }
  CHECK(p != NULL, "realloc(%p, %zu) from size %zu: NULL, errno %d", (void *)b.p, size, b.size, errno);
  size_t keep = b.size < size ? b.size : size;
  CHECK(all_bytes(p, b.pat, keep), "realloc %p (size %zu, pattern %#x) -> %p (size %zu): byte %zu lost",
        (void *)b.p, b.size, b.pat, (void *)p, size, first_diff(p, b.pat, keep));
  CHECK(((uintptr_t)p & (default_align(size) - 1)) == 0, "realloc result %p not aligned for size %zu",
        (void *)p, size);
  size_t usable = malloc_usable_size(p);
  CHECK(usable >= size, "realloc %p -> %p: usable %zu < size %zu", (void *)b.p, (void *)p, usable, size);
  char why[200];
  CHECK(rs_insert(ctx->rs, (uintptr_t)p, usable, why, sizeof(why)),
        "realloc %p (size %zu) -> %p (size %zu): %s", (void *)b.p, b.size, (void *)p, size, why);
  block_t nb = {p, size, 0, usable, b.pat, K_PLAIN};
  memset(p + keep, nb.pat, usable - keep);
  ctx->blocks[ctx->n++] = nb; /* the slot freed by take_block */
  ctx->live_bytes += usable;
  return true;
}

static bool op_usable(ctx_t *ctx, size_t i) {
  ctx->opname = "malloc_usable_size";
  ctx->nops[14]++;
  block_t *b = &ctx->blocks[i];
  size_t u = malloc_usable_size(b->p);
  CHECK(u == b->usable && u >= b->size, "%p size %zu: usable %zu, was %zu", (void *)b->p, b->size, u,
        b->usable);
  /* Reading the whole block is cheap for small ones. */
  if (b->usable <= 4096) if (!verify_block(ctx, b)) return false;
  return true;
}

/* Hand block i to another thread through the queue; false if the queue is full. */
static bool queue_push(queue_t *q, const block_t *b) {
  bool ok = false;
  pthread_mutex_lock(&q->lock);
  if (q->n < QCAP) {
    q->q[(q->head + q->n) % QCAP] = *b;
    q->n++;
    ok = true;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

static bool queue_pop(queue_t *q, block_t *b) {
  bool ok = false;
  pthread_mutex_lock(&q->lock);
  if (q->n > 0) {
    *b = q->q[q->head];
    q->head = (q->head + 1) % QCAP;
    q->n--;
    ok = true;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

/* One random operation. */
static bool step(ctx_t *ctx) {
  ctx->op++;
  ctx->opname = "?";
  /* Blocks from the queue: adopt them (verify, then free, realloc or keep). */
  if (ctx->queue != NULL && ctx->n + 2 < ctx->cap && rnd_below(ctx, 4) == 0) {
    block_t b;
    if (queue_pop(ctx->queue, &b)) {
      ctx->handed_in++;
      ctx->opname = "adopt";
      if (!verify_block(ctx, &b)) return false;
      ctx->blocks[ctx->n++] = b; /* capacity: see thread_main */
      ctx->live_bytes += b.usable;
      unsigned r = (unsigned)rnd_below(ctx, 10);
      if (r < 5) {
        block_t t;
        if (!take_block(ctx, ctx->n - 1, &t)) return false;
        return free_block(ctx, &t);
      }
      if (r < 8) return op_realloc(ctx, ctx->n - 1);
      return true;
    }
  }
  bool must_free = ctx->n >= MAX_LIVE || ctx->live_bytes > MAX_LIVE_BYTES;
  /* Drift between filling up and draining so both regimes are covered. */
  unsigned alloc_pct = ((ctx->op / 512) & 1) ? 60 : 40;
  if (ctx->n == 0 || (!must_free && rnd_below(ctx, 100) < alloc_pct)) return op_alloc(ctx);
  size_t i = rnd_below(ctx, ctx->n);
  unsigned r = (unsigned)rnd_below(ctx, 100);
  if (must_free || r < 45) {
    block_t b;
    if (!take_block(ctx, i, &b)) return false;
    if (ctx->queue != NULL && rnd_below(ctx, 2) == 0) {
      /* leave it to another thread; it stays live in the range set */
      char why[200];
      CHECK(rs_insert(ctx->rs, (uintptr_t)b.p, b.usable, why, sizeof(why)), "%s", why);
      if (queue_push(ctx->queue, &b)) {
        ctx->handed_out++;
        return true;
      }
      CHECK(rs_remove(ctx->rs, (uintptr_t)b.p), "%s", "lost block");
    }
    return free_block(ctx, &b);
  }
  if (r < 85) return op_realloc(ctx, i);
  return op_usable(ctx, i);
}

static bool drain(ctx_t *ctx) {
  while (ctx->n > 0) {
    block_t b;
    if (!take_block(ctx, ctx->n - 1, &b)) return false;
    if (!free_block(ctx, &b)) return false;
  }
  return true;
}

/* ---- single thread ---- */

#define NSEEDS 200
#define NOPS 3000

static void test_model_single(void **state) {
  (void)state;
  rangeset_t rs = {0};
  ctx_t ctx;
  memset(&ctx, 0, sizeof(ctx));
  ctx.rs = &rs;
  unsigned long nops[16] = {0};
  /* XALLOC_MODEL_SEEDS=first:count reruns other seeds (e.g. to replay a failure). */
  unsigned long long first = 1, count = NSEEDS;
  const char *env = getenv("XALLOC_MODEL_SEEDS");
  if (env != NULL && sscanf(env, "%llu:%llu", &first, &count) != 2) first = 1, count = NSEEDS;
  for (unsigned long long seed = first; seed < first + count; seed++) {
    ctx.seed = seed;
    ctx.rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    ctx.op = 0;
    /* Seeds ending in 7, 8, 9: tiny sizes; large sizes; huge sizes and big alignments. */
    ctx.mode = seed % 10 < 7 ? 0 : (int)(seed % 10) - 6;
    int budget = ctx.mode == 2 ? NOPS / 5 : ctx.mode == 3 ? NOPS / 10 : NOPS;
    bool ok = true;
    for (int k = 0; ok && k < budget; k++) ok = step(&ctx);
    if (ok) ok = drain(&ctx);
    if (!ok) fail_msg("%s", ctx.err);
    assert_int_equal(rs.n, 0);
    assert_int_equal(ctx.live_bytes, 0);
    for (int k = 0; k < 16; k++) nops[k] += ctx.nops[k];
    memset(ctx.nops, 0, sizeof(ctx.nops));
  }
  print_message("model single: malloc %lu calloc %lu realloc(NULL) %lu reallocarray(NULL) %lu "
                "posix_memalign %lu aligned_alloc %lu memalign %lu valloc %lu pvalloc %lu free %lu "
                "free_sized %lu free_aligned_sized %lu reallocarray %lu realloc %lu usable %lu\n",
                nops[0], nops[1], nops[2], nops[3], nops[4], nops[5], nops[6], nops[7], nops[8],
                nops[9], nops[10], nops[11], nops[12], nops[13], nops[14]);
  /* Every entry point was exercised. */
  if (count >= NSEEDS)
    for (int k = 0; k < 15; k++) assert_true(nops[k] > 100);
  free(ctx.blocks);
  free(rs.v);
}

/* ---- four threads, one model, hand-off queue ---- */

#define NTHREADS 4
#define MT_ROUNDS 8
#define MT_OPS 12000

static rangeset_t mt_rs;
static pthread_mutex_t mt_rs_lock = PTHREAD_MUTEX_INITIALIZER;
static queue_t mt_queue = {.lock = PTHREAD_MUTEX_INITIALIZER};
static volatile int mt_stop;

typedef struct {
  ctx_t ctx;
  pthread_t tid;
  bool ok;
} worker_t;

static void *thread_main(void *arg) {
  worker_t *w = arg;
  ctx_t *ctx = &w->ctx;
  /* Room for MAX_LIVE blocks plus one adopted. */
  ctx->cap = MAX_LIVE + 8;
  ctx->blocks = malloc(ctx->cap * sizeof(block_t));
  w->ok = ctx->blocks != NULL;
  for (int k = 0; w->ok && k < MT_OPS && !mt_stop; k++) w->ok = step(ctx);
  /* Leave some of what is left for the others (and the main thread). */
  while (w->ok && ctx->n > 0) {
    block_t b;
    w->ok = take_block(ctx, ctx->n - 1, &b);
    if (!w->ok) break;
    if (ctx->n % 2 == 0) {
      char why[200];
      w->ok = rs_insert(ctx->rs, (uintptr_t)b.p, b.usable, why, sizeof(why));
      if (w->ok && queue_push(ctx->queue, &b)) {
        ctx->handed_out++;
        continue;
      }
      if (w->ok) rs_remove(ctx->rs, (uintptr_t)b.p);
    }
    if (w->ok) w->ok = free_block(ctx, &b);
  }
  free(ctx->blocks);
  ctx->blocks = NULL;
  return NULL;
}

static void test_model_threads(void **state) {
  (void)state;
  mt_rs.lock = &mt_rs_lock;
  worker_t w[NTHREADS];
  unsigned long in = 0, out = 0;
  ctx_t main_ctx;
  memset(&main_ctx, 0, sizeof(main_ctx));
  main_ctx.rs = &mt_rs;
  main_ctx.stop = &mt_stop;
  main_ctx.rng = 12345;
  for (unsigned round = 0; round < MT_ROUNDS; round++) {
    for (int t = 0; t < NTHREADS; t++) {
      memset(&w[t], 0, sizeof(w[t]));
      w[t].ctx.seed = 1000 + round * NTHREADS + (unsigned)t;
      w[t].ctx.rng = w[t].ctx.seed * 0x9E3779B97F4A7C15ULL + 7;
      w[t].ctx.rs = &mt_rs;
      w[t].ctx.queue = &mt_queue;
      w[t].ctx.stop = &mt_stop;
      w[t].ctx.next_pat = (uint8_t)(t * 60);
      assert_int_equal(pthread_create(&w[t].tid, NULL, thread_main, &w[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) assert_int_equal(pthread_join(w[t].tid, NULL), 0);
    for (int t = 0; t < NTHREADS; t++) {
      if (!w[t].ok) fail_msg("thread %d: %s", t, w[t].ctx.err[0] ? w[t].ctx.err : "failed");
      in += w[t].ctx.handed_in;
      out += w[t].ctx.handed_out;
    }
    /* Every other round, the main thread frees what the exited threads left. */
    if (round % 2 == 1 || round == MT_ROUNDS - 1) {
      block_t b;
      main_ctx.seed = round;
      while (queue_pop(&mt_queue, &b)) {
        main_ctx.op++;
        main_ctx.opname = "main drain";
        bool ok = rs_remove(&mt_rs, (uintptr_t)b.p);
        if (!ok) fail_msg("%p missing from the range set", (void *)b.p);
        if (!free_block(&main_ctx, &b)) fail_msg("%s", main_ctx.err);
      }
    }
  }
  assert_int_equal(mt_rs.n, 0);
  /* A good share of blocks changed threads. */
  assert_true(in > (unsigned long)(MT_ROUNDS * NTHREADS * MT_OPS) / 50);
  assert_true(out >= in);
  print_message("model threads: %lu blocks handed between threads, %lu adopted\n", out, in);
  free(mt_rs.v);
  mt_rs.v = NULL;
  mt_rs.n = mt_rs.cap = 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_single),
      cmocka_unit_test(test_model_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
